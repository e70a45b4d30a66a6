"""FIWARE / NGSI entities: streetlighting, traffic flow, water consumption, cameras and devices.

Accepts NGSI-v2 keyValues, NGSI-v2 normalized, NGSI-LD normalized and NGSI-LD simplified entities,
bare or wrapped in a notification ``{"subscriptionId": ..., "data": [...]}``, on ``fiware/<Type>/<id>``
(option ``topic``) and on the IoT Agent's ``/json/<apikey>/<deviceId>/attrs`` (option ``iota_topic``).
See README.md in this folder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any, ClassVar

import orjson

from .._contract import Command, ConfigError, Decoded, DecodeError, Driver, EncodeError, Event, Publish, Reading, Value
from .._schema import unit_of
from ..kit import (
    BAD_IDENTIFIER,
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    UNKNOWN_TOPIC,
    UNKNOWN_UNIT,
    WRONG_KIND,
    check_range,
    is_identifier,
    parse_object,
    parse_timestamp,
    pattern_option,
    timezone_option,
    to_bool,
    to_float,
    to_int,
)
from ..lighting import level_command

__all__ = ["ENTITY_TYPES", "FiwareDriver", "device_id"]

_LD_TYPES = frozenset({"Property", "Relationship", "GeoProperty", "LanguageProperty"})
_PHASES = ("L1", "L2", "L3")  # cabinet R/S/T and feeder R/Y/B are the same physical phases
_POWER_UNITS = {"W": 1.0, "kW": 1000.0}
_ENERGY_UNITS = {"kWh": 1.0, "Wh": 0.001}
_VOLUME_UNITS = {"m3": 1.0, "L": 0.001}
# UN/CEFACT unit codes (NGSI unitCode) -> factor into the canonical unit, per quantity
_POWER_CODES = {"WTT": 1.0, "KWT": 1000.0}
_REACTIVE_CODES = {"D46": 1.0, "KVR": 1000.0}  # var, kvar
_ENERGY_CODES = {"KWH": 1.0, "WHR": 0.001}
_VOLUME_CODES = {"MTQ": 1.0, "LTR": 0.001}
_FLOW_CODES = {"MQH": 1.0, "E32": 0.001}  # m3/h, L/h
_SPEED_CODES = {"KMH": 1.0}
_RSSI_DBM = frozenset({"DBM", "dBm", "2N"})
_RSSI_MW = frozenset({"C31", "mW"})


def device_id(entity_id: str) -> str:
    """The entity id without ``urn:ngsi-ld:<Type>:`` (the type segment as written, e.g. ``Consumer``)."""
    if entity_id.startswith("urn:ngsi-ld:"):
        rest = entity_id[len("urn:ngsi-ld:"):]
        _type, sep, tail = rest.partition(":")
        return tail if sep and tail else rest
    return entity_id


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and "@value" in value:  # JSON-LD typed literal {"@type": "DateTime", ...}
        return value["@value"]
    return value


class _Entity:
    """One entity whatever its form: ``get(name)`` gives (value, unitCode, observedAt)."""

    __slots__ = ("attrs", "id", "type")

    def __init__(self, obj: Mapping[str, Any], etype: str, eid: str | None) -> None:
        self.attrs = obj
        self.type = etype
        self.id = eid

    def get(self, name: str) -> tuple[Any, str | None, Any]:
        raw = self.attrs.get(name)
        if isinstance(raw, dict):
            kind = raw.get("type")
            if kind in _LD_TYPES:  # NGSI-LD normalized
                value = raw.get("object") if kind == "Relationship" else raw.get("value")
                unit = raw.get("unitCode")
                return _unwrap(value), unit if isinstance(unit, str) else None, raw.get("observedAt")
            if "type" in raw and "value" in raw:  # NGSI-v2 normalized
                meta = raw.get("metadata")
                unit = None
                if isinstance(meta, dict):
                    code = meta.get("unitCode")
                    code = code.get("value") if isinstance(code, dict) else code
                    unit = code if isinstance(code, str) else None
                return _unwrap(raw["value"]), unit, None
        return _unwrap(raw), None, None  # keyValues (or a structured value)

    def value(self, name: str) -> Any:
        return self.get(name)[0]


def _pct(fraction: float) -> float:
    return round(fraction * 100.0, 9)  # 0.57 * 100 is 56.99999999999999 in binary floating point


class FiwareDriver(Driver):
    name = "fiware"
    families = ("lighting", "traffic", "water", "cctv")
    topics: ClassVar[tuple[str, ...]] = ("fiware/+/+", "/json/+/+/attrs")
    measures = {
        **{("lighting", m): unit_of("lighting", m) for m in (
            "on", "setpoint", "power", "reactive_power", "energy", "voltage", "current", "power_factor",
            "lamps", "faults")},
        **{("traffic", m): unit_of("traffic", m) for m in ("flow", "count", "interval", "occupancy", "speed")},
        **{("water", m): unit_of("water", m) for m in ("index", "max_flow", "min_flow", "alarms")},
        **{("cctv", m): unit_of("cctv", m) for m in ("online", "battery", "rssi")},
    }
    commands = ("set_level",)
    OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "topic", "iota_topic", "power_unit", "energy_unit", "water_volume_unit", "timezone",
        "iota_types", "command_topic", "iota_apikey"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        o = self.options
        self._topic = pattern_option(self.name, o, "topic", "fiware/{type}/{device}")
        self._iota = pattern_option(self.name, o, "iota_topic", "/json/{apikey}/{device}/attrs")
        object.__setattr__(self, "topics", (self._topic.filter, self._iota.filter))
        self._power = self._choice("power_unit", _POWER_UNITS)
        self._energy = self._choice("energy_unit", _ENERGY_UNITS)
        self._volume = self._choice("water_volume_unit", _VOLUME_UNITS)
        self._tz: tzinfo | None = timezone_option(self.name, o)
        types = o.get("iota_types", {})
        if not isinstance(types, Mapping) or any(t not in ENTITY_TYPES for t in types.values()):
            raise ConfigError(f"driver {self.name!r}: iota_types maps IoT Agent device ids to one of "
                              f"{', '.join(ENTITY_TYPES)}")
        self._iota_types = {str(k): str(v) for k, v in types.items()}
        cmd = o.get("command_topic", "fiware/Streetlight/{device}/cmd")
        if not isinstance(cmd, str) or "{device}" not in cmd or "+" in cmd or "#" in cmd:
            raise ConfigError(f"driver {self.name!r}: command_topic must contain {{device}} and no wildcard")
        self._command_topic = cmd
        apikey = o.get("iota_apikey")
        if apikey is not None and (not isinstance(apikey, str) or not is_identifier(apikey)):
            raise ConfigError(f"driver {self.name!r}: iota_apikey must be an identifier")
        self._apikey: str | None = apikey

    def _choice(self, key: str, table: Mapping[str, float]) -> float | None:
        raw = self.options.get(key)
        if raw is None:
            return None
        if raw not in table:
            raise ConfigError(f"driver {self.name!r}: {key} must be one of {', '.join(table)}, got {raw!r}")
        return table[raw]

    # ------------------------------------------------------------------ decode

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = self._topic.match(topic)
        iota = None if where is not None else self._iota.match(topic)
        if where is None and iota is None:
            raise DecodeError(UNKNOWN_TOPIC,
                              f"{topic!r} matches neither {self._topic.pattern} nor {self._iota.pattern}")
        obj = parse_object(payload)
        entities: list[_Entity]
        if iota is not None:
            device = iota["device"]
            etype = obj.get("type") if isinstance(obj.get("type"), str) else self._iota_types.get(device)
            if etype is None:
                raise DecodeError(MISSING_FIELD, f"IoT Agent device {device!r}: entity type unknown "
                                  "(set option iota_types)")
            entities = [_Entity(obj, etype, device)]
            fallback: str | None = device
        elif "data" in obj and "subscriptionId" in obj:
            data = obj["data"]
            if not isinstance(data, list):
                raise DecodeError(BAD_TYPE, "data: expected a list of entities")
            entities = [self._entity(e, f"data[{i}]") for i, e in enumerate(data)]
            fallback = where["device"] if where and len(entities) == 1 else None
        else:
            entity = self._entity(obj, "entity")
            topic_type = where.get("type") if where else None
            if topic_type and topic_type != entity.type and topic_type in ENTITY_TYPES:
                raise DecodeError(WRONG_KIND, f"topic says {topic_type}, the entity is a {entity.type}")
            entities = [entity]
            fallback = where["device"] if where else None
        out = Decoded()
        for entity in entities:
            handler = _HANDLERS.get(entity.type)
            if handler is None:
                raise DecodeError(WRONG_KIND, f"entity type {entity.type!r} is not decoded; supported: "
                                  f"{', '.join(ENTITY_TYPES)}")
            device = self._device(entity, fallback)
            readings, events = handler(self, entity, device)
            out.readings.extend(r for r in readings if r.values)
            out.events.extend(events)
        if not out.readings and not out.events:
            raise DecodeError(MISSING_FIELD, "no supported attribute with a value")
        return out

    @staticmethod
    def _entity(obj: Any, where: str) -> _Entity:
        if not isinstance(obj, dict):
            raise DecodeError(BAD_TYPE, f"{where}: an entity is an object")
        etype, eid = obj.get("type"), obj.get("id")
        if not isinstance(etype, str) or not etype:
            raise DecodeError(MISSING_FIELD, f"{where}: entity without a type")
        if eid is not None and not isinstance(eid, str):
            raise DecodeError(BAD_TYPE, f"{where}: id must be a string")
        return _Entity(obj, etype, eid or None)

    @staticmethod
    def _device(entity: _Entity, fallback: str | None) -> str:
        if entity.id is not None:
            short = device_id(entity.id)
            if is_identifier(short):
                return short
        if fallback:  # an id that is a URL or has spaces: the topic names the device
            return fallback
        raise DecodeError(BAD_IDENTIFIER, f"entity id {entity.id!r} is not an identifier and no topic id applies")

    def _ts(self, entity: _Entity, observed: str | None, *dates: str) -> float | None:
        """The reading time: the NGSI-LD ``observedAt`` of attribute ``observed``, else the first date
        attribute present (``observationDateTime``, ``dateObserved``, ``dateModified``...), else none."""
        if observed is not None:
            at = entity.get(observed)[2]
            if at not in (None, ""):
                return parse_timestamp(_unwrap(at), f"{observed}.observedAt", tz=self._tz)
        for name in dates:
            raw = entity.value(name)
            if raw not in (None, ""):
                return parse_timestamp(raw, name, tz=self._tz)
        return None

    def _scaled(self, entity: _Entity, name: str, codes: Mapping[str, float], default: float | None,
                option: str) -> float | None:
        raw, code, _ = entity.get(name)
        number = to_float(raw, name)
        if number is None:
            return None
        if code is not None:
            if code not in codes:
                raise DecodeError(UNKNOWN_UNIT, f"{name}: unitCode {code!r} is not one of {', '.join(codes)}")
            return round(number * codes[code], 9)  # 191051 * 0.001 is 191.05100000000002
        if default is None:
            raise DecodeError(UNKNOWN_UNIT, f"{name} has no unitCode and option {option} is not set")
        return round(number * default, 9)

    # ------------------------------------------------------------------ lighting

    def _power_state(self, entity: _Entity, values: dict[str, Value]) -> None:
        state = entity.value("powerState")
        if state is None or state == "":
            return
        if not isinstance(state, str):
            raise DecodeError(BAD_TYPE, f"powerState: expected text, got {state!r}")
        text = state.strip().lower()
        if text in ("on", "low"):
            values["on"] = True
        elif text == "off":
            values["on"] = False
        elif text != "bootingup":  # booting up: neither on nor off yet
            raise DecodeError(BAD_VALUE, f"powerState: {state!r} is not on, off, low or bootingUp")

    def _setpoint(self, entity: _Entity, values: dict[str, Value]) -> None:
        level = to_float(entity.value("illuminanceLevel"), "illuminanceLevel")
        if level is not None:
            values["setpoint"] = check_range("lighting", "setpoint", _pct(level))

    def _put(self, values: dict[str, Value], family: str, measure: str, number: float | None) -> None:
        if number is not None:
            values[measure] = check_range(family, measure, float(number))

    def _streetlight(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        v: dict[str, Value] = {}
        self._power_state(e, v)
        self._setpoint(e, v)
        self._put(v, "lighting", "power", self._scaled(e, "powerConsumption", _POWER_CODES, self._power, "power_unit"))
        self._put(v, "lighting", "energy",
                  self._scaled(e, "lifetimePowerConsumption", _ENERGY_CODES, self._energy, "energy_unit"))
        self._put(v, "lighting", "current", to_float(e.value("current"), "current"))
        self._put(v, "lighting", "voltage", to_float(e.value("voltage"), "voltage"))
        self._put(v, "lighting", "power_factor", to_float(e.value("powerFactor"), "powerFactor"))
        ts = self._ts(e, "powerState", "observationDateTime", "dateModified")
        events: list[Event] = []
        status = e.value("status")
        if status not in (None, ""):
            if not isinstance(status, str) or not status.isalnum():
                raise DecodeError(BAD_VALUE, f"status: {status!r} is not a status word")
            token = "" if status.lower() == "ok" else re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", status).upper()
            v["faults"] = token
            if token:
                events.append(Event(device, "lighting", "fault", ts, None, {"token": token}))
        return [Reading(device, "lighting", v, ts)], events

    def _group(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        v: dict[str, Value] = {}
        self._power_state(e, v)
        self._setpoint(e, v)
        return [Reading(device, "lighting", v, self._ts(e, "powerState", "observationDateTime", "dateModified"))], []

    def _phases(self, e: _Entity, name: str, factor: float | None, option: str | None) -> list[float | None]:
        raw = e.value(name)
        if raw is None or raw == "":
            return []
        if not isinstance(raw, list) or not 1 <= len(raw) <= 3:
            raise DecodeError(BAD_TYPE, f"{name}: expected a list of 1 to 3 phase values")
        numbers = [to_float(x, name) for x in raw]
        if factor is None and any(n is not None for n in numbers):
            raise DecodeError(UNKNOWN_UNIT, f"{name} has no unit and option {option} is not set")
        return [None if n is None else round(n * (factor or 1.0), 9) for n in numbers]

    def _feeder(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        ts = self._ts(e, "powerState", "observationDateTime", "dateModified")
        v: dict[str, Value] = {}
        self._power_state(e, v)
        self._put(v, "lighting", "power", self._scaled(e, "totalActivePower", _POWER_CODES, self._power, "power_unit"))
        self._put(v, "lighting", "reactive_power",
                  self._scaled(e, "totalReactivePower", _REACTIVE_CODES, self._power, "power_unit"))
        lamps = to_int(e.value("numStreetlight"), "numStreetlight")
        if lamps is not None:
            v["lamps"] = check_range("lighting", "lamps", lamps)
        readings = [Reading(device, "lighting", v, ts)]
        per_phase: list[dict[str, Value]] = [{}, {}, {}]
        for name, measure, factor, option in (("phaseVoltage", "voltage", 1.0, None),
                                              ("phaseCurrent", "current", 1.0, None),
                                              ("activePower", "power", self._power, "power_unit"),
                                              ("reactivePower", "reactive_power", self._power, "power_unit")):
            for i, number in enumerate(self._phases(e, name, factor, option)):
                self._put(per_phase[i], "lighting", measure, number)
        readings += [Reading(device, "lighting", p, ts, None, _PHASES[i]) for i, p in enumerate(per_phase)]
        return readings, []

    def _cabinet(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        ts = self._ts(e, None, "observationDateTime", "dateObserved", "dateModified")
        kw = {"KWT": 1000.0, "WTT": 1.0}
        kvar = {"KVR": 1000.0, "D46": 1.0}
        v: dict[str, Value] = {}
        self._put(v, "lighting", "energy", self._scaled(e, "energyConsumed", _ENERGY_CODES, 1.0, ""))
        self._put(v, "lighting", "power", self._scaled(e, "totalActivePower", kw, 1000.0, ""))
        self._put(v, "lighting", "reactive_power", self._scaled(e, "totalReactivePower", kvar, 1000.0, ""))
        self._put(v, "lighting", "power_factor", to_float(e.value("cosPhi"), "cosPhi"))
        readings = [Reading(device, "lighting", v, ts)]
        for phase, suffix in zip(_PHASES, "RST", strict=True):
            p: dict[str, Value] = {}
            self._put(p, "lighting", "power", self._scaled(e, f"activePower{suffix}", kw, 1000.0, ""))
            self._put(p, "lighting", "reactive_power", self._scaled(e, f"reactivePower{suffix}", kvar, 1000.0, ""))
            self._put(p, "lighting", "current", to_float(e.value(f"intensity{suffix}"), f"intensity{suffix}"))
            self._put(p, "lighting", "voltage", to_float(e.value(f"voltage{suffix}"), f"voltage{suffix}"))
            self._put(p, "lighting", "power_factor", to_float(e.value(f"powerFactor{suffix}"), f"powerFactor{suffix}"))
            readings.append(Reading(device, "lighting", p, ts, None, phase))
        return readings, []

    # ------------------------------------------------------------------ traffic

    def _traffic(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        start = self._ts(e, None, "dateObservedFrom")
        end = self._ts(e, None, "dateObservedTo")
        observed = e.value("dateObserved")
        if (start is None or end is None) and isinstance(observed, str) and "/" in observed:
            first, _, last = observed.partition("/")
            start = parse_timestamp(first, "dateObserved", tz=self._tz)
            end = parse_timestamp(last, "dateObserved", tz=self._tz)
        elif start is None and observed not in (None, ""):
            start = parse_timestamp(observed, "dateObserved", tz=self._tz)  # an instant: no period
        v: dict[str, Value] = {}
        count = to_int(e.value("intensity"), "intensity")
        if count is not None:
            v["count"] = check_range("traffic", "count", count)
            if start is not None and end is not None:
                if end <= start:
                    raise DecodeError(BAD_VALUE, "dateObserved: the period ends before it starts")
                v["interval"] = end - start
                v["flow"] = check_range("traffic", "flow", round(count * 3600.0 / (end - start), 9))
        occupancy = to_float(e.value("occupancy"), "occupancy")
        if occupancy is not None:
            v["occupancy"] = check_range("traffic", "occupancy", _pct(occupancy))
        self._put(v, "traffic", "speed", self._scaled(e, "averageVehicleSpeed", _SPEED_CODES, 1.0, ""))
        return [Reading(device, "traffic", v, start)], []

    # ------------------------------------------------------------------ water

    def _water(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        v: dict[str, Value] = {}
        self._put(v, "water", "index",
                  self._scaled(e, "waterConsumption", _VOLUME_CODES, self._volume, "water_volume_unit"))
        self._put(v, "water", "max_flow", self._scaled(e, "maxFlow", _FLOW_CODES, 0.001, ""))
        self._put(v, "water", "min_flow", self._scaled(e, "minFlow", _FLOW_CODES, 0.001, ""))
        tokens: list[str] | None = None
        for name, token in _WATER_FLAGS:
            flag = to_bool(e.value(name), name)
            if flag is not None:
                tokens = tokens or []
                if flag:
                    tokens.append(token)
        persistence = e.value("alarmFlowPersistence")
        if persistence not in (None, ""):
            key = persistence.strip().lower() if isinstance(persistence, str) else None
            if key not in _PERSISTENCE:
                raise DecodeError(BAD_VALUE, f"alarmFlowPersistence: {persistence!r} is not a documented value")
            tokens = tokens or []
            if _PERSISTENCE[key]:
                tokens.append(_PERSISTENCE[key])
        if tokens is not None:
            v["alarms"] = ",".join(tokens)
        ts = self._ts(e, "waterConsumption", "dateObserved", "dateModified")
        events = [Event(device, "water", "alarm", ts, None, {"token": t}) for t in tokens or []]
        return [Reading(device, "water", v, ts)], events

    # ------------------------------------------------------------------ cctv

    def _camera(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        v: dict[str, Value] = {}
        on = to_bool(e.value("on"), "on")
        if on is not None:
            v["online"] = on
        return [Reading(device, "cctv", v, self._ts(e, "on", "dateObserved", "dateModified"))], []

    def _device_entity(self, e: _Entity, device: str) -> tuple[list[Reading], list[Event]]:
        v: dict[str, Value] = {}
        battery = to_float(e.value("batteryLevel"), "batteryLevel")
        if battery is not None and battery != -1:  # -1 means unknown
            v["battery"] = check_range("cctv", "battery", _pct(battery))
        raw, code, _ = e.get("rssi")
        rssi = to_float(raw, "rssi")
        if rssi is not None and code is not None:  # without a unitCode the value means nothing
            if code in _RSSI_DBM:
                v["rssi"] = check_range("cctv", "rssi", rssi)
            elif code in _RSSI_MW:
                if rssi <= 0:
                    raise DecodeError(BAD_VALUE, f"rssi: {rssi} mW has no dBm value")
                v["rssi"] = check_range("cctv", "rssi", round(10.0 * math.log10(rssi), 6))
            else:
                raise DecodeError(UNKNOWN_UNIT, f"rssi: unitCode {code!r} is neither dBm nor mW")
        ts = self._ts(e, "batteryLevel", "dateLastValueReported", "dateObserved", "dateModified")
        return [Reading(device, "cctv", v, ts)], []

    # ------------------------------------------------------------------ encode

    def encode(self, command: Command) -> list[Publish]:
        if command.action != "set_level":
            raise EncodeError(f"driver {self.name!r} cannot encode {command.action!r}")
        level = level_command(self.name, command.value)
        if not is_identifier(command.device):
            raise EncodeError(f"set_level: {command.device!r} is not a device identifier")
        if self._apikey is not None:  # device behind a FIWARE IoT Agent for JSON
            body = orjson.dumps({"dim": level})
            return [Publish(f"/{self._apikey}/{command.device}/cmd", body)]
        body = orjson.dumps({"illuminanceLevel": round(level / 100.0, 9)})
        return [Publish(self._command_topic.replace("{device}", command.device), body)]


_WATER_FLAGS = (
    ("alarmInProgress", "ALARM_IN_PROGRESS"),
    ("alarmStopsLeaks", "ALARM_STOPS_LEAKS"),
    ("alarmTamper", "ALARM_TAMPER"),
    ("alarmWaterQuality", "ALARM_WATER_QUALITY"),
    ("moduleTampered", "MODULE_TAMPERED"),
    ("acquisitionStageFailure", "ACQUISITION_STAGE_FAILURE"),
)
_PERSISTENCE = {
    "nothing to report": "",
    "no persistence": "",
    "in progress impacting persistence": "FLOW_PERSISTENCE",
    "in progress persistence": "FLOW_PERSISTENCE",
    "past persistence during the period": "PREV_FLOW_PERSISTENCE",
}
_Handler = Callable[[FiwareDriver, _Entity, str], tuple[list[Reading], list[Event]]]
_HANDLERS: dict[str, _Handler] = {
    "Streetlight": FiwareDriver._streetlight,
    "StreetlightGroup": FiwareDriver._group,
    "StreetlightControlCabinet": FiwareDriver._cabinet,
    "StreetlightFeeder": FiwareDriver._feeder,
    "TrafficFlowObserved": FiwareDriver._traffic,
    "WaterConsumptionObserved": FiwareDriver._water,
    "Camera": FiwareDriver._camera,
    "Device": FiwareDriver._device_entity,
}
ENTITY_TYPES: tuple[str, ...] = tuple(_HANDLERS)
