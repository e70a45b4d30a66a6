"""The durable outbox: SQLite in WAL mode, one row per (alarm, transition, flap, channel).

A row's ``key`` is its idempotency key (a hash of those four): inserting the same twice is a
no-op, so a restarted lifecycle that submits again is never notified twice. Rows wait until
``not_before`` (a route's delay, an escalation's deadline), then until the channel's grouping
window closes; the dispatcher then binds them to a *message* (one row: the message's key is the
row's key; several: a digest, keyed by the hash of its rows' keys) and writes that binding
before the first attempt. A process killed mid-send therefore resends the same message with the
same key, and the receiver drops it as a duplicate. The file is a :class:`~supervisor.walstore.WalStore`.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from supervisor.notify.events import FOLLOW_UPS, STARTS, AlarmEvent
from supervisor.walstore import WalStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    key TEXT PRIMARY KEY,
    alarm_id TEXT NOT NULL,
    transition TEXT NOT NULL,
    channel TEXT NOT NULL,
    route TEXT NOT NULL,
    event TEXT NOT NULL,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message TEXT
);
CREATE INDEX IF NOT EXISTS notifications_waiting ON notifications (channel, state, message, not_before);
CREATE INDEX IF NOT EXISTS notifications_alarm ON notifications (alarm_id, channel);
CREATE INDEX IF NOT EXISTS notifications_message ON notifications (message);
CREATE TABLE IF NOT EXISTS messages (
    key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt);
"""

#: transitions that count as "this channel was told about the alarm"
NOTICES = (*sorted(STARTS), "escalated")


def notification_key(alarm_id: str, transition: str, flap_count: int, channel: str) -> str:
    raw = "\x1f".join((alarm_id, transition, str(flap_count), channel)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def message_key(row_keys: Iterable[str]) -> str:
    keys = sorted(row_keys)
    if len(keys) == 1:
        return keys[0]
    return "d" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:31]


@dataclass(frozen=True, slots=True)
class Target:
    """Where one event goes: a channel, through a route, not before a time, as a transition."""

    channel: str
    route: str
    not_before: float
    transition: str


@dataclass(frozen=True, slots=True)
class Item:
    """A notification inside a message."""

    key: str
    route: str
    event: AlarmEvent


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    channel: str
    created: float
    attempts: int
    items: tuple[Item, ...]


