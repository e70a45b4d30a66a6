"""The devices the rules see (a snapshot of the topology) and selector resolution."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ._spec import Selector, Where
from ._types import Topology


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """The device fields the rules read, copied once from the topology (cheap to look up)."""

    id: str
    family: str
    kind: str
    zone: str
    lon: float
    lat: float
    street: str | None
    cabinet: str | None
    interval: float | None


class DeviceTable(Mapping[str, DeviceRow]):
    """A snapshot of the topology's devices, built once per load (the model builds objects lazily)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._rows = {
            d.id: DeviceRow(d.id, d.family, d.kind, d.zone, d.lon, d.lat, d.street, d.cabinet, d.interval)
            for d in topology.devices.values()
        }
        self.zones = frozenset(r.zone for r in self._rows.values())
        self.kinds = frozenset(r.kind for r in self._rows.values())
        self.streets = frozenset(r.street for r in self._rows.values() if r.street)

    def __getitem__(self, key: str) -> DeviceRow:
        return self._rows[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def resolve(selector: Selector, devices: Mapping[str, DeviceRow]) -> list[str]:
    """Device ids matched by ``selector``, sorted. Explicit ids not in the city are skipped."""
    zones = set(selector.zones) if selector.zones is not None else None
    if selector.devices is not None:
        candidates = [devices[d] for d in selector.devices if d in devices]
    else:
        candidates = list(devices.values())
    out = [
        d.id
        for d in candidates
        if (selector.family is None or d.family == selector.family)
        and (selector.kind is None or d.kind == selector.kind)
        and (zones is None or d.zone in zones)
    ]
    if isinstance(selector, Where):
        out = _where(selector, out, devices)
    return sorted(out)


def _where(sel: Where, ids: list[str], devices: Mapping[str, DeviceRow]) -> list[str]:
    """``ids`` narrowed by the street, cabinet and distance criteria of ``sel``."""
    streets = set(sel.streets) if sel.streets is not None else None
    cabinets = set(sel.cabinets) if sel.cabinets is not None else None
    out = [
        d for d in ids
        if (streets is None or devices[d].street in streets) and (cabinets is None or devices[d].cabinet in cabinets)
    ]
    near = sel.near
    if near is None:
        return out
    if not isinstance(devices, DeviceTable):
        raise TypeError("a selector by distance needs the city's DeviceTable")
    if near.element is not None:
        centre = devices.get(near.element)
        if centre is None:
            return []
        lon, lat = centre.lon, centre.lat
    else:
        assert near.lon is not None and near.lat is not None  # the model checks it
        lon, lat = near.lon, near.lat
    within = set(devices.topology.devices_within(lon, lat, near.radius_m))
    return [d for d in out if d in within]
