"""The network model and the live device state as NGSI-LD entities in Smart Data Models types.

One entity per thing the supervisor knows, id ``urn:ngsi-ld:<Type>:<id>``:

========================== ==================================================================
type                        built from
========================== ==================================================================
Streetlight                 a ``lamp`` of the model (always)
StreetlightControlCabinet   a ``lighting_cabinet`` (always)
StreetlightGroup            ``<cabinet>``: every lamp of a cabinet (always); ``<cabinet>:<circuit>``:
                            a circuit the cabinet has reported (channel ``<circuit>`` of its readings)
TrafficFlowObserved         a ``road_sensor`` once it has reported; ``<sensor>:<channel>`` per lane or
                            direction it reports separately (``laneId`` when the channel is a number)
WaterConsumptionObserved    a ``water_meter`` once it has reported
AirQualityObserved          an ``air_station`` once it has reported
Device                      a ``camera``, a radio gateway (site of kind ``radio_gateway``), a switch
========================== ==================================================================

An *Observed* type is an observation: it exists once there is one (its schema requires
``dateObserved``). Entities are built in the NGSI-LD **normalized** form (``Property`` /
``GeoProperty`` / ``Relationship``); :func:`key_values` projects one to the simplified form.
Live values carry ``observedAt`` (the device's time of its last reading) and, when the unit has a
UN/CEFACT code, ``unitCode`` (:mod:`supervisor.ngsi.units`).

Relationships for the layers:

- ``refStreetlightControlCabinet`` and ``refStreetlightGroup`` (Smart Data Models): lamp -> cabinet
  and group; ``refStreetlight`` group -> lamps; ``refStreetlightGroup`` cabinet -> groups;
- ``refDevice`` (Smart Data Models): the network Devices the thing is reached through (its radio
  gateway, the switch of its port);
- ``refSwitch`` (ours): the switch, as a ``Device``, whose port the thing is plugged into, with the
  port id as the Relationship's sub-property ``port``; for a switch, its uplink's upstream switch;
- ``refGateway`` (ours): the radio gateway, as a ``Device``, that relays the thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from supervisor.ngsi.units import unit_code

if TYPE_CHECKING:
    from supervisor.model import CityModel, DeviceInfo

Entity = dict[str, Any]
URN_PREFIX = "urn:ngsi-ld:"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
_SDM_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/{}/master/context.jsonld"

#: each entity type and the Smart Data Models repository that defines it
TYPE_REPOS: Mapping[str, str] = {
    "Streetlight": "dataModel.Streetlighting",
    "StreetlightControlCabinet": "dataModel.Streetlighting",
    "StreetlightGroup": "dataModel.Streetlighting",
    "TrafficFlowObserved": "dataModel.Transportation",
    "WaterConsumptionObserved": "dataModel.WaterConsumption",
    "AirQualityObserved": "dataModel.Environment",
    "Device": "dataModel.Device",
}
ENTITY_TYPES: tuple[str, ...] = tuple(TYPE_REPOS)
#: the one ``@context`` of every entity: the Smart Data Models contexts of our types, then the core
CONTEXT: tuple[str, ...] = (*(_SDM_CONTEXT.format(r) for r in dict.fromkeys(TYPE_REPOS.values())), CORE_CONTEXT)

#: what each family's devices let a Device "control" (Smart Data Models ``controlledProperty``)
FAMILY_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "traffic": ("trafficFlow",), "lighting": ("light", "electricityConsumption"), "cctv": ("motion",),
    "water": ("waterConsumption",), "air": ("airPollution",),
}


def urn(type_: str, ident: str) -> str:
    return f"{URN_PREFIX}{type_}:{ident}"


def split_urn(entity_id: str) -> tuple[str, str]:
    """``(type, local id)`` of one of our URNs; ``ValueError`` says what is wrong."""
    if not entity_id.startswith(URN_PREFIX):
        raise ValueError(f"entity id {entity_id!r} is not an NGSI-LD URN (urn:ngsi-ld:<Type>:<id>)")
    type_, sep, ident = entity_id[len(URN_PREFIX):].partition(":")
    if not sep or not type_ or not ident:
        raise ValueError(f"entity id {entity_id!r} is not of the form urn:ngsi-ld:<Type>:<id>")
    return type_, ident


def iso(ts: float) -> str:
    """An epoch as an RFC 3339 UTC date-time with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# live values -> Properties


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _same(v: object) -> object:
    return _number(v)


def _fraction(v: object) -> object:
    n = _number(v)
    return None if n is None else round(min(max(n / 100.0, 0.0), 1.0), 6)


def _kilo(v: object) -> object:
    n = _number(v)
    return None if n is None else n / 1000.0


def _litres(v: object) -> object:
    n = _number(v)
    return None if n is None or n < 0 else round(n * 1000.0)