class Outbox:
    """Thread-safe; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store = WalStore(path, _SCHEMA)
        self._tx = self._store.tx

    def close(self) -> None:
        self._store.close()

    def submit(self, event: AlarmEvent, targets: Iterable[Target], now: float) -> tuple[int, int]:
        """Store ``event`` for ``targets``; returns (rows added, rows cancelled).

        An acknowledgement or a clear cancels what must no longer go out: the alarm's pending
        escalations, and its raises still inside their delay. A follow-up goes only to a channel
        that was (or is about to be) told of the alarm.
        """
        added = cancelled = 0
        with self._tx() as db:
            if event.transition in FOLLOW_UPS:
                cancelled = db.execute(
                    "UPDATE notifications SET state='cancelled' WHERE alarm_id=? AND state='pending' "
                    "AND message IS NULL AND (transition='escalated' OR (transition IN (?,?) AND not_before>?))",
                    (event.alarm_id, *sorted(STARTS), now)).rowcount  # fmt: skip
            for t in targets:
                if event.transition in FOLLOW_UPS and not self._told(db, event.alarm_id, t.channel):
                    continue
                ev = event if t.transition == event.transition else _as(event, t.transition)
                key = notification_key(ev.alarm_id, ev.transition, ev.flap_count, t.channel)
                n = db.execute(
                    "INSERT OR IGNORE INTO notifications (key, alarm_id, transition, channel, route, event, "
                    "created, not_before) VALUES (?,?,?,?,?,?,?,?)",
                    (key, ev.alarm_id, ev.transition, t.channel, t.route, orjson.dumps(ev.to_json()).decode(),
                     now, t.not_before)).rowcount  # fmt: skip
                if not n:  # already queued: a new submission may only bring it forward (an explicit escalation)
                    db.execute("UPDATE notifications SET not_before=MIN(not_before, ?) WHERE key=? AND state='pending' "
                               "AND message IS NULL", (t.not_before, key))
                added += n
        return added, cancelled

    def cancel_waiting(self, alarm_id: str) -> int:
        """Cancel every notification of ``alarm_id`` not yet bound to a message (maintenance)."""
        with self._tx() as db:
            return db.execute("UPDATE notifications SET state='cancelled' WHERE alarm_id=? AND state='pending' "
                              "AND message IS NULL", (alarm_id,)).rowcount  # fmt: skip

    @staticmethod
    def _told(db: sqlite3.Connection, alarm_id: str, channel: str) -> bool:
        row = db.execute(
            "SELECT 1 FROM notifications WHERE alarm_id=? AND channel=? AND state!='cancelled' "
            "AND transition IN (?,?,?) LIMIT 1", (alarm_id, channel, *NOTICES)).fetchone()  # fmt: skip
        return row is not None

    def open_messages(self, now: float, window: float, max_items: int) -> int:
        """Bind due rows to messages, per channel, once the channel's grouping window closed."""
        opened = 0
        with self._tx() as db:
            heads = db.execute(
                "SELECT channel, MIN(not_before) FROM notifications WHERE state='pending' AND message IS NULL "
                "AND not_before<=? GROUP BY channel", (now,)).fetchall()  # fmt: skip
            for channel, first in heads:
                if first + window > now:
                    continue
                while True:
                    rows = db.execute(
                        "SELECT key FROM notifications WHERE channel=? AND state='pending' AND message IS NULL "
                        "AND not_before<=? ORDER BY not_before, created, key LIMIT ?", (channel, now, max_items))
                    keys = [k for (k,) in rows]
                    if not keys:
                        break
                    mkey = message_key(keys)
                    db.execute("INSERT OR IGNORE INTO messages (key, channel, created, next_attempt) VALUES (?,?,?,?)",
                               (mkey, channel, now, now))
                    db.executemany("UPDATE notifications SET message=? WHERE key=?", [(mkey, k) for k in keys])
                    opened += 1
        return opened

    def due_messages(self, now: float) -> list[Message]:
        with self._store.read() as db:
            heads = db.execute(
                "SELECT key, channel, created, attempts FROM messages WHERE state='pending' AND next_attempt<=? "
                "ORDER BY next_attempt", (now,)).fetchall()  # fmt: skip
            out = []
            for key, channel, created, attempts in heads:
                rows = db.execute(
                    "SELECT key, route, event FROM notifications WHERE message=? ORDER BY not_before, created, key",
                    (key,)).fetchall()  # fmt: skip
                items = tuple(Item(k, r, AlarmEvent.from_json(orjson.loads(e))) for k, r, e in rows)
                out.append(Message(key, channel, created, attempts, items))
        return out

    def finish(self, key: str, state: str, now: float, error: str | None = None) -> None:
        """``state``: delivered (the receiver accepted) or failed (the retry horizon passed)."""
        with self._tx() as db:
            db.execute("UPDATE messages SET state=?, done_at=?, last_error=?, attempts=attempts+1 WHERE key=?",
                       (state, now, error, key))
            db.execute("UPDATE notifications SET state=? WHERE message=?", (state, key))

    def retry_at(self, key: str, when: float, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE messages SET attempts=attempts+1, next_attempt=?, last_error=? WHERE key=?",
                       (when, error, key))

    def prune(self, before: float) -> int:
        """Delete finished notifications (and their messages) created before ``before``."""
        with self._tx() as db:
            n = db.execute("DELETE FROM notifications WHERE state!='pending' AND created<?", (before,)).rowcount
            db.execute("DELETE FROM messages WHERE state!='pending' AND created<? AND NOT EXISTS "
                       "(SELECT 1 FROM notifications WHERE message=messages.key)", (before,))  # fmt: skip
        return n

    def postpone(self, key: str, when: float) -> None:
        """A new time for a message that was not attempted (its attempts stay as they are)."""
        with self._tx() as db:
            db.execute("UPDATE messages SET next_attempt=? WHERE key=?", (when, key))

    def next_wakeup(self, window: float) -> float | None:
        """When the dispatcher has something to do next (a retry, a window that closes)."""
        with self._store.read() as db:
            (retry,) = db.execute("SELECT MIN(next_attempt) FROM messages WHERE state='pending'").fetchone()
            (first,) = db.execute(
                "SELECT MIN(not_before) FROM notifications WHERE state='pending' AND message IS NULL").fetchone()
        times = [t for t in (retry, None if first is None else first + window) if t is not None]
        return min(times) if times else None

    def counts(self, now: float | None = None) -> dict[str, int]:
        """Notifications (rows) by state; with ``now``, ``scheduled`` splits off the pending rows
        whose time has not come (a delay, an escalation deadline)."""
        with self._store.read() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state").fetchall()
            (later,) = db.execute("SELECT COUNT(*) FROM notifications WHERE state='pending' AND not_before>?",
                                        (now if now is not None else float("inf"),)).fetchone()  # fmt: skip
        out = {"pending": 0, "delivered": 0, "failed": 0, "cancelled": 0}
        out.update({state: n for state, n in rows})
        if now is not None:
            out["pending"] -= later
            out["scheduled"] = later
        return out

    def message_states(self) -> dict[str, str]:
        """Every message's state by key (tests and diagnostics)."""
        with self._store.read() as db:
            return dict(db.execute("SELECT key, state FROM messages").fetchall())


def _as(event: AlarmEvent, transition: str) -> AlarmEvent:
    data = event.to_json()
    data["transition"] = transition
    return AlarmEvent.from_json(data)
