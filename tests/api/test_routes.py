from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer, camera, lamp, msg, traffic

V = bearer(VIEWER)


def feed(sup: Supervisor) -> None:
    sup.pipeline.process(
        [traffic(f"rs-{i:02d}", zone="north" if i % 2 else "centre") for i in range(10)]
        + [lamp("lamp-1"), lamp("lamp-2", level=0.0), camera("cam-1", online=False), camera("cam-2")]
        + [msg("city/centre/traffic/rs-bad/telemetry", {"flow": "lots"}),
           ("city/centre/traffic/rs-x/telemetry", b"{not json", 1, 0, 0.0),
           msg("nowhere/at/all", {"x": 1})]
    )


def test_devices_filters_and_pagination(client: TestClient, sup: Supervisor) -> None:
    feed(sup)
    r = client.get("/api/v1/devices", headers=V)
    body = r.json()
    assert body["total"] == 14
    assert [d["device"] for d in body["items"]] == sorted(d["device"] for d in body["items"])
    r = client.get("/api/v1/devices", params={"family": "traffic", "limit": 3, "offset": 0}, headers=V).json()
    assert r["total"] == 10 and [d["device"] for d in r["items"]] == ["rs-00", "rs-01", "rs-02"]
    r2 = client.get("/api/v1/devices", params={"family": "traffic", "limit": 3, "offset": 9}, headers=V).json()
    assert [d["device"] for d in r2["items"]] == ["rs-09"]
    north = client.get("/api/v1/devices", params={"zone": "north", "family": "traffic"}, headers=V).json()
    assert north["total"] == 5 and all(d["zone"] == "north" for d in north["items"])
    fault = client.get("/api/v1/devices", params={"status": "fault"}, headers=V).json()
    assert [d["device"] for d in fault["items"]] == ["cam-1"]
    assert fault["items"][0]["fault"] == "offline"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "broken"}])
def test_devices_bad_query_is_422(client: TestClient, params: dict[str, object]) -> None:
    assert client.get("/api/v1/devices", params=params, headers=V).status_code == 422


def test_device_detail_and_404(client: TestClient, sup: Supervisor) -> None:
    feed(sup)
    r = client.get("/api/v1/devices/lamp-1", headers=V)
    assert r.status_code == 200
    d = r.json()
    assert d["state"]["values"]["level"] == 70.0 and d["state"]["family"] == "lighting"
    assert d["model"] is None and d["dependencies"] is None  # no network model loaded
    r = client.get("/api/v1/devices/nope", headers=V)
    assert r.status_code == 404
    assert r.json()["detail"] == "device 'nope' not found in the device state"


def test_ingest_errors_and_dead_letters(client: TestClient, sup: Supervisor) -> None:
    feed(sup)
    e = client.get("/api/v1/ingest/errors", headers=V).json()
    assert e["received"] == 17 and e["decoded"] == 14 and e["total"] == 3
    pairs = {(x["driver"], x["reason"]): x["count"] for x in e["by_driver"]}
    assert pairs[("-", "unknown_topic")] == 1
    assert sum(pairs.values()) == 3
    assert sum(e["by_reason"].values()) == 3
    dl = client.get("/api/v1/ingest/dead-letters", headers=V).json()
    assert dl["kept"] == 3 and dl["capacity"] == 1000
    assert dl["items"][0]["topic"] == "nowhere/at/all"  # newest first
    one = client.get("/api/v1/ingest/dead-letters", params={"limit": 1, "reason": "unknown_topic"}, headers=V).json()
    assert [x["reason"] for x in one["items"]] == ["unknown_topic"]


def test_summary(client: TestClient, sup: Supervisor) -> None:
    feed(sup)
    s = client.get("/api/v1/summary", headers=V).json()
    assert s["ingest"]["received"] == 17
    assert s["devices"]["total"] == 14 and s["devices"]["by_status"]["fault"] == 1
    assert s["alarms"] is None


def test_health(client: TestClient, sup: Supervisor) -> None:
    h = client.get("/health").json()
    assert h["alive"] is True
    assert h["mqtt_connected"] is False  # not started: no broker
    assert h["status"] == "degraded"
    assert h["writer_ok"] is True


@pytest.mark.parametrize("path", [
    "/api/v1/model/layers/physical", "/api/v1/model/elements/x", "/api/v1/model/impact/x",
    "/api/v1/model/shared", "/api/v1/rules", "/api/v1/commands", "/api/v1/why/lamp-1",
])
def test_parts_not_configured_answer_503(client: TestClient, path: str) -> None:
    r = client.get(path, headers=V)
    assert r.status_code == 503
    assert r.json()["detail"].startswith("not configured:")


def test_command_to_unknown_device_is_404(client: TestClient) -> None:
    r = client.post("/api/v1/commands", json={"device": "ghost", "action": "set_level", "value": 50},
                    headers=bearer(OPERATOR))
    assert r.status_code == 404
    assert "ghost" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    {"device": "lamp-1", "action": "set_level", "value": 101},
    {"device": "lamp-1", "action": "set_level", "value": True},
    {"device": "lamp-1", "action": "switch", "value": 1},
    {"device": "lamp-1", "action": "explode", "value": 1},
])
def test_command_bad_value_is_422(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/api/v1/commands", json=body, headers=bearer(OPERATOR)).status_code == 422


def test_command_to_known_device_is_published(client: TestClient, sup: Supervisor) -> None:
    feed(sup)
    # the runtime learns a device's driver from the network model at start; set it as start() would
    sup.device_driver["lamp-1"] = "lighting_cabinet"
    r = client.post("/api/v1/commands", json={"device": "lamp-1", "action": "set_level", "value": 60},
                    headers=bearer(OPERATOR))
    assert r.status_code == 202, r.text
    assert r.json()["topics"] == ["city/centre/lighting/lamp-1/cmd"]
    assert sup.mqtt.stats.published == 1
    sup.device_driver["rs-01"] = "road_sensor"
    r = client.post("/api/v1/commands", json={"device": "rs-01", "action": "switch", "value": False},
                    headers=bearer(OPERATOR))
    assert r.status_code == 422
    assert "cannot take this command" in r.json()["detail"]
