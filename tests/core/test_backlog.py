"""The backlog marker's bookkeeping: which marker ends a catch-up, and how it ends without one."""

from __future__ import annotations

import logging
import time

import pytest

from supervisor.ingest.backlog import MARKER_ROOT, SessionBacklog, marker_topic


def test_only_the_current_connections_marker_ends_the_backlog() -> None:
    b = SessionBacklog("t", timeout_s=60.0)
    assert not b.active and not b.marker(b"anything"), "no backlog before a resumed session"
    first = b.begin()
    second = b.begin()  # reconnected before the first marker came back
    assert first != second and b.active
    assert not b.marker(first), "an earlier connection's marker does not end the new backlog"
    assert b.active
    assert b.marker(second)
    assert not b.active and b.catch_ups == 1 and b.ended_by == "marker"
    assert not b.marker(second), "a duplicate (QoS 1 redelivery) changes nothing"
    assert b.catch_ups == 1


def test_a_refused_marker_subscription_ends_the_backlog_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    b = SessionBacklog("urban-supervisor/backlog-marker/x", timeout_s=60.0)
    b.begin()
    with caplog.at_level(logging.WARNING):
        b.refused()
    assert not b.active and b.ended_by == "refused"
    assert "refused the subscription to urban-supervisor/backlog-marker/x" in caplog.text


def test_a_marker_that_never_comes_back_ends_the_backlog_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    b = SessionBacklog("t", timeout_s=0.05)
    b.begin()
    assert not b.expired()
    time.sleep(0.06)
    with caplog.at_level(logging.WARNING):
        assert b.expired()
    assert not b.active and b.ended_by == "timeout" and "did not come back" in caplog.text
    assert not b.expired(), "once"


def test_the_marker_topic_is_the_sessions_own_and_a_plain_topic() -> None:
    assert marker_topic("urban-supervisor") == f"{MARKER_ROOT}/urban-supervisor"
    assert marker_topic("a/b+#$c") == f"{MARKER_ROOT}/a_b___c"


def test_the_marker_ends_the_backlog_only_once_the_inbox_ran_low() -> None:
    """Mosquitto may deliver the marker ahead of messages it still queues (MQTT orders per topic only):
    while the bulk inbox is full the backlog goes on, and ends at the first batch that finds it low."""
    waiting = [20_000]
    b = SessionBacklog("t", timeout_s=60.0, depth=lambda: waiting[0], low_water=500)
    nonce = b.begin()
    assert not b.settled(), "no marker yet: an empty inbox right after connecting says nothing"
    assert not b.marker(nonce) and b.active, "the marker came back early, with 20,000 messages waiting"
    waiting[0] = 499
    assert b.settled() and not b.active and b.ended_by == "marker"
    assert not b.settled(), "once"
    b.begin()
    assert not b.settled(), "a new connection waits for its own marker"
