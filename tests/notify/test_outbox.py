"""The outbox on its own (real SQLite files): keys, cancellation, grouping, restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from supervisor.notify.outbox import Outbox, Target, message_key, notification_key
from tests.notify.conftest import event

T0 = 1_800_000_000.0


def _box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "sub" / "outbox.sqlite3")


def test_the_same_notification_twice_is_one_row(tmp_path: Path) -> None:
    box = _box(tmp_path)
    targets = [Target("mail", "r", T0, "raised"), Target("hook", "r", T0, "raised")]
    assert box.submit(event(), targets, T0) == (2, 0)
    assert box.submit(event(), targets, T0 + 5) == (0, 0)
    assert box.counts()["pending"] == 2
    # a flapping alarm's n-th return is a notification of its own
    assert box.submit(event(transition="flapping", flap_count=1), targets[:1], T0) == (1, 0)
    assert box.submit(event(transition="flapping", flap_count=2), targets[:1], T0) == (1, 0)
    assert notification_key("a", "raised", 0, "mail") != notification_key("a", "raised", 0, "hook")


def test_the_outbox_is_in_wal_mode_and_survives_a_reopen(tmp_path: Path) -> None:
    box = _box(tmp_path)
    box.submit(event(), [Target("hook", "r", T0, "raised")], T0)
    assert box.open_messages(T0 + 1, 0.5, 10) == 1
    box.close()  # a restart: the binding of the row to its message is kept
    again = _box(tmp_path)
    [msg] = again.due_messages(T0 + 2)
    assert msg.key == notification_key("rc:sw-z01", "raised", 0, "hook") and msg.attempts == 0
    with sqlite3.connect(again.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_window_groups_and_max_digest_splits(tmp_path: Path) -> None:
    box = _box(tmp_path)
    for i in range(5):
        box.submit(event(f"a{i}"), [Target("hook", "r", T0 + i * 0.1, "raised")], T0)
    assert box.open_messages(T0 + 0.9, 1.0, 2) == 0  # the window of the first is still open
    assert box.open_messages(T0 + 1.0, 1.0, 2) == 3  # 2 + 2 + 1
    msgs = box.due_messages(T0 + 1.0)
    assert [len(m.items) for m in msgs] == [2, 2, 1]
    assert [i.event.alarm_id for m in msgs for i in m.items] == [f"a{i}" for i in range(5)]
    assert msgs[0].key == message_key(i.key for i in msgs[0].items) and msgs[0].key.startswith("d")
    assert msgs[2].key == msgs[2].items[0].key  # a message of one notification carries that notification's key


def test_ack_cancels_delayed_raises_and_escalations_but_not_what_is_bound(tmp_path: Path) -> None:
    box = _box(tmp_path)
    box.submit(event("sent"), [Target("hook", "r", T0, "raised")], T0)
    box.open_messages(T0, 0.0, 10)  # bound to a message: it goes out whatever happens next
    box.submit(event("sent"), [Target("chief", "esc", T0 + 60, "escalated")], T0)
    box.submit(event("delayed"), [Target("hook", "r", T0 + 30, "raised")], T0)
    ack = [Target("hook", "r", T0 + 1, "acknowledged"), Target("chief", "esc", T0 + 1, "acknowledged")]
    assert box.submit(event("sent", "acknowledged"), ack, T0 + 1) == (1, 1)  # escalation cancelled; hook told
    assert box.submit(event("delayed", "acknowledged"), ack, T0 + 1) == (0, 1)  # never told: nothing to send
    counts = box.counts()
    assert (counts["pending"], counts["cancelled"]) == (2, 2)


def test_an_explicit_escalation_brings_the_scheduled_one_forward(tmp_path: Path) -> None:
    box = _box(tmp_path)
    box.submit(event(), [Target("chief", "esc", T0 + 600, "escalated")], T0)
    assert box.next_wakeup(0.0) == T0 + 600
    assert box.submit(event(transition="escalated"), [Target("chief", "esc", T0 + 5, "escalated")], T0 + 5) == (0, 0)
    assert box.next_wakeup(0.0) == T0 + 5


def test_finish_and_retry_bookkeeping(tmp_path: Path) -> None:
    box = _box(tmp_path)
    box.submit(event(), [Target("hook", "r", T0, "raised")], T0)
    box.open_messages(T0, 0.0, 10)
    [msg] = box.due_messages(T0)
    box.retry_at(msg.key, T0 + 10, "down")
    assert box.due_messages(T0 + 9) == [] and box.next_wakeup(0.0) == T0 + 10
    [again] = box.due_messages(T0 + 10)
    assert again.attempts == 1
    box.finish(msg.key, "delivered", T0 + 10)
    assert box.counts()["delivered"] == 1 and box.due_messages(T0 + 100) == [] and box.next_wakeup(0.0) is None


def test_prune_keeps_the_pending_and_the_recent(tmp_path: Path) -> None:
    box = _box(tmp_path)
    box.submit(event("old-done"), [Target("hook", "r", T0, "raised")], T0)
    box.submit(event("old-waiting"), [Target("other", "r", T0 + 10_000, "raised")], T0)
    box.open_messages(T0, 0.0, 10)
    [msg] = box.due_messages(T0)
    box.finish(msg.key, "delivered", T0)
    box.submit(event("recent"), [Target("hook", "r", T0 + 500, "raised")], T0 + 500)
    assert box.prune(T0 + 100) == 1
    assert box.counts() == {"pending": 2, "delivered": 0, "failed": 0, "cancelled": 0}
    assert box.counts(T0 + 600) == {"pending": 1, "scheduled": 1, "delivered": 0, "failed": 0, "cancelled": 0}
    assert box.message_states() == {}