def _integer(v: object) -> object:
    n = _number(v)
    return None if n is None else round(n)


def _power_state(v: object) -> object:
    return ("on" if v else "off") if isinstance(v, bool) else None


def _alarm_flag(v: object) -> object:
    return (1 if v else 0) if isinstance(v, str) else None


@dataclass(frozen=True, slots=True)
class Attr:
    """One NGSI-LD attribute read from one canonical measure: ``convert`` returns the value in
    ``unit`` (``None``: the value cannot be shown, it is left out)."""

    name: str
    measure: str
    unit: str | None = None
    convert: Callable[[object], object] = _same


_STREETLIGHT = (Attr("powerState", "on", None, _power_state), Attr("illuminanceLevel", "level", "1", _fraction),
                Attr("powerConsumption", "power", "W"), Attr("lifetimePowerConsumption", "energy", "kWh"),
                Attr("voltage", "voltage", "V"), Attr("current", "current", "A"),
                Attr("powerFactor", "power_factor", "1"))
_GROUP = (Attr("powerState", "on", None, _power_state), Attr("illuminanceLevel", "level", "1", _fraction))
_CABINET = (Attr("totalActivePower", "power", "kW", _kilo), Attr("energyConsumed", "energy", "kWh"),
            Attr("totalReactivePower", "reactive_power", "kvar", _kilo), Attr("voltageR", "voltage", "V"),
            Attr("intensityR", "current", "A"), Attr("cosPhi", "power_factor", "1"))
_TRAFFIC = (Attr("intensity", "count", "veh", _integer), Attr("averageVehicleSpeed", "speed", "km/h"),
            Attr("occupancy", "occupancy", "1", _fraction), Attr("vehicleFlowRate", "flow", "veh/h"))
_WATER = (Attr("waterConsumption", "index", "L", _litres), Attr("maxFlow", "max_flow", "L/h", _litres),
          Attr("minFlow", "min_flow", "L/h", _litres), Attr("alarmInProgress", "alarms", None, _alarm_flag))
_AIR = (Attr("no2", "no2", "µg/m3"), Attr("pm10", "pm10", "µg/m3"), Attr("pm25", "pm25", "µg/m3"),
        Attr("o3", "o3", "µg/m3"), Attr("airQualityIndex", "eaqi", "level", _integer),
        Attr("temperature", "temperature", "°C"), Attr("relativeHumidity", "humidity", "1", _fraction))
_DEVICE = (Attr("rssi", "rssi", "dBm"), Attr("batteryLevel", "battery", "1", _fraction))


@dataclass(frozen=True, slots=True)
class Live:
    """What the device state says of one device, copied under the supervisor's lock."""

    status: str
    last_ts: float
    values: Mapping[str, object]

    def channels(self) -> list[str]:
        return sorted({k.partition("@")[2] for k in self.values if "@" in k})

    def of_channel(self, channel: str) -> dict[str, object]:
        suffix = f"@{channel}"
        return {k[:-len(suffix)]: v for k, v in self.values.items() if k.endswith(suffix)}


def prop(value: object, observed_at: str | None = None, unit: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "Property", "value": value}
    if observed_at is not None:
        p["observedAt"] = observed_at
    code = unit_code(unit) if unit is not None else None
    if code is not None:
        p["unitCode"] = code
    return p


def rel(obj: str | list[str], **sub: object) -> dict[str, Any]:
    r: dict[str, Any] = {"type": "Relationship", "object": obj}
    r.update({k: prop(v) for k, v in sub.items()})
    return r


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _live_attrs(entity: Entity, attrs: Iterable[Attr], values: Mapping[str, object], at: str | None) -> None:
    for a in attrs:
        if a.measure in values:
            v = a.convert(values[a.measure])
            if v is not None:
                entity[a.name] = prop(v, at, a.unit)


def _base(type_: str, ident: str, lon: float, lat: float) -> Entity:
    return {"id": urn(type_, ident), "type": type_, "location": point(lon, lat)}


def _with_state(entity: Entity, live: Live | None) -> str | None:
    """``deviceState`` (ok, stale, fault) and the time of the last reading; that time, or None."""
    if live is None:
        return None
    at = iso(live.last_ts) if live.last_ts else None
    entity["deviceState"] = prop(live.status)
    return at


def _observed(entity: Entity, at: str) -> None:
    entity["dateObserved"] = prop(at)


def _finish(entity: Entity) -> Entity:
    entity["@context"] = list(CONTEXT)
    return entity


def streetlight_status(live: Live | None) -> str:
    """A Streetlight's ``status``: ``defectiveLamp`` while its device is in fault."""
    return "defectiveLamp" if live is not None and live.status == "fault" else "ok"


