"""A small hand-written city in the format of ``simulators.city`` (used until/besides the generator)."""

from __future__ import annotations

from typing import Any


def small_city() -> dict[str, Any]:
    def pt(lon: float, lat: float) -> dict[str, Any]:
        return {"type": "Point", "coordinates": [lon, lat]}

    devices: list[dict[str, Any]] = [
        {"id": "rs-1", "family": "traffic", "kind": "road_sensor", "zone": "centre",
         "geometry": pt(4.83, 45.76),
         "power": "feeder-1", "port": "sw-1/1", "gateway": None, "street": "rue-a", "interval": 60},
        {"id": "rs-2", "family": "traffic", "kind": "road_sensor", "zone": "north",
         "geometry": pt(4.84, 45.77),
         "power": "feeder-2", "port": None, "gateway": "gw-1", "street": "rue-b", "interval": 60},
        {"id": "cab-1", "family": "lighting", "kind": "lighting_cabinet", "zone": "centre",
         "geometry": pt(4.83, 45.761), "power": "feeder-1", "port": "sw-1/2", "gateway": None,
         "street": "rue-a", "interval": 300, "extra_field": {"ignored": True}},
        {"id": "cam-1", "family": "cctv", "kind": "camera", "zone": "centre", "geometry": pt(4.831, 45.76),
         "power": "feeder-1", "port": "sw-1/3", "gateway": None, "street": "rue-a", "interval": 60},
        {"id": "wm-1", "family": "water", "kind": "water_meter", "zone": "north",
         "geometry": pt(4.84, 45.771),
         "power": None, "port": None, "gateway": "gw-1", "street": "rue-b", "interval": 900},
        {"id": "wm-2", "family": "water", "kind": "water_meter", "zone": "north",
         "geometry": pt(4.841, 45.771),
         "power": None, "port": None, "gateway": "gw-2", "street": "rue-b", "interval": 900},
    ]
    for i in range(6):
        devices.append({"id": f"lamp-{i}", "family": "lighting", "kind": "lamp", "zone": "centre",
                        "geometry": pt(4.83 + i * 1e-4, 45.761), "power": "cab-1", "port": None,
                        "gateway": "gw-1", "street": "rue-a", "cabinet": "cab-1", "interval": 300})
    return {"timezone": "Europe/Paris", "bounds": [4.82, 45.75, 4.85, 45.78],
            "zones": [{"id": "centre"}, {"id": "north"}], "streets": [], "devices": devices}
