"""The alarm list through the API of a supervisor with a city: every source listed, operators act on it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rules import RuleAlarm
from rules._commands import CommandState
from simulators.city import generate_city
from supervisor.api import create_app
from supervisor.config import ApiConfig
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer, make_city_supervisor

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


def test_leak_rule_alarm_and_failed_command_are_listed_and_acknowledgeable(
        c: TestClient, city: Supervisor, model: CityModel) -> None:
    meter, lamp = first(model, "water_meter"), first(model, "lamp")
    now = time.time()
    with city.lock:  # the rule engine's callbacks, as the pipeline thread calls them
        city._on_rule_alarm(RuleAlarm(now, "night-leak", "leak", meter, "raised", "major", f"leak at {meter}"))
        city._on_command(CommandState(lamp, None, None, 40.0, "failed", 3, now, now, None, "no report"))
    body = c.get("/api/v1/alarms", headers=V).json()
    assert body["active"] == 2 and body["total"] == 2
    metrics = c.get("/metrics", headers=V).text  # the gauge counts the one list, not only the network
    assert 'urban_alarms_active{kind="rule:leak",severity="major"} 1' in metrics
    assert 'urban_alarms_active{kind="command",severity="major"} 1' in metrics
    kinds = {a["kind"]: a for a in body["items"]}
    assert set(kinds) == {"rule:leak", "command"}
    assert kinds["rule:leak"]["services"] == ["water"] and kinds["rule:leak"]["position"] is not None
    assert c.get("/api/v1/alarms", params={"kind": "command"}, headers=V).json()["total"] == 1
    assert c.get("/api/v1/alarms", params={"service": "water"}, headers=V).json()["items"][0]["element"] == meter
    for a in kinds.values():
        r = c.post(f"/api/v1/alarms/{a['id']}/ack", json={"user": "alice"}, headers=OP)
        assert r.status_code == 200 and r.json()["alarm"]["acked_by"] == "alice (operator#1)"
    acked = c.get("/api/v1/alarms", params={"state": "acknowledged"}, headers=V).json()
    assert acked["total"] == 2


def test_comment_shelve_detail_and_refusals(c: TestClient, city: Supervisor, model: CityModel) -> None:
    cam = first(model, "camera")
    assert city.alarms is not None
    with city.lock:
        city.alarms.update({cam}, time.time())
    (alarm,) = c.get("/api/v1/alarms", headers=V).json()["items"]
    aid = alarm["id"]
    assert alarm["zones"] and alarm["position"] == [model.devices[cam].lon, model.devices[cam].lat]
    r = c.post(f"/api/v1/alarms/{aid}/comment", json={"user": "bob", "text": "crew sent"}, headers=OP)
    assert r.status_code == 200
    until = time.time() + 3600
    r = c.post(f"/api/v1/alarms/{aid}/shelve", json={"user": "bob", "until": until, "reason": "known"}, headers=OP)
    assert r.status_code == 200 and r.json()["shelved_until"] == until
    assert c.get("/api/v1/alarms", params={"state": "shelved"}, headers=V).json()["total"] == 1
    detail = c.get(f"/api/v1/alarms/{aid}", headers=V).json()
    assert [j["action"] for j in detail["journal"]] == ["raised", "comment", "shelved"]
    assert detail["comments"][0]["user"] == "bob (operator#1)"
    # refusals, each changing nothing
    for path, body in ((f"/api/v1/alarms/{aid}/comment", {"user": "v", "text": "x"}),
                       (f"/api/v1/alarms/{aid}/shelve", {"user": "v", "until": until, "reason": "x"}),
                       (f"/api/v1/alarms/{aid}/ack", {"user": "v"})):
        assert c.post(path, json=body, headers=V).status_code == 403
    for action, body in (("ack", {"user": "x"}), ("comment", {"user": "x", "text": "y"}),
                         ("shelve", {"user": "x", "until": until, "reason": "y"})):
        assert c.post(f"/api/v1/alarms/AL-nope-1/{action}", json=body, headers=OP).status_code == 404
    assert c.get("/api/v1/alarms/AL-nope-1", headers=V).status_code == 404
    with city.lock:
        city.alarms.update(set(), time.time())
    assert c.post(f"/api/v1/alarms/{aid}/ack", json={"user": "x"}, headers=OP).status_code == 409
    r = c.post(f"/api/v1/alarms/{aid}/shelve", json={"user": "x", "until": until, "reason": "y"}, headers=OP)
    assert r.status_code == 409
    assert [j["action"] for j in c.get(f"/api/v1/alarms/{aid}", headers=V).json()["journal"]] == [
        "raised", "comment", "shelved", "cleared"]


def test_maintenance_windows_through_the_api(c: TestClient, city: Supervisor, model: CityModel) -> None:
    cam = first(model, "camera")
    cabinet = next(e for e in model.dependencies(cam) if model.kind_of(e) == "lighting_cabinet")
    now = time.time()
    body = {"element": cabinet, "start": now - 60, "end": now + 3600, "reason": "cabinet works", "user": "alice"}
    assert c.post("/api/v1/maintenance", json=body, headers=V).status_code == 403
    r = c.post("/api/v1/maintenance", json=body, headers=OP)
    assert r.status_code == 201 and r.json()["active"] is True
    wid = r.json()["id"]
    assert city.alarms is not None
    with city.lock:
        city.alarms.update({cam}, time.time())
    (alarm,) = c.get("/api/v1/alarms", headers=V).json()["items"]
    assert alarm["in_maintenance"] == wid
    # bad input: a clear 422, nothing stored
    bad = body | {"start": now + 100, "end": now}
    r = c.post("/api/v1/maintenance", json=bad, headers=OP)
    assert r.status_code == 422 and "before it starts" in r.json()["detail"]
    r = c.post("/api/v1/maintenance", json=body | {"element": "no-such-thing"}, headers=OP)
    assert r.status_code == 422 and "unknown element" in r.json()["detail"]
    assert [w["id"] for w in c.get("/api/v1/maintenance", headers=V).json()["items"]] == [wid]
    assert c.delete(f"/api/v1/maintenance/{wid}", headers=V).status_code == 403
    assert c.delete(f"/api/v1/maintenance/{wid}", headers=OP).status_code == 200
    assert c.delete(f"/api/v1/maintenance/{wid}", headers=OP).status_code == 404
    assert c.get("/api/v1/maintenance", headers=V).json()["items"] == []
