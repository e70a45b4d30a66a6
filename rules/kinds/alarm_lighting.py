"""Kind ``alarm_lighting``: a camera event raises the lights around the camera for a while."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from drivers import Event, Value

from .._arbiter import PRIORITY_SAFETY, Actuator, Request
from .._devices import resolve
from .._registry import RuleKind, SelectorField
from .._runtime import Context, RuleRuntime, fmt_level
from .._spec import Ident, Level, RuleBase, Selector


class AlarmLightingRule(RuleBase):
    """A camera event raises the lights around the camera for a while (safety priority 80)."""

    kind: Literal["alarm_lighting"]
    cameras: Selector
    event_kinds: tuple[Annotated[str, StringConstraints(min_length=1, max_length=64)], ...] = Field(
        min_length=1
    )
    radius_m: float = Field(50.0, gt=0, le=2000)
    duration_s: float = Field(300.0, gt=0, le=86400)
    level: Level = 100.0
    night_only: bool = True
    schedule: Ident | None = None


class AlarmLightingRuntime(RuleRuntime):
    kind = "alarm_lighting"

    def __init__(self, spec: AlarmLightingRule, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.lights = {cam: ctx.lamps_near(cam, spec.radius_m) for cam in resolve(spec.cameras, ctx.devices)}
        self.event_devices = tuple(self.lights)
        self._kinds = frozenset(spec.event_kinds)
        self.ignored_day = 0

    def actuators(self) -> list[Actuator]:
        return [a for acts in self.lights.values() for a in acts]

    def on_event(self, e: Event, now: float) -> None:
        if e.kind not in self._kinds:
            return
        if self.spec.night_only and not self.ctx.is_night(now, self.spec.schedule):
            self.ignored_day += 1
            return
        acts = self.lights.get(e.device, [])
        if not acts:
            return
        until = now + self.spec.duration_s
        score = e.data.get("score")
        what = e.kind if score is None else f"{e.kind} (score {score})"
        text = (
            f"alarm_lighting '{self.id}' — {what} on camera {e.device} at {self.ctx.local_hhmm(now)} "
            f"→ {fmt_level(self.spec.level)} % within {self.spec.radius_m:.0f} m until {self.ctx.local_hhmm(until)}"
        )
        inputs: dict[str, Value] = {"camera": e.device, "event": e.kind, "radius_m": self.spec.radius_m}
        if score is not None:
            inputs["score"] = score
        src = f"{self.id}@{e.device}"
        for act in acts:
            self.ctx.arbiter.put(
                act, Request(src, PRIORITY_SAFETY, self.spec.level, until, self.id, self.kind, text, inputs), now
            )

    def stop(self, now: float) -> None:
        for cam, acts in self.lights.items():
            for act in acts:
                self.ctx.arbiter.withdraw(act, f"{self.id}@{cam}", now, f"rule '{self.id}' removed")

    def snapshot(self) -> dict[str, Any]:
        return {"ignored_day": self.ignored_day}


KIND = RuleKind(
    "alarm_lighting", AlarmLightingRule, AlarmLightingRuntime, (SelectorField("cameras", frozenset({"cctv"})),),
    references={"schedule": "schedule"}, commands=True,
)
