"""Command tracking: pending until the device reports the level, retried, then failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from drivers import Command, DriverError, Reading

from ._arbiter import Actuator
from ._types import CommandSink, RuleAlarm

log = logging.getLogger(__name__)

CommandStatus = Literal["pending", "confirmed", "failed"]
TOLERANCE_PCT = 1.0


@dataclass(slots=True)
class CommandState:
    device: str
    channel: str | None
    zone: str | None
    level: float
    state: CommandStatus
    attempts: int
    since: float  # when the state last changed
    sent_at: float  # last transmission
    reported: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "device": self.device,
            "channel": self.channel,
            "zone": self.zone,
            "level": self.level,
            "state": self.state,
            "attempts": self.attempts,
            "since": self.since,
            "sent_at": self.sent_at,
            "reported": self.reported,
            "error": self.error,
        }


class CommandTracker:
    def __init__(
        self,
        sink: CommandSink,
        *,
        timeout_s: float,
        max_attempts: int,
        on_alarm: Callable[[RuleAlarm], None],
        on_change: Callable[[CommandState], None] | None = None,
    ) -> None:
        self._sink = sink
        self._timeout = timeout_s
        self._max_attempts = max_attempts
        self._on_alarm = on_alarm
        self._on_change = on_change
        self._states: dict[Actuator, CommandState] = {}
        self._pending: dict[str, set[str | None]] = {}  # device -> channels pending (hot-path index)
        self._failed: set[Actuator] = set()  # actuators with a raised command_failed alarm
        self.sent = 0
        self.errors = 0

    @property
    def pending(self) -> Mapping[str, set[str | None]]:
        """Devices with a command awaiting confirmation (the hot path tests membership)."""
        return self._pending

    def send(self, act: Actuator, zone: str | None, level: float, now: float) -> None:
        st = CommandState(act[0], act[1], zone, level, "pending", 0, now, now)
        self._states[act] = st
        self._pending.setdefault(act[0], set()).add(act[1])
        self._transmit(act, st, now)
        self._changed(st)

    def _transmit(self, act: Actuator, st: CommandState, now: float) -> None:
        st.attempts += 1
        st.sent_at = now
        try:
            self._sink.send(Command(st.device, "set_level", st.level, zone=st.zone, channel=st.channel))
            self.sent += 1
        except DriverError as exc:
            self.errors += 1
            st.error = str(exc)
            log.warning("command to %s refused by its driver: %s", st.device, exc)
            self._fail(act, st, now, f"driver refused the command: {exc}")

    def observe(self, r: Reading, now: float) -> None:
        chans = self._pending.get(r.device)
        if chans is None or r.channel not in chans:
            return
        act = (r.device, r.channel)
        st = self._states[act]
        lv = r.values.get("level")
        on = r.values.get("on")
        reported: float | None = None
        if isinstance(lv, (int, float)) and not isinstance(lv, bool):
            reported = float(lv)
            if on is False:
                reported = 0.0
        elif on is False:
            reported = 0.0
        if reported is None:
            return
        st.reported = reported
        if abs(reported - st.level) <= TOLERANCE_PCT:
            st.state = "confirmed"
            st.since = r.ts if r.ts is not None else now
            self._unpend(act)
            self._changed(st)
            if act in self._failed:
                self._failed.discard(act)
                self._on_alarm(
                    RuleAlarm(now, "commands", "command_failed", st.device, "cleared", "major",
                              f"{st.device}: set_level {st.level:.0f} % confirmed", st.zone,
                              {"level": st.level, "attempts": st.attempts, "channel": st.channel or ""})
                )

    def tick(self, now: float, limit: int = 10_000) -> None:
        due: list[Actuator] = [
            (dev, ch)
            for dev, chans in self._pending.items()
            for ch in chans
            if now - self._states[(dev, ch)].sent_at >= self._timeout
        ][:limit]
        for act in due:
            st = self._states[act]
            if st.attempts < self._max_attempts:
                log.info("command to %s unconfirmed after %.0f s, retry %d", st.device, self._timeout, st.attempts)
                self._transmit(act, st, now)
                if st.state == "pending":
                    self._changed(st)
            else:
                self._fail(act, st, now, f"no confirmation after {st.attempts} attempts")

    def _fail(self, act: Actuator, st: CommandState, now: float, why: str) -> None:
        st.state = "failed"
        st.since = now
        self._unpend(act)
        self._changed(st)
        self._failed.add(act)
        rep = "nothing" if st.reported is None else f"{st.reported:.0f} %"
        self._on_alarm(
            RuleAlarm(
                ts=now,
                rule="commands",
                kind="command_failed",
                device=st.device,
                state="raised",
                severity="major",
                text=f"{st.device}: set_level {st.level:.0f} % failed ({why}; device reports {rep})",
                zone=st.zone,
                data={"level": st.level, "attempts": st.attempts, "channel": st.channel or ""},
            )
        )

    def forget(self, devices: Collection[str]) -> None:
        """Stop tracking the commands of ``devices`` (gone from the city model): no retry, no alarm."""
        for act in [a for a in self._states if a[0] in devices]:
            del self._states[act]
            self._failed.discard(act)
            self._unpend(act)

    def _unpend(self, act: Actuator) -> None:
        chans = self._pending.get(act[0])
        if chans is not None:
            chans.discard(act[1])
            if not chans:
                del self._pending[act[0]]

    def _changed(self, st: CommandState) -> None:
        if self._on_change is not None:
            self._on_change(st)

    def states(self) -> dict[str, dict[str, object]]:
        return {
            (dev if ch is None else f"{dev}/{ch}"): st.as_dict() for (dev, ch), st in self._states.items()
        }
