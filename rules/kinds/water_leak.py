"""Water: minimum night flow per meter and per district (leaks), and bursts."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from drivers import Reading, Value

from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, flow_of
from .._spec import RuleBase, Selector, SeverityName, parse_hhmm
from .._types import Decision, RuleAlarm

log = logging.getLogger(__name__)


class WaterLeakRule(RuleBase):
    """Minimum night flow per meter and per district; bursts (alarms only)."""

    kind: Literal["water_leak"]
    meters: Selector
    night_start: str = "02:00"
    night_end: str = "04:00"
    threshold_m3h: float = Field(gt=0, le=10000)
    district_threshold_m3h: float | None = Field(None, gt=0, le=100000)
    nights: int = Field(3, ge=1, le=60)
    min_samples: int = Field(3, ge=1, le=10000)
    buffer_size: int = Field(2048, ge=16, le=100_000)
    burst_factor: float = Field(5.0, gt=1, le=1000)
    burst_floor_m3h: float = Field(1.0, ge=0, le=10000)
    burst_window: int = Field(96, ge=4, le=10_000)
    burst_min_samples: int = Field(8, ge=2, le=10_000)
    severity: SeverityName = "major"

    @field_validator("night_start", "night_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        parse_hhmm(v)
        return v

    @model_validator(mode="after")
    def _window(self) -> WaterLeakRule:
        if self.night_start == self.night_end:
            raise ValueError("night_start and night_end must differ")
        if self.burst_min_samples > self.burst_window:
            raise ValueError("burst_min_samples cannot exceed burst_window")
        return self


class FlowRing:
    """A bounded ring of (ts, flow) samples for one meter."""

    __slots__ = ("flow", "i", "n", "ts")

    def __init__(self, capacity: int) -> None:
        self.ts: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self.flow: npt.NDArray[np.float64] = np.zeros(capacity, dtype=np.float64)
        self.i = 0
        self.n = 0

    def add(self, ts: float, flow: float) -> None:
        cap = self.ts.shape[0]
        self.ts[self.i] = ts
        self.flow[self.i] = flow
        self.i = (self.i + 1) % cap
        self.n = min(self.n + 1, cap)

    def window(self, t0: float, t1: float) -> npt.NDArray[np.float64]:
        with np.errstate(invalid="ignore"):
            mask = (self.ts >= t0) & (self.ts <= t1)
        return self.flow[mask]

    def recent(self, k: int) -> npt.NDArray[np.float64]:
        k = min(k, self.n)
        if k == 0:
            return self.flow[:0]
        idx = (self.i - 1 - np.arange(k)) % self.ts.shape[0]
        out: npt.NDArray[np.float64] = self.flow[idx]
        return out


class WaterLeakRuntime(RuleRuntime):
    kind = "water_leak"

    def __init__(self, spec: WaterLeakRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.meters = resolve(spec.meters, ctx.devices)
        self.reading_devices = tuple(self.meters)
        self._zone = {m: ctx.devices[m].zone for m in self.meters}
        self._rings: dict[str, FlowRing] = {}
        self._nights: dict[str, int] = {}  # consecutive nights above the threshold, per meter / "zone:<z>"
        self._alarmed: set[str] = set()
        self._bursting: set[str] = set()
        self._last_night: date | None = None
        self.last_mnf: dict[str, float] = {}
        self._start = parse_hhmm(spec.night_start)
        self._end = parse_hhmm(spec.night_end)

    # ---------------------------------------------------------------- burst (per reading)

    def on_reading(self, r: Reading, now: float) -> None:
        got = flow_of(r, now)
        if got is None:
            return
        flow, ts = got
        ring = self._rings.get(r.device)
        if ring is None:
            ring = self._rings[r.device] = FlowRing(self.spec.buffer_size)
        recent = ring.recent(self.spec.burst_window)
        if recent.shape[0] >= self.spec.burst_min_samples:
            median = float(np.median(recent))
            limit = self.spec.burst_factor * median + self.spec.burst_floor_m3h
            if flow > limit and r.device not in self._bursting:
                self._bursting.add(r.device)
                text = (
                    f"{r.device}: burst suspected — flow {flow:.3g} m3/h > {self.spec.burst_factor:g} x "
                    f"median {median:.3g} m3/h + {self.spec.burst_floor_m3h:g} m3/h"
                )
                self._emit(r.device, now, what="burst", state="raised", text=text, output=flow,
                           inputs={"flow": flow, "median": median, "limit": limit})
            elif flow <= limit and r.device in self._bursting:
                self._bursting.discard(r.device)
                text = f"{r.device}: flow back to {flow:.3g} m3/h (limit {limit:.3g} m3/h), burst cleared"
                self._emit(r.device, now, what="burst", state="cleared", text=text, output=flow,
                           inputs={"flow": flow, "median": median, "limit": limit})
        ring.add(ts, flow)

    # ---------------------------------------------------------------- night flow (per night)

    def _window(self, day: date) -> tuple[float, float]:
        cal = self.ctx.calendar
        end = cal.at_local(day, *self._end)
        start = cal.at_local(day, *self._start)
        if start >= end:
            start = cal.at_local(day - timedelta(days=1), *self._start)
        return start, end

    def tick(self, now: float) -> None:
        day = self.ctx.calendar.local_date(now)
        start, end = self._window(day)
        if now < end:
            day = day - timedelta(days=1)
            start, end = self._window(day)
        if self._last_night is not None and day <= self._last_night:
            return
        self._last_night = day
        self.evaluate_night(day, start, end, now)

    def evaluate_night(self, day: date, start: float, end: float, now: float) -> None:
        spec = self.spec
        zone_sum: dict[str, float] = {}
        zone_n: dict[str, int] = {}
        for m in self.meters:
            ring = self._rings.get(m)
            if ring is None:
                continue
            vals = ring.window(start, end)
            if vals.shape[0] < spec.min_samples:
                continue
            mnf = float(np.min(vals))
            self.last_mnf[m] = mnf
            z = self._zone[m]
            zone_sum[z] = zone_sum.get(z, 0.0) + mnf
            zone_n[z] = zone_n.get(z, 0) + 1
            self._count(m, m, mnf, threshold=spec.threshold_m3h, day=day, now=now, n=vals.shape[0])
        if spec.district_threshold_m3h is not None:
            for z, total in sorted(zone_sum.items()):
                self.last_mnf[f"zone:{z}"] = total
                self._count(f"zone:{z}", f"district {z}", total, threshold=spec.district_threshold_m3h,
                            day=day, now=now, n=zone_n[z])
        log.debug("rule %s: night %s evaluated, %d meters with data", self.id, day, len(zone_n))

    def _count(self, key: str, label: str, mnf: float, *, threshold: float, day: date, now: float, n: int) -> None:
        if mnf > threshold:
            self._nights[key] = self._nights.get(key, 0) + 1
        else:
            self._nights.pop(key, None)
            if key in self._alarmed:
                self._alarmed.discard(key)
                text = f"{label}: minimum night flow {mnf:.3g} m3/h back under {threshold:g} m3/h on {day}"
                self._emit(key, now, what="leak", state="cleared", text=text, output=mnf,
                           inputs={"mnf": mnf, "threshold": threshold})
            return
        nights = self._nights[key]
        if nights >= self.spec.nights and key not in self._alarmed:
            self._alarmed.add(key)
            text = (
                f"{label}: leak suspected — minimum night flow {mnf:.3g} m3/h > {threshold:g} m3/h "
                f"for {nights} consecutive nights ({self.spec.night_start}-{self.spec.night_end} local, "
                f"last {day}, {n} samples)"
            )
            self._emit(key, now, what="leak", state="raised", text=text, output=mnf,
                       inputs={"mnf": mnf, "threshold": threshold, "nights": nights, "night": day.isoformat()})

    def _emit(self, key: str, now: float, *, what: str, state: str, text: str, output: float,
              inputs: dict[str, Value]) -> None:
        zone = key[5:] if key.startswith("zone:") else self._zone.get(key)
        self.ctx.decide(Decision(now, self.id, self.kind, key, output, text, inputs, zone))
        self.ctx.alarm(
            RuleAlarm(now, self.id, f"water_{what}", key, "raised" if state == "raised" else "cleared",
                      self.spec.severity, text, zone, inputs)
        )

    def counters(self) -> dict[str, int]:
        return dict(self._nights)

    def snapshot(self) -> dict[str, Any]:
        return {
            "nights": dict(self._nights),
            "alarmed": sorted(self._alarmed),
            "bursting": sorted(self._bursting),
            "last_night": None if self._last_night is None else self._last_night.isoformat(),
        }

    def restore(self, data: dict[str, Any], now: float) -> None:
        nights = data.get("nights", {})
        if isinstance(nights, dict):
            self._nights = {str(k): int(v) for k, v in nights.items() if isinstance(v, int) and v > 0}
        self._alarmed = {str(k) for k in data.get("alarmed", []) if isinstance(k, str)}
        self._bursting = {str(k) for k in data.get("bursting", []) if isinstance(k, str)}
        last = data.get("last_night")
        if isinstance(last, str):
            try:
                self._last_night = date.fromisoformat(last)
            except ValueError:
                log.warning("rule %s: ignoring bad last_night %r in snapshot", self.id, last)


KIND = RuleKind("water_leak", WaterLeakRule, WaterLeakRuntime, (SelectorField("meters", frozenset({"water"})),))
