"""Alarm lifecycle: raise, acknowledge, clear, and root-cause suppression."""

from __future__ import annotations

import json
from functools import cache

import pytest

from supervisor.alarms import AFFECTED_MAX, AlarmManager, AlarmStateError, UnknownAlarmError
from supervisor.alarms._manager import RECOVERY_GRACE_INTERVALS
from supervisor.model import CityModel, city_from_dict
from tests.model._small import small_city

CABINET = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5", "cam-1"}


@cache
def model() -> CityModel:
    return city_from_dict(small_city())


def test_device_alarm_raise_ack_clear() -> None:
    mgr = AlarmManager(model())
    changes = mgr.update({"cam-1"}, now=100.0)
    assert [(c.alarm.kind, c.alarm.element, c.state, c.ts) for c in changes] == [("device", "cam-1", "raised", 100.0)]
    alarm = changes[0].alarm
    assert alarm.severity == "major" and alarm.services == ("cctv",) and alarm.devices == ("cam-1",)
    assert mgr.update({"cam-1"}, now=105.0) == []  # no change, no duplicate

    ack = mgr.acknowledge(alarm.id, "alice", now=110.0)
    assert ack is not None and ack.state == "acknowledged"
    assert mgr.get(alarm.id).acked_by == "alice" and mgr.get(alarm.id).acked_at == 110.0
    assert mgr.acknowledge(alarm.id, "bob", now=111.0) is None  # already acknowledged

    cleared = mgr.update(set(), now=120.0)
    assert [(c.alarm.id, c.state) for c in cleared] == [(alarm.id, "cleared")]
    assert mgr.get(alarm.id).clear_reason == "recovered" and mgr.get(alarm.id).cleared_at == 120.0
    assert mgr.active() == []
    assert [c.state for c in mgr.history] == ["raised", "acknowledged", "cleared"]
    with pytest.raises(AlarmStateError, match="is cleared: cannot acknowledge"):
        mgr.acknowledge(alarm.id, "alice", now=130.0)


def test_changes_are_snapshots() -> None:
    mgr = AlarmManager(model())
    raised = mgr.update({"cam-1"}, now=1.0)[0]
    mgr.update(set(), now=2.0)
    assert raised.state == "raised"  # the change recorded at raise time does not move


def test_unknown_alarm() -> None:
    with pytest.raises(UnknownAlarmError):
        AlarmManager(model()).acknowledge("A999999", "alice", now=1.0)
    with pytest.raises(UnknownAlarmError):
        AlarmManager(model()).get("A999999")


def test_power_cut_raises_one_root_cause_alarm() -> None:
    mgr = AlarmManager(model())
    changes = mgr.update(CABINET, now=10.0)
    assert len(changes) == 1
    alarm = changes[0].alarm
    assert (alarm.kind, alarm.element, alarm.severity) == ("root_cause", "lc-1", "critical")  # two services
    assert set(alarm.devices) == CABINET and alarm.services == ("lighting", "cctv")
    assert "lc-1" in alarm.text and "7 devices" in alarm.text
    assert [a.id for a in mgr.active()] == [alarm.id]


def test_device_alarms_are_suppressed_when_a_root_cause_appears() -> None:
    mgr = AlarmManager(model())
    first = mgr.update({"lamp-1", "cam-1"}, now=10.0)  # the first devices noticed silent
    assert sorted(c.alarm.element for c in first) == ["cam-1", "lamp-1"]
    ids = {c.alarm.element: c.alarm.id for c in first}

    changes = mgr.update(CABINET, now=20.0)  # then the whole cabinet
    raised = [c for c in changes if c.state == "raised"]
    cleared = {c.alarm.element: c.alarm.clear_reason for c in changes if c.state == "cleared"}
    assert [(c.alarm.kind, c.alarm.element) for c in raised] == [("root_cause", "lc-1")]
    root_id = raised[0].alarm.id
    assert cleared == {"cam-1": f"suppressed by {root_id}", "lamp-1": f"suppressed by {root_id}"}
    assert [a.id for a in mgr.active()] == [root_id]
    assert mgr.get(ids["lamp-1"]).state == "cleared"

    # power back except one lamp that really is broken: while the cabinet's devices come back (a lamp
    # reports every few minutes), the lamp not back yet stays attributed to the recovering cause
    assert mgr.update({"lamp-3"}, now=30.0) == []
    assert [a.id for a in mgr.active()] == [root_id]
    # past the grace (3 reporting intervals), what is still failing is on its own
    grace = RECOVERY_GRACE_INTERVALS * mgr.model.devices["lamp-3"].interval
    changes = mgr.update({"lamp-3"}, now=30.0 + grace + 1)
    assert [(c.alarm.kind, c.alarm.element, c.state) for c in changes] == [
        ("root_cause", "lc-1", "cleared"),
        ("device", "lamp-3", "raised"),
    ]


