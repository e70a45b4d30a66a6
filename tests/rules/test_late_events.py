"""Events from a broker backlog, too old to act on: they command nothing, still raise alarms, are counted.

The pipeline passes ``stale_before`` only for events taken before a resumed session's marker
(supervisor/ingest/backlog.py); the engine withholds what such an event would command."""

from __future__ import annotations

from pathlib import Path

from drivers import Event
from tests.rules._city import ALARM, MOTION_LIGHTS, SCHEDULE, Harness, camera_with_lamps, harness, local

NIGHT = local(2025, 1, 15, 21, 0)

#: the lane tests' motion rule (lamps within 80 m), and an alarm-only rule on intrusions
BOTH = MOTION_LIGHTS + """
  - id: intrusion
    kind: when_then
    when:
      devices: {family: cctv}
      event: {kinds: [intrusion]}
    then:
      alarm: {severity: major, clear_after_s: 120}
"""


def _event(h: Harness, cam: str, kind: str, age: float) -> Event:
    return Event(cam, "cctv", kind, ts=h.now - age, data={"score": 0.9})


def test_a_backlog_event_past_the_age_limit_commands_nothing_but_still_raises_its_alarm(tmp_path: Path) -> None:
    h = harness(tmp_path, BOTH, NIGHT)
    cam, lamps = camera_with_lamps(h, 80.0)
    old = [_event(h, cam, "motion", 3600.0), _event(h, cam, "intrusion", 3600.0)]
    h.engine.on_events(old, h.now, stale_before=h.now - 120.0)
    assert {h.level(x) for x in lamps} == {None}, "an hour-old motion lit nothing"
    assert h.sink.sent == []
    assert [(a.rule, a.state) for a in h.alarms] == [("intrusion", "raised")], "the alarm is still raised"
    st = h.engine.stats()
    assert st["late_events"] == 2 and st["late_requests"] == len(lamps)


def test_a_backlog_event_within_the_age_limit_commands_as_usual(tmp_path: Path) -> None:
    h = harness(tmp_path, BOTH, NIGHT)
    cam, lamps = camera_with_lamps(h, 80.0)
    h.engine.on_events([_event(h, cam, "motion", 30.0)], h.now, stale_before=h.now - 120.0)
    assert {h.level(x) for x in lamps} == {90.0}
    assert {c.device for c in h.sink.sent} == lamps
    assert h.engine.stats()["late_events"] == 0 and h.engine.stats()["late_requests"] == 0


def test_a_live_event_is_never_judged_by_its_device_clock(tmp_path: Path) -> None:
    """A camera whose clock lags an hour: live (no ``stale_before``), its motion lights its street."""
    h = harness(tmp_path, BOTH, NIGHT)
    cam, lamps = camera_with_lamps(h, 80.0)
    h.engine.on_events([_event(h, cam, "motion", 3600.0)], h.now)
    assert {h.level(x) for x in lamps} == {90.0}
    assert h.engine.stats()["late_events"] == 0


def test_late_and_live_events_of_one_batch_are_told_apart(tmp_path: Path) -> None:
    """The arbiter withholds only during the late event: the live one after it commands."""
    h = harness(tmp_path, "rules:" + SCHEDULE + ALARM, NIGHT)
    cam, lamps = camera_with_lamps(h, 40.0)
    h.tick()
    before = {x: h.level(x) for x in lamps}
    h.engine.on_events([_event(h, cam, "motion", 7200.0)], h.now, stale_before=h.now - 120.0)
    assert {x: h.level(x) for x in lamps} == before, "the alarm lighting's lease was not taken"
    assert h.engine.stats()["late_requests"] == len(lamps)
    h.engine.on_events([_event(h, cam, "motion", 1.0)], h.now)
    assert all(h.engine.requests(x)[0]["rule"] == "cctv-light" for x in lamps)
