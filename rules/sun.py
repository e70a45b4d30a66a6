"""Sunrise and sunset: the NOAA solar equations (no dependency).

The equations are those of the NOAA Solar Calculator spreadsheet (after Meeus, *Astronomical
Algorithms*): accuracy is about a minute for latitudes between ±72°. Times are UTC epoch seconds.
The "local date" is the calendar day whose solar noon is computed, so for a city far from
Greenwich an event may fall on the previous or next UTC day, which is what a schedule wants.

Why not ``astral`` (3.2, Apache-2.0, the same NOAA equations): measured against this module over
27,027 cases (latitudes -65..65 every 5°, longitudes -180..180 every 30°, every 5th day of 2024
plus three dates in 2000, 2050, 2099), astral anchors each crossing to a UTC date and cannot return
a sunrise that falls a few minutes before 00:00 UTC of the solar day:

- ``time_at_elevation`` (which keeps this module's zenith): 9 cases with no sunrise at all (read as
  polar day: e.g. lat 55, lon 90, 2024-03-21, the equinox), the neighbouring day's sunrise elsewhere
  (up to 186 s off); 16 of 2,196 high-latitude days (66..78°N, 70°S) with the wrong polar state;
- ``sunrise``/``sunset`` with the local mean time as zone: "Unable to find a sunrise" in 7 cases,
  up to 263 s off where it answers;
- its ``noon`` takes the equation of time at 00:00 UTC: up to 30 s off;
- 57 µs a day against 16 µs here (cached per local date, so not the reason).

Where astral answers the right day it agrees with this module within 1 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

# refraction (0.567°) plus the solar radius (0.266°): the usual "official" sunrise and sunset
OFFICIAL_ZENITH = 90.833

_J2000 = 2451545.0


@dataclass(frozen=True, slots=True)
class SunTimes:
    """Sunrise and sunset of one day; ``None`` when the sun does not cross the horizon.

    ``polar`` is then ``"day"`` (midnight sun) or ``"night"`` (polar night).
    """

    day: date
    sunrise: float | None
    sunset: float | None
    solar_noon: float
    polar: Literal["day", "night"] | None = None


def _julian_day(day: date) -> float:
    # Julian day at 00:00 UTC of ``day``
    return day.toordinal() + 1721424.5


def _solar_terms(jd: float) -> tuple[float, float]:
    """(declination in degrees, equation of time in minutes) at Julian day ``jd``."""
    jc = (jd - _J2000) / 36525.0
    mean_long = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m = math.radians(mean_anom)
    center = (
        math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + math.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + math.sin(3 * m) * 0.000289
    )
    true_long = mean_long + center
    omega = math.radians(125.04 - 1934.136 * jc)
    app_long = true_long - 0.00569 - 0.00478 * math.sin(omega)
    mean_obliq = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = mean_obliq + 0.00256 * math.cos(omega)
    decl = math.degrees(math.asin(math.sin(math.radians(obliq)) * math.sin(math.radians(app_long))))
    y = math.tan(math.radians(obliq / 2.0)) ** 2
    l0 = math.radians(mean_long)
    eq_time = 4.0 * math.degrees(
        y * math.sin(2 * l0)
        - 2 * ecc * math.sin(m)
        + 4 * ecc * y * math.sin(m) * math.cos(2 * l0)
        - 0.5 * y * y * math.sin(4 * l0)
        - 1.25 * ecc * ecc * math.sin(2 * m)
    )
    return decl, eq_time


def _hour_angle(lat: float, decl: float, zenith: float) -> float | None:
    phi = math.radians(lat)
    d = math.radians(decl)
    cos_h = math.cos(math.radians(zenith)) / (math.cos(phi) * math.cos(d)) - math.tan(phi) * math.tan(d)
    if cos_h < -1.0 or cos_h > 1.0:
        return None
    return math.degrees(math.acos(cos_h))


def sun_times(day: date, lat: float, lon: float, *, zenith: float = OFFICIAL_ZENITH) -> SunTimes:
    """Sunrise, sunset and solar noon of ``day`` at (``lat``, ``lon``) in degrees (east positive)."""
    if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
        raise ValueError(f"coordinates out of range: lat={lat!r}, lon={lon!r}")
    jd0 = _julian_day(day)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    # solar noon, refined once at its own instant
    noon_min = 720.0 - 4.0 * lon
    for _ in range(2):
        _, eq = _solar_terms(jd0 + noon_min / 1440.0)
        noon_min = 720.0 - 4.0 * lon - eq
    decl_noon, _ = _solar_terms(jd0 + noon_min / 1440.0)
    if _hour_angle(lat, decl_noon, zenith) is None:
        # sun never crosses the horizon: above it all day when its noon altitude is positive
        noon_alt = 90.0 - abs(lat - decl_noon)
        polar: Literal["day", "night"] = "day" if noon_alt > 90.0 - zenith else "night"
        return SunTimes(day, None, None, midnight + noon_min * 60.0, polar)

    def event(sign: float) -> float | None:
        t = noon_min
        for _ in range(3):  # iterate: evaluate the sun at the event's own time
            decl, eq = _solar_terms(jd0 + t / 1440.0)
            ha = _hour_angle(lat, decl, zenith)
            if ha is None:
                return None
            t = 720.0 - 4.0 * lon - eq + sign * 4.0 * ha
        return midnight + t * 60.0

    rise = event(-1.0)
    set_ = event(+1.0)
    return SunTimes(day, rise, set_, midnight + noon_min * 60.0)


class SunCalendar:
    """Sun times of a place by local date, with a small bounded cache."""

    _CACHE_MAX = 16

    def __init__(self, lon: float, lat: float, tz: tzinfo) -> None:
        self.lon = lon
        self.lat = lat
        self.tz = tz
        self._cache: dict[date, SunTimes] = {}

    def local_date(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.tz).date()

    def local_datetime(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)

    def times(self, day: date) -> SunTimes:
        st = self._cache.get(day)
        if st is None:
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            st = sun_times(day, self.lat, self.lon)
            self._cache[day] = st
        return st

    def is_night(self, ts: float, on_offset_s: float = 0.0, off_offset_s: float = 0.0) -> bool:
        """True between sunset + ``on_offset_s`` and the next sunrise + ``off_offset_s``."""
        st = self.times(self.local_date(ts))
        if st.sunrise is None or st.sunset is None:
            return st.polar == "night"
        return ts < st.sunrise + off_offset_s or ts >= st.sunset + on_offset_s

    def is_day(self, ts: float, margin_s: float = 0.0) -> bool:
        """True when the sun is up, ``margin_s`` after sunrise and before sunset."""
        st = self.times(self.local_date(ts))
        if st.sunrise is None or st.sunset is None:
            return st.polar == "day"
        return st.sunrise + margin_s <= ts <= st.sunset - margin_s

    def at_local(self, day: date, hour: int, minute: int) -> float:
        """UTC epoch of local ``hour:minute`` on ``day``."""
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz).timestamp()

    @staticmethod
    def previous(day: date) -> date:
        return day - timedelta(days=1)
