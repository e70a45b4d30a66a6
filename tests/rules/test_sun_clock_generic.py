"""Sun times, clocks, generic threshold/no_signal rules, persistence of overrides."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from drivers import Reading
from rules import VirtualClock
from rules.sun import SunCalendar, sun_times
from tests.rules._city import PARIS, SCHEDULE, harness, local

PARIS_LATLON = (48.8566, 2.3522)


def hm(ts: float | None) -> float:
    assert ts is not None
    t = datetime.fromtimestamp(ts, UTC)
    return t.hour * 60 + t.minute + t.second / 60


@pytest.mark.parametrize(
    ("day", "lat", "lon", "sunrise", "sunset"),
    [
        (date(2024, 6, 21), *PARIS_LATLON, "03:47", "19:58"),
        (date(2024, 12, 21), *PARIS_LATLON, "07:42", "15:56"),
        (date(2024, 6, 21), 40.7128, -74.0060, "09:25", "00:31"),  # New York: sunset on the next UTC day
        (date(2024, 6, 21), -33.8688, 151.2093, "20:59", "06:54"),  # Sydney: sunrise the previous UTC day
    ],
)
def test_sun_times_within_two_minutes(day: date, lat: float, lon: float, sunrise: str, sunset: str) -> None:
    st = sun_times(day, lat, lon)
    for got, want in ((st.sunrise, sunrise), (st.sunset, sunset)):
        h, m = map(int, want.split(":"))
        diff = abs(hm(got) - (h * 60 + m))
        assert min(diff, 1440 - diff) <= 2.0, (want, datetime.fromtimestamp(got or 0, UTC))
    assert st.sunrise is not None and st.sunset is not None and st.sunrise < st.sunset


def test_polar_day_and_night() -> None:
    assert sun_times(date(2024, 12, 21), 78.2, 15.6).polar == "night"
    assert sun_times(date(2024, 6, 21), 78.2, 15.6).polar == "day"
    cal = SunCalendar(15.6, 78.2, PARIS)
    assert cal.is_night(datetime(2024, 12, 21, 12, tzinfo=UTC).timestamp())
    assert cal.is_day(datetime(2024, 6, 21, 0, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError, match="coordinates out of range"):
        sun_times(date(2024, 1, 1), 91.0, 0.0)


def test_calendar_night_with_offsets() -> None:
    cal = SunCalendar(PARIS_LATLON[1], PARIS_LATLON[0], PARIS)
    sunset = sun_times(date(2024, 12, 21), *PARIS_LATLON).sunset
    assert sunset is not None
    assert not cal.is_night(sunset - 60)
    assert cal.is_night(sunset + 60)
    assert not cal.is_night(sunset + 60, on_offset_s=600)
    assert cal.is_night(local(2024, 12, 22, 3, 0))


def test_virtual_clock() -> None:
    ticks = iter([100.0, 100.0, 101.0, 103.0])
    c = VirtualClock(1000.0, speed=60.0, monotonic=lambda: next(ticks))
    assert c.now() == 1000.0
    assert c.now() == 1060.0  # one real second is a virtual minute
    assert c.advance(30) == 1000.0 + 180.0 + 30.0
    frozen = VirtualClock(5.0, speed=0.0)
    assert frozen.now() == 5.0 and frozen.advance(10) == 15.0
    with pytest.raises(ValueError, match="non-negative"):
        frozen.advance(-1)
    with pytest.raises(ValueError, match="speed"):
        VirtualClock(0.0, speed=-2)


GENERIC = """
rules:
  - id: door
    kind: threshold
    devices: {kind: lighting_cabinet}
    measure: door_open
    op: "=="
    value: true
    for_s: 120
    severity: major
  - id: silent
    kind: no_signal
    devices: {family: traffic}
    after_s: 300
"""


def test_threshold_for_a_duration(tmp_path: Path) -> None:
    h = harness(tmp_path, GENERIC, local(2025, 1, 15, 10, 0))
    cab = "cab-0001"
    h.readings([Reading(cab, "lighting", {"door_open": True})])
    h.clock.advance(60)
    h.readings([Reading(cab, "lighting", {"door_open": True})])
    h.tick()
    assert [a for a in h.alarms if a.rule == "door"] == []
    h.clock.advance(65)
    h.tick()  # no new reading: the duration is checked on ticks
    door = [a for a in h.alarms if a.rule == "door"]
    assert [(a.device, a.state, a.severity) for a in door] == [(cab, "raised", "major")]
    assert "door_open = True == True for 125 s" in door[0].text
    h.readings([Reading(cab, "lighting", {"door_open": "maybe"})])
    assert h.engine.errors == {"door:bad_type": 1}
    h.readings([Reading(cab, "lighting", {"door_open": False})])
    assert [a.state for a in h.alarms if a.rule == "door"] == ["raised", "cleared"]


def test_no_signal(tmp_path: Path) -> None:
    h = harness(tmp_path, GENERIC, local(2025, 1, 15, 10, 0))
    sensors = sorted(d.id for d in h.topo.devices.values() if d.kind == "road_sensor")
    alive = sensors[0]
    for _ in range(6):
        h.readings([Reading(alive, "traffic", {"flow": 100.0})])
        h.clock.advance(60)
        h.tick()
    raised = {a.device for a in h.alarms if a.rule == "silent" and a.state == "raised"}
    assert raised == set(sensors) - {alive}
    h.readings([Reading(sensors[1], "traffic", {"flow": 100.0})])
    assert [(a.device, a.state) for a in h.alarms if a.state == "cleared"] == [(sensors[1], "cleared")]
    h.clock.advance(360)
    h.tick()
    assert alive in {a.device for a in h.alarms if a.state == "raised"}


def test_override_survives_a_restart(tmp_path: Path) -> None:
    start = local(2025, 1, 15, 19, 0)
    h = harness(tmp_path, "rules:" + SCHEDULE, start)
    h.tick()
    lamp, short = h.topo.lights_along("st-0003", 25.0)[:2]
    h.engine.override(lamp, 20.0, h.now + 3600, "carol")
    h.engine.override(short, 20.0, h.now + 60, "carol")
    saved = json.loads(json.dumps(h.engine.snapshot()))
    h2 = harness(tmp_path / "b", "rules:" + SCHEDULE, start + 120)
    assert h2.engine.restore(saved) == 1  # the short one expired while we were down
    h2.tick()
    assert h2.level(lamp) == 20.0 and h2.level(short) == 100.0
    assert h2.engine.requests(lamp)[0]["user"] == "carol"
    with pytest.raises(ValueError, match="unsupported rule engine snapshot"):
        h2.engine.restore({"version": 99})
