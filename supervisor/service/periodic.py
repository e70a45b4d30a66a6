"""The work the pipeline thread does between batches: rule ticks, status checks and alarm
correlation, rule-state saves, health points. Runs under the supervisor's lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from supervisor.config import Settings
from supervisor.service.health import Health
from supervisor.service.rulestate import RuleStateFile
from supervisor.state.registry import STALE, StateRegistry, StatusChange
from supervisor.storage import schema
from supervisor.storage.writer import BatchWriter

if TYPE_CHECKING:
    from rules import RuleEngine
    from supervisor.alarms import AlarmManager
    from supervisor.alarms.lifecycle import AlarmLifecycle

_log = logging.getLogger(__name__)

HEALTH_INTERVAL = 5.0
RULE_TICK = 0.05  # s between rule-engine ticks (schedules, leases, ramps, retries)


class PeriodicWork:
    def __init__(self, settings: Settings, state: StateRegistry, writer: BatchWriter, *, health: Health,
                 rule_state: RuleStateFile, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.state = state
        self.writer = writer
        self.health = health
        self.rule_state = rule_state
        self.clock = clock
        self.rules: RuleEngine | None = None
        self.alarms: AlarmManager | None = None
        self.lifecycle: AlarmLifecycle | None = None
        self.pending_status: list[StatusChange] = []
        self.live: Callable[[list[StatusChange]], None] | None = None  # every status change, as it happens
        self._next_tick = 0.0
        self._next_check = 0.0
        self._next_save = 0.0
        self._next_health = 0.0

    def on_status(self, changes: list[StatusChange]) -> None:
        self.pending_status.extend(changes)
        if self.live is not None and changes:
            self.live(changes)

    def run(self) -> None:
        now = self.clock()
        mono = time.monotonic()
        if self.rules is not None and mono >= self._next_tick:
            # bounded cadence: under load a batch arrives every few ms, and a tick walks every rule
            self._next_tick = mono + RULE_TICK
            try:
                self.rules.tick(now)
            except Exception:
                _log.exception("rule engine tick failed")
        if now >= self._next_check:
            self._next_check = now + self.settings.state.check_interval
            self._check(now)
        if self.rules is not None and mono >= self._next_save:
            self._next_save = mono + self.settings.state_save_interval
            self.rule_state.save(self.rules, background=True)
        if mono >= self._next_health:
            self._next_health = mono + HEALTH_INTERVAL
            self.writer.submit(self.health.lines(now, mono), block=False)
            self.health.alarms(now)

    def _reported_since_start(self, device: str) -> bool:
        assert self.lifecycle is not None
        seen = self.state.last_seen(device)
        return seen is not None and seen > self.lifecycle.started_at and self.state.status(device) == "ok"

    def _check(self, now: float) -> None:
        """Staleness, then the status changes since the last check and the alarms they raise or clear."""
        silent = self.state.check(now)
        if self.live is not None and silent:
            self.live(silent)
        self.pending_status.extend(silent)
        lines = [schema.device_status_line(ch) for ch in self.pending_status]
        changed = bool(self.pending_status)
        self.pending_status.clear()
        # a recovering root cause releases a device that stays dead at a time no status change marks;
        # the manager's changes reach the lifecycle (which stores them)
        if self.alarms is not None and (changed or self.alarms.due()):
            failing = self.state.not_ok()
            stale = {d for d in failing if self.state.status(d) == STALE}
            self.alarms.update(failing, now, stale=stale, last_seen=self.state.last_seen)
        if self.lifecycle is not None:
            self.lifecycle.reconcile(now, self._reported_since_start)
        if lines:
            self.writer.submit(lines, block=False)  # between lane batches: never wait for the storage
