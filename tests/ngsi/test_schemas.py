"""Every NGSI-LD type produced for the test city validates against the official Smart Data Models schemas.

The schemas (``tests/ngsi/smart-data-models/``: unchanged copies; source: Smart Data Models
(smart-data-models.github.io), CC-BY-4.0, see its README.md) describe the **keyValues** form, so each
normalized entity is checked in two steps: (a) its NGSI-LD structure (every attribute a Property,
GeoProperty or Relationship with ``value`` / ``object``), (b) its keyValues projection against
``schema.json`` with ``Draft202012Validator``, every ``$ref`` resolved offline and formats asserted
(``date-time``, ``ipv4``, ``ipv6``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from supervisor.ngsi import ENTITY_TYPES, key_values
from supervisor.ngsi.entities import TYPE_REPOS
from tests.ngsi.conftest import V

SDM = Path(__file__).resolve().parent / "smart-data-models"  # copies, with their attribution (README.md)
#: the remote ``$ref`` targets of the schemas and their local copies
REFS = {
    "https://smart-data-models.github.io/data-models/common-schema.json": "data-models/common-schema.json",
    "https://smart-data-models.github.io/dataModel.Device/device-schema.json": "dataModel.Device/device-schema.json",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json":
        "dataModel.Environment/Environment-schema.json",
}
FORMATS = FormatChecker(formats=("date-time", "ipv4", "ipv6"))


def _registry() -> Registry[Any]:
    resources = [(uri, Resource.from_contents(json.loads((SDM / path).read_text()))) for uri, path in REFS.items()]
    return Registry().with_resources(resources)


def validator(type_: str) -> Draft202012Validator:
    schema = json.loads((SDM / TYPE_REPOS[type_] / type_ / "schema.json").read_text())
    return Draft202012Validator(schema, registry=_registry(), format_checker=FORMATS)


def check_structure(entity: dict[str, Any]) -> None:
    assert entity["id"].startswith(f"urn:ngsi-ld:{entity['type']}:"), entity["id"]
    for name, attr in entity.items():
        if name in ("id", "type", "@context"):
            continue
        assert isinstance(attr, dict), (entity["id"], name)
        kind = attr.get("type")
        assert kind in ("Property", "GeoProperty", "Relationship"), (entity["id"], name, attr)
        if kind == "Relationship":
            objs = attr["object"] if isinstance(attr["object"], list) else [attr["object"]]
            assert objs and all(isinstance(o, str) and o.startswith("urn:ngsi-ld:") for o in objs), (name, attr)
        else:
            assert "value" in attr, (entity["id"], name)
        if kind == "GeoProperty":
            assert attr["value"]["type"] == "Point" and len(attr["value"]["coordinates"]) == 2


def all_of(client: TestClient, type_: str) -> list[dict[str, Any]]:
    r = client.get("/ngsi-ld/v1/entities", params={"type": type_, "limit": 1000},
                   headers=V | {"Accept": "application/ld+json"})
    assert r.status_code == 200, r.text
    return list(r.json())


def test_the_validator_sees_a_wrong_entity() -> None:
    """The check can fail: a Streetlight without its required status, or with a bad one, is refused."""
    v = validator("Streetlight")
    good = {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight", "status": "ok",
            "location": {"type": "Point", "coordinates": [2.35, 48.85]}}
    assert not list(v.iter_errors(good))
    assert list(v.iter_errors({k: val for k, val in good.items() if k != "status"}))
    assert list(v.iter_errors(good | {"status": "fine"}))
    assert list(validator("AirQualityObserved").iter_errors(
        {"id": "a", "type": "AirQualityObserved", "dateObserved": "2026-12-03T10:00:00", "location": good["location"]}))


@pytest.mark.parametrize("type_", ENTITY_TYPES)
def test_every_type_validates_against_its_schema(client: TestClient, type_: str) -> None:
    entities = all_of(client, type_)
    assert entities, f"the test city has no {type_}"
    v = validator(type_)
    for e in entities:
        assert e["@context"][-1] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
        check_structure(e)
        errors = [f"{'/'.join(map(str, err.absolute_path))}: {err.message}" for err in v.iter_errors(key_values(e))]
        assert not errors, f"{e['id']}: {errors}"


def test_live_values_carry_observed_at_and_unit_codes(client: TestClient) -> None:
    cab = all_of(client, "StreetlightControlCabinet")[0]
    assert cab["totalActivePower"]["value"] == pytest.approx(1.2345)  # W -> kW, as the schema says
    assert cab["totalActivePower"]["unitCode"] == "KWT"
    assert cab["energyConsumed"]["unitCode"] == "KWH" and cab["energyConsumed"]["observedAt"].endswith("Z")
    assert len(cab["refStreetlightGroup"]["object"]) == 3  # the whole cabinet, circuits 1 and 2
    water = all_of(client, "WaterConsumptionObserved")[0]
    assert water["waterConsumption"] | {"observedAt": None} == {
        "type": "Property", "value": 1234567, "unitCode": "LTR", "observedAt": None}
    assert water["refGateway"]["object"].startswith("urn:ngsi-ld:Device:")
    air = all_of(client, "AirQualityObserved")[0]
    assert air["no2"]["unitCode"] == "GQ" and air["relativeHumidity"]["value"] == pytest.approx(0.64)
    lamp = all_of(client, "Streetlight")[0]
    assert lamp["refSwitch"]["port"]["value"].startswith(lamp["refSwitch"]["object"].rsplit(":", 1)[-1])


def test_network_devices_are_devices(client: TestClient) -> None:
    devices = {e["id"]: key_values(e) for e in all_of(client, "Device")}
    categories = {tuple(d["category"]) for d in devices.values()}
    assert ("network",) in categories and ("sensor", "multimedia") in categories
    for d in devices.values():  # every refSwitch / refGateway points at a Device that exists
        for ref in ("refSwitch", "refGateway"):
            if ref in d:
                assert d[ref] in devices, (d["id"], ref)
