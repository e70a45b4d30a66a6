"""wmbusmeters water meters: the JSON that wmbusmeters publishes per decoded telegram.

Topic ``wmbusmeters/<name>`` by default (the installer's ``mosquitto_pub -t``; option ``topic``).
See README.md in this folder.
"""

from __future__ import annotations

from typing import Any

from .. import kit
from .._contract import Decoded, DecodeError, Event, Reading, Value
from .._schema import measures_of

__all__ = ["WmbusmetersDriver"]

DEFAULT_TOPIC = "wmbusmeters/{device}"

# canonical measure <- candidate keys in order of preference, with the factor into the canonical unit.
# Suffixes: _m3 and _m3h as is; _l litres ÷ 1000; _c °C. Unsuffixed temperatures are older output.
_NUMBERS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("index", (("total_m3", 1.0), ("total_l", 0.001))),
    ("target_index", (("target_m3", 1.0), ("target_l", 0.001))),
    ("flow", (("flow_m3h", 1.0), ("volume_flow_m3h", 1.0))),
    ("max_flow", (("max_flow_m3h", 1.0),)),
    ("min_flow", (("min_flow_m3h", 1.0),)),
    ("temperature", (("flow_temperature_c", 1.0), ("flow_temperature", 1.0))),
    ("external_temperature", (("external_temperature_c", 1.0), ("external_temperature", 1.0))),
    ("rssi", (("rssi_dbm", 1.0),)),
)
# current alarm state; previous_alarms and PREV_* history are not current alarms but are kept as sent
_STATUS_KEYS = ("status", "current_status", "current_alarms")


def _meter_id(value: Any) -> str | None:
    """The meter address as a string. M-Bus ids are 8 BCD/hex digits: an id that reached us as a
    JSON number lost its leading zeros, which are restored to 8 digits."""
    if type(value) is int and 0 <= value <= 99_999_999:
        return f"{value:08d}"
    return kit.to_identifier(value, "id")


class WmbusmetersDriver(kit.TopicOptionDriver):
    name = "wmbusmeters"
    families = ("water",)
    default_topic = DEFAULT_TOPIC
    measures = {k: v for k, v in measures_of("water").items() if k[1] not in ("battery",)}

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = self._topic.require(topic)
        obj = kit.parse_object(payload)
        marker = obj.get("_")
        if marker is not None and marker != "telegram":
            raise DecodeError(kit.WRONG_KIND, f"_: {marker!r} is not a decoded telegram")
        media = obj.get("media")
        if media is not None and media != "" and not (isinstance(media, str) and "water" in media.lower()):
            raise DecodeError(kit.WRONG_KIND, f"media {media!r} is not a water meter")
        device = _meter_id(obj.get("id")) or where["device"]
        if not device:
            raise DecodeError(kit.BAD_IDENTIFIER, "no meter id in the topic or the payload")
        ts = kit.parse_timestamp(obj.get("timestamp"), "timestamp")

        values: dict[str, Value] = {}
        for measure, candidates in _NUMBERS:
            for key, factor in candidates:
                number = kit.to_float(obj.get(key), key)
                if number is not None:
                    values[measure] = kit.check_range("water", measure, round(number * factor, 9))
                    break
        tokens: list[str] | None = None
        for key in _STATUS_KEYS:
            found = kit.to_tokens(obj.get(key), key)
            if found is not None:
                tokens = (tokens or []) + [t for t in found if t not in (tokens or [])]
        if tokens is not None:
            values["alarms"] = ",".join(tokens)
        if not values:
            raise DecodeError(kit.MISSING_FIELD, "no total_m3, total_l, flow, temperature, rssi_dbm or status")
        reading = Reading(device, "water", values, ts)
        events = [Event(device, "water", "alarm", ts, None, {"token": t}) for t in tokens or []]
        return Decoded([reading], events)
