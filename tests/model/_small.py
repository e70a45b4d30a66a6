"""A small hand-written city, positions given in metres east/north of a reference point.

Layout (metres from REF, x east, y north)::

    street st-main: (0, 0) -> (400, 0)            street st-side: (0, 200) -> (0, 400)
    lamps lamp-1..4 at x = 0, 30, 60, 90, y = +8  (along st-main, cabinet cab-1)
    lamp-5 at (200, 60)                           (off street: 60 m from st-main)
    cab-1 / lc-1 at (-10, -12); cam-1 on pole pl-1 at (150, -9), powered by lc-1
    rs-1 at (120, 1.5); wm-1, wm-2 at (300, 100), (310, 100) via radio gateway rg-1

Network: sw-core (core) <- fo-1 <- sw-1 (site sc-1); sw-1 ports p1 lighting, p2 cctv, p3 traffic,
p4 radio gateway (water). Power: fd-1 -> {core, sc-1, rg-1}; fd-2 (child of fd-1) -> lc-1 -> lamps,
cab-1, pl-1, cam-1.
"""

from __future__ import annotations

import copy
import math
from typing import Any

REF = (2.35, 48.85)
M_LAT = 110_540.0
M_LON = 111_320.0 * math.cos(math.radians(REF[1]))


def ll(x: float, y: float) -> list[float]:
    """Metres east/north of REF to [lon, lat]."""
    return [REF[0] + x / M_LON, REF[1] + y / M_LAT]


def pt(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": ll(x, y)}


def line(*xy: tuple[float, float]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [ll(x, y) for x, y in xy]}


ALL = [10, 20, 30, 40]


#: kind -> (family, driver, service, interval)
KINDS = {
    "lighting_cabinet": ("lighting", "lighting_cabinet", "lighting", 300),
    "lamp": ("lighting", "lighting_cabinet", "lighting", 300),
    "camera": ("cctv", "cctv", "cctv", 60),
    "road_sensor": ("traffic", "road_sensor", "traffic", 60),
    "water_meter": ("water", "water_meter", "water", 900),
}


def _dev(ident: str, kind: str, xy: tuple[float, float], **kw: Any) -> dict[str, Any]:
    family, driver, service, interval = KINDS[kind]
    d = {
        "id": ident,
        "family": family,
        "kind": kind,
        "driver": driver,
        "service": service,
        "zone": "z1",
        "geometry": pt(*xy),
        "power": None,
        "port": None,
        "gateway": None,
        "street": None,
        "cabinet": None,
        "interval": interval,
    }
    d.update(kw)
    return d


def small_city() -> dict[str, Any]:
    lamps = [
        _dev(f"lamp-{i + 1}", "lamp", (x, 8.0), power="lc-1", port="sw-1:p1", street="st-main", cabinet="cab-1")
        for i, x in enumerate([0.0, 30.0, 60.0, 90.0])
    ]
    lamps.append(_dev("lamp-5", "lamp", (200.0, 60.0), power="lc-1", port="sw-1:p1", cabinet="cab-1"))
    city: dict[str, Any] = {
        "format": "urban-supervisor/city",
        "version": 1,
        "name": "Smallville",
        "crs": "EPSG:2154",
        "timezone": "Europe/Paris",
        "bounds": [*ll(-1000, -1000), *ll(1000, 1000)],
        "zones": [
            {
                "id": "z1",
                "name": "Centre",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[ll(-500, -500), ll(500, -500), ll(500, 500), ll(-500, 500), ll(-500, -500)]],
                },
            }
        ],
        "streets": [
            {"id": "st-main", "name": "Main street", "zone": "z1", "geometry": line((0, 0), (400, 0))},
            {"id": "st-side", "name": "Side street", "zone": "z1", "geometry": line((0, 200), (0, 400))},
        ],
        "feeders": [{"id": "fd-1", "parent": None}, {"id": "fd-2", "parent": "fd-1"}],
        "sites": [
            {"id": "core", "kind": "core", "zone": "z1", "geometry": pt(-400, -400), "power": "fd-1"},
            {"id": "sc-1", "kind": "street_cabinet", "zone": "z1", "geometry": pt(-20, -20), "power": "fd-1"},
            {"id": "lc-1", "kind": "lighting_cabinet", "zone": "z1", "geometry": pt(-10, -12), "power": "fd-2"},
            {"id": "pl-1", "kind": "pole", "zone": "z1", "geometry": pt(150, -9), "power": "lc-1"},
            {
                "id": "rg-1",
                "kind": "radio_gateway",
                "zone": "z1",
                "geometry": pt(305, 90),
                "power": "fd-1",
                "port": "sw-1:p4",
            },
        ],
        "links": [
            {"id": "du-1", "kind": "duct", "from": "sc-1", "to": "core", "geometry": line((-20, -20), (-400, -400))},
            {
                "id": "fo-1",
                "kind": "fibre",
                "from": "sc-1",
                "to": "core",
                "duct": "du-1",
                "geometry": line((-20, -20), (-400, -400)),
            },
        ],
        "switches": [
            {"id": "sw-core", "site": "core", "core": True, "ports": [{"id": "sw-core:p1", "vlans": ALL}]},
            {
                "id": "sw-1",
                "site": "sc-1",
                "core": False,
                "ports": [
                    {"id": "sw-1:up", "vlans": ALL},
                    {"id": "sw-1:p1", "vlans": [10]},
                    {"id": "sw-1:p2", "vlans": [20]},
                    {"id": "sw-1:p3", "vlans": [30]},
                    {"id": "sw-1:p4", "vlans": [40]},
                ],
                "uplink": {"port": "sw-1:up", "to": "sw-core:p1", "link": "fo-1"},
            },
        ],
        "services": [
            {"id": "lighting", "vlan": 10, "subnet": "10.10.0.0/16", "gateway": "sw-core"},
            {"id": "cctv", "vlan": 20, "subnet": "10.20.0.0/16", "gateway": "sw-core"},
            {"id": "traffic", "vlan": 30, "subnet": "10.30.0.0/16", "gateway": "sw-core"},
            {"id": "water", "vlan": 40, "subnet": "10.40.0.0/16", "gateway": "sw-core"},
        ],
        "devices": [
            _dev(
                "cab-1", "lighting_cabinet", (-10.0, -12.0), power="lc-1", port="sw-1:p1", site="lc-1", street="st-main"
            ),
            *lamps,
            _dev("cam-1", "camera", (150.0, -9.0), power="lc-1", port="sw-1:p2", site="pl-1", street="st-main"),
            _dev("rs-1", "road_sensor", (120.0, 1.5), port="sw-1:p3", street="st-main"),
            _dev("wm-1", "water_meter", (300.0, 100.0), gateway="rg-1"),
            _dev("wm-2", "water_meter", (310.0, 100.0), gateway="rg-1"),
        ],
    }
    return copy.deepcopy(city)


def find(city: dict[str, Any], key: str, ident: str) -> dict[str, Any]:
    """The object ``ident`` of the list ``key`` (for tests that break one thing)."""
    for obj in city[key]:
        if obj["id"] == ident:
            return obj  # type: ignore[no-any-return]
    raise KeyError(ident)
