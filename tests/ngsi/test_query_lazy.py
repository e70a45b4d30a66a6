"""``q`` and ``geoQ`` are tested on attributes read from the model's columns and the device state,
not on built entities (supervisor/ngsi/view.py, for speed): on the test city, every query of every
type answers exactly what filtering the fully built entities (``options=keyValues``) answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from supervisor.model import CityModel
from supervisor.ngsi.entities import ENTITY_TYPES
from supervisor.ngsi.query import parse_q
from tests.ngsi.conftest import V

BASE = "/ngsi-ld/v1/entities"

QUERIES = [
    "illuminanceLevel>0.5", "illuminanceLevel==0.2..0.6", "powerState==\"on\"", "status==\"ok\"",
    "deviceState==\"ok\"", "deviceState!=\"ok\"", "location.type==\"Point\"", "location", "powerConsumption>=45.2",
    "vehicleFlowRate>400;averageVehicleSpeed<50", "waterConsumption>1000000", "airQualityIndex==2|no2>40",
    "totalActivePower>1", "id~=\":lamp-0000[0-3]\"", "type==\"Device\"", "refDevice", "dateObserved",
    "refStreetlightControlCabinet~=\"cab\";illuminanceLevel<1", "rssi", "category==\"network\"",
    "(illuminanceLevel>0.3;location.type==\"Point\")|refSwitch", "circuitId==\"1\"", "nothingLikeThis",
    "id~=\"[02468]$\";deviceState==\"ok\"", "id~=\"[13579]$\"|powerState==\"off\"",
]


def _all(client: TestClient, type_: str) -> list[dict[str, Any]]:
    r = client.get(BASE, params={"type": type_, "limit": 1000, "options": "keyValues"}, headers=V)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("type_", ENTITY_TYPES)
def test_every_query_answers_what_the_built_entities_answer(client: TestClient, type_: str) -> None:
    every = _all(client, type_)
    assert every, type_
    hits = 0
    for q in QUERIES:
        want = [e["id"] for e in every if parse_q(q)(e)]
        r = client.get(BASE, params={"type": type_, "limit": 1000, "q": q, "count": "true"}, headers=V)
        assert r.status_code == 200, (q, r.text)
        assert [e["id"] for e in r.json()] == want, (type_, q)
        assert r.headers["NGSILD-Results-Count"] == str(len(want))
        hits += bool(want) and len(want) < len(every)
    assert hits, f"{type_}: no query tells its entities apart"


def test_a_page_found_by_q_is_the_built_entity(client: TestClient, model: CityModel) -> None:
    full = {e["id"]: e for e in _all(client, "Streetlight")}
    r = client.get(BASE, params={"type": "Streetlight", "q": "illuminanceLevel>0.5", "limit": 5,
                                 "options": "keyValues"}, headers=V)
    assert r.status_code == 200
    page = r.json()
    assert len(page) == 5 and all(e == full[e["id"]] for e in page)
