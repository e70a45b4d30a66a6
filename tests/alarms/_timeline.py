"""A virtual timeline of device reports driving the real state registry and alarm manager.

Every device reports every ``interval`` seconds of its own, at a fixed phase (hashed from its id),
unless it is ``down``. Every ``check`` seconds the registry marks the overdue devices stale and, as
:class:`supervisor.service.periodic.PeriodicWork` does, the manager correlates when a status
changed or a release is due. No mock: the registry and the manager are the supervisor's own.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from drivers import Reading
from supervisor.alarms import AlarmChange, AlarmManager
from supervisor.model import CityModel
from supervisor.state.registry import STALE, StateRegistry


@dataclass
class Timeline:
    model: CityModel
    manager: AlarmManager
    check: float = 30.0
    now: float = 0.0
    down: set[str] = field(default_factory=set)
    changes: list[AlarmChange] = field(default_factory=list)
    registry: StateRegistry = field(init=False)
    _phase: dict[str, float] = field(init=False, default_factory=dict)
    _interval: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = StateRegistry({}, stale_factor=3.0)
        for d, info in self.model.devices.items():
            iv = float(info.interval)
            self._interval[d] = iv
            self._phase[d] = (zlib.crc32(d.encode()) % 1000) / 1000.0 * iv
            self.registry.register(d, info.family, info.zone, iv, now=self.now)
            self._report(d, info.family, self.now)

    def _report(self, device: str, family: str, t: float) -> bool:
        return self.registry.update(Reading(device, family, {}), t, t) is not None

    def _reports(self, start: float, end: float) -> bool:
        """Deliver the reports of (start, end], in time order; True when a status changed."""
        due: list[tuple[float, str]] = []
        for d, iv in self._interval.items():
            if d in self.down:
                continue
            k = math.floor((start - self._phase[d]) / iv) + 1
            t = self._phase[d] + k * iv
            while t <= end:
                due.append((t, d))
                t += iv
        changed = False
        for t, d in sorted(due):
            changed |= self._report(d, self.model.devices[d].family, t)
        return changed

    def run(self, until: float) -> list[AlarmChange]:
        """Advance to ``until`` check by check; the alarm changes of the way."""
        out: list[AlarmChange] = []
        while self.now + self.check <= until + 1e-9:
            t = self.now + self.check
            changed = self._reports(self.now, t)
            changed |= bool(self.registry.check(t))
            self.now = t
            if changed or self.manager.due():
                failing = self.registry.not_ok()
                stale = {d for d in failing if self.registry.status(d) == STALE}
                out += self.manager.update(failing, t, stale=stale, last_seen=self.registry.last_seen)
        self.changes += out
        return out

    def failing(self) -> set[str]:
        return self.registry.not_ok()

    def all_back_at(self, devices: set[str], after: float) -> float:
        """When the last of ``devices`` reports after ``after`` (reports every interval from its phase)."""
        return max(self._phase[d] + (math.floor((after - self._phase[d]) / self._interval[d]) + 1) * self._interval[d]
                   for d in devices)