# ---------------------------------------------------------------------------------------------
# the builders


class Builder:
    """Builds the entities of one model; ``live`` gives the state of a device (or ``None``)."""

    def __init__(self, model: CityModel, index: ModelIndex) -> None:
        self.model = model
        self.index = index

    def network(self, entity: Entity, port: str | None, gateway: str | None, single: bool = False) -> None:
        """``refDevice``, ``refSwitch`` (with its ``port``) and ``refGateway`` of a thing."""
        devices: list[str] = []
        if gateway is not None:
            entity["refGateway"] = rel(urn("Device", gateway))
            devices.append(urn("Device", gateway))
        sw = self.model.ports[port].switch if port is not None and port in self.model.ports else None
        if sw is not None and port is not None:
            entity["refSwitch"] = rel(urn("Device", sw), port=port)
            devices.append(urn("Device", sw))
        if devices:
            entity["refDevice"] = rel(devices[0] if single else devices)

    def streetlight(self, info: DeviceInfo, live: Live | None) -> Entity:
        e = _base("Streetlight", info.id, info.lon, info.lat)
        at = _with_state(e, live)
        e["status"] = prop(streetlight_status(live), at)
        if info.cabinet is not None:
            e["refStreetlightControlCabinet"] = rel(urn("StreetlightControlCabinet", info.cabinet))
            e["refStreetlightGroup"] = rel(urn("StreetlightGroup", info.cabinet))
        self.network(e, info.port, info.gateway)
        if live is not None:
            _live_attrs(e, _STREETLIGHT, live.values, at)
        return _finish(e)

    def cabinet(self, info: DeviceInfo, live: Live | None) -> Entity:
        e = _base("StreetlightControlCabinet", info.id, info.lon, info.lat)
        at = _with_state(e, live)
        e["workingMode"] = prop("automatic")  # the supervisor's rules switch and dim the groups
        groups = [urn("StreetlightGroup", info.id)]
        groups += [urn("StreetlightGroup", f"{info.id}:{c}") for c in (live.channels() if live else [])]
        e["refStreetlightGroup"] = rel(groups)
        self.network(e, info.port, info.gateway)
        if live is not None:
            _live_attrs(e, _CABINET, live.values, at)
        return _finish(e)

    def group(self, info: DeviceInfo, circuit: str | None, live: Live | None) -> Entity:
        ident = info.id if circuit is None else f"{info.id}:{circuit}"
        e = _base("StreetlightGroup", ident, info.lon, info.lat)
        e["refStreetlightControlCabinet"] = rel(urn("StreetlightControlCabinet", info.id))
        if circuit is None:
            lamps = self.index.lamps_of.get(info.id, ())
            if lamps:
                e["refStreetlight"] = rel([urn("Streetlight", lamp) for lamp in lamps])
        else:
            e["circuitId"] = prop(circuit)
        if live is not None:
            at = iso(live.last_ts) if live.last_ts else None
            values = live.values if circuit is None else live.of_channel(circuit)
            _live_attrs(e, _GROUP, values, at)
        return _finish(e)

    def observed(self, type_: str, info: DeviceInfo, live: Live, channel: str | None = None) -> Entity:
        """A TrafficFlowObserved, WaterConsumptionObserved or AirQualityObserved of a reporting device."""
        e = _base(type_, info.id if channel is None else f"{info.id}:{channel}", info.lon, info.lat)
        at = _with_state(e, live) or iso(0.0)
        _observed(e, at)
        values: Mapping[str, object] = live.values if channel is None else live.of_channel(channel)
        if type_ == "TrafficFlowObserved":
            if channel is not None:
                if channel.isdigit() and int(channel) >= 1:
                    e["laneId"] = prop(int(channel))
                e["channel"] = prop(channel)
            if "interval" in values and _number(values["interval"]):
                e["dateObservedFrom"] = prop(iso(live.last_ts - float(values["interval"])))  # type: ignore[arg-type]
                e["dateObservedTo"] = prop(at)
        self.network(e, info.port, info.gateway, single=type_ == "AirQualityObserved")
        _live_attrs(e, _OBSERVED_ATTRS[type_], values, at)
        return _finish(e)

    def camera(self, info: DeviceInfo, live: Live | None) -> Entity:
        e = _base("Device", info.id, info.lon, info.lat)
        e["category"] = prop(["sensor", "multimedia"])
        e["controlledProperty"] = prop(list(FAMILY_PROPERTIES["cctv"]))
        at = _with_state(e, live)
        if at is not None:
            e["dateLastValueReported"] = prop(at)
        self.network(e, info.port, info.gateway)
        if live is not None:
            _live_attrs(e, _DEVICE, live.values, at)
        return _finish(e)

    def gateway(self, site_id: str) -> Entity:
        site = self.model.sites[site_id]
        e = _base("Device", site.id, site.lon, site.lat)
        e["category"] = prop(["network"])
        e["controlledProperty"] = prop(self.index.gateway_properties.get(site.id, ["location"]))
        self.network(e, site.port, None)
        return _finish(e)

    def switch(self, switch_id: str) -> Entity:
        sw = self.model.switches[switch_id]
        site = self.model.sites[sw.site]
        e = _base("Device", sw.id, site.lon, site.lat)
        e["category"] = prop(["network"])
        e["controlledProperty"] = prop(self.index.switch_properties.get(sw.id, ["location"]))
        if sw.uplink is not None:
            self.network(e, sw.uplink.to, None)
        return _finish(e)


