"""Flapping: an alarm that clears and comes back within the flap window stays one alarm."""

from __future__ import annotations

import json
from functools import cache

import pytest

from supervisor.alarms import AlarmManager, AlarmStateError
from supervisor.alarms._manager import FLAP_WINDOW
from supervisor.model import CityModel, city_from_dict
from supervisor.storage import schema
from tests.model._small import small_city

CABINET = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5", "cam-1"}


@cache
def model() -> CityModel:
    return city_from_dict(small_city())


def test_a_device_alarm_coming_back_within_the_window_is_reopened_with_a_flap_count() -> None:
    mgr = AlarmManager(model(), flap_window=600.0)
    (raised,) = mgr.update({"cam-1"}, now=100.0)
    (cleared,) = mgr.update(set(), now=200.0)
    assert cleared.transition == "cleared"
    (back,) = mgr.update({"cam-1"}, now=790.0)  # 590 s after its clearing
    assert back.alarm.id == raised.alarm.id
    assert (back.reopened, back.transition, back.state) == (True, "reopened", "raised")
    assert (back.alarm.flap_count, back.alarm.reopened_at, back.alarm.raised_at) == (1, 790.0, 100.0)
    assert back.alarm.cleared_at is None and back.alarm.clear_reason is None
    assert [a.id for a in mgr.active()] == [raised.alarm.id]
    mgr.update(set(), now=800.0)
    (again,) = mgr.update({"cam-1"}, now=900.0)
    assert (again.alarm.id, again.alarm.flap_count) == (raised.alarm.id, 2)
    assert [c.transition for c in mgr.history] == ["raised", "cleared", "reopened", "cleared", "reopened"]
    # stored: the flap count is a declared field of the alarms measurement
    _, _, fields, _ = again.as_point()
    assert fields["flap_count"] == 2
    assert b"flap_count=2i" in schema.alarm_change_line(again)
    assert json.loads(json.dumps(again.as_dict()))["transition"] == "reopened"


def test_past_the_window_it_is_a_new_alarm() -> None:
    mgr = AlarmManager(model(), flap_window=600.0)
    (first,) = mgr.update({"cam-1"}, now=100.0)
    mgr.update(set(), now=200.0)
    (second,) = mgr.update({"cam-1"}, now=801.0)
    assert second.alarm.id != first.alarm.id
    assert (second.transition, second.alarm.flap_count) == ("raised", 0)
    assert "flap_count" not in second.as_point()[2]
    assert mgr.get(first.alarm.id).state == "cleared"


def test_an_acknowledged_alarm_that_flaps_stays_acknowledged() -> None:
    mgr = AlarmManager(model())
    (raised,) = mgr.update({"cam-1"}, now=100.0)
    mgr.acknowledge(raised.alarm.id, "alice", now=110.0)
    mgr.update(set(), now=200.0)
    with pytest.raises(AlarmStateError):  # cleared, even inside the window
        mgr.acknowledge(raised.alarm.id, "bob", now=210.0)
    (back,) = mgr.update({"cam-1"}, now=300.0)
    assert (back.transition, back.state, back.alarm.acked_by, back.alarm.acked_at) == (
        "reopened", "acknowledged", "alice", 110.0)
    assert mgr.acknowledge(raised.alarm.id, "bob", now=310.0) is None  # already acknowledged


def test_a_root_cause_flapping_is_one_alarm() -> None:
    mgr = AlarmManager(model())
    (rc,) = mgr.update(CABINET, now=0.0)
    assert mgr.update(set(), now=10.0)[0].transition == "cleared"  # every device back at once
    changes = mgr.update(CABINET, now=100.0)
    assert [(c.alarm.id, c.transition, c.alarm.flap_count) for c in changes] == [(rc.alarm.id, "reopened", 1)]
    assert mgr.get(rc.alarm.id).recovering_since is None


def test_no_flap_window_means_a_new_alarm_every_time() -> None:
    mgr = AlarmManager(model(), flap_window=0.0)
    ids = set()
    for t in range(0, 100, 20):
        changes = mgr.update({"cam-1"}, now=float(t))
        ids |= {c.alarm.id for c in changes}
        mgr.update(set(), now=t + 10.0)
    assert len(ids) == 5


def test_a_merged_alarm_is_never_reopened() -> None:
    """A device alarm that a root cause absorbed ended there: the device failing alone later is a new alarm."""
    mgr = AlarmManager(model())
    (dev,) = mgr.update({"cam-1"}, now=0.0)
    mgr.update(CABINET, now=10.0)  # merged into the cabinet's alarm
    assert mgr.get(dev.alarm.id).merged_into is not None
    mgr.update(set(), now=20.0)
    (again,) = mgr.update({"cam-1"}, now=30.0)
    assert again.alarm.id != dev.alarm.id and again.transition == "raised"


def test_the_window_is_bounded_in_memory() -> None:
    mgr = AlarmManager(model(), flap_window=100.0, history_size=2)
    for dev in ("cam-1", "rs-1", "lamp-1"):
        mgr.update({dev}, now=0.0)
        mgr.update(set(), now=1.0)
    assert len(mgr._recent) == 2  # the oldest forgotten: it would come back as a new alarm
    mgr.update(set(), now=500.0)
    assert len(mgr._recent) == 0  # expired


def test_the_default_window() -> None:
    assert AlarmManager(model()).flap_window == FLAP_WINDOW > 0
