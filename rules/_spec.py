"""Rule file models: structured, validated data, never code.

A rule file is YAML with a top-level ``rules:`` list; each rule has an ``id``, a ``kind`` and the
fields of that kind. Unknown fields are refused, ranges are checked, conditions use a fixed set of
operators.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from drivers import catalogue
from drivers._schema import CANONICAL, FAMILIES

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$", min_length=1, max_length=128)]
Level = Annotated[float, Field(ge=0.0, le=100.0)]
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


class Model(BaseModel):
    """Base of every rule file model: unknown fields refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(Model):
    """Devices chosen by family, kind, zone and/or explicit ids (all given criteria must match)."""

    family: Ident | None = None  # a family of the catalogue (drivers._schema.FAMILIES)
    kind: Ident | None = None  # a device kind of the catalogue; also checked against the city when one is given
    zones: tuple[Ident, ...] | None = Field(None, min_length=1)
    devices: tuple[Ident, ...] | None = Field(None, min_length=1)

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str | None) -> str | None:
        if v is not None and v not in FAMILIES:
            raise ValueError(f"unknown family {v!r}; expected one of {', '.join(FAMILIES)}")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str | None) -> str | None:
        known = sorted(k.name for k in catalogue.kinds())
        if v is not None and v not in known:
            raise ValueError(f"unknown device kind {v!r}; expected one of {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if self.family is None and self.kind is None and self.zones is None and self.devices is None:
            raise ValueError("a selector needs at least one of family, kind, zones, devices")
        return self


class RuleBase(Model):
    """Fields every rule has; a rule kind's spec subclasses it and adds ``kind: Literal["<name>"]``."""

    id: Ident
    kind: str
    description: str = Field("", max_length=500)
    enabled: bool = True


class Near(Model):
    """Within ``radius_m`` of a point (``lon``/``lat``) or of an element of the city (a device id)."""

    radius_m: float = Field(gt=0, le=20000)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    element: Ident | None = None

    @model_validator(mode="after")
    def _one_centre(self) -> Near:
        point = self.lon is not None and self.lat is not None
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat")
        if point == (self.element is not None):
            raise ValueError("give exactly one centre: lon and lat, or element")
        return self


class Where(Selector):
    """A :class:`Selector` that may also select by street, by cabinet (element) and by distance."""

    streets: tuple[Ident, ...] | None = Field(None, min_length=1)
    cabinets: tuple[Ident, ...] | None = Field(None, min_length=1)
    near: Near | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Where:
        given = (self.family, self.kind, self.zones, self.devices, self.streets, self.cabinets, self.near)
        if all(x is None for x in given):
            raise ValueError("a selector needs at least one of family, kind, zones, devices, streets, cabinets, near")
        return self


def check_comparison(family: str | None, measure: str, op: str, value: bool | float | str) -> None:
    """Raise ValueError unless ``measure op value`` is well typed for the canonical measure of ``family``."""
    families = (family,) if family is not None else FAMILIES
    specs = [CANONICAL[f][measure] for f in families if measure in CANONICAL[f]]
    if not specs:
        where = f"family {family}" if family else "any family"
        raise ValueError(f"measure {measure!r} is not a canonical measure of {where}")
    kinds = {s.kind for s in specs}
    for typ in (bool, str):
        if isinstance(value, typ):
            if kinds != {typ}:
                raise ValueError(f"value is a {'string' if typ is str else 'bool'} but measure {measure!r} is not")
            if op not in ("==", "!="):
                what = "a string" if typ is str else "a bool"
                raise ValueError(f"operator {op!r} needs a number; use == or != with {what}")
            return
    if not kinds <= {float, int}:
        raise ValueError(f"value is a number but measure {measure!r} is not numeric")
