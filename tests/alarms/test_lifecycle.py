"""The one alarm list: every source, durable across restarts, maintenance windows, operator actions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from rules import RuleAlarm
from supervisor.alarms import AlarmManager, AlarmStateError, UnknownAlarmError
from supervisor.alarms.lifecycle import AlarmInputError, AlarmLifecycle, UnknownWindowError, alarm_id
from supervisor.alarms.store import AlarmQuery, AlarmStore
from supervisor.model import CityModel, city_from_dict
from supervisor.notify import AlarmEvent
from supervisor.storage import schema
from tests.model._small import small_city


@cache
def model() -> CityModel:
    return city_from_dict(small_city())


@dataclass
class Rig:
    path: Path
    lc: AlarmLifecycle
    mgr: AlarmManager
    events: list[AlarmEvent]
    lines: list[bytes]


def rig(tmp_path: Path, now: float = 0.0, settle_s: float = 900.0) -> Rig:
    """A lifecycle on ``tmp_path/alarms.sqlite3`` (a second call is a restart on the same file)."""
    events: list[AlarmEvent] = []
    lines: list[bytes] = []
    path = tmp_path / "alarms.sqlite3"
    lc = AlarmLifecycle(AlarmStore(path), model=model(), write=lambda _what, make: lines.append(make()),
                        notify=events.append,
                        clock=lambda: now, settle_s=settle_s)
    mgr = AlarmManager(model(), id_for=lc.id_for, on_change=lc.on_manager_change)
    lc.manager_ack = mgr.acknowledge
    return Rig(path, lc, mgr, events, lines)


@dataclass(frozen=True)
class Cmd:
    device: str
    channel: str | None
    state: str
    level: float
    attempts: int
    since: float
    error: str | None = None


def test_network_alarm_is_listed_acknowledged_and_cleared(tmp_path: Path) -> None:
    r = rig(tmp_path)
    (change,) = r.mgr.update({"cam-1"}, 100.0)
    a = r.lc.active()[0]
    assert a.id == change.alarm.id == alarm_id("device:cam-1", 1)  # the manager and the list agree
    assert (a.source, a.kind, a.element, a.services, a.zones) == ("network", "device", "cam-1", ("cctv",), ("z1",))
    info = model().devices["cam-1"]
    assert (a.lon, a.lat) == (info.lon, info.lat)
    changed, acked = r.lc.acknowledge(a.id, "alice", 110.0)
    assert changed and acked.acked_by == "alice" and r.mgr.get(a.id).state == "acknowledged"
    assert r.lc.acknowledge(a.id, "bob", 111.0)[0] is False  # twice keeps the first
    r.mgr.update(set(), 120.0)
    assert r.lc.active() == []
    assert r.lc.get(a.id).state == "cleared" and r.lc.get(a.id).clear_reason == "recovered"
    assert [(e.transition, e.acknowledged_by) for e in r.events] == [
        ("raised", None), ("acknowledged", "alice"), ("cleared", None)]
    assert [a["action"] for a in r.lc.store.journal(a.id)] == ["raised", "acknowledged", "cleared"]
    # every transition went to InfluxDB, in the declared schema
    assert len(r.lines) == 3 and all(line.startswith(b"alarms,") for line in r.lines)
    assert b"state=acknowledged" in r.lines[1] and b'by="alice"' in r.lines[1]
    with pytest.raises(AlarmStateError):
        r.lc.acknowledge(a.id, "bob", 130.0)
    with pytest.raises(UnknownAlarmError):
        r.lc.acknowledge("AL-nope-1", "bob", 130.0)
    # back within the flap window: the same alarm (id, acknowledgement), one flap more, notified as flapping
    r.mgr.update({"cam-1"}, 200.0)
    (back,) = r.lc.active()
    assert (back.id, back.state, back.acked_by, back.flap_count) == (a.id, "acknowledged", "alice", 1)
    assert (r.events[-1].transition, r.events[-1].flap_count) == ("flapping", 1)
    assert r.lc.store.journal(a.id)[-1]["action"] == "reopened" and b"flap_count=1i" in r.lines[-1]
    # cleared again, and raised again long after the flap window: a new occurrence, a new id
    r.mgr.update(set(), 210.0)
    r.mgr.update({"cam-1"}, 210.0 + r.mgr.flap_window + 1.0)
    assert r.lc.active()[0].id == alarm_id("device:cam-1", 2)


def test_restart_keeps_id_and_acknowledgement_and_notifies_nothing_twice(tmp_path: Path) -> None:
    first = rig(tmp_path)
    first.mgr.update({"cam-1"}, 100.0)
    aid = first.lc.active()[0].id
    first.lc.acknowledge(aid, "alice", 110.0)
    # no close(): as after a SIGKILL, what was committed is all there is
    second = rig(tmp_path, now=500.0)
    (restored,) = second.lc.active()
    assert (restored.id, restored.state, restored.acked_by) == (aid, "acknowledged", "alice")
    second.mgr.update({"cam-1"}, 510.0)  # the cause is still there: the same alarm
    assert [(a.id, a.state) for a in second.lc.active()] == [(aid, "acknowledged")]
    assert second.events == []  # nothing notified again
    second.mgr.update(set(), 520.0)
    assert [e.transition for e in second.events] == ["cleared"]


def test_restored_alarm_clears_when_its_cause_is_gone(tmp_path: Path) -> None:
    first = rig(tmp_path)
    first.mgr.update({"cam-1"}, 100.0)
    first.lc.on_rule_alarm(RuleAlarm(100.0, "leak", "leak", "wm-1", "raised", "major", "leak at wm-1"))
    second = rig(tmp_path, now=1000.0, settle_s=60.0)
    assert len(second.lc.active()) == 2
    # cam-1 reported since the start: its alarm clears at once; the leak waits for the settle time
    assert second.lc.reconcile(1001.0, lambda d: d == "cam-1") == 1
    assert [a.kind for a in second.lc.active()] == ["rule:leak"]
    assert second.lc.reconcile(1059.0, lambda d: False) == 0
    assert second.lc.reconcile(1060.0, lambda d: False) == 1
    assert second.lc.active() == []
    assert [e.transition for e in second.events] == ["cleared", "cleared"]


def test_rule_alarm_and_failed_command_are_in_the_list_and_acknowledgeable(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.lc.on_rule_alarm(RuleAlarm(10.0, "leak-night", "leak", "wm-1", "raised", "major", "night flow at wm-1"))
    r.lc.on_command(Cmd("lamp-1", None, "pending", 50.0, 1, 11.0))
    r.lc.on_command(Cmd("lamp-1", None, "failed", 50.0, 3, 12.0, "no report"))
    by_kind = {a.kind: a for a in r.lc.active()}
    assert set(by_kind) == {"rule:leak", "command"}
    assert by_kind["rule:leak"].services == ("water",) and by_kind["command"].severity == "major"
    assert "not confirmed after 3 attempt(s): no report" in by_kind["command"].text
    for a in by_kind.values():
        assert r.lc.acknowledge(a.id, "op", 20.0)[0]
    r.lc.on_command(Cmd("lamp-1", None, "confirmed", 60.0, 1, 30.0))
    r.lc.on_rule_alarm(RuleAlarm(31.0, "leak-night", "leak", "wm-1", "cleared", "major", "flow back to normal"))
    assert r.lc.active() == []
    total, items = r.lc.query(AlarmQuery(state="cleared"), 10, 0)
    assert total == 2 and {a.acked_by for a in items} == {"op"}


def test_supervisor_alarms_spool_clears_itself_events_clear_on_ack(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.lc.supervisor_alarm("spool", "major", "raised", "spool 81% full", 1.0)
    r.lc.supervisor_alarm("spool", "major", "raised", "spool 85% full", 2.0)  # still the same alarm
    r.lc.supervisor_alarm("mqtt-session", "critical", "raised", "session lost", 3.0)
    assert sorted(a.element for a in r.lc.active()) == ["mqtt-session", "spool"]
    r.lc.supervisor_alarm("spool", "major", "cleared", "spool back to 40%", 4.0)
    (event,) = r.lc.active()
    r.lc.acknowledge(event.id, "op", 5.0)
    assert r.lc.active() == []
    assert r.lc.get(event.id).clear_reason == "event acknowledged by op"


def test_maintenance_window_mutes_alarms_within_its_impact(tmp_path: Path) -> None:
    r = rig(tmp_path, now=100.0)
    w = r.lc.add_window("lc-1", start=100.0, end=200.0, reason="cabinet works", user="op", now=100.0)
    assert r.lines[-1].startswith(b"maintenance,element=lc-1,state=declared,window=" + w.id.encode() + b" ")
    assert b'reason="cabinet works"' in r.lines[-1] and b"start=100.0,end=200.0" in r.lines[-1]
    r.mgr.update({"cam-1"}, 110.0)  # cam-1 is powered by lc-1
    (a,) = r.lc.active()
    assert a.in_maintenance == w.id
    assert [(e.transition, e.in_maintenance) for e in r.events] == [("raised", True)]
    assert b'maintenance="' + w.id.encode() + b'"' in r.lines[-1]
    r.mgr.update({"cam-1", "wm-1"}, 120.0)  # wm-1 is outside lc-1's impact set
    outside = [x for x in r.lc.active() if x.element == "wm-1"]
    assert outside[0].in_maintenance is None and r.events[-1].in_maintenance is False
    # after the window: not in maintenance any more
    r.mgr.update({"wm-1"}, 130.0)
    r.mgr.update({"wm-1", "cam-1"}, 250.0)
    assert next(x for x in r.lc.active() if x.element == "cam-1").in_maintenance is None
    # durable: a restart keeps the window; removed, it is gone
    again = rig(tmp_path)
    assert [x.id for x in again.lc.windows()] == [w.id]
    again.lc.remove_window(w.id)
    with pytest.raises(UnknownWindowError):
        again.lc.remove_window(w.id)
    assert rig(tmp_path).lc.windows() == []


def test_maintenance_declared_while_alarm_active_marks_it(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.mgr.update({"cam-1"}, 10.0)
    w = r.lc.add_window("z1", start=0.0, end=100.0, reason="works", user="op", now=20.0)
    assert r.lc.active()[0].in_maintenance == w.id
    assert [e.in_maintenance for e in r.events] == [False, True]


@pytest.mark.parametrize(("element", "start", "end", "match"), [
    ("sw-1", 200.0, 100.0, "before it starts"),
    ("sw-1", 100.0, 100.0, "before it starts"),
    ("sw-1", float("nan"), 100.0, "finite"),
    ("nowhere", 100.0, 200.0, "unknown element"),
])
def test_bad_maintenance_window_is_refused_and_stores_nothing(tmp_path: Path, element: str, start: float,
                                                              end: float, match: str) -> None:
    r = rig(tmp_path)
    with pytest.raises(AlarmInputError, match=match):
        r.lc.add_window(element, start=start, end=end, reason="x", user="op", now=0.0)
    assert r.lc.windows() == [] and rig(tmp_path).lc.windows() == []


def test_shelve_and_comment(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.mgr.update({"cam-1"}, 10.0)
    (a,) = r.lc.active()
    with pytest.raises(AlarmInputError):
        r.lc.shelve(a.id, "op", float("inf"), "forever", 10.0)
    cancelled: list[str] = []
    r.lc.cancel_notify = cancelled.append
    r.lc.shelve(a.id, "op", 100.0, "known, crew on site", 20.0)
    assert cancelled == [a.id]  # what still waited for it (a delayed raise, an escalation) is cancelled
    r.lc.acknowledge(a.id, "op", 30.0)  # shelved: not notified
    assert [e.transition for e in r.events] == ["raised"]
    r.lc.comment(a.id, "bob", "crew says 1 h", 40.0)
    assert r.lc.query(AlarmQuery(state="shelved"), 10, 0)[0] == 1
    got = r.lc.get(a.id)
    assert got.shelved_reason == "known, crew on site" and got.comments[0]["detail"] == "crew says 1 h"
    with pytest.raises(UnknownAlarmError):
        r.lc.comment("AL-x-1", "bob", "?", 41.0)
    r.lc.shelve(a.id, "op", 45.0, "crew done", 45.0)  # a time not in the future unshelves
    assert not r.lc.get(a.id).shelved(46.0)
    assert [j["action"] for j in r.lc.store.journal(a.id)][-1] == "unshelved"
    r.mgr.update(set(), 50.0)
    assert [e.transition for e in r.events] == ["raised", "cleared"]
    with pytest.raises(AlarmStateError):
        r.lc.shelve(a.id, "op", 500.0, "late", 60.0)


def test_query_filters(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.mgr.update({"cam-1"}, 10.0)
    r.lc.on_rule_alarm(RuleAlarm(20.0, "leak", "leak", "wm-1", "raised", "critical", "leak"))
    r.lc.supervisor_alarm("spool", "major", "raised", "spool 80% full", 30.0)

    def ids(**kw: object) -> set[str]:
        return {a.element for a in r.lc.query(AlarmQuery(**kw), 100, 0)[1]}  # type: ignore[arg-type]

    assert ids() == {"cam-1", "wm-1", "spool"}
    assert ids(kind="rule:leak") == {"wm-1"}
    assert ids(severity="major") == {"cam-1", "spool"}
    assert ids(service="cctv") == {"cam-1"}
    assert ids(zone="z1") == {"cam-1", "wm-1"}
    assert ids(element="spool") == {"spool"}
    assert ids(since=15.0, until=25.0) == {"wm-1"}
    assert ids(state="active") == ids()
    total, page = r.lc.query(AlarmQuery(), 2, 0)
    assert total == 3 and [a.element for a in page] == ["spool", "wm-1"]  # newest first
    assert [a.element for a in r.lc.query(AlarmQuery(), 2, 2)[1]] == ["cam-1"]


def test_lines_fit_the_declared_schema(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.mgr.update({"cam-1"}, 10.0)
    measurement = schema.MEASUREMENTS["alarms"]
    assert set(measurement.fields) >= {"source", "by", "maintenance"}
    assert r.lines[0].startswith(b"alarms,element=cam-1,kind=device,severity=major,state=raised ")
    assert b'source="network"' in r.lines[0]
