"""Digitraffic TMS: Finnish road traffic measurement stations, live MQTT (``tms-v2/<station>/<sensor>``).

The payload carries neither the quantity nor the unit: both come from the sensor id. See README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import kit
from .._contract import ConfigError, Decoded, DecodeError, Reading, Value
from .._schema import unit_of

__all__ = ["SENSORS", "DigitrafficDriver", "Sensor"]

DEFAULT_TOPIC = "tms-v2/{device}/{sensor}"


@dataclass(frozen=True, slots=True)
class Sensor:
    measure: str  # canonical traffic measure
    direction: int  # road direction 1 or 2 (defined per station)
    window: float  # s: length of the averaging or counting window

    @property
    def channel(self) -> str:
        return f"dir{self.direction}_{round(self.window / 60)}min"


# Fallback table (formats.md 2.3); a deployment passes the metadata API's ids in option `sensors`.
SENSORS: Mapping[str, Sensor] = {
    "5054": Sensor("flow", 1, 3600), "5055": Sensor("flow", 2, 3600),  # OHITUKSET_60MIN_KIINTEA
    "5116": Sensor("flow", 1, 300), "5119": Sensor("flow", 2, 300),  # OHITUKSET_5MIN_LIUKUVA
    "5122": Sensor("speed", 1, 300), "5125": Sensor("speed", 2, 300),  # KESKINOPEUS_5MIN_LIUKUVA
    "5056": Sensor("speed", 1, 3600), "5057": Sensor("speed", 2, 3600),  # KESKINOPEUS_60MIN_KIINTEA
    "5158": Sensor("speed_ratio", 1, 300), "5161": Sensor("speed_ratio", 2, 300),  # …_VVAPAAS1/2
    "5164": Sensor("capacity_use", 1, 300), "5168": Sensor("capacity_use", 2, 300),  # …_MS1/2
}
_MEASURES = ("flow", "speed", "speed_ratio", "capacity_use")


def _sensor_option(driver: str, key: str, raw: Any) -> Sensor:
    if not isinstance(raw, Mapping) or set(raw) - {"measure", "direction", "window"}:
        raise ConfigError(f"driver {driver!r}: sensors.{key} must be {{measure, direction, window}}, got {raw!r}")
    measure, direction, window = raw.get("measure"), raw.get("direction"), raw.get("window")
    if measure not in _MEASURES:
        raise ConfigError(f"driver {driver!r}: sensors.{key}.measure must be one of {', '.join(_MEASURES)}")
    if direction not in (1, 2) or isinstance(direction, bool):
        raise ConfigError(f"driver {driver!r}: sensors.{key}.direction must be 1 or 2")
    if not isinstance(window, (int, float)) or isinstance(window, bool) or not 0 < window <= 86400:
        raise ConfigError(f"driver {driver!r}: sensors.{key}.window must be seconds in (0, 86400]")
    return Sensor(str(measure), int(direction), float(window))


class DigitrafficDriver(kit.TopicOptionDriver):
    name = "digitraffic"
    families = ("traffic",)
    default_topic = DEFAULT_TOPIC
    topic_captures = ("device", "sensor")
    measures = {("traffic", m): unit_of("traffic", m) for m in (*_MEASURES, "interval")}
    OPTIONS: ClassVar[frozenset[str] | None] = frozenset({"topic", "sensors"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        extra = self.options.get("sensors", {})
        if not isinstance(extra, Mapping):
            raise ConfigError(f"driver {self.name!r}: sensors must map sensor ids to {{measure, direction, window}}")
        self._sensors = dict(SENSORS)
        self._sensors.update({str(k): _sensor_option(self.name, str(k), v) for k, v in extra.items()})

    def decode(self, topic: str, payload: bytes) -> Decoded:
        where = self._topic.require(topic)
        sensor = self._sensors.get(where["sensor"])
        if sensor is None:
            raise DecodeError(kit.WRONG_KIND, f"sensor id {where['sensor']!r} is not configured: its unit is unknown")
        obj = kit.parse_object(payload)
        value = kit.to_float(obj.get("value"), "value")
        if value is None:
            raise DecodeError(kit.MISSING_FIELD, "value is required")
        ts = kit.parse_timestamp(obj.get("time"), "time")
        start = kit.parse_timestamp(obj.get("start"), "start")
        end = kit.parse_timestamp(obj.get("end"), "end")
        window = float(sensor.window) if start is None or end is None else end - start
        values: dict[str, Value] = {
            sensor.measure: kit.check_range("traffic", sensor.measure, value),
            "interval": kit.check_range("traffic", "interval", window),
        }
        return Decoded([Reading(where["device"], "traffic", values, ts, None, sensor.channel)])
