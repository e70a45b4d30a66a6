"""Quiet recovery: a device inside an open root-cause alarm never gets an alarm of its own, nor a
new root cause, while the cause is down or recovering; a device still dead after its grace does."""

from __future__ import annotations

from functools import cache

import pytest

from simulators.city import DEFAULT_AIR_PER_ZONE, generate_city
from supervisor.alarms import AlarmManager
from supervisor.alarms._manager import RECOVERY_GRACE_INTERVALS
from supervisor.model import CityModel, city_from_dict
from tests.alarms._timeline import Timeline
from tests.model._small import small_city

LAMPS = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5"}  # 300 s
FAST = {"cam-1", "rs-1"}  # 60 s
METERS = {"wm-1", "wm-2"}  # 900 s
EVERYTHING = LAMPS | FAST | METERS


@cache
def small() -> CityModel:
    return city_from_dict(small_city())


@cache
def demo_city() -> CityModel:
    """The demo's city (``urban-supervisor demo``: seed 1, 300 devices, air sensors per zone)."""
    return city_from_dict(generate_city(seed=1, devices=300, air_per_zone=DEFAULT_AIR_PER_ZONE))


def _kinds(changes: list) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(c.alarm.kind, c.alarm.element, c.transition) for c in changes]


def _recover_quietly(tl: Timeline, rc_id: str, devices: set[str], restored_at: float) -> set[str]:
    """Run the recovery check by check: no alarm change at all until every device of ``devices``
    reported again, then the root cause cleared as recovered. Returns the elements that explained
    every silent device at some check on the way (each a duplicate alarm if nothing held them)."""
    back = tl.all_back_at(devices, restored_at)
    n_before = len(tl.changes)
    sub_causes: set[str] = set()
    while tl.now + tl.check < back:
        assert tl.run(tl.now + tl.check) == [], f"an alarm changed at {tl.now} during the recovery"
        assert [a.id for a in tl.manager.active()] == [rc_id]
        assert tl.manager.get(rc_id).recovering_since is not None
        assert set(tl.manager.recovering(rc_id)) >= tl.failing()
        sub_causes |= {c.element for c in tl.model.root_causes(tl.failing()).causes}
    tl.run(back + 2 * tl.check)
    (cleared,) = tl.changes[n_before:]
    assert (cleared.alarm.id, cleared.transition, cleared.alarm.clear_reason) == (rc_id, "cleared", "recovered")
    assert back <= cleared.ts <= back + tl.check
    assert tl.manager.active() == [] and tl.failing() == set()
    return sub_causes


def test_the_demo_switch_failure_gives_one_alarm_and_nothing_more_during_recovery() -> None:
    """The demo, on a virtual clock: the first access switch fails at 900 s and is restored at
    2160 s; its devices come back one by one (cameras every 60 s, lamps every 300 s...)."""
    model = demo_city()
    switch = next(s.id for s in model.switches.values() if not s.core and s.uplink is not None)
    silent = model.dependents(switch)
    tl = Timeline(model, AlarmManager(model), check=30.0)
    tl.run(900.0)
    assert tl.changes == [] and tl.failing() == set()
    tl.down |= silent
    tl.run(2160.0)
    (raised,) = tl.changes
    assert _kinds([raised]) == [("root_cause", switch, "raised")]
    assert set(raised.alarm.devices) == silent
    tl.down -= silent
    sub_causes = _recover_quietly(tl, raised.alarm.id, silent, 2160.0)
    # what raised five extra critical alarms: elements under the restored switch (its cabinets, an
    # access switch) whose devices were all still silent, each explaining them all
    assert sub_causes and switch not in sub_causes, "the timeline must exercise the recovery duplicates"


def test_small_city_switch_restored_devices_return_one_by_one() -> None:
    model = small()
    tl = Timeline(model, AlarmManager(model), check=30.0)
    tl.run(1000.0)
    tl.down |= EVERYTHING
    tl.run(4000.0)  # every device stale (meters after 2700 s)
    (rc_id,) = [c.alarm.id for c in tl.changes if c.alarm.kind == "root_cause"]
    # a fast device alone stale at a check (it takes two to presume their element down) had its
    # own alarm for a moment: merged into the root cause
    early = [c.alarm for c in tl.changes if c.alarm.kind == "device" and c.transition == "raised"]
    assert tl.manager.get(rc_id).merged == tuple(a.id for a in early)
    assert [a.id for a in tl.manager.active()] == [rc_id]
    tl.down.clear()
    # the fast ones, then the lamps, then the meters come back; the lamps' controller and the
    # radio gateway then explain what is still silent
    assert _recover_quietly(tl, rc_id, EVERYTHING, 4000.0) >= {"rg-1"}


