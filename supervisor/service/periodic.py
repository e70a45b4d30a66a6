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
    from supervisor.state.radio import RadioGateways

_log = logging.getLogger(__name__)

HEALTH_INTERVAL = 5.0
#: devices per status snapshot step, one step per pass of the pipeline loop: a 100,000-device snapshot
#: is spread over ~500 passes (seconds), so the pipeline thread never stops for it. It was 5,000
#: devices per status check: 145-230 ms every 5 s, the storm drain's probes waited for it
SNAPSHOT_SLICE = 200
RULE_TICK = 0.05  # s between rule-engine ticks (schedules, leases, ramps, retries)
#: a tick's share of one pass of the pipeline loop; the rest of a long tick waits for the next pass
#: (the lane is taken in between). The same budget as a bulk slice (supervisor/ingest/lane.py)
TICK_SLICE_S = 0.002
#: while messages wait and the newest reading processed is older than this, no device is judged
#: stale (see :meth:`PeriodicWork._check`)
STALE_HOLD_S = 60.0


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
        #: the radio gateways observed (supervisor/state/radio.py): their evidence at each check
        self.radio: RadioGateways | None = None
        self.lifecycle: AlarmLifecycle | None = None
        self.pending_status: list[StatusChange] = []
        #: correlate the failing devices again at the next check even if no status changed (a model reload)
        self.recorrelate = False
        #: a device's (lon, lat) in the city model, written with its status points (the Grafana map)
        self.position_of: schema.PositionOf = lambda device: None
        self._snapshot: list[str] = []  # devices of the snapshot in progress, not written yet
        self._next_snapshot: float | None = None  # the first check takes one
        self.live: Callable[[list[StatusChange]], None] | None = None  # every status change, as it happens
        self._next_tick = 0.0
        self._tick_unfinished = False
        #: seconds the processed stream is behind the city (0 when nothing waits): set by the supervisor
        self.behind: Callable[[], float] = lambda: 0.0
        self.stale_checks_held = 0
        self._stamps = (0.0, 0.0, 0.0, 0.0)  # perf_counter at the last pass's start, tick, check, end
        self._next_check = 0.0
        self._next_save = 0.0
        self._next_health = 0.0

    def on_status(self, changes: list[StatusChange]) -> None:
        self.pending_status.extend(changes)
        if self.live is not None and changes:
            self.live(changes)

    def run(self) -> None:
        t0 = time.perf_counter()
        now = self.clock()
        mono = time.monotonic()
        if self.rules is not None and (mono >= self._next_tick or self._tick_unfinished):
            # bounded cadence: under load a batch arrives every few ms, and a tick walks every rule;
            # a long walk stops after TICK_SLICE_S and goes on at the next pass, after the lane
            if not self._tick_unfinished:
                self._next_tick = mono + RULE_TICK
            try:
                self._tick_unfinished = not self.rules.tick(now, time.perf_counter() + TICK_SLICE_S)
            except Exception:
                self._tick_unfinished = False
                _log.exception("rule engine tick failed")
        t_tick = time.perf_counter()
        if now >= self._next_check:
            self._next_check = now + self.settings.state.check_interval
            self._check(now)
        if self._snapshot:
            lines = self._snapshot_slice(now)
            if lines:
                self.writer.submit(lines, block=False)
        t_check = time.perf_counter()
        if self.rules is not None and mono >= self._next_save:
            self._next_save = mono + self.settings.state_save_interval
            self.rule_state.save(self.rules, background=True)
        if mono >= self._next_health:
            self._next_health = mono + HEALTH_INTERVAL
            self.writer.submit(self.health.lines(now, mono), block=False)
            self.health.alarms(now)
        self._stamps = (t0, t_tick, t_check, time.perf_counter())

    def last_parts(self) -> dict[str, float]:
        """The last pass's parts in ms, for a slow iteration of the pipeline loop (LoopWatch.note):
        formatted only when asked, the stamps are all a pass keeps."""
        t0, t_tick, t_check, t_end = self._stamps
        return {"tick_ms": round((t_tick - t0) * 1000.0, 1), "check_ms": round((t_check - t_tick) * 1000.0, 1),
                "save_health_ms": round((t_end - t_check) * 1000.0, 1)}

    def check_now(self) -> None:
        """Run the status check and the alarm correlation at the next :meth:`run`."""
        self.recorrelate = True
        self._next_check = 0.0

    def _correlate(self, now: float) -> None:
        assert self.alarms is not None
        failing = self.state.not_ok()
        stale = {d for d in failing if self.state.status(d) == STALE}
        self.alarms.update(failing, now, stale=stale, last_seen=self.state.last_seen)

    def observe(self, source: str, observed: dict[str, str]) -> None:
        """Elements ``source`` (``snmp``, ``lorawan``) observes down now: the alarms follow at once, not at
        the next check. Each source replaces only its own evidence."""
        if self.alarms is None:
            return
        if observed == self.alarms.observed_by(source):
            return
        self.alarms.observe(source, observed)
        self._correlate(self.clock())

    def _observe_radio(self, now: float) -> None:
        """The radio gateways observed down now, as the ``lorawan`` source's evidence."""
        from supervisor.state.radio import SOURCE

        assert self.radio is not None
        down = self.radio.evaluate(now)
        if self.alarms is not None and down != self.alarms.observed_by(SOURCE):
            self.alarms.observe(SOURCE, down)
            self.recorrelate = True  # correlated below, in this check

    def _reported_since_start(self, device: str) -> bool:
        assert self.lifecycle is not None
        seen = self.state.last_seen(device)
        return seen is not None and seen > self.lifecycle.started_at and self.state.status(device) == "ok"

    def _check(self, now: float) -> None:
        """Staleness, then the status changes since the last check and the alarms they raise or clear.

        Staleness is not judged while a backlog drains (the newest reading processed is more than
        ``STALE_HOLD_S`` old and messages wait): a device whose latest message still waits in the
        backlog is not silent. Judged on the wall clock, every device of a storm drain went stale at
        each check, and the root-cause correlation over them held the pipeline thread 4.3-4.6 s per
        check (a 100,000-device city, 500k queued messages: the lane waited for it, the drain fell to
        20 messages per 4.6 s). A city that goes silent empties the inbox: staleness is judged again.
        """
        behind = self.behind()
        if behind > STALE_HOLD_S:
            self.stale_checks_held += 1
            silent: list[StatusChange] = []
        else:
            silent = self.state.check(now)
        if self.live is not None and silent:
            self.live(silent)
        self.pending_status.extend(silent)
        position_of = self.position_of
        lines = [schema.device_status_line(ch, position_of(ch.device)) for ch in self.pending_status]
        lines += self._snapshot_slice(now)  # starts a snapshot when one is due; run() writes the rest
        changed = bool(self.pending_status)
        self.pending_status.clear()
        # a recovering root cause releases a device that stays dead at a time no status change marks;
        # the manager's changes reach the lifecycle (which stores them)
        if self.radio is not None:
            lines += self.radio.lines(now)
            self._observe_radio(now)
        if self.alarms is not None and (changed or self.recorrelate or self.alarms.due()):
            self.recorrelate = False
            self._correlate(now)
        if self.lifecycle is not None:
            self.lifecycle.reconcile(now, self._reported_since_start)
        if lines:
            self.writer.submit(lines, block=False)  # between lane batches: never wait for the storage

    def flush_status(self) -> None:
        """Submit the status changes not stored yet (at stop: those of the last messages processed)."""
        position_of = self.position_of
        lines = [schema.device_status_line(ch, position_of(ch.device)) for ch in self.pending_status]
        self.pending_status.clear()
        if lines:
            self.writer.submit(lines)

    def _snapshot_slice(self, now: float) -> list[bytes]:
        """The next slice of the status snapshot: every device, at start then every ``snapshot_interval``."""
        interval = self.settings.state.snapshot_interval
        if not self._snapshot and self._next_snapshot is not None and (interval <= 0 or now < self._next_snapshot):
            return []
        if not self._snapshot:
            self._snapshot = [st.device for st in self.state]
            self._snapshot.reverse()  # popped from the end: in registration order
            self._next_snapshot = now + interval
        take = self._snapshot[-SNAPSHOT_SLICE:]
        del self._snapshot[-SNAPSHOT_SLICE:]
        states = [st for st in map(self.state.get, reversed(take)) if st is not None]
        return schema.device_snapshot_lines(states, self.position_of, now)
