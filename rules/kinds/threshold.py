"""Kind ``threshold``: any measure compared to a value for a duration (alarm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers import Reading, Value

from .._conditions import Comparison, Held
from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime
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
        self._cmp = Comparison(spec.measure, spec.op, spec.value)
        self._held = Held(spec.for_s)

    def on_reading(self, r: Reading, now: float) -> None:
        if self.spec.measure not in r.values:
            return
        value = r.values[self.spec.measure]
        key = r.device if r.channel is None else f"{r.device}/{r.channel}"
        change = self._held.update(key, self._cmp.test(value), value, now)
        if change == "raised":
            self._raised(key, now)
        elif change == "cleared":
            text = f"{key}: {self._cmp.text(value, negated=True)}"
            self._emit(key, r.device, now, state="cleared", text=text, value=value)

    def _raised(self, key: str, now: float) -> None:
        held, value = self._held.held(key, now)
        dur = f" for {held:.0f} s" if self.spec.for_s > 0 else ""
        text = f"{key}: {self._cmp.text(value)}{dur}"
        self._emit(key, key.split("/", 1)[0], now, state="raised", text=text, value=value)

    def tick(self, now: float) -> None:
        for key in self._held.due(now):
            self._raised(key, now)

    def _emit(self, key: str, device: str, now: float, *, state: str, text: str, value: Value) -> None:
        zone = self.ctx.zone_of(device)
        inputs: dict[str, Value] = {"measure": self.spec.measure, "value": value, "op": self.spec.op,
                                    "threshold": self.spec.value}
        out = 1.0 if state == "raised" else 0.0
        self.ctx.decide(Decision(now, self.id, self.kind, key, out, text, inputs, zone))
        self.ctx.alarm(RuleAlarm(now, self.id, "threshold", key, "raised" if state == "raised" else "cleared",
                                 self.spec.severity, text, zone, inputs))


KIND = RuleKind("threshold", ThresholdRule, ThresholdRuntime, (SelectorField("devices"),))
