"""The OpenAPI contract: checked in, exact for the configuration served, with one error body."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from supervisor.api import ApiServer, create_app
from supervisor.api.contract import REGENERATE, dumps, reference_document
from supervisor.api.routes.overrides import OverrideIn
from supervisor.config import ApiConfig
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _ops(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}


def test_checked_in_document_is_the_one_served(sup: Supervisor) -> None:
    cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    server = ApiServer(sup, cfg).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/v1/openapi.json", timeout=5) as resp:
            served = json.loads(resp.read())
    finally:
        server.stop()
    checked_in = json.loads(CHECKED_IN.read_text())
    assert served == checked_in, f"docs/openapi.json differs from the served document: run `{REGENERATE}`"
    # and byte for byte what the make target writes, so a regenerated file has no spurious diff
    assert CHECKED_IN.read_text() == dumps(reference_document()), f"run `{REGENERATE}`"


def test_every_error_shares_the_one_body() -> None:
    for op_id, op in _ops(reference_document()).items():
        for code, answer in op["responses"].items():
            if int(code) >= 400:
                assert answer["content"]["application/json"]["schema"] == ERROR_REF, (op_id, code)


def test_codes_follow_access_with_tokens() -> None:
    ops = _ops(reference_document())
    assert set(ops["devices-get"]["responses"]) == {"200", "401", "404", "422"}
    assert set(ops["overrides-create"]["responses"]) == {"201", "400", "401", "403", "404", "413", "422", "429",
                                                         "503"}
    assert set(ops["alarms-ack"]["responses"]) >= {"401", "403", "404", "409", "413", "429", "400"}
    assert ops["metrics-get"]["security"] == [{"HTTPBearer": []}] and "401" in ops["metrics-get"]["responses"]
    assert ops["health-get"]["security"] == [] and set(ops["health-get"]["responses"]) == {"200"}


@pytest.mark.parametrize(("cfg", "reads_secured", "metrics_secured"), [
    (ApiConfig(), False, False),
    (ApiConfig(operator_tokens=[OPERATOR]), True, False),  # type: ignore[list-item]
    (ApiConfig(viewer_tokens=[VIEWER]), True, True),  # type: ignore[list-item]
])
def test_security_follows_the_configuration(sup: Supervisor, cfg: ApiConfig, reads_secured: bool,
                                             metrics_secured: bool) -> None:
    with TestClient(create_app(sup, cfg)) as c:
        ops = _ops(c.get("/api/v1/openapi.json").json())
        # what the document says is what the API does, without a token
        assert (ops["summary-get"]["security"] != []) is reads_secured
        assert (c.get("/api/v1/summary").status_code == 401) is reads_secured
        assert ("401" in ops["summary-get"]["responses"]) is reads_secured
        assert (ops["metrics-get"]["security"] != []) is metrics_secured
        assert (c.get("/metrics").status_code == 401) is metrics_secured
        assert ops["health-get"]["security"] == []
        # writes always need an operator token; without one configured, 403 and never 401
        assert ops["overrides-delete"]["security"] == [{"HTTPBearer": []}]
        assert ("401" in ops["overrides-delete"]["responses"]) is bool(cfg.operator_tokens)
        assert c.delete("/api/v1/overrides/x").status_code == (401 if cfg.operator_tokens else 403)


def test_override_schema_says_exactly_one_expiry() -> None:
    schema = reference_document()["components"]["schemas"]["OverrideIn"]
    assert schema["oneOf"] == [{"required": ["duration_s"]}, {"required": ["until"]}]
    assert schema["properties"]["duration_s"]["minimum"] == 1
    assert "null" not in json.dumps(schema["properties"]["until"])


def test_null_expiry_is_refused_like_the_schema_says() -> None:
    body = {"device": "lamp-1", "level": 40, "duration_s": 60, "until": None, "user": "alice"}
    with pytest.raises(ValidationError, match="leave the field out rather than sending null"):
        OverrideIn.model_validate(body)
    with pytest.raises(ValidationError, match="leave the field out"):
        OverrideIn.model_validate({"device": "lamp-1", "level": 40, "duration_s": None, "until": 2e9, "user": "a"})
    ok = OverrideIn.model_validate({"device": "lamp-1", "level": 40, "until": 2e9, "user": "a"})
    assert ok.until == 2e9 and ok.duration_s is None


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    r = client.put("/api/v1/commands", json={})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["detail"] == "method PUT not allowed here"
