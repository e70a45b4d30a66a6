"""Rule state survives a SIGKILL: a manual override set through the API before the kill is active
after the restart (the runtime snapshots the rule engine every ``state_save_interval``)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city, write_city
from supervisor.bench.procs import free_port, mosquitto, wait_port
from supervisor.bench.reliability import BROKER_EXTRA, SupervisorProc
from tests.reliability.conftest import report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
OPERATOR = "operator-token-0123456789abcdef"


def _call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_override_survives_sigkill(tmp_path: Path) -> None:
    city = generate_city(seed=1, devices=60)
    lamp = next(d["id"] for d in city["devices"] if d["kind"] == "lamp")
    city_path = write_city(tmp_path / "city.json", seed=1, devices=60)
    api_port = free_port()
    with mosquitto(tmp_path / "mq", persistence=True, extra_conf=BROKER_EXTRA) as broker:
        cfg = {
            "mode": "test", "data_dir": str(tmp_path / "var"), "city": str(city_path), "rules_dir": str(EXAMPLES),
            "state_save_interval": 0.5,
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": "urban-rel-rules"},
            "storage": {"backend": "sqlite", "sqlite_path": "store.sqlite3"},
            "api": {"enabled": True, "port": api_port, "operator_tokens": [OPERATOR]},
        }
        sup = SupervisorProc(tmp_path / "sup", cfg, api=True)
        try:
            sup.start().wait_connected(30)
            wait_port("127.0.0.1", api_port, 30)
            until = time.time() + 3600
            out = _call(api_port, "POST", "/overrides", {"device": lamp, "level": 17.0, "until": until,
                                                          "user": "carol"})
            assert out["active_level"] == 17.0
            state = tmp_path / "var" / "rules-state.json"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and lamp not in (state.read_text() if state.exists() else ""):
                time.sleep(0.1)
            assert lamp in state.read_text(), "the override was not snapshotted"
            sup.kill()
            sup.start().wait_connected(30)
            wait_port("127.0.0.1", api_port, 30)
            why = _call(api_port, "GET", f"/why/{lamp}")
        finally:
            sup.terminate(30)
    manual = [r for r in why["requests"] if str(r.get("source", "")).startswith("manual")]
    report({"fault": "kill_rule_state", "device": lamp, "level_after_restart": why["level"],
            "manual_requests": len(manual), "restored_logged": "restored 1 leased" in sup.log()})
    assert why["level"] == 17.0
    assert len(manual) == 1 and manual[0]["until"] == pytest.approx(until) and "carol" in str(manual[0]["user"])
