"""Water leaks (minimum night flow over several nights), bursts, lamp failures, day-burning."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from drivers import Reading
from tests.rules._city import PARIS, Harness, harness, local

WATER = """
rules:
  - id: water
    kind: water_leak
    meters: {family: water}
    threshold_m3h: 0.05
    district_threshold_m3h: 0.15
    nights: 3
    burst_factor: 8
    burst_floor_m3h: 1.0
    burst_min_samples: 8
"""


def meters(h: Harness) -> list[str]:
    return sorted(d.id for d in h.topo.devices.values() if d.kind == "water_meter")[:4]


def usage(hour: int, leak: float) -> float:
    base = 0.3 if 6 <= hour < 23 else (0.004 if hour in (0, 1, 5) else 0.0)
    return base + leak


def feed_days(h: Harness, ms: list[str], leaky: str, days: float) -> None:
    for _ in range(int(days * 96)):  # one reading per meter every 15 min
        hour = datetime.fromtimestamp(h.now, PARIS).hour
        h.readings([Reading(m, "water", {"flow": usage(hour, 0.2 if m == leaky else 0.0)}, ts=h.now) for m in ms])
        h.clock.advance(900)
        h.tick()


def leak_alarms(h: Harness) -> list[tuple[str, str, float]]:
    return [(a.device, a.state, a.ts) for a in h.alarms if a.kind == "water_leak"]


def test_leak_suspected_on_the_third_night_once(tmp_path: Path) -> None:
    h = harness(tmp_path, WATER, local(2025, 3, 10, 12, 0))
    h.tick()
    ms = meters(h)
    leaky = ms[0]
    feed_days(h, ms, leaky, 2.5)  # nights of 11 and 12 March evaluated
    assert leak_alarms(h) == []
    zone = h.topo.devices[leaky].zone
    assert h.engine.snapshot()["rules"]["water"]["state"]["nights"] == {leaky: 2, f"zone:{zone}": 2}
    feed_days(h, ms, leaky, 2.0)  # nights of 13 and 14 March
    alarms = leak_alarms(h)
    assert [(d, s) for d, s, _ in alarms] == [(leaky, "raised"), (f"zone:{zone}", "raised")]
    ts = alarms[0][2]
    assert local(2025, 3, 13, 4, 0) <= ts < local(2025, 3, 13, 4, 30), "raised right after the 3rd night"
    text = next(a.text for a in h.alarms if a.device == leaky)
    assert "leak suspected" in text and "3 consecutive nights" in text
    assert h.engine.why(leaky)[-1].inputs["mnf"] == 0.2


def test_leak_counters_survive_a_restart(tmp_path: Path) -> None:
    h = harness(tmp_path, WATER, local(2025, 3, 10, 12, 0))
    h.tick()
    ms = meters(h)
    feed_days(h, ms, ms[0], 2.5)
    saved = json.loads(json.dumps(h.engine.snapshot()))
    h2 = harness(tmp_path / "restart", WATER, h.now)
    h2.engine.restore(saved)
    h2.tick()
    feed_days(h2, ms, ms[0], 1.0)
    assert [d for d, s, _ in leak_alarms(h2) if s == "raised"][:1] == [ms[0]]


def test_burst_against_rolling_median(tmp_path: Path) -> None:
    h = harness(tmp_path, WATER, local(2025, 3, 10, 12, 0))
    m = meters(h)[1]
    for _ in range(10):
        h.readings([Reading(m, "water", {"flow": 0.3}, ts=h.now)])
        h.clock.advance(900)
    h.readings([Reading(m, "water", {"flow": 3.0})])  # below 8 x 0.3 + 1 = 3.4
    assert [a for a in h.alarms if a.kind == "water_burst"] == []
    h.readings([Reading(m, "water", {"flow": 12.0})])
    h.readings([Reading(m, "water", {"flow": 12.5})])
    bursts = [a for a in h.alarms if a.kind == "water_burst"]
    assert [(a.device, a.state) for a in bursts] == [(m, "raised")]
    assert "burst suspected" in bursts[0].text and "median 0.3" in bursts[0].text


FAULTS = """
rules:
  - id: faults
    kind: lamp_faults
    cabinets: {kind: lighting_cabinet}
    wattage_w: 60
    tolerance_pct: 10
    tolerance_w: 20
    day_burning_w: 30
"""


def cabinet_lamps(h: Harness, cab: str) -> list[str]:
    return sorted(d.id for d in h.topo.devices.values() if d.kind == "lamp" and d.cabinet == cab)


def test_lamp_failures_counted_from_cabinet_power(tmp_path: Path) -> None:
    h = harness(tmp_path, FAULTS, local(2025, 1, 15, 21, 0))
    cab = "cab-0001"
    lamps = cabinet_lamps(h, cab)
    assert len(lamps) >= 10
    h.readings([Reading(x, "lighting", {"on": True, "level": 50.0}) for x in lamps])
    n = len(lamps)
    h.readings([Reading(cab, "lighting", {"power": (n - 2) * 30.0 + 5.0, "lamps": n})])
    fa = [a for a in h.alarms if a.kind == "lamp_failures"]
    assert [(a.device, a.state, a.data["lit"]) for a in fa] == [(cab, "raised", n)]
    assert h.engine.why(cab)[-1].output == 2.0
    assert "2 lamp failure(s) estimated" in fa[0].text
    h.readings([Reading(cab, "lighting", {"power": (n - 2) * 30.0})])  # same count: no new alarm
    assert len([a for a in h.alarms if a.kind == "lamp_failures"]) == 1
    h.readings([Reading(cab, "lighting", {"power": n * 30.0 - 10.0})])  # within tolerance: cleared
    assert [a.state for a in h.alarms if a.kind == "lamp_failures"] == ["raised", "cleared"]
    other = "cab-0002"
    h.readings([Reading(x, "lighting", {"on": True, "level": 50.0}) for x in cabinet_lamps(h, other)])
    h.readings([Reading(other, "lighting", {"power": len(cabinet_lamps(h, other)) * 30.0})])
    assert not [a for a in h.alarms if a.device == other]


def test_day_burning(tmp_path: Path) -> None:
    h = harness(tmp_path, FAULTS, local(2025, 6, 21, 13, 0))
    cab = "cab-0001"
    h.readings([Reading(x, "lighting", {"on": False, "level": 0.0}) for x in cabinet_lamps(h, cab)])
    h.readings([Reading(cab, "lighting", {"power": 10.0})])
    assert h.alarms == []
    h.readings([Reading(cab, "lighting", {"power": 400.0})])
    h.readings([Reading(cab, "lighting", {"power": 410.0})])
    assert [(a.kind, a.state) for a in h.alarms] == [("day_burning", "raised")]
    h.clock.advance(10 * 3600)  # 23:00: the sun is down, drawing power is normal
    h.readings([Reading(cab, "lighting", {"power": 400.0})])
    assert [(a.kind, a.state) for a in h.alarms] == [("day_burning", "raised"), ("day_burning", "cleared")]
