"""Kind ``threshold``: any measure compared to a value for a duration (alarm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers import Reading, Value

from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import OPS, BadInputError, Context, RuleRuntime
from .._spec import Ident, Operator, RuleBase, Selector, SeverityName, check_comparison
from .._types import Decision, RuleAlarm


class ThresholdRule(RuleBase):
    """Any measure compared to a value for a duration (alarm)."""

    kind: Literal["threshold"]
    devices: Selector
    measure: Ident
    op: Operator
    value: bool | float | str
    for_s: float = Field(0.0, ge=0, le=30 * 86400)
    severity: SeverityName = "warning"

    @model_validator(mode="after")
    def _typed(self) -> ThresholdRule:
        check_comparison(self.devices.family, self.measure, self.op, self.value)
        return self


class ThresholdRuntime(RuleRuntime):
    kind = "threshold"

    def __init__(self, spec: ThresholdRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.reading_devices = tuple(resolve(spec.devices, ctx.devices))
        self._op = OPS[spec.op]
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


KIND = RuleKind("threshold", ThresholdRule, ThresholdRuntime, (SelectorField("devices"),))
