"""Zigbee2MQTT lights: device state JSON, availability, and ``/set`` commands.

Topics under the base topic (option ``base_topic``, default ``zigbee2mqtt``): ``<base>/<name>`` (state),
``<base>/<name>/availability``. Friendly names may contain ``/``: topics are matched by suffix and
the device id is the friendly name with ``/`` written ``:`` (``park/lamp_12`` → ``park:lamp_12``),
which commands map back. Bridge topics and our own ``/set``/``/get`` echoes are ignored (empty
result, not an error). See README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._contract import Command, ConfigError, Decoded, DecodeError, Driver, EncodeError, Publish, Reading, Value
from .._schema import measures_of
from ..kit import (
    BAD_IDENTIFIER,
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    UNKNOWN_TOPIC,
    check_range,
    is_identifier,
    parse_object,
    parse_timestamp,
    to_bool,
    to_float,
    to_int,
    topic_root_option,
)
from ..lighting import FAMILY, level_command, mired_to_kelvin, percent_to_zigbee, switch_command, zigbee_level

__all__ = ["Zigbee2MqttDriver"]

_MEASURES = ("on", "level", "color_temp", "lqi", "power", "energy", "voltage", "current", "online")
_METERING = (("power", "power"), ("energy", "energy"), ("voltage", "voltage"), ("current", "current"))
# attribute output mode (`<name>/<attr>` with a text value) duplicates the JSON state: ignored
_ATTRIBUTES = frozenset({"state", "brightness", "color_temp", "color_mode", "linkquality", "last_seen", "power",
                         "energy", "voltage", "current", "update", "power_on_behavior", "color", "update_available"})
_IGNORED_SUFFIXES = frozenset({"set", "get"})


class Zigbee2MqttDriver(Driver):
    name = "zigbee2mqtt"
    families = (FAMILY,)
    topics = ("zigbee2mqtt/#",)
    measures = {k: v for k, v in measures_of(FAMILY).items() if k[1] in _MEASURES}
    commands = ("set_level", "switch")
    OPTIONS = frozenset({"base_topic", "brightness_percent"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        base = topic_root_option(self.name, self.options, "base_topic", "zigbee2mqtt")
        percent = self.options.get("brightness_percent", False)
        if not isinstance(percent, bool):
            raise ConfigError(f"driver 'zigbee2mqtt': brightness_percent must be true or false, got {percent!r}")
        self._base = base
        self._prefix = base + "/"
        self._percent = percent
        self.topics = (f"{base}/#",)  # type: ignore[misc]  # per deployment

    # ------------------------------------------------------------------ decode

    def decode(self, topic: str, payload: bytes) -> Decoded:
        if not topic.startswith(self._prefix):
            raise DecodeError(UNKNOWN_TOPIC, f"{topic!r} is not under {self._prefix}")
        rest = topic[len(self._prefix):]
        parts = rest.split("/")
        if parts[0] == "bridge":
            return Decoded()  # bridge state, inventory, logs, responses: not device telemetry (README)
        if any(not p for p in parts):
            raise DecodeError(BAD_IDENTIFIER, f"topic {topic[:60]!r} has an empty level")
        last = parts[-1]
        if len(parts) >= 2 and last == "availability":
            return self._availability(_device_id(parts[:-1]), payload)
        if last in _IGNORED_SUFFIXES or (len(parts) >= 3 and parts[-2] in _IGNORED_SUFFIXES):
            return Decoded()  # commands (ours included) and read requests echo on the subscription
        starts_object = payload.lstrip()[:1] == b"{"
        if len(parts) >= 2 and last in _ATTRIBUTES and not starts_object:
            return Decoded()  # attribute output mode: the same value arrives in the JSON state
        return self._state(_device_id(parts), parse_object(payload))

    def _availability(self, device: str, payload: bytes) -> Decoded:
        if payload.lstrip()[:1] == b"{":
            raw = parse_object(payload).get("state")
            if raw is not None and not isinstance(raw, str):
                raise DecodeError(BAD_TYPE, "availability state: expected online or offline")
        else:
            try:
                raw = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(BAD_VALUE, "availability: payload is not UTF-8 text") from None
        text = (raw or "").strip().lower()
        if text not in ("online", "offline"):
            if not text:
                raise DecodeError(MISSING_FIELD, "availability has no state")
            raise DecodeError(BAD_VALUE, f"availability: {text[:40]!r} is not online or offline")
        return Decoded([Reading(device, FAMILY, {"online": text == "online"})])

    def _state(self, device: str, obj: dict[str, Any]) -> Decoded:
        values: dict[str, Value] = {}
        state = obj.get("state")
        if isinstance(state, str) and state.strip().upper() == "TOGGLE":
            raise DecodeError(BAD_VALUE, "state: TOGGLE is a command, not a state")
        on = to_bool(state, "state")
        if on is not None:
            values["on"] = on
        level = zigbee_level(obj.get("brightness"), "brightness", clamp_255=True)
        if level is not None:
            values["level"] = level
        kelvin = mired_to_kelvin(obj.get("color_temp"), "color_temp")
        if kelvin is not None:
            values["color_temp"] = kelvin
        lqi = to_int(obj.get("linkquality"), "linkquality")
        if lqi is not None:
            values["lqi"] = check_range(FAMILY, "lqi", lqi)
        for key, measure in _METERING:
            value = to_float(obj.get(key), key)
            if value is not None:
                values[measure] = check_range(FAMILY, measure, value)
        if not values:
            raise DecodeError(MISSING_FIELD, "state has none of state, brightness, color_temp, linkquality, "
                              "power, energy, voltage, current")
        ts = _last_seen(obj.get("last_seen"))
        return Decoded([Reading(device, FAMILY, values, ts)])

    # ------------------------------------------------------------------ encode

    def encode(self, command: Command) -> list[Publish]:
        if command.channel is not None:
            raise EncodeError("zigbee2mqtt: a Zigbee2MQTT device has no channels; address the device")
        name = _friendly_name(command.device)
        body: dict[str, Any]
        if command.action == "set_level":
            level = level_command(self.name, command.value)
            if level == 0:
                body = {"state": "OFF"}
            elif self._percent:
                body = {"state": "ON", "brightness_percent": round(level, 2)}
            else:
                body = {"state": "ON", "brightness": percent_to_zigbee(level)}
        elif command.action == "switch":
            body = {"state": "ON" if switch_command(self.name, command.value) else "OFF"}
        else:
            raise EncodeError(f"zigbee2mqtt: cannot encode {command.action!r}")
        return [Publish(f"{self._base}/{name}/set", orjson.dumps(body), qos=1, retain=False)]


def _device_id(parts: list[str]) -> str:
    """Friendly name levels → device id (``/`` written ``:``)."""
    for p in parts:
        if ":" in p or not is_identifier(p):
            raise DecodeError(BAD_IDENTIFIER, f"friendly name {'/'.join(parts)[:60]!r}: a level is not "
                              "[A-Za-z0-9_.-]+ (':' is reserved for '/')")
    return ":".join(parts)


def _friendly_name(device: str) -> str:
    parts = device.split(":")
    if any(not is_identifier(p) for p in parts):
        raise EncodeError(f"zigbee2mqtt: device {device!r} is not a friendly name id")
    return "/".join(parts)


def _last_seen(raw: Any) -> float | None:
    """``last_seen``: ISO 8601 (with offset) or epoch milliseconds, per the bridge's configuration."""
    return parse_timestamp(raw, "last_seen")

