"""Kind ``when_then``: when something happens on selected devices, then a command or an alarm.

*When* is one of: an event (``event.kinds``), a measure crossing a threshold for a duration
(``threshold``), or a device turning stale or faulty (``status``), on the devices selected by
``when.devices`` (family, kind, zones, devices, streets, cabinets, near a point or an element).
*Then* is one of: a leased, prioritised level request on lamps through the arbiter (``command``),
or an alarm (``alarm``). Everything is data: fixed operators, no expression is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from drivers import Event, Reading, Value

from .._arbiter import PRIORITY_MANUAL, PRIORITY_SAFETY, Actuator, Request
from .._conditions import Comparison, Held, Transition
from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, fmt_level
from .._spec import Ident, Level, Model, Operator, RuleBase, SeverityName, Where, check_comparison
from .._types import Decision, RuleAlarm

EventKind = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class OnEvent(Model):
    kinds: tuple[EventKind, ...] = Field(min_length=1)


class OnThreshold(Model):
    measure: Ident
    op: Operator
    value: bool | float | str
    for_s: float = Field(0.0, ge=0, le=30 * 86400)


class OnStatus(Model):
    becomes: Literal["stale", "fault"]
    for_s: float = Field(0.0, ge=0, le=30 * 86400)


class When(Model):
    devices: Where
    event: OnEvent | None = None
    threshold: OnThreshold | None = None
    status: OnStatus | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> When:
        given = [k for k in ("event", "threshold", "status") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of event, threshold, status (got {', '.join(given) or 'none'})")
        t = self.threshold
        if t is not None:
            check_comparison(self.devices.family, t.measure, t.op, t.value)
        return self


class SetLevel(Model):
    level: Level
    priority: int = Field(PRIORITY_SAFETY, ge=1, lt=PRIORITY_MANUAL)
    lease_s: float = Field(600.0, gt=0, le=86400)
    lights: Where | None = None  # these lamps ...
    radius_m: float | None = Field(None, gt=0, le=2000)  # ... or the lamps around the device

    @model_validator(mode="after")
    def _one_target(self) -> SetLevel:
        if (self.lights is None) == (self.radius_m is None):
            raise ValueError("give exactly one target: lights (a selector) or radius_m (lamps around the device)")
        return self


class RaiseAlarm(Model):
    severity: SeverityName = "warning"
    clear_after_s: float = Field(300.0, gt=0, le=30 * 86400)  # for events, which have no end


class Then(Model):
    command: SetLevel | None = None
    alarm: RaiseAlarm | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Then:
        if (self.command is None) == (self.alarm is None):
            raise ValueError("give exactly one of command, alarm")
        return self


class WhenThenRule(RuleBase):
    """When an event, a threshold held or a status change on selected devices, then a command or an alarm."""

    kind: Literal["when_then"]
    when: When
    then: Then


@dataclass(frozen=True, slots=True)
class _Trigger:
    key: str  # device, or device/channel
    device: str
    text: str
    inputs: dict[str, Value]


class WhenThenRuntime(RuleRuntime):
    kind = "when_then"
    CHECK_EVERY_S = 5.0

    def __init__(self, spec: WhenThenRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        when = spec.when
        self.devices = tuple(resolve(when.devices, ctx.devices))
        if when.event is not None:
            self.event_devices = self.devices
        elif when.threshold is not None:
            self.reading_devices = self.devices
        t = when.threshold
        self._cmp = Comparison(t.measure, t.op, t.value) if t is not None else None
        hold = t.for_s if t is not None else (when.status.for_s if when.status is not None else 0.0)
        self._held = Held(hold)
        self._active: dict[str, tuple[float, _Trigger]] = {}  # key -> (ends, trigger), for events
        self._next_check = float("-inf")
        cmd = spec.then.command
        self._lights: list[Actuator] = []
        self._near: dict[str, list[Actuator]] = {}
        if cmd is not None and cmd.lights is not None:
            self._lights = [(d, None) for d in resolve(cmd.lights, ctx.devices)]
        elif cmd is not None and cmd.radius_m is not None:
            self._near = {d: ctx.lamps_near(d, cmd.radius_m) for d in self.devices}

    def actuators(self) -> list[Actuator]:
        return self._lights + [a for acts in self._near.values() for a in acts]

    # ------------------------------------------------------------------ when

    def on_event(self, e: Event, now: float) -> None:
        ev = self.spec.when.event
        if ev is None or e.kind not in ev.kinds:
            return
        score = e.data.get("score")
        what = e.kind if score is None else f"{e.kind} (score {score})"
        inputs: dict[str, Value] = {"event": e.kind}
        if score is not None:
            inputs["score"] = score
        trig = _Trigger(e.device, e.device, f"{what} on {e.device}", inputs)
        alarm = self.spec.then.alarm
        if alarm is not None:
            known = e.device in self._active
            self._active[e.device] = (now + alarm.clear_after_s, trig)
            if known:
                return
        self._fire("raised", trig, now)

    def on_reading(self, r: Reading, now: float) -> None:
        cmp = self._cmp
        if cmp is None or cmp.measure not in r.values:
            return
        value = r.values[cmp.measure]
        key = r.device if r.channel is None else f"{r.device}/{r.channel}"
        change = self._held.update(key, cmp.test(value), value, now)
        if change is not None:
            negated = change == "cleared"
            self._fire(change, self._trigger(key, r.device, cmp.text(value, negated=negated), value, now), now)

    def _trigger(self, key: str, device: str, what: str, value: Value, now: float) -> _Trigger:
        held = self._held.held(key, now)[0] if key in self._held.raised and self._held.for_s > 0 else 0.0
        dur = f" for {held:.0f} s" if held > 0 else ""
        inputs: dict[str, Value] = {}
        t, st = self.spec.when.threshold, self.spec.when.status
        if t is not None:
            inputs = {"measure": t.measure, "op": t.op, "threshold": t.value, "for_s": t.for_s}
        elif st is not None:
            inputs = {"becomes": st.becomes, "for_s": st.for_s}
        inputs["value"] = value
        return _Trigger(key, device, f"{key}: {what}{dur}", inputs)

    def tick(self, now: float) -> None:
        for key, (ends, trig) in list(self._active.items()):
            if ends <= now:
                del self._active[key]
                quiet = self.spec.then.alarm.clear_after_s if self.spec.then.alarm else 0.0
                what = f"no {trig.text} for {quiet:.0f} s"
                self._fire("cleared", _Trigger(key, trig.device, what, trig.inputs), now)
        if self._cmp is not None:
            for key in self._held.due(now):
                value = self._held.held(key, now)[1]
                self._fire("raised", self._trigger(key, key.split("/", 1)[0], self._cmp.text(value), value, now),
                           now)
        elif self.spec.when.status is not None and now >= self._next_check:
            self._poll_status(now)

    def _poll_status(self, now: float) -> None:
        """Devices turning stale or faulty; a device the state registry does not know yet is skipped."""
        status = self.spec.when.status
        assert status is not None
        self._next_check = now + self.CHECK_EVERY_S
        state = self.ctx.state
        for d in self.devices:
            if state.last_seen(d) is None:
                continue
            st = state.status(d)
            change = self._held.update(d, st == status.becomes, st, now)
            if change is not None:
                what = f"status {st}" if change == "cleared" else f"status {status.becomes}"
                self._fire(change, self._trigger(d, d, what, st, now), now)

    # ------------------------------------------------------------------ then

    def _fire(self, change: Transition, trig: _Trigger, now: float) -> None:
        cmd, alarm = self.spec.then.command, self.spec.then.alarm
        zone = self.ctx.zone_of(trig.device)
        if cmd is not None:
            text = self._command(cmd, change, trig, now)
        else:
            assert alarm is not None
            text = f"when_then '{self.id}' — {trig.text}" + (" → alarm" if change == "raised" else " → cleared")
            self.ctx.alarm(RuleAlarm(now, self.id, self.kind, trig.key, change, alarm.severity, text, zone,
                                     trig.inputs))
        out = 1.0 if change == "raised" else 0.0
        self.ctx.decide(Decision(now, self.id, self.kind, trig.key, out, text, trig.inputs, zone))

    def _targets(self, device: str) -> list[Actuator]:
        return self._lights if self.spec.then.command and self.spec.then.command.lights else self._near.get(device, [])

    def _command(self, cmd: SetLevel, change: Transition, trig: _Trigger, now: float) -> str:
        acts = self._targets(trig.device)
        src = f"{self.id}@{trig.key}"
        if change == "cleared":
            for act in acts:
                self.ctx.arbiter.withdraw(act, src, now, f"when_then '{self.id}': condition ended on {trig.key}")
            return f"when_then '{self.id}' — {trig.text}: request on {len(acts)} lamp(s) withdrawn"
        until = now + cmd.lease_s
        text = (f"when_then '{self.id}' — {trig.text} → {fmt_level(cmd.level)} % on {len(acts)} lamp(s), "
                f"priority {cmd.priority}, until {self.ctx.local_hhmm(until)}")
        for act in acts:
            req = Request(src, cmd.priority, cmd.level, until, self.id, self.kind, text, trig.inputs)
            self.ctx.arbiter.put(act, req, now)
        return text

    def stop(self, now: float) -> None:
        for act in self.actuators():
            for req in [r for r in self.ctx.arbiter.stack(act) if r.rule == self.id]:
                self.ctx.arbiter.withdraw(act, req.source, now, f"rule '{self.id}' removed")


KIND = RuleKind(
    "when_then", WhenThenRule, WhenThenRuntime,
    (SelectorField("when.devices"), SelectorField("then.command.lights", frozenset({"lighting"}), "lamp", "actuator")),
    commands=lambda spec: spec.then.command is not None,
)
