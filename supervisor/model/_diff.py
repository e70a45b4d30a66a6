"""What changed between two loaded models: elements and devices added, removed and changed.

A model reload (``supervisor/service/reload.py``) logs and returns it. Elements are compared per
table of the city file (zones, streets, sites, feeders, links, switches, ports, services) and
devices one by one; *changed* means any attribute of the record differs (kind, position,
geometry, parent, power, port, gateway, VLANs, uplink, interval...), and names the attributes.
The city's own attributes (name, CRS, timezone, bounds) are listed as the element ``<city>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.model._model import CityModel

#: the element tables compared, in the city file's order, then the devices
TABLES = ("zones", "streets", "sites", "feeders", "links", "switches", "ports", "services", "devices")
CITY = "<city>"
_CITY_ATTRS = ("name", "crs", "timezone", "bounds")


@dataclass(frozen=True, slots=True)
class ModelDiff:
    """Ids added and removed per table, and the attributes that changed per id (sorted)."""

    added: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    changed: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def ids(self, what: str, *, devices: bool) -> set[str]:
        """The ids ``added``, ``removed`` or ``changed``: the devices', or every other element's."""
        table: Mapping[str, Any] = getattr(self, what)
        return {i for t, ids in table.items() if (t == "devices") == devices for i in ids}

    def counts(self) -> dict[str, dict[str, int]]:
        """``{added|removed|changed: {devices: n, elements: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for what in ("added", "removed", "changed"):
            table: Mapping[str, Any] = getattr(self, what)
            out[what] = {"devices": len(table.get("devices", ())),
                         "elements": sum(len(v) for t, v in table.items() if t != "devices")}
        return out

    def as_dict(self, limit: int = 1000) -> dict[str, Any]:
        """Counts, then the ids per table (at most ``limit`` per table and kind of change, sorted;
        ``truncated`` says when some were left out)."""
        truncated = False

        def cut(ids: tuple[str, ...]) -> list[str]:
            nonlocal truncated
            truncated = truncated or len(ids) > limit
            return list(ids[:limit])

        changed: dict[str, dict[str, list[str]]] = {}
        for t, by_id in self.changed.items():
            keep = sorted(by_id)[:limit]
            truncated = truncated or len(by_id) > limit
            changed[t] = {i: list(by_id[i]) for i in keep}
        return {"counts": self.counts(),
                "added": {t: cut(ids) for t, ids in self.added.items()},
                "removed": {t: cut(ids) for t, ids in self.removed.items()},
                "changed": changed, "truncated": truncated}

    def summary(self, limit: int = 20) -> str:
        """One line for the log: counts, then the first ids of each kind of change."""
        if self.empty:
            return "no change"
        parts: list[str] = []
        for what in ("added", "removed", "changed"):
            table: Mapping[str, Any] = getattr(self, what)
            for t, ids in table.items():
                names = sorted(ids)
                shown = ", ".join(f"{i}({','.join(ids[i])})" if what == "changed" else i for i in names[:limit])
                more = f" +{len(names) - limit} more" if len(names) > limit else ""
                parts.append(f"{what} {t} {len(names)}: {shown}{more}")
        return "; ".join(parts)


def _record_changes(old: Any, new: Any) -> tuple[str, ...]:
    """The attributes of two records of one id that differ (``value`` when they are not dataclasses)."""
    if is_dataclass(old) and type(old) is type(new):
        return tuple(f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name))
    return () if old == new else ("value",)


def _table_diff(old: Mapping[str, Any],
                new: Mapping[str, Any]) -> tuple[list[str], list[str], dict[str, tuple[str, ...]]]:
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    changed: dict[str, tuple[str, ...]] = {}
    for k in old:
        if k in new:
            a, b = old[k], new[k]
            if a != b:
                changed[k] = _record_changes(a, b)
    return added, removed, changed


def diff_models(old: CityModel, new: CityModel) -> ModelDiff:
    """What ``new`` adds, removes and changes relative to ``old``.

    Devices are compared record by record (the model builds each record on access): about 2 s per
    million devices, off the pipeline thread (the reload computes it before taking the lock).
    """
    added: dict[str, tuple[str, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    changed: dict[str, dict[str, tuple[str, ...]]] = {}
    city = tuple(a for a in _CITY_ATTRS if getattr(old, a) != getattr(new, a))
    if city:
        changed["city"] = {CITY: city}
    for table in TABLES:
        a, r, c = _table_diff(getattr(old, table), getattr(new, table))
        if a:
            added[table] = tuple(a)
        if r:
            removed[table] = tuple(r)
        if c:
            changed[table] = c
    return ModelDiff(added, removed, changed)
