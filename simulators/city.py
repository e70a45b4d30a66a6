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
    rng = random.Random(seed)
    counts = family_counts(devices)
    n_zones = default_zones(devices) if zones is None else zones
    if n_zones < 1:
        raise ValueError(f"zones must be >= 1, got {n_zones}")
    n_zones = min(n_zones, counts["lighting_cabinet"])  # every zone gets a lighting cabinet
    geo = _Geo((float(center[0]), float(center[1])))

    per_zone = {k: _split(v, n_zones) for k, v in counts.items()}
    w = {
        "lamp": _width(counts["lamp"], 6),
        "cab": _width(counts["lighting_cabinet"], 4),
        "rs": _width(counts["road_sensor"], 5),
        "cam": _width(counts["camera"], 4),
        "wm": _width(counts["water_meter"], 6),
    }
    zw = _width(n_zones, 2)

    # zone cells: each lighting cabinet owns one street block of (street length + margin) x ROW_PITCH
    max_lamps_per_cab = max(math.ceil(per_zone["lamp"][i] / per_zone["lighting_cabinet"][i]) for i in range(n_zones))
    street_len = max(200.0, max_lamps_per_cab * LAMP_SPACING + 60.0)
    block_w = street_len + 40.0
    max_cabs = max(per_zone["lighting_cabinet"])
    cols = max(1, round(math.sqrt(max_cabs * ROW_PITCH / block_w)))
    rows = math.ceil(max_cabs / cols)
    zone_w = cols * block_w + 200.0
    zone_h = rows * ROW_PITCH + 200.0
    grid = math.ceil(math.sqrt(n_zones))
    x_origin = -grid * zone_w / 2
    y_origin = -math.ceil(n_zones / grid) * zone_h / 2

    out_zones: list[dict[str, Any]] = []
    streets: list[dict[str, Any]] = []
    sites: list[dict[str, Any]] = [
        {"id": "core", "kind": "core", "zone": None, "geometry": _point(geo, 0.0, 0.0), "power": "fd-core"}
    ]
    links: list[dict[str, Any]] = []
    feeders: list[dict[str, Any]] = [{"id": "fd-core", "parent": None}]
    core_ports: list[dict[str, Any]] = []
    core_switch: dict[str, Any] = {"id": "sw-core", "site": "core", "core": True, "ports": core_ports}
    switches: list[dict[str, Any]] = [core_switch]
    devs: list[dict[str, Any]] = []
    seq = {"lamp": 0, "cab": 0, "rs": 0, "cam": 0, "wm": 0, "st": 0}

    for zi in range(n_zones):
        z = f"z{zi + 1:0{zw}d}"
        gx, gy = zi % grid, zi // grid
        zx0, zy0 = x_origin + gx * zone_w, y_origin + gy * zone_h
        out_zones.append(
            {
                "id": z,
                "name": f"Zone {zi + 1}",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            geo.pt(zx0, zy0),
                            geo.pt(zx0 + zone_w, zy0),
                            geo.pt(zx0 + zone_w, zy0 + zone_h),
                            geo.pt(zx0, zy0 + zone_h),
                            geo.pt(zx0, zy0),
                        ]
                    ],
                },
            }
        )
        feeder = f"fd-{z}"
        feeders.append({"id": feeder, "parent": None})
        sc = f"sc-{z}"
        scx, scy = zx0 + 50.0, zy0 + 50.0
        sites.append(
            {
                "id": sc,
                "kind": "street_cabinet",
                "zone": z,
                "geometry": _point(geo, scx, scy),
                "power": feeder,
            }
        )
        core_port = f"sw-core:p{zi + 1}"
        core_ports.append({"id": core_port, "vlans": ALL_VLANS})
        line = {"type": "LineString", "coordinates": [geo.pt(scx, scy), geo.pt(0.0, 0.0)]}
        links.append({"id": f"du-{z}", "kind": "duct", "from": sc, "to": "core", "geometry": line})
        links.append({"id": f"fo-{z}", "kind": "fibre", "from": sc, "to": "core", "geometry": line, "duct": f"du-{z}"})
        zsw = f"sw-{z}"
        zports: list[dict[str, Any]] = [{"id": f"{zsw}:up", "vlans": ALL_VLANS}]
        switches.append(
            {
                "id": zsw,
                "site": sc,
                "core": False,
                "ports": zports,
                "uplink": {"port": f"{zsw}:up", "to": core_port, "link": f"fo-{z}"},
            }
        )

        access: dict[str, Any] = {"sw": None, "used": PORTS_PER_ACCESS, "n": 0}

        def next_port(
            x: float,
            y: float,
            vlan: int,
            *,
            z: str = z,
            zsw: str = zsw,
            feeder: str = feeder,
            scx: float = scx,
            scy: float = scy,
            zports: list[dict[str, Any]] = zports,
            access: dict[str, Any] = access,
        ) -> str:
            """A free access port near (x, y), opening a new access switch when the last is full."""
            if access["used"] >= PORTS_PER_ACCESS:
                access["n"] += 1
                n = access["n"]
                asw = f"{zsw}-a{n:02d}"
                site = f"sc-{z}-a{n:02d}"
                sites.append(
                    {
                        "id": site,
                        "kind": "street_cabinet",
                        "zone": z,
                        "geometry": _point(geo, x, y + 15.0),
                        "power": feeder,
                    }
                )
                links.append(
                    {
                        "id": f"fo-{z}-a{n:02d}",
                        "kind": "fibre",
                        "from": site,
                        "to": f"sc-{z}",
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [geo.pt(x, y + 15.0), geo.pt(scx, scy)],
                        },
                    }
                )
                down = f"{zsw}:p{n}"
                zports.append({"id": down, "vlans": ALL_VLANS})
                ports: list[dict[str, Any]] = [{"id": f"{asw}:up", "vlans": ALL_VLANS}]
                access["sw"] = {
                    "id": asw,
                    "site": site,
                    "core": False,
                    "ports": ports,
                    "uplink": {"port": f"{asw}:up", "to": down, "link": f"fo-{z}-a{n:02d}"},
                }
                switches.append(access["sw"])
                access["used"] = 0
            access["used"] += 1
            sw = access["sw"]
            pid = f"{sw['id']}:p{access['used']}"
            sw["ports"].append({"id": pid, "vlans": [vlan]})
            return pid

        n_cab = per_zone["lighting_cabinet"][zi]
        lamps_z = _split(per_zone["lamp"][zi], n_cab)
        rs_z = _split(per_zone["road_sensor"][zi], n_cab)
        cam_z = _split(per_zone["camera"][zi], n_cab)
        street_ids: list[str] = []
        for ci in range(n_cab):
            seq["cab"] += 1
            seq["st"] += 1
            cnum = seq["cab"]
            st = f"st-{seq['st']:0{w['cab']}d}"
            street_ids.append(st)
            col, row = ci % cols, ci // cols
            sx0 = zx0 + 100.0 + col * block_w
            sy = zy0 + 100.0 + row * ROW_PITCH + rng.uniform(-3.0, 3.0)
            streets.append(
                {
                    "id": st,
                    "name": f"Rue {seq['st']}",
                    "zone": z,
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [
                            geo.pt(sx0, sy),
                            geo.pt(sx0 + street_len / 2, sy),
                            geo.pt(sx0 + street_len, sy),
                        ],
                    },
                }
            )
            lc = f"lc-{cnum:0{w['cab']}d}"
            cab = f"cab-{cnum:0{w['cab']}d}"
            sites.append(
                {
                    "id": lc,
                    "kind": "lighting_cabinet",
                    "zone": z,
                    "geometry": _point(geo, sx0, sy - LAMP_OFFSET - 4.0),
                    "power": feeder,
                }
            )
            cab_port = next_port(sx0, sy, _VLAN["lighting"])
            devs.append(
                {
                    "id": cab,
                    "family": "lighting",
                    "kind": "lighting_cabinet",
                    "driver": "lighting_cabinet",
                    "service": "lighting",
                    "zone": z,
                    "geometry": _point(geo, sx0, sy - LAMP_OFFSET - 4.0),
                    "power": lc,
                    "port": cab_port,
                    "street": st,
                    "site": lc,
                    "interval": INTERVALS["lighting"],
                }
            )
            for li in range(lamps_z[ci]):
                seq["lamp"] += 1
                x = sx0 + 30.0 + li * LAMP_SPACING
                side = LAMP_OFFSET if li % 2 == 0 else -LAMP_OFFSET
                devs.append(
                    {
                        "id": f"lamp-{seq['lamp']:0{w['lamp']}d}",
                        "family": "lighting",
                        "kind": "lamp",
                        "driver": "lighting_cabinet",
                        "service": "lighting",
                        "zone": z,
                        "geometry": _point(geo, x, sy + side),
                        "power": lc,
                        "port": cab_port,
                        "street": st,
                        "cabinet": cab,
                        "interval": INTERVALS["lighting"],
                    }
                )
            for ri in range(rs_z[ci]):
                seq["rs"] += 1
                x = sx0 + rng.uniform(10.0, street_len - 10.0)
                devs.append(
                    {
                        "id": f"rs-{seq['rs']:0{w['rs']}d}",
                        "family": "traffic",
                        "kind": "road_sensor",
                        "driver": "road_sensor",
                        "service": "traffic",
                        "zone": z,
                        "geometry": _point(geo, x, sy + (1.5 if ri % 2 else -1.5)),
                        "port": next_port(x, sy, _VLAN["traffic"]),
                        "street": st,
                        "interval": INTERVALS["traffic"],
                    }
                )
            for _ in range(cam_z[ci]):
                seq["cam"] += 1
                x = sx0 + rng.uniform(10.0, street_len - 10.0)
                pole = f"pl-{seq['cam']:0{w['cam']}d}"
                sites.append(
                    {
                        "id": pole,
                        "kind": "pole",
                        "zone": z,
                        "geometry": _point(geo, x, sy - LAMP_OFFSET - 1.0),
                        "power": lc,
                    }
                )
                devs.append(
                    {
                        "id": f"cam-{seq['cam']:0{w['cam']}d}",
                        "family": "cctv",
                        "kind": "camera",
                        "driver": "cctv",
                        "service": "cctv",
                        "zone": z,
                        "geometry": _point(geo, x, sy - LAMP_OFFSET - 1.0),
                        "power": lc,
                        "port": next_port(x, sy, _VLAN["cctv"]),
                        "street": st,
                        "site": pole,
                        "interval": INTERVALS["cctv"],
                    }
                )

        n_wm = per_zone["water_meter"][zi]
        n_gw = math.ceil(n_wm / METERS_PER_GATEWAY) if n_wm else 0
        for gi, wm_count in enumerate(_split(n_wm, n_gw) if n_gw else []):
            gid = f"rg-{z}-{gi + 1:02d}"
            gx_ = zx0 + 100.0 + rng.uniform(0.0, max(1.0, zone_w - 200.0))
            gy_ = zy0 + 100.0 + rng.uniform(0.0, max(1.0, zone_h - 200.0))
            sites.append(
                {
                    "id": gid,
                    "kind": "radio_gateway",
                    "zone": z,
                    "geometry": _point(geo, gx_, gy_),
                    "power": feeder,
                    "port": next_port(gx_, gy_, _VLAN["water"]),
                }
            )
            for _ in range(wm_count):
                seq["wm"] += 1
                ang = rng.uniform(0.0, 2 * math.pi)
                dist = 400.0 * math.sqrt(rng.random())
                x = min(max(gx_ + dist * math.cos(ang), zx0 + 1.0), zx0 + zone_w - 1.0)
                y = min(max(gy_ + dist * math.sin(ang), zy0 + 1.0), zy0 + zone_h - 1.0)
                devs.append(
                    {
                        "id": f"wm-{seq['wm']:0{w['wm']}d}",
                        "family": "water",
                        "kind": "water_meter",
                        "driver": "water_meter",
                        "service": "water",
                        "zone": z,
                        "geometry": _point(geo, x, y),
                        "gateway": gid,
                        "interval": INTERVALS["water"],
                    }
                )

    lon_lo, lat_lo = geo.pt(x_origin - 500.0, y_origin - 500.0)
    lon_hi, lat_hi = geo.pt(-x_origin + 500.0, -y_origin + 500.0)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "crs": "EPSG:2154" if _in_france(geo.lon0, geo.lat0) else "utm",
        "timezone": "Europe/Paris" if _in_france(geo.lon0, geo.lat0) else "UTC",
        "bounds": [lon_lo, lat_lo, lon_hi, lat_hi],
        "zones": out_zones,
        "streets": streets,
        "sites": sites,
        "feeders": feeders,
        "links": links,
        "switches": switches,
        "services": SERVICES,
        "devices": devs,
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