_OBSERVED_ATTRS: Mapping[str, tuple[Attr, ...]] = {
    "TrafficFlowObserved": _TRAFFIC, "WaterConsumptionObserved": _WATER, "AirQualityObserved": _AIR,
}
#: the live attributes of the entity built from one device (no channel), by type and name: what
#: :class:`~supervisor.ngsi.view.NgsiView` reads to test ``q`` without building the entity
DEVICE_LIVE_ATTRS: Mapping[str, Mapping[str, Attr]] = {
    t: {a.name: a for a in attrs} for t, attrs in (
        ("Streetlight", _STREETLIGHT), ("StreetlightControlCabinet", _CABINET), ("Device", _DEVICE),
        *_OBSERVED_ATTRS.items())
}


# ---------------------------------------------------------------------------------------------
# the index of a model: which entity comes from which element


#: the device kind each type is built from (Device is also built from gateways and switches)
KIND_TYPES: Mapping[str, str] = {
    "lamp": "Streetlight", "lighting_cabinet": "StreetlightControlCabinet", "road_sensor": "TrafficFlowObserved",
    "water_meter": "WaterConsumptionObserved", "air_station": "AirQualityObserved", "camera": "Device",
}
GATEWAY_SITE_KIND = "radio_gateway"


class ModelIndex:
    """Built once per model (the model is immutable): device ids per kind, each sorted by entity id,
    the lamps of each cabinet, what the gateways and switches carry."""

    def __init__(self, model: CityModel) -> None:
        by_kind: dict[str, list[str]] = {k: [] for k in KIND_TYPES}
        lamps_of: dict[str, list[str]] = {}
        gw_families: dict[str, set[str]] = {}
        for info in model.devices.values():
            if info.kind in by_kind:
                by_kind[info.kind].append(info.id)
            if info.cabinet is not None and info.kind == "lamp":
                lamps_of.setdefault(info.cabinet, []).append(info.id)
            if info.gateway is not None:
                gw_families.setdefault(info.gateway, set()).add(info.family)
        self.by_kind: Mapping[str, list[str]] = {k: sorted(v) for k, v in by_kind.items()}
        self.lamps_of: Mapping[str, list[str]] = {k: sorted(v) for k, v in lamps_of.items()}
        self.gateways: list[str] = sorted(s.id for s in model.sites.values() if s.kind == GATEWAY_SITE_KIND)
        self.switches: list[str] = sorted(model.switches)
        self.gateway_properties = {g: _properties(fams) for g, fams in gw_families.items()}
        families_of_vlan = {svc.vlan: svc.id for svc in model.services.values()}
        self.switch_properties = {
            sw.id: _properties({families_of_vlan[v] for p in sw.ports if p in model.ports
                                for v in model.ports[p].vlans if v in families_of_vlan})
            for sw in model.switches.values()}


def _properties(services_or_families: set[str]) -> list[str]:
    """controlledProperty of a network device: what the families it carries measure (a family's
    service has the family's name in a generated city); ``location`` when nothing is known."""
    from drivers import catalogue

    found: dict[str, None] = {}
    fams = catalogue.families()
    for name in sorted(services_or_families):
        family = name if name in fams else next((f.name for f in fams.values() if f.service == name), None)
        for p in FAMILY_PROPERTIES.get(family or "", ()):
            found[p] = None
    return list(found) or ["location"]


# ---------------------------------------------------------------------------------------------
# normalized -> keyValues


def _plain(v: object) -> object:
    if isinstance(v, dict) and "@value" in v:
        return v["@value"]
    return v


def key_values(entity: Entity) -> Entity:
    """The simplified (keyValues) form: a Property's value, a Relationship's object, no sub-attributes."""
    out: Entity = {}
    for k, v in entity.items():
        if isinstance(v, dict) and v.get("type") in ("Property", "GeoProperty"):
            out[k] = _plain(v.get("value"))
        elif isinstance(v, dict) and v.get("type") == "Relationship":
            out[k] = v.get("object")
        else:
            out[k] = v
    return out
