"""The public part of the inventory, as GeoJSON: lamps, cabinets, streets and districts.

Only what a citizen may see in the street is published: positions, and the street, district and
cabinet an element belongs to. Never a port, switch, gateway, power feeder, service, address or
credential: the properties are built from an explicit list, not by copying the model's records.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.model import CityModel

Json = dict[str, Any]


def _fc(features: list[Json], name: str) -> Json:
    return {"type": "FeatureCollection", "name": name, "features": features}


def _point(lon: float, lat: float) -> Json:
    return {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}


def inventories(model: CityModel) -> dict[str, Json]:
    """File name -> GeoJSON FeatureCollection."""
    lamps: list[Json] = []
    cabinets: list[Any] = []
    per_cabinet: Counter[str] = Counter()
    for dev in model.devices.values():
        if dev.kind == "lamp":
            per_cabinet[dev.cabinet or ""] += 1
            lamps.append({"type": "Feature", "id": dev.id, "geometry": _point(dev.lon, dev.lat),
                          "properties": {"id": dev.id, "cabinet_id": dev.cabinet, "street_id": dev.street,
                                         "zone_id": dev.zone}})
        elif dev.kind == "lighting_cabinet":
            cabinets.append(dev)
    cab_features = [{"type": "Feature", "id": c.id, "geometry": _point(c.lon, c.lat),
                     "properties": {"id": c.id, "street_id": c.street, "zone_id": c.zone,
                                    "lamps": per_cabinet.get(c.id, 0)}} for c in cabinets]
    streets = [{"type": "Feature", "id": s.id,
                "geometry": {"type": "LineString", "coordinates": [list(p) for p in s.coords]},
                "properties": {"id": s.id, "name": s.name, "zone_id": s.zone}} for s in model.streets.values()]
    zones = [{"type": "Feature", "id": z.id,
              "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring] for ring in z.coords]},
              "properties": {"id": z.id, "name": z.name}} for z in model.zones.values()]
    return {"lamps.geojson": _fc(lamps, "lamps"), "cabinets.geojson": _fc(cab_features, "cabinets"),
            "streets.geojson": _fc(streets, "streets"), "districts.geojson": _fc(zones, "districts")}


INVENTORY_TITLES = {
    "lamps.geojson": ("Street lamps", "Position of every street lamp, with its cabinet, street and district."),
    "cabinets.geojson": ("Lighting cabinets", "Position of every street-lighting cabinet, with its street, district "
                         "and number of lamps."),
    "streets.geojson": ("Streets", "Street geometries: the `street_id` of the traffic dataset."),
    "districts.geojson": ("Districts", "District polygons: the `zone_id` of the lighting, water and air datasets."),
}