def test_two_causes_and_loners() -> None:
    mgr = AlarmManager(model())
    changes = mgr.update(CABINET | {"wm-1", "wm-2"}, now=5.0)
    assert sorted((c.alarm.kind, c.alarm.element) for c in changes) == [("root_cause", "lc-1"), ("root_cause", "rg-1")]
    mgr2 = AlarmManager(model())
    changes = mgr2.update({"wm-1", "wm-2", "rs-1", "lamp-1"}, now=5.0)
    assert sorted((c.alarm.kind, c.alarm.element) for c in changes) == [
        ("device", "lamp-1"),
        ("device", "rs-1"),
        ("root_cause", "rg-1"),
    ]


def test_everything_silent_is_the_core() -> None:
    changes = AlarmManager(model()).update(set(model().devices), now=5.0)
    assert [(c.alarm.element, len(c.alarm.devices)) for c in changes] == [("sw-core", 10)]


def test_as_point() -> None:
    mgr = AlarmManager(model())
    change = mgr.update({"wm-1", "wm-2"}, now=42.5)[0]
    measurement, tags, fields, ts = change.as_point()
    assert measurement == "alarms" and ts == 42.5
    assert tags == {"kind": "root_cause", "severity": "major", "element": "rg-1", "state": "raised"}
    assert fields == {"id": change.alarm.id, "devices": 2, "services": "water", "affected": '["wm-1","wm-2"]',
                      "evidence": "inferred"}
    json.dumps(change.as_dict())


def test_affected_is_capped_for_storage() -> None:
    from simulators.city import generate_city

    big = city_from_dict(generate_city(seed=2, devices=3000))
    mgr = AlarmManager(big)
    change = mgr.update(set(big.devices), now=1.0)[0]
    _, _, fields, _ = change.as_point()
    assert fields["devices"] == 3000
    assert len(json.loads(fields["affected"])) == AFFECTED_MAX
    assert len(fields["affected"].encode()) < 64 * 1024  # an InfluxDB v1 string field limit


def test_history_is_bounded() -> None:
    mgr = AlarmManager(model(), history_size=3)
    for t in range(5):
        mgr.update({"cam-1"} if t % 2 == 0 else set(), now=float(t))
    assert len(mgr.history) == 3
    assert [c.ts for c in mgr.history] == [2.0, 3.0, 4.0]


def test_unknown_device_gets_a_device_alarm() -> None:
    mgr = AlarmManager(model())
    changes = mgr.update({"ghost-1"}, now=1.0)
    assert [(c.alarm.element, c.alarm.services, c.alarm.severity) for c in changes] == [("ghost-1", (), "minor")]


def _intervals() -> dict[str, float]:
    return {d: float(model().devices[d].interval) for d in CABINET}


def test_fast_reporters_going_silent_first_are_correlated_before_the_slow_ones_are_overdue() -> None:
    """A power cut at t=1000: the fast reporters are stale first, the slow ones are not overdue yet.

    No device has reported since the cut, so the cabinet is blamed at once, listing all its devices,
    and no device alarm is raised in the meantime."""
    mgr = AlarmManager(model())
    iv = _intervals()
    fastest = min(iv.values())
    fast = {d for d, i in iv.items() if i == fastest}
    if len(fast) < 2:  # the small city's intervals: make two of its devices the fast ones
        fast = set(sorted(CABINET)[:2])
    now = 1000.0 + 3 * max(iv[d] for d in fast)  # when the fast ones are found stale
    last = dict.fromkeys(model().devices, now - 1.0)  # the rest of the city keeps reporting
    last.update({d: 1000.0 - (5.0 if d in fast else 100.0) for d in CABINET})  # the cabinet: all before the cut
    changes = mgr.update(fast, now=now, stale=fast, last_seen=last.get)
    assert [(c.alarm.kind, c.alarm.element) for c in changes] == [("root_cause", "lc-1")]
    assert set(changes[0].alarm.devices) == CABINET


def test_a_recent_report_from_a_sibling_keeps_the_element_innocent() -> None:
    mgr = AlarmManager(model())
    fast = set(sorted(CABINET)[:2])
    tolerance = max(_intervals()[d] for d in fast)
    last = dict.fromkeys(model().devices, 1000.0 + 4 * tolerance - 1.0)
    last.update(dict.fromkeys(CABINET, 1000.0))
    sibling = sorted(CABINET - fast)[0]
    last[sibling] = 1000.0 + tolerance + 60.0  # it reported well after the two went silent
    changes = mgr.update(fast, now=1000.0 + 4 * tolerance, stale=fast, last_seen=last.get)
    assert sorted((c.alarm.kind, c.alarm.element) for c in changes) == sorted(("device", d) for d in fast)
