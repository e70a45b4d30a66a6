"""Tasmota (ESP relay, dimmer and energy-plug firmware): LWT, STATE, SENSOR, RESULT, POWER<n>.

Topics follow the device's FullTopic (option ``full_topic``, default ``%prefix%/%topic%/``); the
device id is the Tasmota ``%topic%``. Zigbee lights bridged by Tasmota (``ZbLight``, ``ZbReceived``)
become readings of the bridge with ``channel`` = the Zigbee device. See README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

import orjson

from .._contract import (
    Command,
    ConfigError,
    Decoded,
    DecodeError,
    Driver,
    EncodeError,
    Publish,
    Reading,
    Value,
)
from .._schema import measures_of
from ..kit import (
    BAD_IDENTIFIER,
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    OUT_OF_RANGE,
    UNKNOWN_TOPIC,
    TopicPattern,
    check_range,
    is_identifier,
    parse_object,
    parse_timestamp,
    timezone_option,
    to_bool,
    to_float,
    to_int,
)
from ..lighting import (
    FAMILY,
    level_command,
    mired_to_kelvin,
    percent_to_whole,
    percent_to_zigbee,
    switch_command,
    zigbee_level,
)

__all__ = ["TasmotaDriver"]

DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
_MEASURES = ("on", "level", "color_temp", "rssi", "online", "power", "energy", "energy_period", "voltage",
             "current", "power_factor", "lqi")
_ENERGY_KEYS = (("Power", "power", 1.0), ("Voltage", "voltage", 1.0), ("Current", "current", 1.0),
                ("Factor", "power_factor", 1.0), ("Total", "energy", 1.0), ("Period", "energy_period", 0.001))
_MAX_RELAYS = 32
_MAX_ZIGBEE = 64
_IGNORED_TELE = frozenset({"INFO1", "INFO2", "INFO3", "UPTIME", "MARGINS", "HASS_STATE"})


def _compile(full_topic: str) -> tuple[TopicPattern, TopicPattern, str]:
    """Patterns for ``tele`` and ``stat`` messages and the ``cmnd`` template of a FullTopic."""
    text = full_topic.strip()
    if text.endswith("/"):
        text = text[:-1]
    segments = text.split("/")
    if segments.count("%prefix%") != 1 or segments.count("%topic%") != 1:
        raise ConfigError(f"driver 'tasmota': full_topic {full_topic!r} must hold %prefix% and %topic% "
                          "once each, as whole levels")
    for seg in segments:
        if seg not in ("%prefix%", "%topic%") and (not seg or any(c in seg for c in "%+#{}")):
            raise ConfigError(f"driver 'tasmota': full_topic {full_topic!r}: level {seg!r} is not supported "
                              "(only %prefix%, %topic% and fixed words)")

    def pattern(prefix: str) -> TopicPattern:
        levels = [prefix if s == "%prefix%" else "{device}" if s == "%topic%" else s for s in segments]
        return TopicPattern("/".join([*levels, "{command}"]))

    cmnd = "/".join(["cmnd" if s == "%prefix%" else "{device}" if s == "%topic%" else s for s in segments])
    return pattern("tele"), pattern("stat"), cmnd + "/{command}"


_DEFAULT = _compile(DEFAULT_FULL_TOPIC)


class TasmotaDriver(Driver):
    name = "tasmota"
    families = (FAMILY,)
    topics = (_DEFAULT[0].filter, _DEFAULT[1].filter)
    measures = {k: v for k, v in measures_of(FAMILY).items() if k[1] in _MEASURES}
    commands = ("set_level", "switch")
    OPTIONS = frozenset({"full_topic", "timezone"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        full_topic = self.options.get("full_topic", DEFAULT_FULL_TOPIC)
        if not isinstance(full_topic, str):
            raise ConfigError(f"driver 'tasmota': full_topic must be a string, got {full_topic!r}")
        self._tele, self._stat, self._cmnd = _compile(full_topic)
        self.topics = (self._tele.filter, self._stat.filter)  # type: ignore[misc]  # per deployment
        self._tz: tzinfo | None = timezone_option(self.name, self.options)

    # ------------------------------------------------------------------ decode

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = self._tele.match(topic)
        prefix = "tele"
        if where is None:
            where = self._stat.match(topic)
            prefix = "stat"
        if where is None:
            raise DecodeError(UNKNOWN_TOPIC, f"{topic!r} does not match {self._tele.pattern} or {self._stat.pattern}")
        device, command = where["device"], where["command"]
        upper = command.upper()
        if prefix == "tele" and upper == "LWT":
            return self._lwt(device, payload)
        if (upper == "POWER" or (upper.startswith("POWER") and upper[5:].isdigit())) \
                and not payload.lstrip().startswith(b"{"):
            return self._power_text(device, upper[5:], payload)  # SetOption4 replies there in JSON
        if prefix == "tele" and upper in _IGNORED_TELE:
            return Decoded()  # boot and diagnostic reports: nothing a supervisor measures
        if prefix == "tele" and upper not in ("STATE", "SENSOR", "RESULT"):
            return Decoded()  # other periodic reports of optional modules (documented)
        obj = parse_object(payload)
        ts = self._time(obj.get("Time"))
        readings = self._state(device, obj, ts)
        readings += self._energy(device, obj.get("ENERGY"), ts)
        for key in ("ZbReceived", "ZbLight"):
            if key in obj:
                readings += self._zigbee(device, key, obj[key], ts)
        if not readings and upper == "STATE":
            raise DecodeError(MISSING_FIELD, "STATE has none of POWER, POWER<n>, Dimmer, CT, Wifi")
        return Decoded(readings)

    def _lwt(self, device: str, payload: bytes) -> Decoded:
        text = _text(payload, "LWT")
        if text.lower() not in ("online", "offline"):
            if not text:
                raise DecodeError(MISSING_FIELD, "LWT payload is empty")
            raise DecodeError(BAD_VALUE, f"LWT: {text[:40]!r} is not Online or Offline")
        return Decoded([Reading(device, FAMILY, {"online": text.lower() == "online"})])

    def _power_text(self, device: str, relay: str, payload: bytes) -> Decoded:
        text = _text(payload, "POWER")
        on = to_bool(text, "POWER")
        if on is None:
            raise DecodeError(MISSING_FIELD, "POWER payload is empty")
        return Decoded([Reading(device, FAMILY, {"on": on}, None, None, _relay_channel(relay))])

    def _time(self, raw: Any) -> float | None:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise DecodeError(BAD_TYPE, "Time: expected an ISO 8601 string")
        try:
            naive = datetime.fromisoformat(raw.strip()).tzinfo is None
        except ValueError:
            naive = False  # parse_timestamp names the error
        if naive and self._tz is None:
            return None  # local time of an unknown zone: the framework stamps the receive time
        return parse_timestamp(raw, "Time", tz=self._tz)

    def _state(self, device: str, obj: dict[str, Any], ts: float | None) -> list[Reading]:
        values: dict[str, Value] = {}
        relays: list[Reading] = []
        for key, raw in obj.items():
            upper = key.upper()
            if upper == "POWER" and not isinstance(raw, dict):
                on = to_bool(raw, key)
                if on is not None:
                    values["on"] = on
            elif upper.startswith("POWER") and upper[5:].isdigit():
                on = to_bool(raw, key)
                if on is not None:
                    if len(relays) >= _MAX_RELAYS:
                        raise DecodeError(BAD_VALUE, f"more than {_MAX_RELAYS} relays")
                    relays.append(Reading(device, FAMILY, {"on": on}, ts, None, _relay_channel(upper[5:])))
        level = to_float(obj.get("Dimmer"), "Dimmer")
        if level is not None:
            values["level"] = check_range(FAMILY, "level", level)
        kelvin = mired_to_kelvin(obj.get("CT"), "CT")
        if kelvin is not None:
            values["color_temp"] = kelvin
        wifi = obj.get("Wifi")
        if wifi is not None:
            if not isinstance(wifi, dict):
                raise DecodeError(BAD_TYPE, "Wifi: expected an object")
            rssi = _wifi_dbm(wifi)
            if rssi is not None:
                values["rssi"] = rssi
        out = [Reading(device, FAMILY, values, ts)] if values else []
        return out + relays

    def _energy(self, device: str, energy: Any, ts: float | None) -> list[Reading]:
        if energy is None:
            return []
        if not isinstance(energy, dict):
            raise DecodeError(BAD_TYPE, "ENERGY: expected an object")
        shared: dict[str, Value] = {}
        channels: dict[int, dict[str, Value]] = {}
        for key, measure, scale in _ENERGY_KEYS:
            raw = energy.get(key)
            if isinstance(raw, list):
                if len(raw) > _MAX_RELAYS:
                    raise DecodeError(BAD_VALUE, f"ENERGY.{key}: more than {_MAX_RELAYS} channels")
                for i, item in enumerate(raw):
                    value = _energy_value(item, f"ENERGY.{key}[{i}]", measure, scale)
                    if value is not None:
                        channels.setdefault(i + 1, {})[measure] = value
            else:
                value = _energy_value(raw, f"ENERGY.{key}", measure, scale)
                if value is not None:
                    shared[measure] = value
        out = [Reading(device, FAMILY, shared, ts)] if shared else []
        out += [Reading(device, FAMILY, v, ts, None, str(n)) for n, v in sorted(channels.items())]
        return out

    def _zigbee(self, device: str, key: str, block: Any, ts: float | None) -> list[Reading]:
        if not isinstance(block, dict):
            raise DecodeError(BAD_TYPE, f"{key}: expected an object keyed by Zigbee device")
        if len(block) > _MAX_ZIGBEE:
            raise DecodeError(BAD_VALUE, f"{key}: more than {_MAX_ZIGBEE} devices")
        out: list[Reading] = []
        for ref, dev in block.items():
            if not isinstance(dev, dict):
                raise DecodeError(BAD_TYPE, f"{key}.{ref}: expected an object")
            channel = _zigbee_channel(ref, dev, key)
            values: dict[str, Value] = {}
            on = to_bool(dev.get("Power"), f"{key}.{ref}.Power")
            if on is not None:
                values["on"] = on
            level = zigbee_level(dev.get("Dimmer"), f"{key}.{ref}.Dimmer")
            if level is not None:
                values["level"] = level
            kelvin = mired_to_kelvin(dev.get("CT"), f"{key}.{ref}.CT")
            if kelvin is not None:
                values["color_temp"] = kelvin
            lqi = to_int(dev.get("LinkQuality"), f"{key}.{ref}.LinkQuality")
            if lqi is not None:
                values["lqi"] = check_range(FAMILY, "lqi", lqi)
            if values:
                out.append(Reading(device, FAMILY, values, ts, None, channel))
        return out

    # ------------------------------------------------------------------ encode

    def encode(self, command: Command) -> list[Publish]:
        device = command.device
        if not is_identifier(device):
            raise EncodeError(f"tasmota: device {device!r} is not a Tasmota topic")
        channel = command.channel
        if channel is not None and not is_identifier(channel):
            raise EncodeError(f"tasmota: channel {channel!r} is not an identifier")
        zigbee = channel is not None and not channel.isdigit()
        if command.action == "set_level":
            level = level_command(self.name, command.value)
            if zigbee:
                body = orjson.dumps({"Device": channel, "Send": {"Dimmer": percent_to_zigbee(level)}})
                return [self._publish(device, "ZbSend", body)]
            if channel is not None:
                raise EncodeError(f"tasmota: relay {channel} has no dimmer (Dimmer drives the whole light)")
            return [self._publish(device, "Dimmer", str(percent_to_whole(level)).encode())]
        if command.action == "switch":
            on = switch_command(self.name, command.value)
            if zigbee:
                body = orjson.dumps({"Device": channel, "Send": {"Power": "On" if on else "Off"}})
                return [self._publish(device, "ZbSend", body)]
            return [self._publish(device, f"Power{channel or ''}", b"ON" if on else b"OFF")]
        raise EncodeError(f"tasmota: cannot encode {command.action!r}")

    def _publish(self, device: str, command: str, body: bytes) -> Publish:
        topic = self._cmnd.replace("{device}", device).replace("{command}", command)
        return Publish(topic, body, qos=1, retain=False)


# ---------------------------------------------------------------------- conversions


def _wifi_dbm(wifi: dict[str, Any]) -> float | None:
    signal = to_float(wifi.get("Signal"), "Wifi.Signal")
    if signal is not None:
        return float(check_range(FAMILY, "rssi", signal))
    quality = to_float(wifi.get("RSSI"), "Wifi.RSSI")
    if quality is None:
        return None
    if not 0 <= quality <= 100:
        raise DecodeError(OUT_OF_RANGE, f"Wifi.RSSI: {quality!r} is outside the 0..100 % quality")
    if not 1 <= quality <= 99:
        return None  # 0 and 100 are clamped: the dBm behind them is unknown
    return quality / 2 - 100


def _energy_value(raw: Any, key: str, measure: str, scale: float) -> float | None:
    value = to_float(raw, key)
    if value is None:
        return None
    if scale != 1.0:
        value = round(value * scale, 6)
    return float(check_range(FAMILY, measure, value))


def _relay_channel(relay: str) -> str | None:
    return str(int(relay)) if relay else None


def _zigbee_channel(ref: str, dev: dict[str, Any], key: str) -> str:
    name = dev.get("Name")
    if isinstance(name, str) and name and not name.isdigit() and is_identifier(name):
        return name
    for candidate in (ref, dev.get("Device")):  # ZbLight is keyed by name, ZbReceived by short address
        if isinstance(candidate, str) and candidate and not candidate.isdigit() and is_identifier(candidate):
            return candidate
    raise DecodeError(BAD_IDENTIFIER, f"{key}.{str(ref)[:40]}: no Name or Device usable as a channel")


def _text(payload: bytes, key: str) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DecodeError(BAD_VALUE, f"{key}: payload is not UTF-8 text") from None

