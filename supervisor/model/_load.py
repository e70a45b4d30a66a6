"""Reading and validating a city file into plain tables.

Large lists (devices, sites) are checked with explicit loops, not per-object pydantic models:
a million devices must load in seconds. Every problem found is collected with the element it
concerns; loading fails with one :class:`CityFileError` listing them all (capped).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pydantic_core
import yaml

from drivers import catalogue
from supervisor.model._types import (
    CityFileError,
    Coord,
    Feeder,
    Link,
    Mgmt,
    Port,
    Problem,
    Service,
    Site,
    Street,
    Switch,
    Uplink,
    Zone,
)
from supervisor.snmp.config import ENGINE_ID

log = logging.getLogger(__name__)

FORMAT = "urban-supervisor/city"
VERSION = 1
MAX_PROBLEMS = 1000
ROOT = "<root>"

ID_RE = re.compile(r"[A-Za-z0-9_.:-]+")
ENGINE_ID_RE = re.compile(ENGINE_ID)
SITE_KINDS = ("street_cabinet", "lighting_cabinet", "pole", "radio_gateway", "chamber", "core")
POWER_SITE_KINDS = frozenset({"street_cabinet", "lighting_cabinet", "core"})
LINK_KINDS = ("fibre", "copper", "power", "duct")
UPLINK_LINK_KINDS = frozenset({"fibre", "copper"})


class _FamilyKinds(Mapping[str, tuple[tuple[str, ...], str]]):
    """family -> (device kinds, native driver), read live from :mod:`drivers.catalogue`."""

    def __getitem__(self, name: str) -> tuple[tuple[str, ...], str]:
        fam = catalogue.families()[name]
        return fam.kind_names, fam.driver

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue.families())

    def __len__(self) -> int:
        return len(catalogue.families())


FAMILIES: Mapping[str, tuple[tuple[str, ...], str]] = _FamilyKinds()


@functools.cache
def _driver_families() -> dict[str, frozenset[str]]:
    """Installed drivers (entry points) and the families each decodes."""
    import drivers

    return {name: frozenset(cls.families) for name, cls in drivers.available().items()}
def _code_tables() -> tuple[list[str], list[str], list[str]]:
    """The small tables the device columns code family, kind and driver into."""
    families = list(FAMILIES)
    kinds = [k for f in FAMILIES.values() for k in f[0]]
    drivers = list(dict.fromkeys([*(f[1] for f in FAMILIES.values()), *sorted(_driver_families())]))
    return families, kinds, drivers


def _codes(table: dict[str, int], col: list[Any], n: int) -> IntArray | None:
    """``col`` coded through ``table``; None when a value is not in it."""
    out = np.fromiter(map(table.get, col, [-1] * n), dtype=np.int32, count=n)
    return None if (out < 0).any() else out


def _fast_kinds(
    column: Callable[[str], list[Any]], families: list[str], kinds: list[str], drivers: list[str]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None:
    """(family, kind, driver) coded, every distinct combination checked once; None at a wrong one."""
    fcol, kcol, dcol = column("family"), column("kind"), column("driver")
    n = len(kcol)
    installed = _driver_families()
    for f, k, d in set(zip(fcol, kcol, dcol, strict=True)):
        spec = FAMILIES.get(f)
        if spec is None or k not in spec[0]:
            return None
        if d != spec[1] and f not in installed.get(d, ()):
            return None
    out = []
    for col, table in ((fcol, families), (kcol, kinds), (dcol, drivers)):
        code = {v: i for i, v in enumerate(table)}
        out.append(np.fromiter(map(code.__getitem__, col), dtype=np.uint8, count=n))
    return out[0], out[1], out[2]


def _positive_seconds(icol: list[Any]) -> FloatArray | None:
    """The intervals as an array when each is a finite positive number (of seconds); else None."""
    if not set(map(type, icol)) <= {float, int}:
        return None
    ivl = np.array(icol, dtype=np.float64)
    if not (np.isfinite(ivl).all() and (ivl > 0).all()):
        return None
    return ivl


def _fast_cabinets(
    ccol: list[Any], knd: npt.NDArray[np.uint8], kinds: list[str], index: dict[str, int], cols: dict[str, IntArray]
) -> IntArray | None:
    """Each lamp's cabinet row (-1 for the other devices).

    None unless lamps, and only lamps, name their cabinet: a lighting_cabinet device on the same port.
    """
    n = len(ccol)
    kind_code = {k: i for i, k in enumerate(kinds)}  # as _fast_kinds coded them
    is_lamp = knd == kind_code["lamp"]
    lamps = np.nonzero(is_lamp)[0]
    lamp_cabs = [ccol[j] for j in lamps.tolist()]
    if sum(c is not None for c in ccol) != len(lamps) or set(map(type, lamp_cabs)) - {str}:
        return None
    ci = np.fromiter(map(index.get, lamp_cabs, [-1] * len(lamp_cabs)), dtype=np.int64, count=len(lamp_cabs))
    if (ci < 0).any():
        return None
    if (knd[ci] != kind_code["lighting_cabinet"]).any():
        return None
    if (cols["port"][lamps] != cols["port"][ci]).any() or (cols["gateway"][lamps] != cols["gateway"][ci]).any():
        return None
    cab = np.full(n, -1, dtype=np.int32)
    cab[lamps] = ci
    return cab


_BAD_ID_CHAR = re.compile(r"[^A-Za-z0-9_.:\n-]")

DEVICE_KEYS = frozenset(
    {"id", "family", "kind", "driver", "service", "zone", "geometry", "power", "port", "gateway",
     "street", "cabinet", "interval", "site"}
)  # fmt: skip

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


class _Bad(Exception):
    """A local validation failure; becomes a :class:`Problem`."""


@dataclass
class DeviceColumns:
    """The devices, column-wise: strings are codes into small tables, references are indices."""

    ids: list[str]
    index: dict[str, int]
    families: list[str]
    kinds: list[str]
    drivers: list[str]
    family: npt.NDArray[np.uint8]
    kind: npt.NDArray[np.uint8]
    driver: npt.NDArray[np.uint8]
    service: IntArray  # index into CityData.service_ids
    zone: IntArray  # index into CityData.zone_ids
    lon: FloatArray
    lat: FloatArray
    interval: FloatArray
    # references: index into CityData.refs, -1 when null
    power: IntArray
    port: IntArray
    gateway: IntArray
    street: IntArray
    site: IntArray
    cabinet: IntArray  # index into ids (a device), -1 when null

    def compact_ids(self) -> None:
        """Replace the id strings by fresh copies, packed together.

        The parsed ids lie among the freed objects of the parse; keeping them would pin most of
        that memory (pymalloc returns an arena only when all of it is free).
        """
        if not self.ids:
            return
        blob = "\n".join(self.ids)  # ids never contain a newline (validated)
        self.index = {}
        self.ids = []
        self.ids = blob.split("\n")
        self.index = dict(zip(self.ids, range(len(self.ids)), strict=True))


@dataclass
class CityData:
    source: str
    name: str
    crs: str
    timezone: str
    bounds: tuple[float, float, float, float]
    zones: dict[str, Zone] = field(default_factory=dict)
    streets: dict[str, Street] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    feeders: dict[str, Feeder] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    switches: dict[str, Switch] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    zone_ids: list[str] = field(default_factory=list)
    service_ids: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # non-device ids referenced by device columns
    devices: DeviceColumns | None = None


def read_city_file(path: str | Path) -> tuple[dict[str, Any], str]:
    p = Path(path)
    src = str(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise CityFileError([Problem(src, ROOT, f"cannot read file: {exc.strerror or exc}")]) from exc
    try:
        data = yaml.safe_load(raw) if p.suffix.lower() in (".yaml", ".yml") else _parse_json(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise CityFileError([Problem(src, ROOT, f"not valid {_fmt_name(p)}: {exc}")]) from exc
    del raw
    if not isinstance(data, dict):
        raise CityFileError([Problem(src, ROOT, f"top level must be an object, got {_tname(data)}")])
    return data, src


def _parse_json(raw: bytes) -> Any:
    """JSON to Python objects, repeated short strings shared.

    A city file repeats the same few strings millions of times (``"Point"``, ``"lighting"``, zone
    and port ids). pydantic-core's parser (pydantic's own, already installed) caches them: at a
    million devices it parses in half the time of orjson and leaves ~40 % fewer objects. Its error
    messages differ, so an invalid file is parsed again by orjson to report the usual message.
    """
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False, cache_strings="all")
    except (ValueError, TypeError):  # TypeError: an old pydantic-core without cache_strings
        pass
    return orjson.loads(raw)


def _fmt_name(p: Path) -> str:
    return "YAML" if p.suffix.lower() in (".yaml", ".yml") else "JSON"


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class _Validator:
    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.src = source
        self.problems: list[Problem] = []
        self.more = 0
        self.kind_of: dict[str, str] = {}  # non-device id -> category (zone, street, site...)
        self.bounds = (-180.0, -90.0, 180.0, 90.0)

    # ------------------------------------------------------------------ helpers
    def bad(self, element: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(self.src, element, message))
        else:
            self.more += 1

    def _list(self, key: str, required: bool = False) -> list[Any]:
        v = self.data.get(key)
        if v is None:
            if required:
                self.bad(ROOT, f"missing list {key!r}")
            return []
        if not isinstance(v, list):
            self.bad(ROOT, f"{key!r} must be a list, got {_tname(v)}")
            return []
        return v

    def _items(self, key: str, what: str) -> list[tuple[str, dict[str, Any]]]:
        """The objects of a top-level list with a valid, unique id (others are reported)."""
        out = []
        for i, obj in enumerate(self._list(key)):
            if not isinstance(obj, dict):
                self.bad(f"{key}[{i}]", f"{what} must be an object, got {_tname(obj)}")
                continue
            ident = self._new_id(obj.get("id"), f"{key}[{i}]", what)
            if ident is not None:
                out.append((ident, obj))
        return out

    def _new_id(self, ident: Any, where: str, category: str, devices: dict[str, int] | None = None) -> str | None:
        if not isinstance(ident, str) or not ID_RE.fullmatch(ident):
            self.bad(where, f"{category} id {ident!r} is not a valid identifier ([A-Za-z0-9_.:-]+)")
            return None
        prev = self.kind_of.get(ident)
        if prev is None and devices is not None and ident in devices:
            prev = "device"
        if prev is not None:
            self.bad(ident, f"duplicate id: already used by a {prev}")
            return None
        if devices is None:
            self.kind_of[ident] = category
        return ident

    def _ref(self, value: Any, ident: str, key: str, allowed: tuple[str, ...], nullable: bool = True) -> str | None:
        """A reference to an element of one of the ``allowed`` categories (or null)."""
        if value is None:
            if nullable:
                return None
            self.bad(ident, f"{key!r} is required")
            return None
        if not isinstance(value, str):
            self.bad(ident, f"{key!r} must be an id string, got {_tname(value)}")
            return None
        cat = self.kind_of.get(value)
        if cat is None:
            self.bad(ident, f"{key} {value!r} does not exist")
            return None
        if cat not in allowed:
            self.bad(ident, f"{key} {value!r} is a {cat}, expected {' or '.join(allowed)}")
            return None
        return value

    def _positions(self, coords: Any, min_n: int, ident: str) -> tuple[Coord, ...]:
        if not isinstance(coords, list) or len(coords) < min_n:
            raise _Bad(f"needs a list of at least {min_n} positions")
        out = []
        for pos in coords:
            out.append(self._position(pos, ident))
        return tuple(out)

    def _position(self, pos: Any, ident: str) -> Coord:
        if not isinstance(pos, list | tuple) or len(pos) not in (2, 3) or not all(_is_num(c) for c in pos):
            raise _Bad(f"bad position {pos!r}: expected [lon, lat]")
        lon, lat = float(pos[0]), float(pos[1])
        b = self.bounds
        if not (b[0] <= lon <= b[2] and b[1] <= lat <= b[3]):
            raise _Bad(f"position [{lon}, {lat}] is outside bounds {list(b)}")
        return (lon, lat)

    def _geometry(self, obj: dict[str, Any], gtype: str, ident: str, required: bool = True) -> Any:
        g = obj.get("geometry")
        if g is None and not required:
            return None
        if not isinstance(g, dict):
            raise _Bad(f"geometry must be a GeoJSON {gtype}, got {_tname(g)}")
        if g.get("type") != gtype:
            raise _Bad(f"geometry must be a GeoJSON {gtype}, got type {g.get('type')!r}")
        c = g.get("coordinates")
        if gtype == "Point":
            return self._position(c, ident)
        if gtype == "LineString":
            return self._positions(c, 2, ident)
        if not isinstance(c, list) or not c:
            raise _Bad("Polygon needs at least one ring")
        rings = []
        for ring in c:
            r = self._positions(ring, 4, ident)
            if r[0] != r[-1]:
                raise _Bad("Polygon ring is not closed (first and last positions differ)")
            rings.append(r)
        return tuple(rings)

    # ------------------------------------------------------------------ top level
    def run(self) -> CityData:
        d = self.data
        if d.get("format") != FORMAT:
            self.bad(ROOT, f"format must be {FORMAT!r}, got {d.get('format')!r}")
        if d.get("version") != VERSION or isinstance(d.get("version"), bool):
            self.bad(ROOT, f"unsupported version {d.get('version')!r} (this reader knows version {VERSION})")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            self.bad(ROOT, f"name must be a non-empty string, got {name!r}")
            name = "?"
        crs = d.get("crs", "EPSG:2154")
        if not isinstance(crs, str) or not crs:
            self.bad(ROOT, f"crs must be a string such as 'EPSG:2154' or 'utm', got {crs!r}")
            crs = "EPSG:2154"
        tz = d.get("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            self.bad(ROOT, f"unknown timezone {tz!r}")
            tz = "UTC"
        b = d.get("bounds")
        if (
            isinstance(b, list)
            and len(b) == 4
            and all(_is_num(x) for x in b)
            and -180 <= b[0] < b[2] <= 180
            and -90 <= b[1] < b[3] <= 90
        ):
            self.bounds = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        else:
            self.bad(ROOT, f"bounds must be [lon_min, lat_min, lon_max, lat_max] with min < max, got {b!r}")
        city = CityData(source=self.src, name=name, crs=crs, timezone=tz, bounds=self.bounds)
        if self.problems:  # a broken header makes every later message noise
            raise CityFileError(self.problems, self.more)

        self._zones(city)
        self._streets(city)
        site_objs = self._items("sites", "site")
        feeder_objs = self._items("feeders", "feeder")
        link_objs = self._items("links", "link")
        switch_objs = self._items("switches", "switch")
        self._register_ports(switch_objs, city)
        service_objs = self._items("services", "service")
        self._sites(site_objs, city)
        self._feeders(feeder_objs, city)
        self._links(link_objs, city)
        self._switches(switch_objs, city)
        self._services(service_objs, city)
        self._power_cycles(city)
        path_vlans = self._uplink_paths(city)
        self._gateways(city, path_vlans)
        self._devices(city, path_vlans)
        if self.problems or self.more:
            raise CityFileError(self.problems, self.more)
        return city

    # ------------------------------------------------------------------ small lists
    def _zones(self, city: CityData) -> None:
        for ident, obj in self._items("zones", "zone"):
            try:
                name = obj.get("name", ident)
                if not isinstance(name, str):
                    raise _Bad(f"name must be a string, got {_tname(name)}")
                city.zones[ident] = Zone(ident, name, self._geometry(obj, "Polygon", ident))
            except _Bad as exc:
                self.bad(ident, str(exc))
        city.zone_ids = list(city.zones)

    def _streets(self, city: CityData) -> None:
        for ident, obj in self._items("streets", "street"):
            try:
                name = obj.get("name", ident)
                if not isinstance(name, str):
                    raise _Bad(f"name must be a string, got {_tname(name)}")
                coords = self._geometry(obj, "LineString", ident)
            except _Bad as exc:
                self.bad(ident, str(exc))
                continue
            zone = self._ref(obj.get("zone"), ident, "zone", ("zone",))
            city.streets[ident] = Street(ident, name, zone, coords)

    def _register_ports(self, switch_objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        vlan_sets: dict[tuple[int, ...], frozenset[int]] = {}  # a few distinct sets, shared by all ports
        for sw, obj in switch_objs:
            ports = obj.get("ports", [])
            if not isinstance(ports, list):
                self.bad(sw, f"ports must be a list, got {_tname(ports)}")
                continue
            for i, p in enumerate(ports):
                if not isinstance(p, dict):
                    self.bad(sw, f"ports[{i}] must be an object, got {_tname(p)}")
                    continue
                pid = self._new_id(p.get("id"), f"{sw}.ports[{i}]", "port")
                if pid is None:
                    continue
                vlans = p.get("vlans", [])
                if not isinstance(vlans, list) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4094 for v in vlans
                ):
                    self.bad(pid, f"vlans must be a list of integers 1..4094, got {vlans!r}")
                    vlans = []
                key = tuple(vlans)
                fs = vlan_sets.get(key)
                if fs is None:
                    fs = vlan_sets[key] = frozenset(vlans)
                ifindex = p.get("ifindex")
                if ifindex is not None and not (isinstance(ifindex, int) and not isinstance(ifindex, bool)
                                                and 1 <= ifindex <= 2**31 - 1):
                    self.bad(pid, f"ifindex must be an integer 1..2147483647, got {ifindex!r}")
                    ifindex = None
                city.ports[pid] = Port(pid, sw, fs, ifindex if ifindex is not None else i + 1)

    def _power(self, value: Any, ident: str, city: CityData) -> str | None:
        ref = self._ref(value, ident, "power", ("feeder", "site"))
        if ref is not None and self.kind_of[ref] == "site":
            kind = self._site_kind.get(ref)
            if kind is not None and kind not in POWER_SITE_KINDS:
                self.bad(ident, f"power {ref!r} is a {kind} site, which distributes no power "
                         f"(expected a feeder or a {', '.join(sorted(POWER_SITE_KINDS))} site)")  # fmt: skip
                return None
        return ref

    def _sites(self, objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        self._site_kind: dict[str, str] = {}
        for ident, obj in objs:
            kind = obj.get("kind")
            if kind not in SITE_KINDS:
                self.bad(ident, f"unknown site kind {kind!r} (expected one of {', '.join(SITE_KINDS)})")
            else:
                self._site_kind[ident] = kind
        for ident, obj in objs:
            kind = self._site_kind.get(ident)
            if kind is None:
                continue
            try:
                lon, lat = self._geometry(obj, "Point", ident)
            except _Bad as exc:
                self.bad(ident, str(exc))
                continue
            zone = self._ref(obj.get("zone"), ident, "zone", ("zone",))
            power = self._power(obj.get("power"), ident, city)
            port = None
            if kind == "radio_gateway":
                port = self._ref(obj.get("port"), ident, "port", ("port",))
            elif obj.get("port") is not None:
                self.bad(ident, f"only radio gateways have a port, this site is a {kind}")
            city.sites[ident] = Site(ident, kind, zone, lon, lat, power, port)

    def _feeders(self, objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        for ident, obj in objs:
            try:
                coords = self._geometry(obj, "LineString", ident, required=False)
            except _Bad as exc:
                self.bad(ident, str(exc))
                continue
            parent = self._ref(obj.get("parent"), ident, "parent", ("feeder",))
            city.feeders[ident] = Feeder(ident, parent, coords)

    def _links(self, objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        kinds = {i: o.get("kind") for i, o in objs}
        self._link_kind = {i: k for i, k in kinds.items() if isinstance(k, str)}
        for ident, obj in objs:
            kind = kinds[ident]
            if kind not in LINK_KINDS:
                self.bad(ident, f"unknown link kind {kind!r} (expected one of {', '.join(LINK_KINDS)})")
                continue
            try:
                coords = self._geometry(obj, "LineString", ident)
            except _Bad as exc:
                self.bad(ident, str(exc))
                continue
            a = self._ref(obj.get("from"), ident, "from", ("site",), nullable=False)
            b = self._ref(obj.get("to"), ident, "to", ("site",), nullable=False)
            duct = self._ref(obj.get("duct"), ident, "duct", ("link",))
            if duct is not None and kinds.get(duct) != "duct":
                self.bad(ident, f"duct {duct!r} is a {kinds.get(duct)} link, expected a duct")
                duct = None
            if duct is not None and kind == "duct":
                self.bad(ident, "a duct cannot lie in another duct")
                duct = None
            if a is not None and b is not None:
                city.links[ident] = Link(ident, kind, a, b, coords, duct)

    def _switches(self, objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        targets: dict[str, str] = {}
        for ident, obj in objs:
            site = self._ref(obj.get("site"), ident, "site", ("site",), nullable=False)
            core = obj.get("core", False)
            if not isinstance(core, bool):
                self.bad(ident, f"core must be true or false, got {core!r}")
                continue
            ports = tuple(p["id"] for p in obj.get("ports", []) if isinstance(p, dict) and p.get("id") in city.ports)
            up = obj.get("uplink")
            uplink = None
            if core and up is not None:
                self.bad(ident, "a core switch has no uplink")
            elif not core and up is None:
                self.bad(ident, "switch has no uplink and is not a core switch")
            elif up is not None:
                uplink = self._uplink(ident, up, city, targets)
            mgmt = self._mgmt(ident, obj.get("mgmt"))
            if site is not None:
                city.switches[ident] = Switch(ident, site, core, ports, uplink, mgmt)
            self._ifindex_unique(ident, ports, city)

    def _mgmt(self, ident: str, m: Any) -> Mgmt | None:
        """``mgmt: {host, port, credentials, engine_id}``: where the switch answers SNMP (port 161 by
        default), the name of its credentials in the configuration (``snmp.credentials``) and its
        SNMPv3 engine id (hex, optional: what its v3 traps are authenticated against)."""
        if m is None:
            return None
        if not isinstance(m, dict):
            self.bad(ident, f"mgmt must be an object {{host, port, credentials}}, got {_tname(m)}")
            return None
        extra = sorted(set(m) - {"host", "port", "credentials", "engine_id"})
        host, port, cred, engine = m.get("host"), m.get("port", 161), m.get("credentials"), m.get("engine_id")
        ok = True
        if extra:
            self.bad(ident, f"mgmt: unknown key(s) {extra} (expected host, port, credentials, engine_id; secrets "
                     "belong in the configuration's snmp.credentials)")
            ok = False
        if engine is not None and not (isinstance(engine, str) and ENGINE_ID_RE.fullmatch(engine)):
            self.bad(ident, f"mgmt.engine_id must be the agent's snmpEngineID in hex (5 to 32 bytes, 0x optional), "
                     f"got {engine!r}")
            ok = False
        if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
            self.bad(ident, f"mgmt.host must be a host name or IP address, got {host!r}")
            ok = False
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            self.bad(ident, f"mgmt.port must be an integer 1..65535, got {port!r}")
            ok = False
        if not isinstance(cred, str) or not ID_RE.fullmatch(cred):
            self.bad(ident, f"mgmt.credentials must name an entry of the configuration's snmp.credentials, "
                     f"got {cred!r}")
            ok = False
        if not (ok and isinstance(host, str) and isinstance(cred, str)):
            return None
        return Mgmt(host.strip(), port, cred, engine.removeprefix("0x").lower() if isinstance(engine, str) else None)

    def _ifindex_unique(self, ident: str, ports: tuple[str, ...], city: CityData) -> None:
        seen: dict[int, str] = {}
        for p in ports:
            ix = city.ports[p].ifindex
            if ix is None:
                continue
            if ix in seen:
                self.bad(p, f"ifindex {ix} is already the ifindex of port {seen[ix]!r} of switch {ident!r}")
            seen[ix] = p

    def _uplink(self, ident: str, up: Any, city: CityData, targets: dict[str, str]) -> Uplink | None:
        if not isinstance(up, dict):
            self.bad(ident, f"uplink must be an object {{port, to, link}}, got {_tname(up)}")
            return None
        port = self._ref(up.get("port"), ident, "uplink port", ("port",), nullable=False)
        to = self._ref(up.get("to"), ident, "uplink to", ("port",), nullable=False)
        link = self._ref(up.get("link"), ident, "uplink link", ("link",), nullable=False)
        if port is None or to is None or link is None:
            return None
        ok = True
        if city.ports[port].switch != ident:
            self.bad(ident, f"uplink port {port!r} belongs to switch {city.ports[port].switch!r}, not to this one")
            ok = False
        if city.ports[to].switch == ident:
            self.bad(ident, f"uplink to {to!r} is a port of the same switch")
            ok = False
        if to in targets:
            self.bad(ident, f"uplink to {to!r} is already the uplink target of switch {targets[to]!r}")
            ok = False
        targets[to] = ident
        lk = self._link_kind.get(link)
        if lk is not None and lk not in UPLINK_LINK_KINDS:
            self.bad(ident, f"uplink link {link!r} is a {lk} link, expected fibre or copper")
            ok = False
        return Uplink(port, to, link) if ok else None

    def _services(self, objs: list[tuple[str, dict[str, Any]]], city: CityData) -> None:
        vlans: dict[int, str] = {}
        for ident, obj in objs:
            vlan = obj.get("vlan")
            if not isinstance(vlan, int) or isinstance(vlan, bool) or not 1 <= vlan <= 4094:
                self.bad(ident, f"vlan must be an integer 1..4094, got {vlan!r}")
                continue
            if vlan in vlans:
                self.bad(ident, f"vlan {vlan} is already used by service {vlans[vlan]!r}")
                continue
            vlans[vlan] = ident
            subnet = obj.get("subnet")
            try:
                net = str(ipaddress.ip_network(subnet))  # type: ignore[arg-type]
            except (ValueError, TypeError):
                self.bad(ident, f"subnet must be a network in CIDR notation such as 10.1.0.0/16, got {subnet!r}")
                continue
            gw = self._ref(obj.get("gateway"), ident, "gateway", ("switch", "site"), nullable=False)
            if gw is not None:
                city.services[ident] = Service(ident, vlan, net, gw)
        city.service_ids = list(city.services)

    # ------------------------------------------------------------------ structure
    def _power_cycles(self, city: CityData) -> None:
        for start in list(city.feeders) + list(city.sites):
            seen = [start]
            cur: str | None = start
            for _ in range(len(city.feeders) + len(city.sites) + 1):
                nxt = self._power_parent(cur, city)
                if nxt is None:
                    break
                if nxt == start:
                    self.bad(start, "power supply loops: " + " -> ".join([*seen, start]))
                    break
                if nxt in seen:
                    break  # a loop further up; reported from its own start
                seen.append(nxt)
                cur = nxt

    @staticmethod
    def _power_parent(ident: str | None, city: CityData) -> str | None:
        if ident in city.feeders:
            return city.feeders[ident].parent
        if ident in city.sites:
            return city.sites[ident].power
        return None

    def _uplink_paths(self, city: CityData) -> dict[str, frozenset[int]]:
        """For every port from which the core is reachable, the VLANs carried all the way up.

        A switch whose uplink chain loops is reported; the ports of a switch that does not reach
        a core switch are absent from the result (its devices are reported).
        """
        all_vlans = frozenset(range(1, 4095))
        memo: dict[str, frozenset[int] | None] = {}
        for sw in city.switches:
            chain: list[str] = []
            cur = sw
            base: frozenset[int] | None = None
            for _ in range(len(city.switches) + 1):
                if cur in memo:
                    base = memo[cur]
                    break
                s = city.switches[cur]
                if s.core:
                    base = memo[cur] = all_vlans
                    break
                if s.uplink is None:  # reported in _switches
                    base = memo[cur] = None
                    break
                if cur in chain:
                    self.bad(sw, "uplink chain loops and never reaches a core switch: "
                             + " -> ".join([*chain, cur]))  # fmt: skip
                    base = None
                    break
                chain.append(cur)
                nxt = city.ports[s.uplink.to].switch
                if nxt not in city.switches:  # an invalid switch, reported already
                    base = None
                    break
                cur = nxt
            for c in reversed(chain):
                up = city.switches[c].uplink
                if base is not None and up is not None:
                    base = base & city.ports[up.port].vlans & city.ports[up.to].vlans
                memo[c] = base
        # few distinct (port VLANs, path VLANs) pairs: intersect each once and share the result
        inter: dict[tuple[frozenset[int], frozenset[int]], frozenset[int]] = {}
        out: dict[str, frozenset[int]] = {}
        for pid, port in city.ports.items():
            sv = memo.get(port.switch)
            if sv is None:
                continue
            pair = (port.vlans, sv)
            v = inter.get(pair)
            if v is None:
                v = inter[pair] = port.vlans & sv
            out[pid] = v
        return out

    def _vlan_gap(self, port: str, vlan: int, city: CityData) -> str:
        """The first port on the way up from ``port`` that does not carry ``vlan``."""
        if vlan not in city.ports[port].vlans:
            return f"port {port!r}"
        sw = city.switches.get(city.ports[port].switch)
        for _ in range(len(city.switches) + 1):
            if sw is None or sw.core or sw.uplink is None:
                break
            for p in (sw.uplink.port, sw.uplink.to):
                if vlan not in city.ports[p].vlans:
                    return (
                        f"uplink port {p!r} of switch {sw.id!r}"
                        if p == sw.uplink.port
                        else (f"port {p!r} (uplink of switch {sw.id!r})")
                    )
            sw = city.switches.get(city.ports[sw.uplink.to].switch)
        return f"the path from port {port!r}"  # pragma: no cover - only when path_vlans disagrees

    def _gateways(self, city: CityData, path_vlans: dict[str, frozenset[int]]) -> None:
        self._gw_ok: dict[str, bool] = {}
        for s in city.sites.values():
            if s.kind != "radio_gateway":
                continue
            self._gw_ok[s.id] = s.port is not None and s.port in path_vlans
            if s.port is None:
                self.bad(s.id, "radio gateway is not connected: it has no port")

    # ------------------------------------------------------------------ devices
    def _devices(self, city: CityData, path_vlans: dict[str, frozenset[int]]) -> None:
        raw = self._list("devices")
        if not self.problems and not self.more:
            try:
                fast = self._devices_fast(raw, city, path_vlans)
            except (TypeError, ValueError, OverflowError, KeyError):
                fast = None  # something unusual: the per-device path says what
            if fast is not None:
                city.devices = fast
                return
        self._devices_slow(raw, city, path_vlans)

    def _devices_fast(
        self, raw: list[Any], city: CityData, path_vlans: dict[str, frozenset[int]]
    ) -> DeviceColumns | None:
        """All devices checked column by column; None at the first doubt (the slow path reports).

        Each column is extracted once and checked in bulk: types as sets, numbers as numpy arrays,
        references as their distinct values (a million devices use some 10^5 distinct ports).
        Only a file with no problem at all takes this path, so it need not say what is wrong.
        Each step is a helper whose columns are freed when it returns (the peak memory at 1M devices).
        """
        n = len(raw)
        if n == 0 or set(map(type, raw)) != {dict}:
            return None
        families, kinds, drivers = _code_tables()

        def column(key: str) -> list[Any]:
            return [o.get(key) for o in raw]

        ids = column("id")
        index = self._fast_ids(ids)
        coded = _fast_kinds(column, families, kinds, drivers)
        if index is None or coded is None:
            return None
        fam, knd, drv = coded
        scol = column("service")
        svc = _codes({s: i for i, s in enumerate(city.service_ids)}, scol, n)
        zon = _codes({z: i for i, z in enumerate(city.zone_ids)}, column("zone"), n)
        position = self._fast_positions(column("geometry"), n)
        ivl = _positive_seconds(column("interval"))
        if svc is None or zon is None or position is None or ivl is None:
            return None
        refs_cols = self._fast_refs(column, scol, city, path_vlans)
        del scol
        if refs_cols is None:
            return None
        refs, cols = refs_cols
        cab = _fast_cabinets(column("cabinet"), knd, kinds, index, cols)
        if cab is None:
            return None
        city.refs[:] = refs
        lon, lat = position
        return DeviceColumns(
            ids=ids, index=index, families=families, kinds=kinds, drivers=drivers,
            family=fam, kind=knd, driver=drv, service=svc, zone=zon,
            lon=lon, lat=lat, interval=ivl,
            power=cols["power"], port=cols["port"], gateway=cols["gateway"],
            street=cols["street"], site=cols["site"], cabinet=cab,
        )  # fmt: skip

    def _fast_ids(self, ids: list[Any]) -> dict[str, int] | None:
        """id -> row when the ids are valid, unique and not used by another element; else None."""
        n = len(ids)
        if set(map(type, ids)) != {str}:
            return None
        blob = "\n".join(ids)
        if _BAD_ID_CHAR.search(blob) or blob.count("\n") != n - 1 or min(map(len, ids)) == 0:
            return None
        index = dict(zip(ids, range(n), strict=True))
        if len(index) != n or any(e in index for e in self.kind_of):
            return None
        return index

    def _fast_positions(self, geoms: list[Any], n: int) -> tuple[FloatArray, FloatArray] | None:
        """(lon, lat) when every geometry is a GeoJSON Point [lon, lat] of finite numbers inside the bounds."""
        if set(map(type, geoms)) != {dict} or {g.get("type") for g in geoms} != {"Point"}:
            return None
        coords = [g.get("coordinates") for g in geoms]
        if set(map(type, coords)) != {list} or set(map(len, coords)) != {2}:
            return None
        flat = [x for c in coords for x in c]
        del coords
        if not set(map(type, flat)) <= {float, int}:
            return None
        xy = np.array(flat, dtype=np.float64).reshape(n, 2)
        del flat
        lon, lat = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
        del xy
        b0, b1, b2, b3 = self.bounds
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            return None
        if not ((lon >= b0) & (lon <= b2) & (lat >= b1) & (lat <= b3)).all():
            return None
        return lon, lat

    def _fast_refs(
        self, column: Callable[[str], list[Any]], scol: list[Any], city: CityData,
        path_vlans: dict[str, frozenset[int]],
    ) -> tuple[list[str], dict[str, IntArray]] | None:
        """(the distinct referenced elements, each reference column coded into them), each value checked once.

        None when a reference is not of the kind its key names, when a device has not exactly one
        of port and gateway, or when its service's VLAN is not carried from there to the core.
        """
        kind_of = self.kind_of
        sites = city.sites

        def is_power(v: Any) -> bool:
            c = kind_of.get(v)
            return c == "feeder" or (c == "site" and v in sites and sites[v].kind in POWER_SITE_KINDS)

        def is_gateway(v: Any) -> bool:
            return kind_of.get(v) == "site" and v in sites and sites[v].kind == "radio_gateway" and self._gw_ok[v]

        checks: dict[str, Callable[[str], bool]] = {
            "power": is_power,
            "port": lambda v: kind_of.get(v) == "port",
            "gateway": is_gateway,
            "street": lambda v: kind_of.get(v) == "street",
            "site": lambda v: kind_of.get(v) == "site",
        }
        # the element's own id object, not the device's copy: the model then keeps nothing that
        # was parsed with the devices, and their memory can go back to the OS once they are freed
        canon = {e: e for e in kind_of}
        refs: list[str] = []
        ref_code: dict[Any, int] = {None: -1}
        cols: dict[str, IntArray] = {}
        raw_cols: dict[str, list[Any]] = {}
        for key, ok in checks.items():
            col = column(key)
            for v in dict.fromkeys(col):
                if v is None or v in ref_code:
                    continue
                if type(v) is not str or not ok(v):
                    return None
                ref_code[v] = len(refs)
                refs.append(canon[v])
            cols[key] = np.fromiter(map(ref_code.__getitem__, col), dtype=np.int32, count=len(col))
            if key in ("port", "gateway"):
                raw_cols[key] = col
        if ((cols["port"] < 0) == (cols["gateway"] < 0)).any():
            return None
        # the service's VLAN is carried from the device's port (or its gateway's) up to the core
        vlan_of = {s.id: s.vlan for s in city.services.values()}
        for port, gw, s in set(zip(raw_cols["port"], raw_cols["gateway"], scol, strict=True)):
            via: str | None = port if port is not None else sites[gw].port
            pv = path_vlans.get(via) if via is not None else None
            if pv is None or vlan_of[s] not in pv:
                return None
        return refs, cols

    def _devices_slow(self, raw: list[Any], city: CityData, path_vlans: dict[str, frozenset[int]]) -> None:
        """Device by device, reporting every problem with the device it concerns."""
        rows = _DeviceRows(self, len(raw), city, path_vlans)
        for i, obj in enumerate(raw):
            rows.add(i, obj)
        rows.cabinets()
        city.devices = rows.columns()

    def _ref_problem(self, ident: str, key: str, value: Any, expected: str, city: CityData) -> None:
        if not isinstance(value, str):
            self.bad(ident, f"{key!r} must be an id string, got {_tname(value)}")
        elif value not in self.kind_of:
            self.bad(ident, f"{key} {value!r} does not exist")
        else:
            cat = self.kind_of[value]
            if cat == "site":
                cat = f"{city.sites[value].kind} site" if value in city.sites else "site"
            self.bad(ident, f"{key} {value!r} is a {cat}, expected {expected}")


class _DeviceRows:
    """The slow device path: device by device, every problem reported with the device it concerns.

    Rows are written into preallocated columns; a device with a problem is left out (the file then
    fails to load with all the problems listed, so what is kept only serves the later checks).
    """

    def __init__(self, v: _Validator, n: int, city: CityData, path_vlans: dict[str, frozenset[int]]) -> None:
        self.v = v
        self.city = city
        self.path_vlans = path_vlans
        self.families, self.kinds, self.drivers = _code_tables()
        self.fam_code = {f: i for i, f in enumerate(self.families)}
        self.kind_code = {k: i for i, k in enumerate(self.kinds)}
        self.drv_code = {d: i for i, d in enumerate(self.drivers)}
        self.zone_code = {z: i for i, z in enumerate(city.zone_ids)}
        self.svc_code = {s: i for i, s in enumerate(city.service_ids)}
        self.vlan_of = {s.id: s.vlan for s in city.services.values()}
        self.ref_code: dict[str, int] = {}
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.cols = {k: np.full(n, -1, dtype=np.int32) for k in ("power", "port", "gateway", "street", "site",
                                                                  "cabinet")}  # fmt: skip
        self.fam = np.zeros(n, dtype=np.uint8)
        self.knd = np.zeros(n, dtype=np.uint8)
        self.drv = np.zeros(n, dtype=np.uint8)
        self.svc = np.zeros(n, dtype=np.int32)
        self.zon = np.zeros(n, dtype=np.int32)
        self.lon = np.zeros(n, dtype=np.float64)
        self.lat = np.zeros(n, dtype=np.float64)
        self.ivl = np.zeros(n, dtype=np.float64)
        self.cab_ref: list[tuple[int, str]] = []

    def code(self, ref: str) -> int:
        """``ref``'s index in ``city.refs``, appending it the first time."""
        c = self.ref_code.get(ref)
        if c is None:
            c = self.ref_code[ref] = len(self.city.refs)
            self.city.refs.append(ref)
        return c

    def add(self, i: int, obj: Any) -> None:
        """Check device ``i`` of the list and, when it has no problem, keep it as the next row."""
        v = self.v
        if not isinstance(obj, dict):
            v.bad(f"devices[{i}]", f"device must be an object, got {_tname(obj)}")
            return
        ident = obj.get("id")
        if not isinstance(ident, str) or not ID_RE.fullmatch(ident):
            v.bad(f"devices[{i}]", f"device id {ident!r} is not a valid identifier ([A-Za-z0-9_.:-]+)")
            return
        if ident in self.index or ident in v.kind_of:
            v.bad(ident, f"duplicate id: already used by a {v.kind_of.get(ident, 'device')}")
            return
        j = len(self.ids)
        f: Any = obj.get("family")
        k: Any = obj.get("kind")
        d: Any = obj.get("driver")
        spec = FAMILIES.get(f)
        if spec is None:
            v.bad(ident, f"unknown family {f!r} (expected one of {', '.join(FAMILIES)})")
            return
        if k not in spec[0]:
            v.bad(ident, f"unknown kind {k!r} for family {f!r} (expected one of {', '.join(spec[0])})")
            return
        ok = self._driver(ident, f, d, spec[1])
        s: Any = obj.get("service")
        sc = self.svc_code.get(s)
        if sc is None:
            v.bad(ident, f"service {s!r} does not exist")
            ok = False
        z: Any = obj.get("zone")
        zc = self.zone_code.get(z)
        if zc is None:
            v.bad(ident, f"zone {z!r} does not exist")
            ok = False
        ok = self._place(ident, obj, j) and ok
        ok = self._refs(ident, obj, j, s if sc is not None else None) and ok
        ok = self._cabinet(ident, k, obj.get("cabinet")) and ok
        if not ok:
            return
        if k == "lamp":
            self.cab_ref.append((j, obj["cabinet"]))
        self.fam[j], self.knd[j], self.drv[j] = self.fam_code[f], self.kind_code[k], self.drv_code[d]
        self.svc[j], self.zon[j] = sc, zc  # type: ignore[assignment]
        self.index[ident] = j
        self.ids.append(ident)

    def _driver(self, ident: str, f: str, d: Any, native: str) -> bool:
        """The native driver is the common case; any installed one that handles the family may serve."""
        if d == native:
            return True
        fams = _driver_families().get(d)
        if fams is None:
            self.v.bad(ident, f"driver {d!r} is not installed (the native one for {f!r} is {native!r})")
            return False
        if f not in fams:
            self.v.bad(ident, f"driver {d!r} does not handle family {f!r} (it handles "
                              f"{', '.join(sorted(fams))}; the native one is {native!r})")  # fmt: skip
            return False
        return True

    def _place(self, ident: str, obj: dict[str, Any], j: int) -> bool:
        """Position (a GeoJSON Point inside the bounds) and reporting interval of row ``j``."""
        v = self.v
        ok = True
        b0, b1, b2, b3 = v.bounds
        g = obj.get("geometry")
        c = g.get("coordinates") if isinstance(g, dict) and g.get("type") == "Point" else None
        if not isinstance(c, list) or len(c) not in (2, 3) or not _is_num(c[0]) or not _is_num(c[1]):
            gt = g.get("type") if isinstance(g, dict) else _tname(g)
            v.bad(ident, f"geometry must be a GeoJSON Point [lon, lat], got {gt!r}"
                  + (f" with coordinates {c!r}" if gt == "Point" else ""))  # fmt: skip
            ok = False
        elif not (b0 <= c[0] <= b2 and b1 <= c[1] <= b3):
            v.bad(ident, f"position [{c[0]}, {c[1]}] is outside bounds {list(v.bounds)}")
            ok = False
        else:
            self.lon[j], self.lat[j] = c[0], c[1]
        iv: Any = obj.get("interval")
        if not _is_num(iv) or iv <= 0:
            v.bad(ident, f"interval must be a positive number of seconds, got {iv!r}")
            return False
        self.ivl[j] = iv
        return ok

    def _refs(self, ident: str, obj: dict[str, Any], j: int, service: str | None) -> bool:
        """The references of row ``j``: power, port or gateway (and its VLAN path), street, site."""
        v, city, kind_of, cols = self.v, self.city, self.v.kind_of, self.cols
        ok = True
        power = obj.get("power")
        if power is not None:
            pk = kind_of.get(power) if isinstance(power, str) else None
            if pk == "feeder" or (pk == "site" and city.sites[power].kind in POWER_SITE_KINDS):
                cols["power"][j] = self.code(power)
            else:
                ok = False
                v._ref_problem(ident, "power", power, "a feeder or a power-distributing site", city)
        ok = self._uplink(ident, obj, j, service) and ok
        for key in ("street", "site"):
            val = obj.get(key)
            if val is None:
                continue
            if isinstance(val, str) and kind_of.get(val) == key:
                cols[key][j] = self.code(val)
            else:
                ok = False
                v._ref_problem(ident, key, val, f"a {key}", city)
        return ok

    def _uplink(self, ident: str, obj: dict[str, Any], j: int, service: str | None) -> bool:
        """Exactly one of port and gateway, a path from it to the core, carrying ``service``'s VLAN."""
        v, city, kind_of, cols = self.v, self.city, self.v.kind_of, self.cols
        ok = True
        port, gw = obj.get("port"), obj.get("gateway")
        if (port is None) == (gw is None):
            ok = False
            v.bad(ident, "exactly one of port and gateway must be set, "
                  + ("both are" if port is not None else "neither is"))  # fmt: skip
        via: str | None = None
        if port is not None:
            if isinstance(port, str) and kind_of.get(port) == "port":
                cols["port"][j] = self.code(port)
                via = port
            else:
                ok = False
                v._ref_problem(ident, "port", port, "a switch port", city)
        if gw is not None:
            if isinstance(gw, str) and kind_of.get(gw) == "site" and city.sites[gw].kind == "radio_gateway":
                cols["gateway"][j] = self.code(gw)
                if not v._gw_ok[gw]:
                    ok = False
                    v.bad(ident, f"no path to the core: gateway {gw!r} is not connected to a switch "
                          "that reaches a core switch")  # fmt: skip
                else:
                    via = city.sites[gw].port
            else:
                ok = False
                v._ref_problem(ident, "gateway", gw, "a radio_gateway site", city)
        if via is not None and service is not None:
            ok = self._vlan_path(ident, via, service) and ok
        return ok

    def _vlan_path(self, ident: str, via: str, service: str) -> bool:
        """Whether ``service``'s VLAN is carried from port ``via`` up to a core switch (a problem if not)."""
        pv = self.path_vlans.get(via)
        vlan = self.vlan_of[service]
        if pv is None:
            self.v.bad(ident, f"no path to the core: port {via!r} is on switch "
                       f"{self.city.ports[via].switch!r} whose uplink chain does not reach a core switch")  # fmt: skip
            return False
        if vlan not in pv:
            self.v.bad(ident, f"service {service!r} VLAN {vlan} is not carried on "
                       f"{self.v._vlan_gap(via, vlan, self.city)}")  # fmt: skip
            return False
        return True

    def _cabinet(self, ident: str, kind: Any, cab: Any) -> bool:
        """Lamps, and only lamps, name their cabinet (checked against the devices in :meth:`cabinets`)."""
        if kind == "lamp":
            if cab is None:
                self.v.bad(ident, "a lamp needs its lighting cabinet ('cabinet')")
                return False
            if not isinstance(cab, str):
                self.v.bad(ident, f"'cabinet' must be a device id string, got {_tname(cab)}")
                return False
        elif cab is not None:
            self.v.bad(ident, f"only lamps have a 'cabinet', this device is a {kind}")
            return False
        return True

    def cabinets(self) -> None:
        """Lamps -> their cabinet controller (a second pass: the cabinet may come later in the list)."""
        v, kind_of, refs, cols, ids = self.v, self.v.kind_of, self.city.refs, self.cols, self.ids
        for j, cab in self.cab_ref:
            ci = self.index.get(cab)
            lamp = ids[j]
            if ci is None:
                msg = (
                    f"cabinet {cab!r} does not exist"
                    if cab not in kind_of
                    else (f"cabinet {cab!r} is a {kind_of[cab]}, expected a lighting_cabinet device")
                )
                v.bad(lamp, msg)
            elif self.knd[ci] != self.kind_code["lighting_cabinet"]:
                v.bad(lamp, f"cabinet {cab!r} is a {self.kinds[self.knd[ci]]} device, expected a lighting_cabinet")
            elif cols["port"][j] != cols["port"][ci] or cols["gateway"][j] != cols["gateway"][ci]:
                mine = refs[cols["port"][j]] if cols["port"][j] >= 0 else refs[cols["gateway"][j]]
                theirs = refs[cols["port"][ci]] if cols["port"][ci] >= 0 else refs[cols["gateway"][ci]]
                v.bad(lamp, f"a lamp is reached through its cabinet: it is on {mine!r} but cabinet "
                      f"{cab!r} is on {theirs!r}")  # fmt: skip
            else:
                cols["cabinet"][j] = ci

    def columns(self) -> DeviceColumns:
        """The rows kept, as columns."""
        m, cols = len(self.ids), self.cols
        return DeviceColumns(
            ids=self.ids, index=self.index, families=self.families, kinds=self.kinds, drivers=self.drivers,
            family=self.fam[:m], kind=self.knd[:m], driver=self.drv[:m], service=self.svc[:m], zone=self.zon[:m],
            lon=self.lon[:m], lat=self.lat[:m], interval=self.ivl[:m],
            power=cols["power"][:m], port=cols["port"][:m], gateway=cols["gateway"][:m],
            street=cols["street"][:m], site=cols["site"][:m], cabinet=cols["cabinet"][:m],
        )  # fmt: skip


def validate(data: dict[str, Any], source: str) -> CityData:
    """Validate the content of a city file; raise :class:`CityFileError` listing the problems."""
    return _Validator(data, source).run()
