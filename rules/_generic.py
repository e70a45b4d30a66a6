"""Generic rules for integrators: a measure against a value for a while, a silent device."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from drivers import Reading, Value

from ._loader import resolve
from ._runtime import BadInputError, Context, RuleRuntime
from ._spec import NoSignalRule, ThresholdRule
from ._types import Decision, RuleAlarm

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class ThresholdRuntime(RuleRuntime):
    kind = "threshold"

    def __init__(self, spec: ThresholdRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.reading_devices = tuple(resolve(spec.devices, ctx.devices))
        self._op = _OPS[spec.op]
        self._since: dict[str, tuple[float, Value]] = {}  # condition true since, last value
        self._raised: set[str] = set()

    def _check(self, value: Value) -> bool:
        want = self.spec.value
        if isinstance(want, (bool, str)):
            if type(value) is not type(want):
                raise BadInputError("bad_type", f"{self.spec.measure}={value!r} is not a {type(want).__name__}")
            return self._op(value, want)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInputError("bad_type", f"{self.spec.measure}={value!r} is not a number")
        return self._op(float(value), want)

    def on_reading(self, r: Reading, now: float) -> None:
        if self.spec.measure not in r.values:
            return
        value = r.values[self.spec.measure]
        key = r.device if r.channel is None else f"{r.device}/{r.channel}"
        if self._check(value):
            since = self._since.get(key, (now, value))[0]
            self._since[key] = (since, value)
            self._maybe_raise(key, now)
        else:
            self._since.pop(key, None)
            if key in self._raised:
                self._raised.discard(key)
                text = f"{key}: {self.spec.measure} = {value!r}, no longer {self.spec.op} {self.spec.value!r}"
                self._emit(key, r.device, now, state="cleared", text=text, value=value)

    def _maybe_raise(self, key: str, now: float) -> None:
        since, value = self._since[key]
        if key in self._raised or now - since < self.spec.for_s:
            return
        self._raised.add(key)
        dur = f" for {now - since:.0f} s" if self.spec.for_s > 0 else ""
        text = f"{key}: {self.spec.measure} = {value!r} {self.spec.op} {self.spec.value!r}{dur}"
        self._emit(key, key.split("/", 1)[0], now, state="raised", text=text, value=value)

    def tick(self, now: float) -> None:
        if self.spec.for_s <= 0:
            return
        for key in [k for k in self._since if k not in self._raised]:
            self._maybe_raise(key, now)

    def _emit(self, key: str, device: str, now: float, *, state: str, text: str, value: Value) -> None:
        zone = self.ctx.zone_of(device)
        inputs: dict[str, Value] = {"measure": self.spec.measure, "value": value, "op": self.spec.op,
                                    "threshold": self.spec.value}
        out = 1.0 if state == "raised" else 0.0
        self.ctx.decide(Decision(now, self.id, self.kind, key, out, text, inputs, zone))
        self.ctx.alarm(RuleAlarm(now, self.id, "threshold", key, "raised" if state == "raised" else "cleared",
                                 self.spec.severity, text, zone, inputs))


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
