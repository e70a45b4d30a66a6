"""Air-quality station (native scheme): NO2, PM10, PM2.5, O3 and the European Air Quality Index.

Topic ``city/<zone>/air/<device>/telemetry``; see README.md in this folder. The driver is a
:class:`~drivers.kit.DeclarativeDriver`; the only code is the index computed when the
station does not send one.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._contract import Decoded, Value
from ..kit import DeclarativeDriver, Field

__all__ = ["EAQI_BANDS", "AirQualityDriver", "eaqi"]

# European Air Quality Index (EEA, airindex.eea.europa.eu, index definition in force 2017-2023):
# upper bounds in µg/m3 of levels 1 (good), 2 (fair), 3 (moderate), 4 (poor), 5 (very poor);
# anything above the fifth bound is level 6 (extremely poor). A value equal to a bound belongs to
# the lower level.
EAQI_BANDS: Mapping[str, tuple[float, float, float, float, float]] = {
    "pm25": (10.0, 20.0, 25.0, 50.0, 75.0),
    "pm10": (20.0, 40.0, 50.0, 100.0, 150.0),
    "no2": (40.0, 90.0, 120.0, 230.0, 340.0),
    "o3": (50.0, 100.0, 130.0, 240.0, 380.0),
}


def _level(bounds: tuple[float, ...], value: float) -> int:
    for level, upper in enumerate(bounds, start=1):
        if value <= upper:
            return level
    return len(bounds) + 1


def eaqi(values: Mapping[str, Value]) -> int | None:
    """The index level of one reading: the worst band among the pollutants present.

    Follows the EEA's minimum: NO2 and at least one PM fraction must be present (the rule the EEA
    applies to traffic stations; background stations also need O3, which is used when present).
    Otherwise ``None``: an index from one pollutant would look better than the air may be.
    """
    if "no2" not in values or ("pm10" not in values and "pm25" not in values):
        return None
    worst = 1
    for pollutant, bounds in EAQI_BANDS.items():
        v = values.get(pollutant)
        if isinstance(v, float):
            worst = max(worst, _level(bounds, v))
    return worst


class AirQualityDriver(DeclarativeDriver):
    name = "air_quality"
    family = "air"
    pattern = "city/{zone}/air/{device}/telemetry"
    fields = (
        Field("no2"),
        Field("pm10"),
        Field("pm25"),
        Field("o3"),
        Field("eaqi"),
        Field("temperature"),
        Field("humidity"),
    )

    def decode(self, topic: str, payload: bytes) -> Decoded:
        decoded = super().decode(topic, payload)
        for reading in decoded.readings:
            if "eaqi" not in reading.values:  # the station's own index wins when it sends one
                level = eaqi(reading.values)
                if level is not None:
                    reading.values["eaqi"] = level
        return decoded
