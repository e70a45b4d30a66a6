from __future__ import annotations

import hmac

import pytest
from fastapi.testclient import TestClient

from supervisor.api import create_app
from supervisor.api.auth import TokenAuth
from supervisor.config import ApiConfig
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer

READ = "/api/v1/devices"
WRITE_BODY = {"device": "lamp-1", "level": 40, "duration_s": 60, "user": "alice"}


def test_read_without_token_is_401_with_challenge(client: TestClient) -> None:
    r = client.get(READ)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in r.json()["detail"]


def test_read_with_bad_token_is_401_and_token_not_echoed(client: TestClient) -> None:
    r = client.get(READ, headers=bearer("not-a-real-token-xyz"))
    assert r.status_code == 401
    assert r.json()["detail"] == "invalid bearer token"
    assert "not-a-real-token-xyz" not in r.text


def test_wrong_scheme_is_401(client: TestClient) -> None:
    r = client.get(READ, headers={"Authorization": f"Basic {VIEWER}"})
    assert r.status_code == 401


@pytest.mark.parametrize("token", [VIEWER, OPERATOR])
def test_viewer_and_operator_may_read(client: TestClient, token: str) -> None:
    assert client.get(READ, headers=bearer(token)).status_code == 200


def test_viewer_on_write_is_403(client: TestClient) -> None:
    r = client.post("/api/v1/overrides", json=WRITE_BODY, headers=bearer(VIEWER))
    assert r.status_code == 403
    assert "operator token" in r.json()["detail"]
    r = client.delete("/api/v1/overrides/lamp-1", headers=bearer(VIEWER))
    assert r.status_code == 403
    r = client.post("/api/v1/commands", json={"device": "x", "action": "switch", "value": True},
                    headers=bearer(VIEWER))
    assert r.status_code == 403


def test_write_without_token_is_401(client: TestClient) -> None:
    assert client.post("/api/v1/alarms/a1/ack", json={"user": "bob"}).status_code == 401


def test_operator_passes_auth_on_write(client: TestClient) -> None:
    # past the auth check, the route answers for itself: no rule engine in this supervisor
    r = client.post("/api/v1/overrides", json=WRITE_BODY, headers=bearer(OPERATOR))
    assert r.status_code == 503
    assert r.json()["detail"].startswith("not configured: no rule engine")


def test_open_reads_when_no_token_configured(open_client: TestClient) -> None:
    assert open_client.get(READ).status_code == 200
    assert open_client.get("/api/v1/summary").status_code == 200


def test_writes_refused_when_no_operator_token_configured(open_client: TestClient) -> None:
    r = open_client.post("/api/v1/overrides", json=WRITE_BODY, headers=bearer("anything"))
    assert r.status_code == 403
    assert "operator_tokens is not configured" in r.json()["detail"]


def test_operator_tokens_alone_close_reads(sup: Supervisor) -> None:
    cfg = ApiConfig(operator_tokens=[OPERATOR])  # type: ignore[list-item]
    with TestClient(create_app(sup, cfg)) as c:
        assert c.get(READ).status_code == 401
        assert c.get(READ, headers=bearer(OPERATOR)).status_code == 200
        # /metrics stays open unless viewer tokens are configured
        assert c.get("/metrics").status_code == 200


def test_metrics_need_a_token_when_viewer_tokens_configured(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(VIEWER)).status_code == 200
    assert client.get("/metrics", headers=bearer(OPERATOR)).status_code == 200


def test_health_is_always_open(client: TestClient) -> None:
    assert client.get("/health").status_code == 200


def test_every_configured_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = TokenAuth(ApiConfig(viewer_tokens=["v1-token-aaaaaaaaaaaa", "v2-token-bbbbbbbbbbbb"],  # type: ignore[list-item]
                               operator_tokens=["op-token-cccccccccccc"]))  # type: ignore[list-item]
    # a match on the first token compared still goes through all of them (no early exit)
    who = auth.identify("op-token-cccccccccccc")
    assert who is not None and who.role == "operator" and who.name == "operator#1"
    assert len(calls) == 3
    calls.clear()
    who = auth.identify("v2-token-bbbbbbbbbbbb")
    assert who is not None and who.role == "viewer" and who.name == "viewer#2"
    assert len(calls) == 3
    calls.clear()
    assert auth.identify("v2-token-bbbbbbbbbbbb-longer") is None
    assert len(calls) == 3
    # digests of equal length are compared, never the raw tokens
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_principal_names_do_not_reveal_tokens() -> None:
    auth = TokenAuth(ApiConfig(operator_tokens=[OPERATOR]))  # type: ignore[list-item]
    who = auth.identify(OPERATOR)
    assert who is not None
    assert OPERATOR not in repr(who)


def test_cors_closed_by_default(client: TestClient) -> None:
    r = client.options(READ, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_configured_origins(sup: Supervisor) -> None:
    cfg = ApiConfig(cors_origins=["https://grafana.city.example"])
    with TestClient(create_app(sup, cfg)) as c:
        ok = c.get(READ, headers={"Origin": "https://grafana.city.example"})
        assert ok.headers["access-control-allow-origin"] == "https://grafana.city.example"
        other = c.get(READ, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
