"""Rule file models: structured, validated data, never code.

A rule file is YAML with a top-level ``rules:`` list; each rule has an ``id``, a ``kind`` and the
fields of that kind. Unknown fields are refused, ranges are checked, conditions use a fixed set of
operators.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from drivers import CANONICAL, FAMILIES

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$", min_length=1, max_length=128)]
Level = Annotated[float, Field(ge=0.0, le=100.0)]
DeviceKind = Literal["road_sensor", "lighting_cabinet", "lamp", "camera", "water_meter"]
Operator = Literal[">", ">=", "<", "<=", "==", "!="]
SeverityName = Literal["info", "warning", "major", "critical"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(text: str) -> tuple[int, int]:
    m = _HHMM.match(text)
    if m is None:
        raise ValueError(f"expected a local time HH:MM (00:00..23:59), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def night_position(hour: int, minute: int) -> int:
    """Minutes since local noon: orders the times of one night (18:00 < 23:00 < 05:00)."""
    return (hour * 60 + minute - 720) % 1440


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Model):
    """Devices chosen by family, kind, zone and/or explicit ids (all given criteria must match)."""

    family: Literal["traffic", "lighting", "cctv", "water"] | None = None
    kind: DeviceKind | None = None
    zones: tuple[Ident, ...] | None = Field(None, min_length=1)
    devices: tuple[Ident, ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if self.family is None and self.kind is None and self.zones is None and self.devices is None:
            raise ValueError("a selector needs at least one of family, kind, zones, devices")
        return self


class _Rule(_Model):
    id: Ident
    description: str = Field("", max_length=500)
    enabled: bool = True


class ProfileStep(_Model):
    until: str
    level: Level

    @field_validator("until")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        parse_hhmm(v)
        return v


class ScheduleRule(_Rule):
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


class CurvePoint(_Model):
    flow: float = Field(ge=0, le=20000)
    level: Level


class LightingClass(_Model):
    name: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    min_flow: float = Field(ge=0, le=20000)
    level: Level


class AdaptiveLightingRule(_Rule):
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


class AlarmLightingRule(_Rule):
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


class WaterLeakRule(_Rule):
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


class LampFaultRule(_Rule):
    """Lamp failures from cabinet power, and day-burning."""

    kind: Literal["lamp_faults"]
    cabinets: Selector
    wattage_w: float = Field(100.0, gt=0, le=5000)
    tolerance_pct: float = Field(10.0, ge=0, le=100)
    tolerance_w: float = Field(20.0, ge=0, le=100000)
    day_burning_w: float = Field(50.0, ge=0, le=100000)
    day_margin_min: float = Field(30.0, ge=0, le=180)
    severity: SeverityName = "warning"


class ThresholdRule(_Rule):
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
        fam = self.devices.family
        families = (fam,) if fam is not None else FAMILIES
        specs = [CANONICAL[f][self.measure] for f in families if self.measure in CANONICAL[f]]
        if not specs:
            where = f"family {fam}" if fam else "any family"
            raise ValueError(f"measure {self.measure!r} is not a canonical measure of {where}")
        kinds = {s.kind for s in specs}
        if isinstance(self.value, bool):
            if kinds != {bool}:
                raise ValueError(f"value is a bool but measure {self.measure!r} is not")
            if self.op not in ("==", "!="):
                raise ValueError(f"operator {self.op!r} needs a number; use == or != with a bool")
        elif isinstance(self.value, str):
            if kinds != {str}:
                raise ValueError(f"value is a string but measure {self.measure!r} is not")
            if self.op not in ("==", "!="):
                raise ValueError(f"operator {self.op!r} needs a number; use == or != with a string")
        elif not kinds <= {float, int}:
            raise ValueError(f"value is a number but measure {self.measure!r} is not numeric")
        return self


class NoSignalRule(_Rule):
    """A device silent for longer than ``after_s`` (alarm)."""

    kind: Literal["no_signal"]
    devices: Selector
    after_s: float = Field(gt=0, le=30 * 86400)
    severity: SeverityName = "warning"


RuleSpec = (
    ScheduleRule
    | AdaptiveLightingRule
    | AlarmLightingRule
    | WaterLeakRule
    | LampFaultRule
    | ThresholdRule
    | NoSignalRule
)

KINDS: dict[str, type[_Rule]] = {
    "schedule": ScheduleRule,
    "adaptive_lighting": AdaptiveLightingRule,
    "alarm_lighting": AlarmLightingRule,
    "water_leak": WaterLeakRule,
    "lamp_faults": LampFaultRule,
    "threshold": ThresholdRule,
    "no_signal": NoSignalRule,
}

# fields holding selectors, by kind: what the loader resolves against the topology
SELECTOR_FIELDS: dict[str, tuple[str, ...]] = {
    "schedule": ("lights",),
    "adaptive_lighting": ("sensors",),
    "alarm_lighting": ("cameras",),
    "water_leak": ("meters",),
    "lamp_faults": ("cabinets",),
    "threshold": ("devices",),
    "no_signal": ("devices",),
}
