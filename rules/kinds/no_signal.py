"""Kind ``no_signal``: a device silent for longer than ``after_s`` (alarm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers import Reading, Value

from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime
from .._spec import RuleBase, Selector, SeverityName
from .._types import Decision, RuleAlarm


class NoSignalRule(RuleBase):
    """A device silent for longer than ``after_s`` (alarm)."""

    kind: Literal["no_signal"]
    devices: Selector
    after_s: float = Field(gt=0, le=30 * 86400)
    severity: SeverityName = "warning"


class NoSignalRuntime(RuleRuntime):
    kind = "no_signal"
    CHECK_EVERY_S = 5.0

    def __init__(self, spec: NoSignalRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.devices = resolve(spec.devices, ctx.devices)
        self.reading_devices = tuple(self.devices)
        self._seen: dict[str, float] = {}
        self._raised: set[str] = set()
        self._started: float | None = None
        self._next_check = float("-inf")

    def start(self, now: float) -> None:
        self._started = now

    def on_reading(self, r: Reading, now: float) -> None:
        self._seen[r.device] = r.ts if r.ts is not None else now
        if r.device in self._raised:
            self._raised.discard(r.device)
            text = f"{r.device}: signal back"
            self._emit(r.device, now, state="cleared", text=text, silent=0.0)

    def tick(self, now: float) -> None:
        if now < self._next_check:
            return
        self._next_check = now + min(self.CHECK_EVERY_S, self.spec.after_s / 4.0)
        started = self._started if self._started is not None else now
        state = self.ctx.state
        for d in self.devices:
            if d in self._raised:
                continue
            a = self._seen.get(d)
            b = state.last_seen(d)
            last = max(x for x in (a, b, float("-inf")) if x is not None)
            ref = last if last != float("-inf") else started
            if now - ref >= self.spec.after_s:
                self._raised.add(d)
                what = "never seen" if last == float("-inf") else f"last seen {now - last:.0f} s ago"
                text = f"{d}: no signal for {self.spec.after_s:.0f} s ({what})"
                self._emit(d, now, state="raised", text=text, silent=now - ref)

    def _emit(self, device: str, now: float, *, state: str, text: str, silent: float) -> None:
        zone = self.ctx.zone_of(device)
        inputs: dict[str, Value] = {"silent_s": round(silent, 1), "after_s": self.spec.after_s}
        self.ctx.decide(Decision(now, self.id, self.kind, device, 1.0 if state == "raised" else 0.0, text,
                                 inputs, zone))
        self.ctx.alarm(RuleAlarm(now, self.id, "no_signal", device, "raised" if state == "raised" else "cleared",
                                 self.spec.severity, text, zone, inputs))


KIND = RuleKind("no_signal", NoSignalRule, NoSignalRuntime, (SelectorField("devices"),))
