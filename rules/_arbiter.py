"""Arbitration: a priority stack of leased requests per actuator (lamp, or cabinet circuit)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

from drivers import Value

PRIORITY_MANUAL = 100
PRIORITY_SAFETY = 80
PRIORITY_TRAFFIC = 50
PRIORITY_SCHEDULE = 10

Actuator = tuple[str, str | None]  # (device, channel)


@dataclass(slots=True)
class Request:
    """One source's wish for an actuator; ``until`` is the lease end (``None``: until withdrawn)."""

    source: str
    priority: int
    level: float
    until: float | None
    rule: str
    kind: str
    text: str
    inputs: Mapping[str, Value] = field(default_factory=dict)
    user: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "priority": self.priority,
            "level": self.level,
            "until": self.until,
            "rule": self.rule,
            "kind": self.kind,
            "text": self.text,
            "inputs": dict(self.inputs),
            "user": self.user,
        }


# called when the winner of an actuator changes:
# (actuator, new winner or None, previous level, now, why the previous winner left or None)
ChangeCallback = Callable[[Actuator, "Request | None", "float | None", float, "str | None"], None]


class Arbiter:
    """The highest-priority active request wins (ties: the higher level, then the latest)."""

    def __init__(self, on_change: ChangeCallback) -> None:
        self._stacks: dict[Actuator, dict[str, Request]] = {}
        self._winner: dict[Actuator, Request] = {}
        self._heap: list[tuple[float, int, Actuator, str]] = []
        self._seq = itertools.count()
        self._on_change = on_change
        #: while True, :meth:`put` changes nothing and counts the request in :attr:`withheld`: the
        #: engine sets it around a rule's handling of an event too old to act on (a broker backlog)
        self.holding = False
        self.withheld = 0

    def put(self, act: Actuator, req: Request, now: float) -> None:
        if self.holding:
            self.withheld += 1
            return
        if req.until is not None and req.until <= now:
            self.withdraw(act, req.source, now, f"{req.kind} '{req.rule}' lease ended")
            return
        stack = self._stacks.setdefault(act, {})
        old = stack.get(req.source)
        if old is not None and old.level == req.level and old.until == req.until and old.text == req.text:
            return
        stack[req.source] = req
        if req.until is not None:
            heapq.heappush(self._heap, (req.until, next(self._seq), act, req.source))
        self._elect(act, now)

    def withdraw(self, act: Actuator, source: str, now: float, reason: str | None = None) -> bool:
        stack = self._stacks.get(act)
        if stack is None or stack.pop(source, None) is None:
            return False
        self._elect(act, now, reason)
        return True

    def expire(self, now: float, limit: int = 100_000) -> int:
        """Drop requests whose lease ended; at most ``limit`` per call. Return how many."""
        n = 0
        heap = self._heap
        while heap and heap[0][0] <= now and n < limit:
            _, _, act, source = heapq.heappop(heap)
            req = self._stacks.get(act, {}).get(source)
            if req is not None and req.until is not None and req.until <= now:
                del self._stacks[act][source]
                self._elect(act, now, f"{req.kind} '{req.rule}' lease ended")
                n += 1
        return n

    def forget(self, devices: Collection[str]) -> int:
        """Drop every request on the actuators of ``devices`` (gone from the city model) silently:
        no arbitration, no decision, no command to a device that is no longer there. Their lease
        entries stay in the heap and are skipped by :meth:`expire`. Returns the actuators dropped."""
        acts = [a for a in {*self._stacks, *self._winner} if a[0] in devices]
        for a in acts:
            self._stacks.pop(a, None)
            self._winner.pop(a, None)
        return len(acts)

    def withdraw_rule(self, rule: str, keep: Collection[Actuator], now: float, reason: str) -> int:
        """Withdraw the requests of ``rule`` on every actuator but ``keep`` (a rule re-bound to a new
        city model keeps asking the same of the actuators it still commands: no re-arbitration there)."""
        gone = [(act, src) for act, stack in self._stacks.items() if act not in keep
                for src, req in stack.items() if req.rule == rule]
        for act, src in gone:
            self.withdraw(act, src, now, reason)
        return len(gone)

    def winner(self, act: Actuator) -> Request | None:
        return self._winner.get(act)

    def level(self, act: Actuator) -> float | None:
        w = self._winner.get(act)
        return None if w is None else w.level

    def stack(self, act: Actuator) -> list[Request]:
        return sorted(self._stacks.get(act, {}).values(), key=lambda r: (-r.priority, -r.level))

    def requests(self) -> Iterator[tuple[Actuator, Request]]:
        for act, stack in self._stacks.items():
            for req in stack.values():
                yield act, req

    def _elect(self, act: Actuator, now: float, reason: str | None = None) -> None:
        stack = self._stacks.get(act)
        best: Request | None = None
        if stack:
            best = max(stack.values(), key=lambda r: (r.priority, r.level))
        else:
            self._stacks.pop(act, None)
        prev = self._winner.get(act)
        if best is prev:
            return
        if best is None:
            del self._winner[act]
        else:
            self._winner[act] = best
        if (
            prev is not None
            and best is not None
            and prev.source == best.source
            and prev.level == best.level
            and prev.text == best.text
        ):
            return
        self._on_change(act, best, None if prev is None else prev.level, now, reason)
