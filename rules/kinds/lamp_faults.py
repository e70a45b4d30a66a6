"""Lighting faults from cabinet power: failed lamps and day-burning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from drivers import Reading, Value

from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, number
from .._spec import RuleBase, Selector, SeverityName
from .._types import Decision, RuleAlarm


class LampFaultRule(RuleBase):
    """Lamp failures from cabinet power, and day-burning."""

    kind: Literal["lamp_faults"]
    cabinets: Selector
    wattage_w: float = Field(100.0, gt=0, le=5000)
    tolerance_pct: float = Field(10.0, ge=0, le=100)
    tolerance_w: float = Field(20.0, ge=0, le=100000)
    day_burning_w: float = Field(50.0, ge=0, le=100000)
    day_margin_min: float = Field(30.0, ge=0, le=180)
    severity: SeverityName = "warning"


class LampFaultRuntime(RuleRuntime):
    kind = "lamp_faults"

    def __init__(self, spec: LampFaultRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        cabinets = resolve(spec.cabinets, ctx.devices)
        lamps: dict[str, list[str]] = {c: [] for c in cabinets}
        for d in ctx.devices.values():
            if d.kind == "lamp" and d.cabinet in lamps:
                lamps[d.cabinet].append(d.id)
        self.lamps = {c: sorted(v) for c, v in lamps.items()}
        self.reading_devices = tuple(cabinets)
        self._failures: dict[str, int] = {}
        self._day_burning: set[str] = set()

    def _lamp_level(self, lamp: str) -> float:
        state = self.ctx.state
        if state.last_value(lamp, "on") is False:
            return 0.0
        lv = state.last_value(lamp, "level")
        if isinstance(lv, (int, float)) and not isinstance(lv, bool):
            return max(0.0, min(100.0, float(lv)))
        applied = self.ctx.arbiter.level((lamp, None))
        return 0.0 if applied is None else applied

    def on_reading(self, r: Reading, now: float) -> None:
        if r.channel is not None or "power" not in r.values:
            return
        measured = number(r.values["power"], "power")
        cab = r.device
        spec = self.spec
        zone = self.ctx.zone_of(cab)
        lamps = self.lamps.get(cab, [])
        levels = [self._lamp_level(x) for x in lamps]
        lit = [lv for lv in levels if lv > 0]
        expected = sum(spec.wattage_w * lv / 100.0 for lv in lit)

        # day-burning: power drawn while the sun is up
        day = self.ctx.calendar.is_day(now, spec.day_margin_min * 60.0)
        burning = day and measured > spec.day_burning_w
        if burning and cab not in self._day_burning:
            self._day_burning.add(cab)
            text = (f"{cab}: day-burning — {measured:.0f} W drawn at {self.ctx.local_hhmm(now)} local while the "
                    f"sun is up (threshold {spec.day_burning_w:.0f} W)")
            self._emit(cab, zone, now, what="day_burning", state="raised", text=text, output=measured,
                       inputs={"power": measured, "threshold": spec.day_burning_w})
        elif not burning and cab in self._day_burning:
            self._day_burning.discard(cab)
            text = f"{cab}: day-burning ended ({measured:.0f} W)"
            self._emit(cab, zone, now, what="day_burning", state="cleared", text=text, output=measured,
                       inputs={"power": measured})

        # lamp failures: deficit against the expected power of the lamps switched on
        failures = 0
        if lit:
            deficit = expected - measured
            mean_level = sum(lit) / len(lit)
            tolerance = max(spec.tolerance_w, spec.tolerance_pct / 100.0 * expected)
            if deficit > tolerance:
                failures = min(len(lit), round(deficit / (spec.wattage_w * mean_level / 100.0)))
        else:
            return  # lamps off: power says nothing about failures; keep the last count
        prev = self._failures.get(cab, 0)
        if failures == prev:
            return
        inputs: dict[str, Value] = {
            "power": measured, "expected": round(expected, 1), "lamps": len(lamps), "lit": len(lit),
            "mean_level": round(sum(lit) / len(lit), 1), "wattage": spec.wattage_w,
        }
        if failures > 0:
            self._failures[cab] = failures
            text = (f"{cab}: {failures} lamp failure(s) estimated — measured {measured:.0f} W, expected "
                    f"{expected:.0f} W ({len(lit)} lamps x {spec.wattage_w:.0f} W x mean level "
                    f"{inputs['mean_level']} %)")
            self._emit(cab, zone, now, what="lamp_failures", state="raised", text=text,
                       output=float(failures), inputs=inputs)
        else:
            self._failures.pop(cab, None)
            text = f"{cab}: power {measured:.0f} W matches expected {expected:.0f} W, no lamp failure"
            self._emit(cab, zone, now, what="lamp_failures", state="cleared", text=text, output=0.0, inputs=inputs)

    def _emit(self, cab: str, zone: str | None, now: float, *, what: str, state: str, text: str,
              output: float, inputs: dict[str, Value]) -> None:
        self.ctx.decide(Decision(now, self.id, self.kind, cab, output, text, inputs, zone))
        self.ctx.alarm(RuleAlarm(now, self.id, what, cab, "raised" if state == "raised" else "cleared",
                                 self.spec.severity, text, zone, inputs))

    def failures(self) -> dict[str, int]:
        return dict(self._failures)

    def snapshot(self) -> dict[str, Any]:
        return {"failures": dict(self._failures), "day_burning": sorted(self._day_burning)}

    def restore(self, data: dict[str, Any], now: float) -> None:
        f = data.get("failures", {})
        if isinstance(f, dict):
            self._failures = {str(k): int(v) for k, v in f.items() if isinstance(v, int) and v > 0}
        self._day_burning = {str(x) for x in data.get("day_burning", []) if isinstance(x, str)}


KIND = RuleKind(
    "lamp_faults", LampFaultRule, LampFaultRuntime,
    (SelectorField("cabinets", frozenset({"lighting"}), "lighting_cabinet"),),
)
