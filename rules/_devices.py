"""The devices the rules see (a snapshot of the topology) and selector resolution."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ._spec import Selector
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
    return sorted(out)