def test_while_recovering_no_root_cause_for_the_sub_elements() -> None:
    mgr = AlarmManager(small())
    (rc,) = mgr.update(EVERYTHING, now=10.0)
    assert rc.alarm.element == "sw-core"
    # the switch is back: the fast reporters return first; the lamps' controller (cab-1) and the
    # radio gateway (rg-1) now explain all the silent devices, yet stay quiet
    assert {c.element for c in small().root_causes(LAMPS | METERS).causes} == {"cab-1", "rg-1"}
    assert mgr.update(LAMPS | METERS, now=20.0) == []
    assert mgr.get(rc.alarm.id).recovering_since == 20.0
    assert set(mgr.recovering(rc.alarm.id)) == LAMPS | METERS
    assert mgr.update(METERS, now=320.0) == []  # the lamps are back
    assert mgr.recovering(rc.alarm.id) == ("wm-1", "wm-2")
    changes = mgr.update(set(), now=920.0)
    assert _kinds(changes) == [("root_cause", "sw-core", "cleared")]
    assert mgr.active() == [] and mgr.recovering(rc.alarm.id) == ()


def test_a_device_dead_after_its_own_grace_gets_its_own_alarm() -> None:
    mgr = AlarmManager(small())
    mgr.update(EVERYTHING, now=0.0)
    assert mgr.update(LAMPS | {"cam-1"}, now=10.0) == []  # recovery starts at 10 s; the camera is dead
    cam_grace = RECOVERY_GRACE_INTERVALS * 60.0
    assert mgr.update({"lamp-1", "cam-1"}, now=10.0 + cam_grace) == []  # not past it yet
    changes = mgr.update({"lamp-1", "cam-1"}, now=10.0 + cam_grace + 1)
    # the camera is released (its grace is 3 x 60 s), the lamp is still held (3 x 300 s)
    assert _kinds(changes) == [("device", "cam-1", "raised")]
    rc = next(a for a in mgr.active() if a.kind == "root_cause")
    assert mgr.recovering(rc.id) == ("lamp-1",)
    changes = mgr.update({"lamp-1", "cam-1"}, now=10.0 + RECOVERY_GRACE_INTERVALS * 300.0 + 1)
    assert _kinds(changes) == [("root_cause", "sw-core", "cleared"), ("device", "lamp-1", "raised")]


def test_siblings_dead_after_the_grace_get_one_root_cause_not_one_alarm_each() -> None:
    mgr = AlarmManager(small())
    mgr.update(EVERYTHING, now=0.0)
    assert mgr.update(METERS, now=10.0) == []  # the radio gateway really stays dead
    changes = mgr.update(METERS, now=10.0 + RECOVERY_GRACE_INTERVALS * 900.0 + 1)
    assert _kinds(changes) == [("root_cause", "sw-core", "cleared"), ("root_cause", "rg-1", "raised")]
    assert set(changes[1].alarm.devices) == METERS


def test_the_cause_failing_again_while_it_recovers_is_the_same_alarm() -> None:
    mgr = AlarmManager(small())
    (rc,) = mgr.update(EVERYTHING, now=0.0)
    assert mgr.update(LAMPS, now=10.0) == []
    assert mgr.get(rc.alarm.id).recovering_since == 10.0
    assert mgr.update(EVERYTHING, now=20.0) == []  # down again: no new alarm, no change
    assert mgr.get(rc.alarm.id).recovering_since is None and mgr.recovering(rc.alarm.id) == ()
    assert [a.id for a in mgr.active()] == [rc.alarm.id]
    assert mgr.update(LAMPS, now=30.0) == []
    assert mgr.get(rc.alarm.id).recovering_since == 30.0  # the recovery starts again (and its grace)


def test_a_device_back_then_failing_again_during_the_recovery_is_on_its_own() -> None:
    mgr = AlarmManager(small())
    mgr.update(EVERYTHING, now=0.0)
    assert mgr.update(LAMPS, now=10.0) == []  # the road sensor reported: it left the recovering alarm
    changes = mgr.update(LAMPS | {"rs-1"}, now=20.0)
    assert _kinds(changes) == [("device", "rs-1", "raised")]


def test_a_real_failure_beside_a_recovering_cause_is_raised() -> None:
    """The cabinet's power fails while the lamps are not back: the camera it powers had returned,
    so the cabinet is a new cause (not inside the recovering alarm) and is raised."""
    mgr = AlarmManager(small())
    (core,) = mgr.update(EVERYTHING, now=0.0)
    assert mgr.update(LAMPS, now=10.0) == []
    changes = mgr.update(LAMPS | {"cam-1"} | {"rs-1"}, now=20.0)
    assert sorted(_kinds(changes)) == [("device", "rs-1", "raised"), ("root_cause", "lc-1", "raised")]
    assert [a.element for a in mgr.active()] == ["sw-core", "lc-1", "rs-1"]
    assert mgr.get(core.alarm.id).merged_into is None  # not all its devices are the cabinet's


def test_due_while_a_root_cause_recovers() -> None:
    """The supervisor correlates on status changes only, unless ``due``: a recovering cause needs
    updates without them (a presumed device coming back, a dead one to release)."""
    mgr = AlarmManager(small())
    assert not mgr.due()
    mgr.update(EVERYTHING, now=0.0)
    assert not mgr.due()  # down, not recovering
    mgr.update({"cam-1", "lamp-1"}, now=100.0)
    assert mgr.due()
    assert [c.transition for c in mgr.update(set(), now=110.0)] == ["cleared"]
    assert not mgr.due()


@pytest.mark.parametrize("kw", [{"flap_window": -1.0}, {"recovery_grace_intervals": -0.5},
                                {"flap_window": float("nan")}])
def test_bad_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        AlarmManager(small(), **kw)  # type: ignore[arg-type]
