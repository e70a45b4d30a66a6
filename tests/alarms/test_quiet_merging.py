"""Merging: an alarm that a later root cause explains is merged into it, and the link is kept."""

from __future__ import annotations

import json
from functools import cache

from supervisor.alarms import AlarmManager
from supervisor.model import CityModel, city_from_dict
from supervisor.storage import schema
from tests.model._small import small_city

CABINET = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5", "cam-1"}
METERS = {"wm-1", "wm-2"}


@cache
def model() -> CityModel:
    return city_from_dict(small_city())


def test_device_alarms_merged_into_a_later_root_cause() -> None:
    mgr = AlarmManager(model())
    first = mgr.update({"lamp-2", "cam-1"}, now=10.0)
    ids = {c.alarm.element: c.alarm.id for c in first}
    unrelated = mgr.update({"lamp-2", "cam-1", "rs-1"}, now=15.0)[0].alarm
    changes = mgr.update(CABINET | {"rs-1"}, now=20.0)
    rc = changes[0].alarm
    assert (rc.kind, rc.element, changes[0].transition) == ("root_cause", "lc-1", "raised")
    # the raised snapshot already lists what it absorbed, and the merged ones follow it
    assert rc.merged == (ids["cam-1"], ids["lamp-2"])
    assert [(c.alarm.id, c.transition, c.alarm.merged_into, c.alarm.clear_reason) for c in changes[1:]] == [
        (ids["cam-1"], "cleared", rc.id, f"suppressed by {rc.id}"),
        (ids["lamp-2"], "cleared", rc.id, f"suppressed by {rc.id}"),
    ]
    assert sorted(a.id for a in mgr.active()) == sorted([rc.id, unrelated.id])  # rs-1 is not the cabinet's
    assert mgr.get(ids["cam-1"]).merged_into == rc.id and mgr.get(rc.id).merged == rc.merged
    # stored: the link both ways, declared fields of the alarms measurement
    _, _, rc_fields, _ = changes[0].as_point()
    assert json.loads(rc_fields["merged"]) == [ids["cam-1"], ids["lamp-2"]]
    _, _, dev_fields, _ = changes[1].as_point()
    assert dev_fields["merged_into"] == rc.id and "merged" not in dev_fields
    for c in changes:
        schema.alarm_change_line(c)  # refused if a field were not declared
    assert json.loads(json.dumps(mgr.get(ids["cam-1"]).as_dict()))["merged_into"] == rc.id


def test_a_smaller_root_cause_is_merged_into_a_larger_one() -> None:
    """The radio gateway's meters are silent first; then the whole switch: one alarm remains."""
    mgr = AlarmManager(model())
    (gw,) = mgr.update(METERS, now=10.0)
    assert gw.alarm.element == "rg-1"
    changes = mgr.update(set(model().devices), now=20.0)
    assert [(c.alarm.element, c.transition) for c in changes] == [("sw-core", "raised"), ("rg-1", "cleared")]
    core = changes[0].alarm
    assert core.merged == (gw.alarm.id,) and changes[1].alarm.merged_into == core.id
    assert [a.id for a in mgr.active()] == [core.id]
    # the switch back, the meters last: the merged alarm does not come back, the switch's recovers
    assert mgr.update(METERS, now=30.0) == []
    assert [(c.alarm.id, c.transition) for c in mgr.update(set(), now=40.0)] == [(core.id, "cleared")]


def test_a_recovering_root_cause_inside_a_new_one_is_merged() -> None:
    mgr = AlarmManager(model())
    (cab,) = mgr.update(CABINET, now=0.0)
    assert mgr.update({"lamp-1"}, now=10.0) == []  # the cabinet's power is back; lamp-1 not yet
    assert mgr.recovering(cab.alarm.id) == ("lamp-1",)
    changes = mgr.update(set(model().devices), now=20.0)  # then the switch fails
    assert [(c.alarm.element, c.transition, c.alarm.merged_into) for c in changes] == [
        ("sw-core", "raised", None), ("lc-1", "cleared", changes[0].alarm.id)]
    assert mgr.recovering(cab.alarm.id) == () and not mgr.due()


def test_an_alarm_not_wholly_inside_the_new_cause_is_not_merged() -> None:
    """A device alarm outside the cause, and a root cause only partly inside it, stay as they are."""
    mgr = AlarmManager(model())
    (rs,) = mgr.update({"rs-1"}, now=0.0)
    (cab,) = mgr.update(CABINET | {"rs-1"}, now=10.0)[:1]
    assert cab.alarm.merged == ()
    assert mgr.get(rs.alarm.id).state == "raised"
