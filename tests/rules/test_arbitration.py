"""Priority stack: camera alarms over traffic, manual overrides over everything, leases, commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import OverrideError, UnknownDeviceError
from tests.rules._city import ADAPTIVE, ALARM, SCHEDULE, Harness, harness, local

START = local(2025, 1, 15, 19, 0)
RULES = "rules:" + SCHEDULE + ADAPTIVE + ALARM


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    h = harness(tmp_path, RULES, START, command_timeout_s=30.0, command_attempts=3)
    h.tick()
    return h


def street(h: Harness, kind: str, st: str) -> list[str]:
    return sorted(d.id for d in h.topo.devices.values() if d.kind == kind and d.street == st)


def near(h: Harness, cam: str, radius: float = 40.0) -> list[str]:
    d = h.topo.devices[cam]
    return h.topo.devices_within(d.lon, d.lat, radius, family="lighting", kind="lamp")


def test_camera_alarm_overrides_traffic_until_lease_expiry(h: Harness) -> None:
    s1 = street(h, "road_sensor", "st-0001")
    along = h.topo.lights_along("st-0001", 25.0)
    h.run(700, sensors=s1, flow=20.0)
    assert {h.level(x) for x in along} == {30.0}
    cam = street(h, "camera", "st-0001")[0]
    lit = near(h, cam)
    assert lit and set(lit) < set(along) | set(h.topo.lights_along("st-0002", 25.0))
    h.event(cam, "intrusion", score=0.9)
    assert {h.level(x) for x in lit} == {100.0}
    untouched = [x for x in along if x not in lit]
    assert untouched and {h.level(x) for x in untouched} == {30.0}
    why = h.engine.why(lit[0])[-1]
    assert why.rule == "cctv-light" and f"intrusion (score 0.9) on camera {cam}" in why.text
    h.run(280, sensors=s1, flow=20.0)
    assert {h.level(x) for x in lit if x in along} == {100.0}
    h.run(30, sensors=s1, flow=20.0)  # lease of 300 s over: traffic level again
    assert {h.level(x) for x in lit if x in along} == {30.0}
    assert "lease ended" in h.engine.why(lit[0])[-1].text


def test_alarm_ignored_by_day_and_for_other_kinds(tmp_path: Path) -> None:
    h = harness(tmp_path, RULES, local(2025, 1, 15, 12, 0))
    h.tick()
    cam = street(h, "camera", "st-0001")[0]
    lit = near(h, cam)
    h.event(cam, "motion")
    assert {h.level(x) for x in lit} == {0.0}
    h2 = harness(tmp_path / "n", RULES, START)
    h2.tick()
    h2.event(cam, "tamper")
    assert {h2.level(x) for x in lit} == {100.0}  # schedule only
    assert all(d.rule == "night" for x in lit for d in h2.engine.why(x))


def test_manual_override_wins_until_expiry(h: Harness) -> None:
    cam = street(h, "camera", "st-0001")[0]
    lamp = near(h, cam)[0]
    h.engine.override(lamp, 10.0, h.now + 600, "alice")
    assert h.level(lamp) == 10.0
    h.event(cam, "intrusion")
    assert h.level(lamp) == 10.0, "manual (100) beats safety (80)"
    assert [r["priority"] for r in h.engine.requests(lamp)] == [100, 80, 10]
    h.run(590)
    assert h.level(lamp) == 10.0
    h.run(20)
    assert h.level(lamp) == 100.0  # the camera lease (300 s) ended too: schedule
    assert any("manual override by alice" in d.text for d in h.engine.why(lamp))


def test_clear_override_and_bad_overrides(h: Harness) -> None:
    lamp = h.topo.lights_along("st-0002", 25.0)[0]
    h.engine.override(lamp, 0.0, h.now + 3600, "bob")
    assert h.level(lamp) == 0.0
    assert h.engine.clear_override(lamp, user="bob") is True
    assert h.level(lamp) == 100.0
    assert h.engine.clear_override(lamp) is False
    with pytest.raises(OverrideError, match=r"level must be 0\.\.100"):
        h.engine.override(lamp, 140.0, h.now + 60, "bob")
    with pytest.raises(OverrideError, match="must be in the future"):
        h.engine.override(lamp, 50.0, h.now - 1, "bob")
    with pytest.raises(UnknownDeviceError, match="not in the city model"):
        h.engine.override("lamp-999999", 50.0, h.now + 60, "bob")
    cam = street(h, "camera", "st-0001")[0]
    with pytest.raises(UnknownDeviceError, match="only lighting"):
        h.engine.override(cam, 50.0, h.now + 60, "bob")


def test_commands_confirmed_retried_then_failed(h: Harness) -> None:
    lamp, deaf = h.topo.lights_along("st-0002", 25.0)[:2]
    state = h.engine.commands()
    assert state[lamp]["state"] == "confirmed" and state[lamp]["attempts"] == 1
    h.deaf.add(deaf)
    h.engine.override(lamp, 40.0, h.now + 3600, "ops")
    h.engine.override(deaf, 40.0, h.now + 3600, "ops")
    assert h.engine.commands()[deaf]["state"] == "pending"
    h.tick()
    assert h.engine.commands()[lamp]["state"] == "confirmed"
    h.run(35)
    st = h.engine.commands()[deaf]
    assert (st["state"], st["attempts"], st["level"]) == ("pending", 2, 40.0)
    assert [c.value for c in h.sink.sent if c.device == deaf][-2:] == [40.0, 40.0]
    h.run(70)
    st = h.engine.commands()[deaf]
    assert (st["state"], st["attempts"]) == ("failed", 3)
    failed = [a for a in h.alarms if a.kind == "command_failed"]
    assert len(failed) == 1 and failed[0].device == deaf and "no confirmation after 3 attempts" in failed[0].text
    h.run(100)
    assert len([a for a in h.alarms if a.kind == "command_failed"]) == 1, "no retry after failure"
    h.deaf.clear()
    h.engine.override(deaf, 45.0, h.now + 3600, "ops")
    h.tick()
    assert h.engine.commands()[deaf]["state"] == "confirmed"
    assert [a.state for a in h.alarms if a.kind == "command_failed"] == ["raised", "cleared"]


def test_schedule_profile_through_the_night(tmp_path: Path) -> None:
    h = harness(tmp_path, "rules:" + SCHEDULE, local(2025, 1, 15, 16, 0))  # sunset ~17:20 local
    lamp = h.topo.lights_along("st-0004", 25.0)[0]
    seen: dict[str, float | None] = {}
    for hhmm, dt in (("16:00", 0), ("18:00", 2 * 3600), ("22:55", 4 * 3600 + 55 * 60), ("23:05", 600),
                     ("04:55", 5 * 3600 + 50 * 60), ("05:05", 600), ("09:00", 3 * 3600 + 55 * 60)):
        h.clock.advance(dt)
        h.tick()
        seen[hhmm] = h.level(lamp)
    assert seen == {"16:00": 0.0, "18:00": 100.0, "22:55": 100.0, "23:05": 50.0, "04:55": 50.0,
                    "05:05": 100.0, "09:00": 0.0}
    texts = [d.text for d in h.engine.why(lamp)]
    assert any("profile 50 % from 23:00 until 05:00" in t for t in texts)
    assert any("profile 100 % from 05:00 until sunrise" in t for t in texts)


def test_unrelated_readings_cost_nothing(h: Harness) -> None:
    from drivers import Reading

    before = h.engine.stats()
    meter = next(d.id for d in h.topo.devices.values() if d.kind == "water_meter")
    h.engine.on_readings([Reading(meter, "water", {"flow": "garbage"})] * 100, h.now)
    assert h.engine.stats() == before  # no rule indexes the meter: nothing read, nothing counted
