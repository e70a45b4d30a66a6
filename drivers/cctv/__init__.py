"""CCTV camera (native scheme): stream health telemetry and detection events.

Topics ``city/<zone>/cctv/<device>/telemetry`` and ``city/<zone>/cctv/<device>/event``.
See README.md in this folder.
"""

from __future__ import annotations

import re
from typing import Any

from .._contract import Decoded, DecodeError, Driver, Event, Reading, Value
from ..kit import (
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    OUT_OF_RANGE,
    UNKNOWN_TOPIC,
    Field,
    FieldSet,
    TopicPattern,
    parse_object,
    parse_timestamp,
    to_float,
)

__all__ = ["CctvDriver"]

FAMILY = "cctv"
_FIELDS = FieldSet(
    FAMILY, (Field("online"), Field("recording"), Field("fps"), Field("bitrate"), Field("tamper"))
)
_TELEMETRY = TopicPattern("city/{zone}/cctv/{device}/telemetry")
_EVENT = TopicPattern("city/{zone}/cctv/{device}/event")
_KIND = re.compile(r"[a-z0-9_.:-]{1,64}")
# event keys passed through to Event.data when scalar (ts and type are the event itself)
_RESERVED = frozenset({"ts", "type", "score"})
_MAX_DATA_KEYS = 32


class CctvDriver(Driver):
    name = "cctv"
    families = (FAMILY,)
    topics = (_TELEMETRY.filter, _EVENT.filter)
    measures = _FIELDS.measures

    def decode(self, topic: str, payload: bytes) -> Decoded:
        if topic.endswith("/event"):
            where = _EVENT.match(topic)
            if where is not None:
                return self._event(where, parse_object(payload))
        else:
            where = _TELEMETRY.match(topic)
            if where is not None:
                return self._telemetry(where, parse_object(payload))
        raise DecodeError(UNKNOWN_TOPIC, f"{topic!r} does not match {_TELEMETRY.pattern} or {_EVENT.pattern}")

    def _telemetry(self, where: dict[str, str], obj: dict[str, Any]) -> Decoded:
        ts = parse_timestamp(obj.get("ts"))
        values = _FIELDS.extract(obj)
        if not values:
            raise DecodeError(MISSING_FIELD, "none of online, recording, fps, bitrate, tamper")
        return Decoded([Reading(where["device"], FAMILY, values, ts, where["zone"])])

    def _event(self, where: dict[str, str], obj: dict[str, Any]) -> Decoded:
        ts = parse_timestamp(obj.get("ts"))
        kind_raw = obj.get("type")
        if kind_raw is None or kind_raw == "":
            raise DecodeError(MISSING_FIELD, "event has no type")
        if not isinstance(kind_raw, str):
            raise DecodeError(BAD_TYPE, "type: expected a string")
        kind = kind_raw.strip().lower()
        if _KIND.fullmatch(kind) is None:
            raise DecodeError(BAD_VALUE, f"type: {kind_raw[:40]!r} is not an event kind ([a-z0-9_.:-], 1..64)")
        data: dict[str, Value] = {}
        score = to_float(obj.get("score"), "score")
        if score is not None:
            if not 0.0 <= score <= 1.0:
                raise DecodeError(OUT_OF_RANGE, f"score: {score!r} is outside 0..1")
            data["score"] = score
        for key, value in obj.items():
            if key in _RESERVED or len(data) >= _MAX_DATA_KEYS:
                continue
            if isinstance(value, str | bool | int | float):  # orjson never yields NaN
                data[key] = value
        return Decoded([], [Event(where["device"], FAMILY, kind, ts, where["zone"], data)])
