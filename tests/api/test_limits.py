"""Limits: a refused request gets a clear error and changes nothing (413, 429, 400), and headers."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from simulators.city import generate_city
from supervisor.api import ApiServer, create_app
from supervisor.api.limits import Limits, WriteRateLimiter
from supervisor.config import ApiConfig
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer, make_city_supervisor

OTHER_OPERATOR = "operator-token-two-0123456789abcdef"
OP, OP2, V = bearer(OPERATOR), bearer(OTHER_OPERATOR), bearer(VIEWER)
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def model() -> CityModel:
    return city_from_dict(generate_city(devices=30, seed=2))


@pytest.fixture
def city(tmp_path: Path, model: CityModel) -> Supervisor:
    return make_city_supervisor(tmp_path, model)


def _cfg(**kw: object) -> ApiConfig:
    return ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR, OTHER_OPERATOR], **kw)  # type: ignore[list-item,arg-type]


@pytest.fixture
def c(city: Supervisor) -> Iterator[TestClient]:
    # a slow refill, so the burst is all there is during the test
    with TestClient(create_app(city, _cfg(), Limits(writes_per_second=0.01, write_burst=3))) as client:
        yield client


def lamps(model: CityModel) -> list[str]:
    return [d.id for d in model.devices.values() if d.kind == "lamp"]


def override(device: str) -> dict[str, object]:
    return {"device": device, "level": 30, "duration_s": 600, "user": "alice"}


def overridden(city: Supervisor, device: str) -> bool:
    """Whether the rule engine holds a manual override of ``device`` (the state a write would change)."""
    assert city.rules is not None
    return any(r["source"] == "manual" for r in city.rules.requests(device))


def test_a_normal_override_is_seen_by_overridden(c: TestClient, city: Supervisor, model: CityModel) -> None:
    # the probe the other tests rely on to say "nothing changed" does see a change
    lamp = lamps(model)[0]
    assert not overridden(city, lamp)
    assert c.post("/api/v1/overrides", json=override(lamp), headers=OP).status_code == 201
    assert overridden(city, lamp)


def test_a_1_mib_body_is_413_and_changes_nothing(c: TestClient, city: Supervisor, model: CityModel) -> None:
    lamp = lamps(model)[0]
    body = override(lamp) | {"padding": "x" * MIB}
    r = c.post("/api/v1/overrides", json=body, headers=OP)
    assert r.status_code == 413
    assert r.json()["detail"] == "request body too large: the limit is 65536 bytes"
    assert not overridden(city, lamp)
    assert c.app.state.refusals.too_large == 1  # type: ignore[attr-defined]


def test_a_chunked_body_over_the_limit_is_413(c: TestClient, city: Supervisor, model: CityModel) -> None:
    lamp = lamps(model)[0]
    chunks = iter([b'{"device": "' + lamp.encode() + b'", "user": "a", "level": 30, "duration_s": 60, "x": "',
                   *([b"y" * 16384] * 64), b'"}'])
    r = c.post("/api/v1/overrides", content=chunks, headers=OP | {"Content-Type": "application/json"})
    assert r.status_code == 413
    assert not overridden(city, lamp)


def test_413_is_answered_before_the_body_is_sent(city: Supervisor) -> None:
    """Over real HTTP: the headers announce 1 MiB, the answer comes without a byte of the body sent."""
    server = ApiServer(city, _cfg(host="127.0.0.1", port=0)).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.putrequest("POST", "/api/v1/overrides")
        conn.putheader("Authorization", f"Bearer {OPERATOR}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(MIB))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and b"too large" in resp.read()
        conn.close()
    finally:
        server.stop()


def test_a_burst_of_writes_is_429_with_retry_after(c: TestClient, city: Supervisor, model: CityModel) -> None:
    first, second, third, fourth = lamps(model)[:4]
    for lamp in (first, second, third):
        assert c.post("/api/v1/overrides", json=override(lamp), headers=OP).status_code == 201
    r = c.post("/api/v1/overrides", json=override(fourth), headers=OP)
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 100
    assert "too many writes" in r.json()["detail"]
    assert not overridden(city, fourth)
    assert c.delete(f"/api/v1/overrides/{first}", headers=OP).status_code == 429  # deletes are writes too
    assert overridden(city, first)
    # per token: another operator has its own bucket; reads are not limited
    assert c.post("/api/v1/overrides", json=override(fourth), headers=OP2).status_code == 201
    assert c.get("/api/v1/summary", headers=OP).status_code == 200
    assert c.app.state.refusals.rate_limited == 2  # type: ignore[attr-defined]


def test_the_bucket_refills() -> None:
    now = [0.0]
    rl = WriteRateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert rl.take("a") == 0 and rl.take("a") == 0
    assert rl.take("a") == pytest.approx(0.5)
    assert rl.take("b") == 0  # another key, another bucket
    now[0] = 0.5
    assert rl.take("a") == 0
    assert rl.take("a") > 0


@pytest.mark.parametrize("raw", [b"{", b'{"device": "x", "level": 30,,}', b"\xff\xfe"])
def test_malformed_json_is_400_and_changes_nothing(c: TestClient, city: Supervisor, model: CityModel,
                                                   raw: bytes) -> None:
    lamp = lamps(model)[0]
    r = c.post("/api/v1/overrides", content=raw, headers=OP | {"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("malformed JSON body")
    assert not overridden(city, lamp)
    spec = c.get("/api/v1/openapi.json").json()
    assert "400" in spec["paths"]["/api/v1/overrides"]["post"]["responses"]


def test_schema_violations_stay_422(c: TestClient) -> None:
    r = c.post("/api/v1/overrides", json={"device": "x", "level": 300, "duration_s": 60, "user": "a"}, headers=OP)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "level"]


def test_page_sizes_are_capped(c: TestClient) -> None:
    for path in ("/api/v1/devices", "/api/v1/alarms", "/api/v1/ingest/dead-letters"):
        assert c.get(path, params={"limit": 1000}, headers=V).status_code == 200, path
        assert c.get(path, params={"limit": 1001}, headers=V).status_code == 422, path


def test_security_headers(c: TestClient) -> None:
    for r in (c.get("/api/v1/summary", headers=V), c.get("/api/v1/summary"), c.get("/health")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    page = c.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
