"""What changed, for the clients that watch live (the console's event stream).

:class:`LiveFeed` is one bounded journal of changes, shared by every client: device status
changes, alarm transitions and rule decisions, each numbered by a sequence. A client keeps only a
cursor (the last sequence it saw) and asks for what came after it (:meth:`LiveFeed.since`); there is
no queue per client, so a thousand clients, or one open for a night, hold nothing that grows. A
client that falls more than :attr:`LiveFeed.capacity` changes behind is told so (``lost``) and
reloads what it shows from the API.

Producers call :meth:`status`, :meth:`alarm` and :meth:`decision` from the pipeline thread (under
the supervisor's lock); the feed has its own short lock, so readers never take the supervisor's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rules import CommandState, Decision
    from supervisor.alarms.store import AlarmRecord
    from supervisor.state.registry import StatusChange

CAPACITY = 50_000  # changes kept: a mass failure of a 100,000-device city is two batches of staleness


@dataclass(frozen=True, slots=True)
class Changes:
    """What came after a cursor: ``cursor`` to ask from next; ``lost`` when some were dropped."""

    cursor: int
    lost: bool
    status: dict[str, dict[str, Any]]  # device -> its latest status (coalesced)
    alarms: dict[str, dict[str, Any]]  # alarm id -> its latest record (coalesced)
    decisions: list[dict[str, Any]]  # newest last

    @property
    def empty(self) -> bool:
        return not (self.lost or self.status or self.alarms or self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "lost": self.lost, "status": self.status,
                "alarms": list(self.alarms.values()), "decisions": self.decisions}


class LiveFeed:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._events: deque[tuple[int, str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def _add(self, items: Iterable[tuple[str, Any]]) -> None:
        with self._lock:
            for kind, data in items:
                self._seq += 1
                self._events.append((self._seq, kind, data))

    # -- producers --------------------------------------------------------------------------------
    def status(self, changes: Iterable[StatusChange]) -> None:
        self._add(("status", (ch.device, ch.new, ch.reason if ch.new != "ok" else None, ch.at)) for ch in changes)

    def alarm(self, alarm: AlarmRecord, transition: str) -> None:
        self._add([("alarm", alarm.as_dict() | {"transition": transition})])  # as it is now: records change

    def decision(self, d: Decision) -> None:
        self._add([("decision", d)])

    # -- readers ----------------------------------------------------------------------------------
    @property
    def cursor(self) -> int:
        with self._lock:
            return self._seq

    def since(self, cursor: int, limit: int = 5_000) -> Changes:
        """At most ``limit`` changes after ``cursor``, coalesced (a device's latest status only)."""
        with self._lock:
            seq = self._seq
            oldest = self._events[0][0] if self._events else seq + 1
            lost = cursor < oldest - 1 or cursor > seq
            if lost:
                return Changes(seq, True, {}, {}, [])
            start = len(self._events) - (seq - cursor)  # the deque holds consecutive sequences
            picked = [self._events[i] for i in range(start, min(len(self._events), start + limit))]
        status: dict[str, dict[str, Any]] = {}
        alarms: dict[str, dict[str, Any]] = {}
        decisions: list[dict[str, Any]] = []
        for _, kind, data in picked:
            if kind == "status":
                device, new, why, at = data
                status[device] = {"status": new, "fault": why, "at": at}
            elif kind == "alarm":
                alarms[data["id"]] = data
            else:
                decisions.append({"ts": data.ts, "rule": data.rule, "kind": data.kind, "device": data.device,
                                  "output": data.output, "text": data.text, "channel": data.channel})
        end = picked[-1][0] if picked else cursor
        return Changes(end, False, status, alarms, decisions)


class CommandLog:
    """The latest command states of each device (newest last), bounded: ``per_device`` states for at
    most ``max_devices`` devices (the device heard from longest ago is dropped first)."""

    def __init__(self, per_device: int = 20, max_devices: int = 200_000) -> None:
        self.per_device, self.max_devices = per_device, max_devices
        self._log: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add(self, cs: CommandState) -> None:
        with self._lock:
            got = self._log.pop(cs.device, None)  # re-inserted: the dict's order is the eviction order
            if got is None:
                if len(self._log) >= self.max_devices:
                    self._log.pop(next(iter(self._log)))
                got = deque(maxlen=self.per_device)
            got.append(cs.as_dict())
            self._log[cs.device] = got

    def of(self, device: str) -> list[dict[str, Any]]:
        """The device's command states, newest first."""
        with self._lock:
            return list(reversed(self._log.get(device, ())))
