"""Plain value types of the network model (immutable, slotted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Coord = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a city file: the file, the element it concerns and what is wrong."""

    file: str
    element: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.element}: {self.message}"


class CityFileError(Exception):
    """A city file that cannot be loaded; ``problems`` lists everything found wrong."""

    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems = problems
        self.more = more  # problems found but not kept (the list is capped)
        head = "; ".join(str(p) for p in problems[:3])
        total = len(problems) + more
        super().__init__(f"{total} problem(s) in city file: {head}" + (" ..." if total > 3 else ""))


class UnknownElementError(KeyError):
    """A query about an element id the model does not have (or that has no dependents)."""

    def __init__(self, element: str, detail: str = "unknown element") -> None:
        super().__init__(element)
        self.element = element
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.element}: {self.detail}"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    family: str
    kind: str
    driver: str
    service: str
    zone: str
    lon: float
    lat: float
    power: str | None
    port: str | None
    gateway: str | None
    street: str | None
    cabinet: str | None
    interval: float
    site: str | None = None


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """A non-device element: its kind (``switch``, ``port``, ``lighting_cabinet``...) and layer."""

    id: str
    kind: str
    layer: str  # geography | physical | l2 | l3


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    coords: tuple[tuple[Coord, ...], ...]  # polygon rings, exterior first


@dataclass(frozen=True, slots=True)
class Street:
    id: str
    name: str
    zone: str | None
    coords: tuple[Coord, ...]


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    kind: str
    zone: str | None
    lon: float
    lat: float
    power: str | None
    port: str | None = None  # radio gateways: the switch port they are attached to


@dataclass(frozen=True, slots=True)
class Feeder:
    id: str
    parent: str | None
    coords: tuple[Coord, ...] | None


@dataclass(frozen=True, slots=True)
class Link:
    id: str
    kind: str
    from_site: str
    to_site: str
    coords: tuple[Coord, ...]
    duct: str | None = None


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    switch: str
    vlans: frozenset[int]
    ifindex: int | None = None  # IF-MIB ifIndex on its switch's agent (default: its position from 1)


@dataclass(frozen=True, slots=True)
class Mgmt:
    """Where a switch answers SNMP, and the *name* of its credentials (the secrets are in the
    configuration, ``snmp.credentials``, never in the city file)."""

    host: str
    port: int
    credentials: str
    #: the agent's snmpEngineID (hex, lower case, no ``0x``): its SNMPv3 traps are authenticated
    #: against it (not a secret: every message the agent sends carries it)
    engine_id: str | None = None


@dataclass(frozen=True, slots=True)
class Uplink:
    port: str
    to: str
    link: str


@dataclass(frozen=True, slots=True)
class Switch:
    id: str
    site: str
    core: bool
    ports: tuple[str, ...]
    uplink: Uplink | None
    mgmt: Mgmt | None = None


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    vlan: int
    subnet: str
    gateway: str


@dataclass(frozen=True, slots=True)
class Impact:
    """What fails if ``element`` fails."""

    element: str
    kind: str
    total: int
    services: dict[str, list[str]]  # service -> devices (sorted)
    downstream: list[str]  # elements that depend on it (sorted)

    def as_dict(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "kind": self.kind,
            "total": self.total,
            "services": {s: {"count": len(devs), "devices": devs} for s, devs in sorted(self.services.items())},
            "downstream": self.downstream,
        }


@dataclass(frozen=True, slots=True)
class RootCause:
    """One element whose failure explains ``devices`` (all its dependents, all silent).

    ``alternatives`` are the other elements with exactly the same dependents: the telemetry cannot
    tell them apart (a switch, its uplink port, the fibre, the cabinet it sits in).
    """

    element: str
    kind: str
    devices: tuple[str, ...]
    services: tuple[str, ...]
    alternatives: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "kind": self.kind,
            "devices": list(self.devices),
            "services": list(self.services),
            "alternatives": list(self.alternatives),
        }


@dataclass(frozen=True, slots=True)
class RootCauseResult:
    causes: list[RootCause] = field(default_factory=list)
    unexplained: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "causes": [c.as_dict() for c in self.causes],
            "unexplained": sorted(self.unexplained),
        }
