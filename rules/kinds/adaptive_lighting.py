"""Kind ``adaptive_lighting``: traffic flow of road sensors sets the lights along their street."""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from drivers import Reading, Value

from .._arbiter import PRIORITY_TRAFFIC, Actuator, Request
from .._devices import DeviceTable, resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, flow_of, fmt_level
from .._spec import Ident, Level, Model, RuleBase, Selector

log = logging.getLogger(__name__)

class CurvePoint(Model):
    flow: float = Field(ge=0, le=20000)
    level: Level


class LightingClass(Model):
    name: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    min_flow: float = Field(ge=0, le=20000)
    level: Level


class AdaptiveLightingRule(RuleBase):
    """Traffic flow of road sensors sets the lights along their street (priority 50)."""

    kind: Literal["adaptive_lighting"]
    sensors: Selector
    schedule: Ident
    buffer_m: float = Field(25.0, gt=0, le=500)
    curve: tuple[CurvePoint, ...] | None = Field(None, min_length=2)
    classes: tuple[LightingClass, ...] | None = Field(None, min_length=1)
    hysteresis: float = Field(50.0, ge=0, le=5000)
    hold_s: float = Field(600.0, ge=0, le=86400)
    ramp_pct_per_min: float = Field(20.0, gt=0, le=6000)  # 6000 %/min = 100 %/s: no practical ramp
    step_pct: float = Field(5.0, gt=0, le=50)
    # the shortest time between two re-evaluations of a street at the ticks, so between two steps of
    # its ramp (the lamps' own fade smooths between them); a new class is still commanded at once.
    # At the engine's 50 ms tick a 100 %/s ramp in 1 % steps commanded each lamp 20 times a second:
    # ~11,000 commands/s in `bench rules` at 10k msg/s, while the reactions waited behind them
    # (docs/architecture.md, the stall). A street's ramp now commands its lamps at most once a
    # second: peak 5.2k commands/s there (6.2k at 0.25 s), most of them the reactions themselves
    step_interval_s: float = Field(1.0, ge=0, le=3600)
    min_level: Level = 20.0
    stale_factor: float = Field(3.0, ge=1, le=100)
    default_interval_s: float = Field(60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _one_mapping(self) -> AdaptiveLightingRule:
        if (self.curve is None) == (self.classes is None):
            raise ValueError("give exactly one of curve (flow→level points) or classes (thresholds)")
        if self.curve is not None:
            flows = [p.flow for p in self.curve]
            if any(b <= a for a, b in itertools.pairwise(flows)):
                raise ValueError("curve flows must be strictly increasing")
        if self.classes is not None:
            mins = [c.min_flow for c in self.classes]
            if len(set(mins)) != len(mins):
                raise ValueError("classes must have distinct min_flow")
            if min(mins) != 0:
                raise ValueError("the lowest class must have min_flow 0 so that every flow has a class")
            names = [c.name for c in self.classes]
            if len(set(names)) != len(names):
                raise ValueError("class names must be distinct")
        return self


@dataclass(slots=True)
class _Street:
    street: str
    sensors: list[str]
    lights: list[Actuator]
    active: bool = False
    output: float = 0.0
    published: float | None = None
    cls: int | None = None
    eff_flow: float | None = None
    lower_since: float | None = None
    last_tick: float | None = None
    direction: int = 0  # sign of the ramp in progress; 0 at rest
    target: float | None = None  # the level the flow last asked for (the ramp's destination)
    inputs: dict[str, Value] = field(default_factory=dict)


class AdaptiveRuntime(RuleRuntime):
    kind = "adaptive_lighting"
    reactive = True  # a sensor's new flow is acted on within its batch (react), not at the next tick

    def __init__(self, spec: AdaptiveLightingRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        topo = ctx.topology
        by_street: dict[str, list[str]] = {}
        for sid in resolve(spec.sensors, ctx.devices):
            street = ctx.devices[sid].street
            if street:
                by_street.setdefault(street, []).append(sid)
        self.streets: list[_Street] = []
        for street, sensors in sorted(by_street.items()):
            try:
                lights: list[Actuator] = [(d, None) for d in sorted(topo.lights_along(street, spec.buffer_m))]
            except KeyError:
                log.warning("rule %s: street %s of sensors %s is not in the city model", spec.id, street, sensors)
                continue
            if lights:
                self.streets.append(_Street(street, sensors, lights))
        self.reading_devices = tuple(s for st in self.streets for s in st.sensors)
        self._street_of: dict[str, list[_Street]] = {}
        for st in self.streets:
            for s in st.sensors:
                self._street_of.setdefault(s, []).append(st)
        self._intervals = {
            s: float(iv) if (iv := ctx.devices[s].interval) else spec.default_interval_s
            for s in self.reading_devices
        }
        self._flows: dict[str, tuple[float, float]] = {}
        self._classes = sorted(spec.classes or (), key=lambda c: -c.min_flow)
        self._curve = [(p.flow, p.level) for p in spec.curve or ()]
        self._walk = 0  # the next street of an unfinished tick (:meth:`tick_until`)

    def actuators(self) -> list[Actuator]:
        return [a for st in self.streets for a in st.lights]

    def source(self, st: _Street) -> str:
        return f"{self.id}@{st.street}"

    def on_reading(self, r: Reading, now: float) -> None:
        got = flow_of(r, now)
        if got is None:
            return
        flow, ts = got
        prev = self._flows.get(r.device)
        if prev is None or ts >= prev[1]:
            self._flows[r.device] = (flow, ts)

    def _interval(self, sensor: str) -> float:
        return self._intervals[sensor]

    def _fresh(self, st: _Street, now: float) -> tuple[list[tuple[str, float]], str]:
        fresh: list[tuple[str, float]] = []
        stale: list[str] = []
        for s in st.sensors:
            rec = self._flows.get(s)
            seen = self.ctx.state.last_seen(s)
            last = max(rec[1] if rec else float("-inf"), seen if seen is not None else float("-inf"))
            limit = self.spec.stale_factor * self._interval(s)
            if rec is not None and now - last <= limit:
                fresh.append((s, rec[0]))
            else:
                ago = "never" if last == float("-inf") else f"no reading for {now - last:.0f} s"
                stale.append(f"{s} ({ago}, limit {limit:.0f} s)")
        return fresh, "sensor stale: " + ", ".join(stale)

    def _target(self, st: _Street, flow: float) -> tuple[float, str]:
        h = self.spec.hysteresis
        if self._classes:
            cls = self._classes

            def classify(f: float) -> int:
                return next(i for i, c in enumerate(cls) if f >= c.min_flow)

            raw = classify(flow)
            if st.cls is None or raw <= st.cls:
                st.cls = raw
            elif flow < cls[st.cls].min_flow - h:
                st.cls = max(st.cls, classify(flow + h))
            c = cls[st.cls]
            return c.level, f"class {c.name} ({fmt_level(c.level)} %)"
        if st.eff_flow is None or abs(flow - st.eff_flow) > h:
            st.eff_flow = flow
        f = st.eff_flow
        pts = self._curve
        if f <= pts[0][0]:
            level = pts[0][1]
        elif f >= pts[-1][0]:
            level = pts[-1][1]
        else:
            level = pts[-1][1]
            for (f0, l0), (f1, l1) in itertools.pairwise(pts):
                if f0 <= f <= f1:
                    level = l0 + (l1 - l0) * (f - f0) / (f1 - f0)
                    break
        return level, f"curve ({fmt_level(level)} % at {f:.0f} veh/h)"

    def _night(self, now: float) -> bool:
        return self.ctx.is_night(now, self.spec.schedule)

    def tick(self, now: float) -> None:
        self._walk = 0
        self.tick_until(now, None)

    def tick_until(self, now: float, deadline: float | None) -> bool:
        """Tick the streets from where the last call stopped. A street's ramp moves by the time since
        its own last tick, so a street reached later in a walk makes one larger step (within its
        ramp) instead of several small ones: an overloaded walk sends fewer commands, not later ones.
        A street evaluated less than ``step_interval_s`` ago (at a tick, or reacting to a new class)
        waits for a later tick, and then makes one step for the whole time."""
        night = self._night(now)
        streets, n = self.streets, len(self.streets)
        i = self._walk if self._walk < n else 0
        clock = time.perf_counter
        due = now - self.spec.step_interval_s
        while i < n:
            st = streets[i]
            if st.last_tick is None or st.last_tick <= due:
                self._tick_street(st, now, night)
            i += 1
            if deadline is not None and clock() > deadline:
                break
        self._walk = 0 if i >= n else i
        return i >= n

    def react(self, devices: set[str], now: float) -> None:
        """A sensor reported: re-evaluate its streets now (a new flow class is a command at once)."""
        streets = {id(st): st for d in devices for st in self._street_of.get(d, ())}
        if streets:
            night = self._night(now)
            for st in streets.values():
                self._tick_street(st, now, night, reacting=True)

    def _withdraw(self, st: _Street, now: float, reason: str) -> None:
        if st.active:
            for act in st.lights:
                self.ctx.arbiter.withdraw(act, self.source(st), now, reason)
        st.active = False
        st.published = None
        st.lower_since = None
        st.cls = None
        st.eff_flow = None
        st.target = None
        st.last_tick = now

    def _ramp(self, st: _Street, desired: float, since: float, now: float) -> None:
        """Move ``st.output`` toward ``desired`` at the ramp speed since ``since``."""
        step = self.spec.ramp_pct_per_min * max(0.0, now - since) / 60.0
        before = st.output
        gap = desired - before
        move = max(-step, min(step, gap))
        sign = (gap > 0) - (gap < 0)
        output = before + move
        if sign and sign != st.direction and st.active:
            # a move starts (from rest, after a hold, or reversing): its first step of step_pct away
            # from the level last commanded goes out at once and the ramp continues from there, so
            # a change of traffic is a command now rather than step_pct / ramp later; no interval
            # sees more than its ramp plus one step
            ref = st.published if st.published is not None else before
            ahead = desired - ref
            lead_to = ref + sign * min(self.spec.step_pct, abs(ahead)) if ahead * sign > 0 else desired
            output = max(output, lead_to) if sign > 0 else min(output, lead_to)
        st.direction = sign
        st.output = output

    def _tick_street(self, st: _Street, now: float, night: bool, reacting: bool = False) -> None:
        """Re-evaluate a street: at each tick, and (``reacting``) when one of its sensors reported.

        A report that leaves the street's target where it was changes nothing now: the ramp toward
        it moves at the ticks. Before, every report during a ramp also sent the ramp's next step,
        so the command rate followed the sensors' message rate (in ``bench rules`` at 10k msg/s a
        lane input then cost ~200 us, most of it commanding lamps already on their way)."""
        if not night:
            self._withdraw(st, now, f"adaptive_lighting '{self.id}' inactive: day")
            return
        fresh, stale_why = self._fresh(st, now)
        if not fresh:
            self._withdraw(st, now, f"adaptive_lighting '{self.id}' on {st.street}: {stale_why} → fail-safe")
            return
        sensor, flow = max(fresh, key=lambda x: x[1])
        target, mapping = self._target(st, flow)
        target = max(target, self.spec.min_level)
        if reacting and st.active and target == st.target:
            return
        st.target = target
        if not st.active:
            cur = self.ctx.arbiter.level(st.lights[0])
            st.output = target if cur is None else cur
            st.last_tick = now
        since = st.last_tick if st.last_tick is not None else now
        st.last_tick = now
        held = False
        if target < st.output:
            if st.lower_since is None:
                st.lower_since = now
            if now - st.lower_since < self.spec.hold_s:
                desired = st.output
                held = True
            else:
                desired = target
                since = max(since, st.lower_since + self.spec.hold_s)  # the ramp starts when the hold ends
        else:
            st.lower_since = None
            desired = target
        before = st.output
        self._ramp(st, desired, since, now)
        reached = abs(st.output - desired) < 1e-9
        if (
            st.active
            and st.published is not None
            and abs(st.output - st.published) < self.spec.step_pct
            and not (reached and st.output != st.published)
        ):
            return
        level = round(st.output, 1)
        text = (
            f"adaptive_lighting '{self.id}' — flow {flow:.0f} veh/h on {st.street} (sensor {sensor}) "
            f"→ {mapping} → {fmt_level(level)} %"
        )
        if held:
            text += f"; holding before dimming to {fmt_level(target)} % (hold {self.spec.hold_s:.0f} s)"
        elif not reached:
            prev = st.published if st.published is not None else before
            text += f"; ramp limited from {fmt_level(prev)} % toward {fmt_level(desired)} %"
        inputs: dict[str, Value] = {
            "flow": flow, "street": st.street, "sensor": sensor, "target": target, "mapping": mapping,
        }
        st.inputs = inputs
        put = self.ctx.arbiter.put
        for act in st.lights:
            put(act, Request(self.source(st), PRIORITY_TRAFFIC, level, None, self.id, self.kind, text, inputs), now)
        st.published = level
        st.active = True

    def stop(self, now: float) -> None:
        for st in self.streets:
            self._withdraw(st, now, f"rule '{self.id}' removed")


def _on_a_street(spec: AdaptiveLightingRule, devices: DeviceTable) -> list[tuple[str, str]]:
    if any(devices[d].street for d in resolve(spec.sensors, devices)):
        return []
    return [("sensors", "no selected road sensor is on a street")]


KIND = RuleKind(
    "adaptive_lighting", AdaptiveLightingRule, AdaptiveRuntime, (SelectorField("sensors", frozenset({"traffic"})),),
    references={"schedule": "schedule"}, city_check=_on_a_street, commands=True,
)
