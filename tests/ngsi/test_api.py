"""``/ngsi-ld/v1/`` on the test city: q, geoQ and paging return exactly the expected entities, bad
queries are 400 ProblemDetails, viewer tokens apply. Expectations come from the model, not from the
code under test."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivers import catalogue
from supervisor.model import CityModel
from supervisor.ngsi.units import UNIT_CODES
from tests.ngsi.conftest import V

BASE = "/ngsi-ld/v1/entities"
BAD = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


def ids(client: TestClient, **params: Any) -> list[str]:
    r = client.get(BASE, params={"limit": 1000} | params, headers=V)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()]


def lamps(model: CityModel, keep: Any = lambda info: True) -> list[str]:
    return sorted(f"urn:ngsi-ld:Streetlight:{d.id}" for d in model.devices.values() if d.kind == "lamp" and keep(d))


def test_every_catalogue_unit_has_its_entry() -> None:
    units = {m.unit for f in catalogue.families().values() for m in f.measures.values()}
    assert units <= set(UNIT_CODES), units - set(UNIT_CODES)


def test_q_on_a_relationship_and_a_number(client: TestClient, model: CityModel) -> None:
    cab = next(d.id for d in model.devices.values() if d.kind == "lighting_cabinet")
    expected = lamps(model, lambda d: d.cabinet == cab)
    q = f"refStreetlightControlCabinet==urn:ngsi-ld:StreetlightControlCabinet:{cab}"
    assert ids(client, type="Streetlight", q=q) == expected
    # lamps report level 20 + (i % 5) * 20, i their rank among all devices: levels above 50 % are 60, 80, 100
    ranks = {d: i for i, d in enumerate(sorted(model.devices))}
    bright = lamps(model, lambda d: 20 + ranks[d.id] % 5 * 20 > 50)
    assert ids(client, type="Streetlight", q="illuminanceLevel>0.5") == bright
    assert ids(client, type="Streetlight", q="illuminanceLevel==0.6,0.8,1") == bright
    assert ids(client, type="Streetlight", q="illuminanceLevel==0.6..1") == bright
    assert ids(client, type="Streetlight", q="illuminanceLevel<=0.5|illuminanceLevel>0.5") == lamps(model)
    mixed = f"(illuminanceLevel>0.5;refStreetlightControlCabinet==\"urn:ngsi-ld:StreetlightControlCabinet:{cab}\")"
    assert ids(client, type="Streetlight", q=mixed) == sorted(set(bright) & set(expected))
    assert ids(client, type="Streetlight", q="nothingLikeThis") == []
    assert ids(client, type="Streetlight", q='status~="^defect"') == []


def test_id_and_id_pattern(client: TestClient, model: CityModel) -> None:
    all_lamps = lamps(model)
    assert ids(client, id=",".join(all_lamps[:3])) == all_lamps[:3]
    assert ids(client, idPattern="^urn:ngsi-ld:Streetlight:") == all_lamps
    assert ids(client, type="Device", idPattern=":sw-") == sorted(f"urn:ngsi-ld:Device:{s}" for s in model.switches)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    x, y = model_xy(a), model_xy(b)
    return math.dist(x, y)


def model_xy(p: tuple[float, float]) -> tuple[float, float]:  # local equirectangular metres
    return (p[0] * 111_320 * math.cos(math.radians(48.856)), p[1] * 110_574)


def test_geo_near_and_within(client: TestClient, model: CityModel) -> None:
    centre = model.devices[lamps(model)[0].rsplit(":", 1)[1]]
    origin = (centre.lon, centre.lat)
    dists = {d.id: _metres(origin, (d.lon, d.lat)) for d in model.devices.values() if d.kind == "lamp"}
    ranked = sorted(dists.values())
    gap, i = max((ranked[i + 1] - ranked[i], i) for i in range(2, len(ranked) - 2))
    assert gap > 4, "no radius stands clear of every lamp"
    radius = round((ranked[i] + ranked[i + 1]) / 2, 1)  # halfway between two lamps: no rounding question
    near = ids(client, type="Streetlight", georel=f"near;maxDistance=={radius:g}", geometry="Point",
               coordinates=f"[{centre.lon},{centre.lat}]")
    assert near == sorted(f"urn:ngsi-ld:Streetlight:{d}" for d, v in dists.items() if v < radius)
    assert 1 < len(near) < len(dists)
    zone = next(iter(model.zones.values()))
    ring = [list(p) for p in zone.coords[0]]
    within = ids(client, type="Streetlight", georel="within", geometry="Polygon", coordinates=str([ring]))
    assert within == lamps(model, lambda d: d.zone == zone.id)


def test_paging_walks_every_entity_once(client: TestClient, model: CityModel) -> None:
    expected = lamps(model)
    seen: list[str] = []
    for offset in range(0, len(expected) + 7, 7):
        r = client.get(BASE, params={"type": "Streetlight", "limit": 7, "offset": offset, "count": "true"}, headers=V)
        assert r.status_code == 200 and r.headers["NGSILD-Results-Count"] == str(len(expected))
        seen += [e["id"] for e in r.json()]
    assert seen == expected
    r = client.get(BASE, params={"type": "Streetlight", "limit": 0, "count": "true"}, headers=V)
    assert r.json() == [] and r.headers["NGSILD-Results-Count"] == str(len(expected))
    r = client.get(BASE, params={"type": "Streetlight", "q": "illuminanceLevel>0.5", "limit": 2, "offset": 1,
                                 "count": "true"}, headers=V)
    bright = ids(client, type="Streetlight", q="illuminanceLevel>0.5")
    assert [e["id"] for e in r.json()] == bright[1:3] and r.headers["NGSILD-Results-Count"] == str(len(bright))


def test_one_entity_both_forms_and_types(client: TestClient, model: CityModel) -> None:
    lamp = lamps(model)[0]
    r = client.get(f"{BASE}/{lamp}", headers=V)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "@context" not in r.json() and 'rel="http://www.w3.org/ns/json-ld#context"' in r.headers["Link"]
    assert r.json()["status"]["type"] == "Property"
    r = client.get(f"{BASE}/{lamp}", params={"options": "keyValues"}, headers=V | {"Accept": "application/ld+json"})
    assert r.headers["content-type"] == "application/ld+json" and r.json()["status"] == "ok"
    assert r.json()["@context"][-1].endswith("ngsi-ld-core-context.jsonld")
    types = client.get("/ngsi-ld/v1/types", headers=V).json()
    assert types["type"] == "EntityTypeList" and "Streetlight" in types["typeList"]
    context = client.get("/ngsi-ld/v1/context.jsonld").json()  # open: it holds no data
    assert context["@context"][-1].endswith("ngsi-ld-core-context.jsonld")
    sensor = next(d.id for d in model.devices.values() if d.kind == "road_sensor")
    assert client.get(f"{BASE}/urn:ngsi-ld:TrafficFlowObserved:{sensor}", headers=V).status_code == 200


@pytest.mark.parametrize("params", [
    {"q": "illuminanceLevel>>1"}, {"q": "(illuminanceLevel>1"}, {"q": "illuminanceLevel>1;"},
    {"q": "illuminanceLevel>1..2"}, {"q": 'status~="("'}, {"q": "1abc==2"}, {"q": ""},
    {"type": "Streetlight", "georel": "near;maxDistance==abc", "geometry": "Point", "coordinates": "[2.3,48.8]"},
    {"type": "Streetlight", "georel": "near;maxDistance==10", "geometry": "Point", "coordinates": "[2.3,"},
    {"type": "Streetlight", "georel": "near;maxDistance==10", "geometry": "Point", "coordinates": "[200,48.8]"},
    {"type": "Streetlight", "georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,0],[0,0]]]"},
    {"type": "Streetlight", "georel": "within", "geometry": "Point", "coordinates": "[2.3,48.8]"},
    {"type": "Streetlight", "georel": "intersects", "geometry": "Point", "coordinates": "[2.3,48.8]"},
    {"type": "Streetlight", "georel": "near;maxDistance==10"},
    {"type": "Streetlight", "limit": "5000"}, {"type": "Streetlight", "limit": "-1"},
    {"type": "Streetlight", "offset": "x"}, {"type": "Streetlight", "limit": "0"},
    {"idPattern": "("}, {}, {"type": "Streetlight", "options": "bogus"}, {"type": "Streetlight", "count": "yes"},
    {"id": "not-a-uri"}, {"id": "urn:ngsi-ld:Streetlight:lamp-000001,lamp 2"},
    {"type": "Streetlight", "geometry": "Point", "coordinates": "[2.3,48.8]"},
    {"type": "Streetlight", "geoproperty": "location"},
])
def test_bad_query_is_400_problem_details(client: TestClient, params: dict[str, str]) -> None:
    r = client.get(BASE, params=params, headers=V)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["type"] == BAD and body["title"] and body["detail"]


def test_not_found_and_unauthorized(client: TestClient) -> None:
    missing_ids = ("urn:ngsi-ld:Streetlight:nope", "urn:ngsi-ld:Nothing:x",
                   "urn:ngsi-ld:TrafficFlowObserved:rs-00001:9")
    for missing in missing_ids:
        r = client.get(f"{BASE}/{missing}", headers=V)
        assert r.status_code == 404 and r.json()["type"].endswith("/ResourceNotFound"), missing
    assert client.get(f"{BASE}/not a uri", headers=V).status_code == 400
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.get(BASE, params={"type": "Streetlight"}, headers=headers)
        assert r.status_code == 401 and r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_without_a_city_it_is_503_problem_details(tmp_path: Any) -> None:
    from supervisor.api import create_app
    from supervisor.config import ApiConfig
    from tests.api.conftest import OPERATOR, VIEWER, make_supervisor

    cfg = ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    with TestClient(create_app(make_supervisor(tmp_path), cfg)) as c:
        for path in (BASE + "?type=Streetlight", BASE + "/urn:ngsi-ld:Streetlight:x", "/ngsi-ld/v1/types"):
            r = c.get(path, headers=V)
            assert r.status_code == 503 and "city" in r.json()["detail"], path
            assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
