"""Kind ``schedule``: astronomical on/off with a night dimming profile (priority 10)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers import Value

from .._arbiter import PRIORITY_SCHEDULE, Actuator, Request
from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, fmt_level
from .._spec import Level, Model, RuleBase, Selector, night_position, parse_hhmm


class ProfileStep(Model):
    until: str
    level: Level

    @field_validator("until")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        parse_hhmm(v)
        return v


class ScheduleRule(RuleBase):
    """Astronomical on/off with a night dimming profile (priority 10)."""

    kind: Literal["schedule"]
    lights: Selector
    on_offset_min: float = Field(0.0, ge=-180, le=180)
    off_offset_min: float = Field(0.0, ge=-180, le=180)
    profile: tuple[ProfileStep, ...] = ()
    level: Level = 100.0  # after the last profile step, until sunrise
    day_level: Level = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleRule:
        last = -1
        for i, step in enumerate(self.profile):
            pos = night_position(*parse_hhmm(step.until))
            if pos <= last:
                raise ValueError(
                    f"profile[{i}].until {step.until} is not after the previous step in night order "
                    "(the night runs from noon to noon)"
                )
            last = pos
        return self


class ScheduleRuntime(RuleRuntime):
    kind = "schedule"

    def __init__(self, spec: ScheduleRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.lights: list[Actuator] = [(d, None) for d in resolve(spec.lights, ctx.devices)]
        self._steps = [(night_position(*parse_hhmm(s.until)), s.level, s.until) for s in spec.profile]
        self._on_s = spec.on_offset_min * 60.0
        self._off_s = spec.off_offset_min * 60.0
        self._current: tuple[float, str] | None = None

    def actuators(self) -> list[Actuator]:
        return self.lights

    def is_night(self, now: float) -> bool:
        return self.ctx.calendar.is_night(now, self._on_s, self._off_s)

    def level_at(self, now: float) -> tuple[float, str]:
        """(level, explanation) of the schedule at ``now``."""
        cal = self.ctx.calendar
        lt = cal.local_datetime(now)
        if not self.is_night(now):
            return self.spec.day_level, "day"
        day = lt.date() if lt.hour >= 12 else lt.date() - timedelta(days=1)
        eve, morning = cal.times(day), cal.times(day + timedelta(days=1))
        if eve.sunset is not None and morning.sunrise is not None:
            night = f"night from {self.ctx.local_hhmm(eve.sunset + self._on_s)} to " \
                    f"{self.ctx.local_hhmm(morning.sunrise + self._off_s)}"
        else:
            night = "polar night"
        pos = night_position(lt.hour, lt.minute)
        start = "sunset"
        for p, level, until in self._steps:
            if pos < p:
                return level, f"{night}; profile {fmt_level(level)} % from {start} until {until}"
            start = until
        return self.spec.level, f"{night}; profile {fmt_level(self.spec.level)} % from {start} until sunrise"

    def tick(self, now: float) -> None:
        level, why = self.level_at(now)
        if self._current == (level, why):
            return
        self._current = (level, why)
        text = f"schedule '{self.id}' — {why}"
        inputs: dict[str, Value] = {"night": why != "day", "local_time": self.ctx.local_hhmm(now)}
        put = self.ctx.arbiter.put
        for act in self.lights:
            put(act, Request(self.id, PRIORITY_SCHEDULE, level, None, self.id, self.kind, text, inputs), now)

    def stop(self, now: float) -> None:
        for act in self.lights:
            self.ctx.arbiter.withdraw(act, self.id, now, f"rule '{self.id}' removed")
        self._current = None


KIND = RuleKind("schedule", ScheduleRule, ScheduleRuntime,
                (SelectorField("lights", frozenset({"lighting"}), role="actuator"),), commands=True)
