from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from supervisor.api import ApiServer, create_app
from supervisor.api.server import ApiServerError
from supervisor.config import ApiConfig
from supervisor.runtime import Supervisor

EXPECTED_IDS = {
    "health-get", "metrics-get", "summary-get", "devices-list", "devices-get", "ingest-errors",
    "ingest-dead-letters", "model-layer", "model-element", "model-impact", "model-shared", "model-reload",
    "model-drift", "alarms-list",
    "alarms-ack", "alarms-get", "alarms-comment", "alarms-shelve", "maintenance-list", "maintenance-create",
    "maintenance-delete", "rules-list", "rules-why", "commands-list", "commands-send", "overrides-create",
    "overrides-delete", "opendata-catalogue", "opendata-file", "events-stream", "session-get",
    "model-device-columns", "commands-history",
}


def test_operation_ids_are_stable_and_unique(sup: Supervisor) -> None:
    spec = create_app(sup, ApiConfig()).openapi()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert set(ids) == EXPECTED_IDS
    assert spec["paths"]["/api/v1/devices"]["get"]["operationId"] == "devices-list"
    assert spec["paths"]["/api/v1/alarms/{alarm_id}/ack"]["post"]["operationId"] == "alarms-ack"
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_api_server_serves_health_over_real_http(sup: Supervisor) -> None:
    server = ApiServer(sup, ApiConfig(host="127.0.0.1", port=0)).start()
    try:
        assert server.port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["alive"] is True and body["mqtt_connected"] is False
    finally:
        server.stop()


def test_api_server_port_in_use_fails_clearly(sup: Supervisor, tmp_path: Path) -> None:
    first = ApiServer(sup, ApiConfig(host="127.0.0.1", port=0)).start()
    try:
        with pytest.raises(ApiServerError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            ApiServer(sup, ApiConfig(host="127.0.0.1", port=first.port)).start()
    finally:
        first.stop()
