"""Routes that need the network model, the alarm manager and the rule engine, on a generated city."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from simulators.city import generate_city
from supervisor.api import create_app
from supervisor.config import ApiConfig
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer, make_city_supervisor, msg

V, OP = bearer(VIEWER), bearer(OPERATOR)


@pytest.fixture(scope="module")
def model() -> CityModel:
    return city_from_dict(generate_city(devices=60, seed=1))


@pytest.fixture
def city(tmp_path: Path, model: CityModel) -> Supervisor:
    return make_city_supervisor(tmp_path, model)


@pytest.fixture
def c(city: Supervisor) -> Iterator[TestClient]:
    cfg = ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    with TestClient(create_app(city, cfg)) as client:
        yield client


def first(model: CityModel, kind: str) -> str:
    return next(d.id for d in model.devices.values() if d.kind == kind)


def test_device_detail_has_model_and_dependencies(c: TestClient, model: CityModel) -> None:
    lamp = first(model, "lamp")
    d = c.get(f"/api/v1/devices/{lamp}", headers=V).json()
    assert d["model"]["kind"] == "lamp" and d["model"]["cabinet"]
    assert d["dependencies"] == model.dependencies(lamp) and d["dependencies"]
    assert d["state"]["status"] == "ok"
    assert c.get("/api/v1/devices/nope", headers=V).json()["detail"] == (
        "device 'nope' not found in the device state or the network model")


@pytest.mark.parametrize("layer", ["physical", "l2", "l3", "devices"])
def test_layers_are_feature_collections(c: TestClient, model: CityModel, layer: str) -> None:
    r = c.get(f"/api/v1/model/layers/{layer}", headers=V)
    assert r.status_code == 200
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["features"]
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["properties"]["id"] == f["id"]
        assert {"kind", "services"} <= set(f["properties"])
        assert f["geometry"]["type"] in ("Point", "LineString")
        for xy in ([f["geometry"]["coordinates"]] if f["geometry"]["type"] == "Point"
                   else f["geometry"]["coordinates"]):
            assert len(xy) == 2 and -180 <= xy[0] <= 180 and -90 <= xy[1] <= 90
    ids = {f["id"] for f in fc["features"]}
    if layer == "devices":
        assert ids == set(model.devices)
        assert {f["properties"]["status"] for f in fc["features"]} == {"ok"}
    if layer == "physical":
        assert set(model.sites) <= ids and set(model.links) <= ids
        core = next(f for f in fc["features"] if f["id"] == "core")
        assert core["properties"]["services"] == sorted(model.impact("core").services)


def test_layer_unknown_is_422(c: TestClient) -> None:
    assert c.get("/api/v1/model/layers/l7", headers=V).status_code == 422


def test_devices_layer_filter(c: TestClient, model: CityModel) -> None:
    fc = c.get("/api/v1/model/layers/devices", params={"family": "water"}, headers=V).json()
    assert {f["properties"]["family"] for f in fc["features"]} == {"water"}
    assert len(fc["features"]) == sum(1 for d in model.devices.values() if d.family == "water")


def test_element_impact_shared(c: TestClient, model: CityModel) -> None:
    sw = next(iter(s for s in model.switches.values() if not s.core)).id
    e = c.get(f"/api/v1/model/elements/{sw}", headers=V).json()
    assert e["kind"] == "switch" and e["layer"] == "l2" and e["detail"]["site"]
    assert e["dependents"] == sorted(model.dependents(sw)) and e["dependents_total"] == len(model.dependents(sw))
    assert c.get(f"/api/v1/model/elements/{sw}", params={"limit": 1}, headers=V).json()["dependents"] == \
        sorted(model.dependents(sw))[:1]
    assert c.get("/api/v1/model/impact/core", headers=V).json() == model.impact("core").as_dict()
    assert c.get("/api/v1/model/shared", headers=V).json()["elements"] == model.shared_infrastructure()
    for path in ("/api/v1/model/elements/ghost", "/api/v1/model/impact/ghost"):
        r = c.get(path, headers=V)
        assert r.status_code == 404 and "ghost" in r.json()["detail"]


def test_alarms_list_ack_and_history(c: TestClient, city: Supervisor, model: CityModel) -> None:
    cam = first(model, "camera")
    assert city.alarms is not None
    with city.lock:  # what the pipeline thread's periodic work does
        city.alarms.update({cam}, time.time())
    active = c.get("/api/v1/alarms", headers=V).json()
    assert active["active"] == 1
    alarm = active["items"][0]
    assert alarm["element"] == cam and alarm["state"] == "raised"
    assert c.post(f"/api/v1/alarms/{alarm['id']}/ack", json={"user": "alice"}, headers=V).status_code == 403
    r = c.post(f"/api/v1/alarms/{alarm['id']}/ack", json={"user": "alice"}, headers=OP)
    assert r.status_code == 200
    assert r.json()["changed"] is True
    assert r.json()["alarm"]["state"] == "acknowledged" and r.json()["alarm"]["acked_by"] == "alice (operator#1)"
    assert c.post(f"/api/v1/alarms/{alarm['id']}/ack", json={"user": "bob"}, headers=OP).json()["changed"] is False
    assert c.post("/api/v1/alarms/nope/ack", json={"user": "bob"}, headers=OP).status_code == 404
    with city.lock:
        city.alarms.update(set(), time.time())  # recovered: cleared
    assert c.get("/api/v1/alarms", headers=V).json()["active"] == 0
    hist = c.get("/api/v1/alarms", params={"all": "true"}, headers=V).json()
    assert [a["state"] for a in hist["items"]] == ["cleared"]
    r = c.post(f"/api/v1/alarms/{alarm['id']}/ack", json={"user": "bob"}, headers=OP)
    assert r.status_code == 409
    metrics = c.get("/metrics", headers=V).text
    assert "# TYPE urban_alarms_active gauge" in metrics


def test_rules_override_why_commands(c: TestClient, city: Supervisor, model: CityModel) -> None:
    lamp = first(model, "lamp")
    rules = c.get("/api/v1/rules", headers=V).json()
    assert "night-schedule" in rules["rules"] and rules["stats"]["rules"] == len(rules["rules"])
    body = {"device": lamp, "level": 60, "duration_s": 600, "user": "alice"}
    r = c.post("/api/v1/overrides", json=body, headers=OP)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["active_level"] == 60.0 and out["user"] == "alice (operator#1)" and out["until"] > time.time()
    why = c.get(f"/api/v1/why/{lamp}", headers=V).json()
    assert why["level"] == 60.0
    assert why["decisions"] and why["decisions"][0]["output"] == 60.0
    assert "alice (operator#1)" in why["decisions"][0]["text"]
    cmds = c.get("/api/v1/commands", headers=V).json()
    assert cmds["commands"][lamp]["state"] == "pending" and cmds["commands"][lamp]["level"] == 60.0
    assert cmds["counts"]["pending"] >= 1
    # the lamp reports the level: the command is confirmed
    zone = model.devices[lamp].zone
    city.pipeline.process([msg(f"city/{zone}/lighting/{lamp}/telemetry",
                               {"ts": time.time(), "on": True, "level": 60.0, "power": 30.0})])
    confirmed = c.get("/api/v1/commands", params={"state": "confirmed"}, headers=V).json()
    assert lamp in confirmed["commands"]
    assert "urban_rules_commands{state=\"confirmed\"}" in c.get("/metrics", headers=V).text
    assert c.delete(f"/api/v1/overrides/{lamp}", headers=OP).status_code == 200
    assert c.delete(f"/api/v1/overrides/{lamp}", headers=OP).status_code == 404
    assert c.get("/api/v1/why/ghost", headers=V).status_code == 404


@pytest.mark.parametrize(("body", "code"), [
    ({"device": "ghost", "level": 50, "duration_s": 60, "user": "a"}, 404),
    ({"level": 50, "duration_s": 60, "user": "a"}, 422),
    ({"device": "X", "level": 101, "duration_s": 60, "user": "a"}, 422),
    ({"device": "X", "level": 50, "user": "a"}, 422),
    ({"device": "X", "level": 50, "duration_s": 60, "until": 2e9, "user": "a"}, 422),
    ({"device": "X", "level": 50, "until": 1.0, "user": "a"}, 422),
    ({"device": "X", "level": 50, "duration_s": 60, "user": ""}, 422),
])
def test_override_refusals(c: TestClient, model: CityModel, body: dict[str, object], code: int) -> None:
    if body.get("device") == "X":
        body = body | {"device": first(model, "lamp")}
    assert c.post("/api/v1/overrides", json=body, headers=OP).status_code == code


def test_override_of_a_camera_is_422(c: TestClient, model: CityModel) -> None:
    r = c.post("/api/v1/overrides", json={"device": first(model, "camera"), "level": 50, "duration_s": 60,
                                          "user": "a"}, headers=OP)
    assert r.status_code == 422 and "only lighting" in r.json()["detail"]


def test_direct_command_to_model_device(c: TestClient, city: Supervisor, model: CityModel) -> None:
    lamp = first(model, "lamp")
    r = c.post("/api/v1/commands", json={"device": lamp, "action": "switch", "value": False}, headers=OP)
    assert r.status_code == 202
    assert r.json()["topics"] == [f"city/{model.devices[lamp].zone}/lighting/{lamp}/cmd"]
    r = c.post("/api/v1/commands", json={"device": "ghost", "action": "switch", "value": False}, headers=OP)
    assert r.status_code == 404 and "not in the network model" in r.json()["detail"]
