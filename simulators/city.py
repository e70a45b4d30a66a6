"""Seeded generator of a consistent layered city (the ``urban-supervisor/city`` file format).

The city is a grid of square-ish zones around ``center``. Each zone has:

- a street cabinet ``sc-zNN`` with the zone (aggregation) switch ``sw-zNN``, uplinked by a fibre
  ``fo-zNN`` laid in a duct ``du-zNN`` to the core switch ``sw-core`` in the core site;
- a power feeder ``fd-zNN`` powering every cabinet and gateway of the zone;
- access switches ``sw-zNN-aMM`` (24 device ports each) in small street cabinets, uplinked by fibre
  to the zone switch;
- one street per lighting cabinet, with its row of lamps; the lighting cabinet (site ``lc-NNNN``,
  controller device ``cab-NNNN``) powers the lamps *and* the cameras on poles of its street
  (the pooling of the pavement network);
- road sensors on the lit streets (adaptive lighting couples them), cameras on poles, both on
  access-switch ports;
- radio gateways on access-switch ports, reaching battery water meters.

Lamps are controlled through their cabinet controller: a lamp's ``port`` is its controller's port
and its ``cabinet`` is the controller, so a lamp depends on the cabinet.

Everything is deterministic for a given seed. The output is a plain ``dict`` ready for JSON.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers import catalogue

FORMAT = "urban-supervisor/city"
VERSION = 1

#: share of each device family (lamps take the remainder)
SHARES = {"lighting_cabinet": 0.04, "road_sensor": 0.12, "camera": 0.09, "water_meter": 0.20}
INTERVALS = {"traffic": 60.0, "lighting": 300.0, "cctv": 60.0, "water": 900.0}
SERVICES: list[dict[str, Any]] = [
    {"id": "lighting", "vlan": 110, "subnet": "10.16.0.0/12", "gateway": "sw-core"},
    {"id": "cctv", "vlan": 120, "subnet": "10.32.0.0/12", "gateway": "sw-core"},
    {"id": "traffic", "vlan": 130, "subnet": "10.48.0.0/12", "gateway": "sw-core"},
    {"id": "water", "vlan": 140, "subnet": "10.64.0.0/12", "gateway": "sw-core"},
]
ALL_VLANS = [s["vlan"] for s in SERVICES]
#: air-quality stations per zone in the cities of ``model generate``, ``simulate`` and ``demo`` (part
#: of their ``--devices``)
DEFAULT_AIR_PER_ZONE = 2
#: the air-quality service, in a city only when it has air stations (``air_per_zone``)
AIR_SERVICE: dict[str, Any] = {"id": catalogue.family("air").service, "vlan": 150, "subnet": "10.80.0.0/12",
                               "gateway": "sw-core"}
_VLAN: dict[str, int] = {s["id"]: s["vlan"] for s in SERVICES}

PORTS_PER_ACCESS = 24
LAMP_SPACING = 30.0  # m between lamps along a street
ROW_PITCH = 50.0  # m between two parallel streets
LAMP_OFFSET = 8.0  # m from the street axis to the lamp (pavement)
METERS_PER_GATEWAY = 500
_M_PER_DEG_LAT = 110_540.0
_M_PER_DEG_LON_EQ = 111_320.0


class _Geo:
    """Local metric plane (east, north) around the centre to WGS84, equirectangular."""

    def __init__(self, center: tuple[float, float]) -> None:
        self.lon0, self.lat0 = center
        self.kx = 1.0 / (_M_PER_DEG_LON_EQ * math.cos(math.radians(self.lat0)))
        self.ky = 1.0 / _M_PER_DEG_LAT

    def pt(self, x: float, y: float) -> list[float]:
        return [round(self.lon0 + x * self.kx, 7), round(self.lat0 + y * self.ky, 7)]


def _split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative integers (largest first)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def family_counts(devices: int) -> dict[str, int]:
    """How many devices of each kind a city of ``devices`` devices has (every kind present)."""
    if devices < 5:
        raise ValueError(f"a generated city needs at least 5 devices (one per kind), got {devices}")
    counts = {k: max(1, round(devices * s)) for k, s in SHARES.items()}
    counts["lamp"] = devices - sum(counts.values())
    if counts["lamp"] < 1:  # pragma: no cover - impossible for devices >= 5 with these shares
        raise ValueError(f"cannot fit lamps in {devices} devices")
    return counts


def default_zones(devices: int) -> int:
    return max(2, min(400, round(math.sqrt(devices / 100))))


def _width(n: int, minimum: int) -> int:
    return max(minimum, len(str(n)))


def generate_city(
    seed: int = 1,
    devices: int = 1000,
    zones: int | None = None,
    center: Sequence[float] = (2.3522, 48.8566),
    name: str = "Simville",
    *,
    air_per_zone: int = 0,
) -> dict[str, Any]:
    """The content of a city file with ``devices`` devices, deterministic for ``seed``.

    ``air_per_zone`` air-quality stations stand in each zone (see :func:`add_air_stations`); they
    are part of the ``devices`` (there are as many fewer lamps).

    The cyclic garbage collector is paused while the (acyclic) dicts are built: at a million
    devices it would otherwise rescan them over and over and triple the generation time.
    """
    if air_per_zone < 0:
        raise ValueError(f"air_per_zone must be >= 0, got {air_per_zone}")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        others, zones = _air_budget(devices, zones, air_per_zone)
        city = _generate(seed, others, zones, center, name)
        if air_per_zone:
            add_air_stations(city, air_per_zone, seed)
        return city
    finally:
        if was_enabled:
            gc.enable()


def _air_budget(devices: int, zones: int | None, per_zone: int) -> tuple[int, int | None]:
    """(devices of the other kinds, zones) when ``per_zone`` air stations per zone are in ``devices``."""
    if not per_zone:
        return devices, zones
    z = default_zones(devices) if zones is None else zones
    while z >= 1:
        others = devices - per_zone * z
        if others < 5:
            raise ValueError(f"a generated city needs at least 5 devices (one per kind) besides its {per_zone * z} "
                             f"air stations ({per_zone} in each of {z} zones), got {devices} in all")
        fitted = min(z, family_counts(others)["lighting_cabinet"])  # as _generate caps the zones
        if fitted == z:
            return others, z
        z = fitted
    return devices, z  # zones < 1: _generate says so


def add_air_stations(city: dict[str, Any], per_zone: int, seed: int) -> None:
    """Add ``per_zone`` air-quality stations to every zone of a generated ``city``, in place.

    A station stands at a seeded spot of its zone, is powered by the zone's feeder and plugged
    into a port of the zone switch on the air service's VLAN, which the trunks then carry. Half of
    the stations sit by a busy road (more NO2 and PM), the others in the urban background.
    """
    rng = random.Random(f"air-{seed}")
    fam = catalogue.family("air")
    kind = fam.kinds[0].name
    city["services"] = [*city["services"], AIR_SERVICE]
    trunk = [*ALL_VLANS, AIR_SERVICE["vlan"]]
    switches = {sw["id"]: sw for sw in city["switches"]}
    for sw in switches.values():
        for port in sw["ports"]:
            if port["vlans"] is ALL_VLANS:  # the trunks (shared list): they now carry the air VLAN too
                port["vlans"] = trunk
    width = _width(len(city["zones"]) * per_zone, 3)
    n = 0
    for zone in city["zones"]:
        ring = zone["geometry"]["coordinates"][0]
        (w, s), (e, north) = ring[0], ring[2]
        zsw = switches[f"sw-{zone['id']}"]
        for k in range(per_zone):
            n += 1
            port = f"{zsw['id']}:aq{k + 1}"
            zsw["ports"].append({"id": port, "vlans": [AIR_SERVICE["vlan"]]})
            lon = round(w + (e - w) * rng.uniform(0.1, 0.9), 7)
            lat = round(s + (north - s) * rng.uniform(0.1, 0.9), 7)
            city["devices"].append({
                "id": f"aq-{n:0{width}d}", "family": fam.name, "kind": kind, "driver": fam.driver,
                "service": AIR_SERVICE["id"], "zone": zone["id"],
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "power": f"fd-{zone['id']}", "port": port, "interval": fam.interval,
                "pollution": round(rng.uniform(1.1, 1.5) if k % 2 == 0 else rng.uniform(0.6, 0.9), 2),
            })


def _generate(seed: int, devices: int, zones: int | None, center: Sequence[float], name: str) -> dict[str, Any]:
    b = _CityBuilder(seed, devices, zones, center)
    for zi in range(b.n_zones):
        b.zone(zi)
    return b.city(name)


@dataclass
class _Zone:
    """The zone being generated: its cell's corner, feeder, street cabinet, switch and open access switch."""

    id: str
    x0: float
    y0: float
    feeder: str
    cabinet_xy: tuple[float, float]
    switch: str
    ports: list[dict[str, Any]]
    access: dict[str, Any] = field(default_factory=dict)  # the access switch being filled
    used: int = PORTS_PER_ACCESS  # its ports in use (full: the first port opens one)
    n_access: int = 0


