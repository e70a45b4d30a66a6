"""Canonical measures: one name, one unit and one storage type per (family, measure).

Every driver, whatever its source format, emits these names in these units (see
``shared/formats.md`` section 5), so that one InfluxDB field and one Grafana panel serve all
sources of a family. The storage type is fixed because InfluxDB refuses a field whose type
changes within a shard.

The families and their measures are declared in :mod:`drivers.catalogue`; this module is a thin,
live, read-only view over it (a family registered at run time shows here at once), kept under its
historical names for the code that imports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import overload

from . import catalogue
from .catalogue import MeasureSpec

__all__ = ["CANONICAL", "FAMILIES", "MeasureSpec", "measures_of", "spec", "unit_of"]


class _Canonical(Mapping[str, Mapping[str, MeasureSpec]]):
    """``{family: {measure: MeasureSpec}}``, read from the catalogue on every access."""

    def __getitem__(self, family: str) -> Mapping[str, MeasureSpec]:
        return catalogue.families()[family].measures

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue.families())

    def __len__(self) -> int:
        return len(catalogue.families())

    def __repr__(self) -> str:
        return f"CANONICAL({dict(self)!r})"


class _FamilyNames(Sequence[str]):
    """The family names in catalogue order, read from the catalogue on every access."""

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return tuple(catalogue.families())[i]

    def __len__(self) -> int:
        return len(catalogue.families())

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(catalogue.families()))

    def __contains__(self, name: object) -> bool:
        return name in catalogue.families()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


CANONICAL: Mapping[str, Mapping[str, MeasureSpec]] = _Canonical()
FAMILIES: Sequence[str] = _FamilyNames()


def spec(family: str, measure: str) -> MeasureSpec | None:
    fam = catalogue.families().get(family)
    return None if fam is None else fam.measures.get(measure)


def unit_of(family: str, measure: str) -> str:
    s = spec(family, measure)
    return "" if s is None else s.unit


def measures_of(*families: str) -> dict[tuple[str, str], str]:
    """``{(family, measure): unit}`` for every canonical measure of the given families."""
    return {(f, m): s.unit for f in families for m, s in CANONICAL[f].items()}
