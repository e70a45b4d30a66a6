"""Telraam citizen traffic counters: hourly reports and the live snapshot, republished on MQTT.

Telraam has no MQTT feed: a poller republishes API responses on ``telraam/<segment_id>/...``
(option ``topic``). See README.md in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import kit
from .._contract import Decoded, DecodeError, Reading, Value
from .._schema import unit_of

__all__ = ["TelraamDriver"]

DEFAULT_TOPIC = "telraam/{device}/{rest#}"
_PERIODS = {"hourly": 3600.0, "daily": 86400.0}
# count key -> canonical rate measure (counts in the interval become a mean rate per hour)
_RATES = (("heavy", "heavy_flow"), ("bike", "bike_flow"), ("pedestrian", "pedestrian_flow"))
_MEASURES = ("flow", "heavy_flow", "bike_flow", "pedestrian_flow", "uptime", "v85", "interval")


def _row(row: Any, where: str) -> tuple[str | None, float | None, dict[str, Value]]:
    """(segment id, start time, canonical values) of one report row or snapshot feature's properties."""
    if not isinstance(row, Mapping):
        raise DecodeError(kit.BAD_TYPE, f"{where}: expected an object")
    segment = kit.to_identifier(row.get("segment_id"), f"{where}.segment_id")
    ts = kit.parse_timestamp(row.get("date"), f"{where}.date")
    counts = {k: kit.to_float(row.get(k), f"{where}.{k}") for k in ("car", "heavy", "bike", "pedestrian")}
    uptime = kit.to_float(row.get("uptime"), f"{where}.uptime")
    v85 = kit.to_float(row.get("v85"), f"{where}.v85")
    values: dict[str, Value] = {}
    if any(c is not None for c in counts.values()):
        period = row.get("interval", row.get("period"))
        seconds = _PERIODS.get(period) if isinstance(period, str) else None
        if seconds is None:
            raise DecodeError(kit.BAD_VALUE if period not in (None, "") else kit.MISSING_FIELD,
                              f"{where}: interval/period {period!r} is not hourly or daily")
        per_hour = 3600.0 / seconds
        car, heavy = counts["car"], counts["heavy"]
        if car is not None and heavy is not None:  # motor vehicles; a missing class leaves the total unknown
            values["flow"] = kit.check_range("traffic", "flow", (car + heavy) * per_hour)
        for key, measure in _RATES:
            count = counts[key]
            if count is not None:
                values[measure] = kit.check_range("traffic", measure, count * per_hour)
        values["interval"] = seconds
    if uptime is not None:
        values["uptime"] = kit.check_range("traffic", "uptime", uptime * 100.0)
    if v85 is not None:
        values["v85"] = kit.check_range("traffic", "v85", v85)
    return segment, ts, values


class TelraamDriver(kit.TopicOptionDriver):
    name = "telraam"
    families = ("traffic",)
    default_topic = DEFAULT_TOPIC
    measures = {("traffic", m): unit_of("traffic", m) for m in _MEASURES}

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = self._topic.require(topic)
        obj = kit.parse_object(payload)
        status = obj.get("status_code")
        if status is not None and status != 200:
            raise DecodeError(kit.WRONG_KIND, f"status_code {status!r}: an API error, not a report")
        rows: list[tuple[Any, str]]
        if "report" in obj:
            report = obj["report"]
            if not isinstance(report, list):
                raise DecodeError(kit.BAD_TYPE, "report: expected a list of rows")
            rows = [(r, f"report[{i}]") for i, r in enumerate(report)]
        elif "features" in obj:
            features = obj["features"]
            if not isinstance(features, list):
                raise DecodeError(kit.BAD_TYPE, "features: expected a list")
            rows = []
            for i, f in enumerate(features):
                if not isinstance(f, Mapping):
                    raise DecodeError(kit.BAD_TYPE, f"features[{i}]: expected an object")
                rows.append((f.get("properties"), f"features[{i}].properties"))
        elif any(k in obj for k in ("car", "heavy", "bike", "pedestrian", "uptime", "v85")):
            rows = [(obj, "row")]  # one row republished on its own
        else:
            raise DecodeError(kit.MISSING_FIELD, "neither report, features nor a row of counts")
        readings: list[Reading] = []
        for row, path in rows:
            segment, ts, values = _row(row, path)
            if values:  # a silent segment ("" everywhere) reports nothing, it is not an error
                readings.append(Reading(segment or where["device"], "traffic", values, ts))
        return Decoded(readings)