class _CityBuilder:
    """The lists of a generated city, filled zone by zone; ``rng`` is drawn in one fixed order."""

    def __init__(self, seed: int, devices: int, zones: int | None, center: Sequence[float]) -> None:
        self.rng = random.Random(seed)
        counts = family_counts(devices)
        n_zones = default_zones(devices) if zones is None else zones
        if n_zones < 1:
            raise ValueError(f"zones must be >= 1, got {n_zones}")
        self.n_zones = n_zones = min(n_zones, counts["lighting_cabinet"])  # every zone gets a lighting cabinet
        self.geo = _Geo((float(center[0]), float(center[1])))
        self.per_zone = {k: _split(v, n_zones) for k, v in counts.items()}
        self.w = {
            "lamp": _width(counts["lamp"], 6),
            "cab": _width(counts["lighting_cabinet"], 4),
            "rs": _width(counts["road_sensor"], 5),
            "cam": _width(counts["camera"], 4),
            "wm": _width(counts["water_meter"], 6),
        }
        self.zw = _width(n_zones, 2)
        self._layout()
        self.zones: list[dict[str, Any]] = []
        self.streets: list[dict[str, Any]] = []
        self.sites: list[dict[str, Any]] = [
            {"id": "core", "kind": "core", "zone": None, "geometry": _point(self.geo, 0.0, 0.0), "power": "fd-core"}
        ]
        self.links: list[dict[str, Any]] = []
        self.feeders: list[dict[str, Any]] = [{"id": "fd-core", "parent": None}]
        self.core_ports: list[dict[str, Any]] = []
        core = {"id": "sw-core", "site": "core", "core": True, "ports": self.core_ports}
        self.switches: list[dict[str, Any]] = [core]
        self.devs: list[dict[str, Any]] = []
        self.seq = {"lamp": 0, "cab": 0, "rs": 0, "cam": 0, "wm": 0, "st": 0}

    def _layout(self) -> None:
        """Zone cells: each lighting cabinet owns one street block of (street length + margin) x ROW_PITCH."""
        per_zone, n_zones = self.per_zone, self.n_zones
        max_lamps_per_cab = max(math.ceil(per_zone["lamp"][i] / per_zone["lighting_cabinet"][i])
                                for i in range(n_zones))
        self.street_len = max(200.0, max_lamps_per_cab * LAMP_SPACING + 60.0)
        self.block_w = self.street_len + 40.0
        max_cabs = max(per_zone["lighting_cabinet"])
        self.cols = max(1, round(math.sqrt(max_cabs * ROW_PITCH / self.block_w)))
        rows = math.ceil(max_cabs / self.cols)
        self.zone_w = self.cols * self.block_w + 200.0
        self.zone_h = rows * ROW_PITCH + 200.0
        self.grid = math.ceil(math.sqrt(n_zones))
        self.x_origin = -self.grid * self.zone_w / 2
        self.y_origin = -math.ceil(n_zones / self.grid) * self.zone_h / 2

    def zone(self, zi: int) -> None:
        """Zone ``zi``: its cell, feeder, street cabinet, switch, street blocks and water meters."""
        geo = self.geo
        z = f"z{zi + 1:0{self.zw}d}"
        zx0 = self.x_origin + (zi % self.grid) * self.zone_w
        zy0 = self.y_origin + (zi // self.grid) * self.zone_h
        corners = [(zx0, zy0), (zx0 + self.zone_w, zy0), (zx0 + self.zone_w, zy0 + self.zone_h),
                   (zx0, zy0 + self.zone_h), (zx0, zy0)]
        self.zones.append({"id": z, "name": f"Zone {zi + 1}",
                           "geometry": {"type": "Polygon", "coordinates": [[geo.pt(x, y) for x, y in corners]]}})
        feeder = f"fd-{z}"
        self.feeders.append({"id": feeder, "parent": None})
        sc = f"sc-{z}"
        scx, scy = zx0 + 50.0, zy0 + 50.0
        self.sites.append({"id": sc, "kind": "street_cabinet", "zone": z, "geometry": _point(geo, scx, scy),
                           "power": feeder})
        core_port = f"sw-core:p{zi + 1}"
        self.core_ports.append({"id": core_port, "vlans": ALL_VLANS})
        line = {"type": "LineString", "coordinates": [geo.pt(scx, scy), geo.pt(0.0, 0.0)]}
        self.links.append({"id": f"du-{z}", "kind": "duct", "from": sc, "to": "core", "geometry": line})
        self.links.append({"id": f"fo-{z}", "kind": "fibre", "from": sc, "to": "core", "geometry": line,
                           "duct": f"du-{z}"})
        zsw = f"sw-{z}"
        zports: list[dict[str, Any]] = [{"id": f"{zsw}:up", "vlans": ALL_VLANS}]
        self.switches.append({"id": zsw, "site": sc, "core": False, "ports": zports,
                              "uplink": {"port": f"{zsw}:up", "to": core_port, "link": f"fo-{z}"}})
        zn = _Zone(z, zx0, zy0, feeder, (scx, scy), zsw, zports)
        per_zone = self.per_zone
        n_cab = per_zone["lighting_cabinet"][zi]
        blocks = zip(_split(per_zone["lamp"][zi], n_cab), _split(per_zone["road_sensor"][zi], n_cab),
                     _split(per_zone["camera"][zi], n_cab), strict=True)
        for ci, (lamps, road_sensors, cameras) in enumerate(blocks):
            self._street(zn, ci, lamps, road_sensors, cameras)
        self._water(zn, per_zone["water_meter"][zi])

    def _port(self, zn: _Zone, x: float, y: float, vlan: int) -> str:
        """A free access port near (x, y), opening a new access switch when the last is full."""
        if zn.used >= PORTS_PER_ACCESS:
            zn.access = self._open_access(zn, x, y)
            zn.used = 0
        zn.used += 1
        pid = f"{zn.access['id']}:p{zn.used}"
        zn.access["ports"].append({"id": pid, "vlans": [vlan]})
        return pid

    def _open_access(self, zn: _Zone, x: float, y: float) -> dict[str, Any]:
        """A new access switch in a street cabinet at (x, y + 15 m), fibred to the zone's cabinet."""
        zn.n_access += 1
        n, z, geo = zn.n_access, zn.id, self.geo
        asw = f"{zn.switch}-a{n:02d}"
        site = f"sc-{z}-a{n:02d}"
        self.sites.append({"id": site, "kind": "street_cabinet", "zone": z, "geometry": _point(geo, x, y + 15.0),
                           "power": zn.feeder})
        self.links.append({
            "id": f"fo-{z}-a{n:02d}", "kind": "fibre", "from": site, "to": f"sc-{z}",
            "geometry": {"type": "LineString", "coordinates": [geo.pt(x, y + 15.0), geo.pt(*zn.cabinet_xy)]},
        })
        down = f"{zn.switch}:p{n}"
        zn.ports.append({"id": down, "vlans": ALL_VLANS})
        sw = {"id": asw, "site": site, "core": False, "ports": [{"id": f"{asw}:up", "vlans": ALL_VLANS}],
              "uplink": {"port": f"{asw}:up", "to": down, "link": f"fo-{z}-a{n:02d}"}}
        self.switches.append(sw)
        return sw

    def _street(self, zn: _Zone, ci: int, lamps: int, road_sensors: int, cameras: int) -> None:
        """Street block ``ci`` of a zone: the street, its lighting cabinet, lamps, road sensors and cameras."""
        geo, rng, seq, w = self.geo, self.rng, self.seq, self.w
        seq["cab"] += 1
        seq["st"] += 1
        cnum = seq["cab"]
        st = f"st-{seq['st']:0{w['cab']}d}"
        sx0 = zn.x0 + 100.0 + (ci % self.cols) * self.block_w
        sy = zn.y0 + 100.0 + (ci // self.cols) * ROW_PITCH + rng.uniform(-3.0, 3.0)
        self.streets.append({"id": st, "name": f"Rue {seq['st']}", "zone": zn.id, "geometry": {
            "type": "LineString",
            "coordinates": [geo.pt(sx0, sy), geo.pt(sx0 + self.street_len / 2, sy), geo.pt(sx0 + self.street_len, sy)],
        }})
        lc = f"lc-{cnum:0{w['cab']}d}"
        cab = f"cab-{cnum:0{w['cab']}d}"
        self.sites.append({"id": lc, "kind": "lighting_cabinet", "zone": zn.id,
                           "geometry": _point(geo, sx0, sy - LAMP_OFFSET - 4.0), "power": zn.feeder})
        cab_port = self._port(zn, sx0, sy, _VLAN["lighting"])
        self.devs.append({
            "id": cab, "family": "lighting", "kind": "lighting_cabinet", "driver": "lighting_cabinet",
            "service": "lighting", "zone": zn.id, "geometry": _point(geo, sx0, sy - LAMP_OFFSET - 4.0),
            "power": lc, "port": cab_port, "street": st, "site": lc, "interval": INTERVALS["lighting"],
        })
        for li in range(lamps):
            seq["lamp"] += 1
            side = LAMP_OFFSET if li % 2 == 0 else -LAMP_OFFSET
            self.devs.append({
                "id": f"lamp-{seq['lamp']:0{w['lamp']}d}", "family": "lighting", "kind": "lamp",
                "driver": "lighting_cabinet", "service": "lighting", "zone": zn.id,
                "geometry": _point(geo, sx0 + 30.0 + li * LAMP_SPACING, sy + side),
                "power": lc, "port": cab_port, "street": st, "cabinet": cab, "interval": INTERVALS["lighting"],
            })
        for ri in range(road_sensors):
            seq["rs"] += 1
            x = sx0 + rng.uniform(10.0, self.street_len - 10.0)
            self.devs.append({
                "id": f"rs-{seq['rs']:0{w['rs']}d}", "family": "traffic", "kind": "road_sensor",
                "driver": "road_sensor", "service": "traffic", "zone": zn.id,
                "geometry": _point(geo, x, sy + (1.5 if ri % 2 else -1.5)),
                "port": self._port(zn, x, sy, _VLAN["traffic"]), "street": st, "interval": INTERVALS["traffic"],
            })
        for _ in range(cameras):
            self._camera(zn, st, lc, sx0, sy)

    def _camera(self, zn: _Zone, st: str, lc: str, sx0: float, sy: float) -> None:
        """A camera on its own pole along street ``st``, powered by lighting cabinet ``lc``."""
        self.seq["cam"] += 1
        num = f"{self.seq['cam']:0{self.w['cam']}d}"
        x = sx0 + self.rng.uniform(10.0, self.street_len - 10.0)
        pole = f"pl-{num}"
        where = _point(self.geo, x, sy - LAMP_OFFSET - 1.0)
        self.sites.append({"id": pole, "kind": "pole", "zone": zn.id, "geometry": where, "power": lc})
        self.devs.append({
            "id": f"cam-{num}", "family": "cctv", "kind": "camera", "driver": "cctv", "service": "cctv",
            "zone": zn.id, "geometry": _point(self.geo, x, sy - LAMP_OFFSET - 1.0), "power": lc,
            "port": self._port(zn, x, sy, _VLAN["cctv"]), "street": st, "site": pole, "interval": INTERVALS["cctv"],
        })

    def _water(self, zn: _Zone, n_wm: int) -> None:
        """``n_wm`` water meters of a zone, scattered around radio gateways (one per ``METERS_PER_GATEWAY``)."""
        rng, geo, z = self.rng, self.geo, zn.id
        n_gw = math.ceil(n_wm / METERS_PER_GATEWAY) if n_wm else 0
        for gi, wm_count in enumerate(_split(n_wm, n_gw) if n_gw else []):
            gid = f"rg-{z}-{gi + 1:02d}"
            gx = zn.x0 + 100.0 + rng.uniform(0.0, max(1.0, self.zone_w - 200.0))
            gy = zn.y0 + 100.0 + rng.uniform(0.0, max(1.0, self.zone_h - 200.0))
            self.sites.append({"id": gid, "kind": "radio_gateway", "zone": z, "geometry": _point(geo, gx, gy),
                               "power": zn.feeder, "port": self._port(zn, gx, gy, _VLAN["water"])})
            for _ in range(wm_count):
                self.seq["wm"] += 1
                ang = rng.uniform(0.0, 2 * math.pi)
                dist = 400.0 * math.sqrt(rng.random())
                x = min(max(gx + dist * math.cos(ang), zn.x0 + 1.0), zn.x0 + self.zone_w - 1.0)
                y = min(max(gy + dist * math.sin(ang), zn.y0 + 1.0), zn.y0 + self.zone_h - 1.0)
                self.devs.append({
                    "id": f"wm-{self.seq['wm']:0{self.w['wm']}d}", "family": "water", "kind": "water_meter",
                    "driver": "water_meter", "service": "water", "zone": z, "geometry": _point(geo, x, y),
                    "gateway": gid, "interval": INTERVALS["water"],
                })

    def city(self, name: str) -> dict[str, Any]:
        """The city file's content."""
        geo = self.geo
        lon_lo, lat_lo = geo.pt(self.x_origin - 500.0, self.y_origin - 500.0)
        lon_hi, lat_hi = geo.pt(-self.x_origin + 500.0, -self.y_origin + 500.0)
        in_france = _in_france(geo.lon0, geo.lat0)
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "crs": "EPSG:2154" if in_france else "utm",
            "timezone": "Europe/Paris" if in_france else "UTC",
            "bounds": [lon_lo, lat_lo, lon_hi, lat_hi],
            "zones": self.zones,
            "streets": self.streets,
            "sites": self.sites,
            "feeders": self.feeders,
            "links": self.links,
            "switches": self.switches,
            "services": SERVICES,
            "devices": self.devs,
        }


def _in_france(lon: float, lat: float) -> bool:
    """Lambert-93 (EPSG:2154) is only meaningful over metropolitan France."""
    return -5.5 <= lon <= 10.0 and 41.0 <= lat <= 51.5


def _point(geo: _Geo, x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": geo.pt(x, y)}


def write_city(path: str | Path, **kw: Any) -> Path:
    """Generate a city (``generate_city(**kw)``) and write it as JSON to ``path``."""
    import orjson

    p = Path(path)
    p.write_bytes(orjson.dumps(generate_city(**kw)))
    return p
