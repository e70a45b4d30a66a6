"""Retention on InfluxDB 2.x: buckets and Flux tasks, provisioned through the HTTP API.

No InfluxDB 2 server runs here: a local HTTP receiver keeps buckets and tasks the way the v2 API
shapes them (``/api/v2/orgs``, ``/api/v2/buckets``, ``/api/v2/tasks``) and records every call.
These tests prove the calls and the generated Flux, not that InfluxDB 2 executes that Flux
(docs/data-protection.md says so).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from supervisor.config import StorageConfig
from supervisor.storage import InfluxV2Sink, retention, schema
from supervisor.storage.writer import make_sink
from tests.storage.conftest import FakeV2
from tests.support.services import free_port

ORG_ID = "0a0b0c0d0e0f0001"


@dataclass
class FakeV2Api:
    port: int
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> bucket
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> task
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]

    def bucket(self, name: str) -> dict[str, Any]:
        (b,) = [b for b in self.buckets.values() if b["name"] == name]
        return b


@pytest.fixture
def v2api() -> Iterator[FakeV2Api]:
    state = FakeV2Api(free_port())
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(n)) if n else None
            parts = urllib.parse.urlsplit(self.path)
            q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
            path, method = parts.path, self.command
            with lock:
                state.calls.append((method, self.path, body))
                if self.headers.get("Authorization") != "Token t0ken-for-tests":
                    return self._reply(401, {"code": "unauthorized", "message": "unauthorized access"})
                if path == "/api/v2/orgs" and method == "GET":
                    return self._reply(200, {"orgs": [{"id": ORG_ID, "name": "city"}] if q.get("org") == "city"
                                             else []})
                if path == "/api/v2/buckets" and method == "GET":
                    found = [b for b in state.buckets.values() if b["name"] == q.get("name")]
                    return self._reply(200, {"buckets": found})
                if path == "/api/v2/buckets" and method == "POST":
                    bid = f"b{len(state.buckets):04d}"
                    state.buckets[bid] = {"id": bid, **body}
                    return self._reply(201, state.buckets[bid])
                if path.startswith("/api/v2/buckets/") and method == "PATCH":
                    state.buckets[path.rsplit("/", 1)[1]].update(body)
                    return self._reply(200, state.buckets[path.rsplit("/", 1)[1]])
                if path == "/api/v2/tasks" and method == "GET":
                    return self._reply(200, {"tasks": list(state.tasks.values())})
                if path == "/api/v2/tasks" and method == "POST":
                    tid = f"t{len(state.tasks):04d}"
                    name = body["flux"].split('name: "', 1)[1].split('"', 1)[0]
                    state.tasks[tid] = {"id": tid, "name": name, "orgID": body["orgID"], "flux": body["flux"],
                                        "status": body["status"]}
                    return self._reply(201, state.tasks[tid])
                if path.startswith("/api/v2/tasks/") and method == "PATCH":
                    state.tasks[path.rsplit("/", 1)[1]].update(body)
                    return self._reply(200, state.tasks[path.rsplit("/", 1)[1]])
                if path.startswith("/api/v2/tasks/") and method == "DELETE":
                    del state.tasks[path.rsplit("/", 1)[1]]
                    return self._reply(204)
                return self._reply(404, {"code": "not found", "message": f"{method} {path}"})

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _cfg(url: str, **retention_cfg: Any) -> StorageConfig:
    return StorageConfig(backend="influx-v2", url=url, org="city", bucket="urban", token="t0ken-for-tests",
                         retention=retention_cfg)


def _sink(cfg: StorageConfig) -> InfluxV2Sink:
    sink = make_sink(cfg)
    assert isinstance(sink, InfluxV2Sink)
    return sink


def test_buckets_and_tasks_are_created_then_left_alone(v2api: FakeV2Api) -> None:
    cfg = _cfg(v2api.url)
    sink = _sink(cfg)
    first = retention.provision(sink, cfg)
    assert first is not None and first.changed
    expected = {"urban": 30 * 86400, "urban_personal_raw": 14 * 86400, "urban_hourly": 730 * 86400,
                "urban_daily": 3650 * 86400}
    assert {b["name"]: b["retentionRules"] for b in v2api.buckets.values()} == {
        n: [{"type": "expire", "everySeconds": s}] for n, s in expected.items()}
    assert all(b["orgID"] == ORG_ID for b in v2api.buckets.values())
    rollups = retention.declare(cfg, "urban", bucket_names=True).rollups
    assert sorted(t["name"] for t in v2api.tasks.values()) == sorted(retention.task_name(r) for r in rollups)
    assert all(t["status"] == "active" for t in v2api.tasks.values())

    v2api.calls.clear()
    second = retention.provision(sink, cfg)
    assert second is not None and not second.changed and second.render().endswith("no change")
    assert v2api.writes() == []  # only lookups
    sink.close()


def test_an_existing_raw_bucket_gets_its_retention_and_a_changed_task_is_updated(v2api: FakeV2Api) -> None:
    v2api.buckets["b9999"] = {"id": "b9999", "name": "urban", "orgID": ORG_ID, "retentionRules": []}  # infinite
    cfg = _cfg(v2api.url)
    sink = _sink(cfg)
    plan = retention.plan_v2(sink, cfg)
    (patch,) = [a for a in plan.actions if a.method == "PATCH"]
    assert patch.path == "/api/v2/buckets/b9999" and patch.text.endswith("infinite -> 30d")
    retention.apply(sink, plan)
    assert v2api.bucket("urban")["retentionRules"] == [{"type": "expire", "everySeconds": 30 * 86400}]

    # a task edited by hand is put back; a stale task of ours is deleted; others' tasks are left alone
    tid = next(t for t in v2api.tasks.values() if t["name"] == "us_hourly_traffic")["id"]
    v2api.tasks[tid]["flux"] = "edited"
    v2api.tasks["t8888"] = {"id": "t8888", "name": "us_hourly_gone", "flux": "x", "orgID": ORG_ID}
    v2api.tasks["t7777"] = {"id": "t7777", "name": "someone_elses", "flux": "y", "orgID": ORG_ID}
    cfg2 = _cfg(v2api.url, personal_raw="7d")
    v2api.calls.clear()
    retention.provision(sink, cfg2)
    writes = sorted((m, p) for m, p, _ in v2api.writes())
    personal_id = v2api.bucket("urban_personal_raw")["id"]
    assert writes == sorted([("PATCH", f"/api/v2/buckets/{personal_id}"), ("PATCH", f"/api/v2/tasks/{tid}"),
                             ("DELETE", "/api/v2/tasks/t8888")])
    assert "someone_elses" in {t["name"] for t in v2api.tasks.values()}
    assert not retention.plan_v2(sink, cfg2).changed
    sink.close()


def test_flux_of_a_task_aggregates_as_the_schema_says() -> None:
    cfg = _cfg("http://127.0.0.1:1")
    decl = retention.declare(cfg, "urban", bucket_names=True)
    by = {(r.tier, r.measurement): r for r in decl.rollups}
    flux = retention.flux_task(by["hourly", "traffic"], "city")
    assert flux.startswith('option task = {name: "us_hourly_traffic", every: 1h, offset: 5m}\n')
    assert 'from(bucket: "urban")' in flux and 'r._measurement == "traffic"' in flux
    assert "group(" not in flux  # every tag kept
    traffic = schema.FAMILIES["traffic"].rollup
    for agg in ("mean", "sum"):
        fields = sorted(f for f, a in traffic.items() if a == agg)
        assert (f'contains(value: r._field, set: [{", ".join(json.dumps(f) for f in fields)}]))\n'
                f'    |> aggregateWindow(every: 1h, fn: {agg}, createEmpty: false, timeSrc: "_start")\n'
                '    |> to(bucket: "urban_hourly", org: "city")') in flux
    water = retention.flux_task(by["daily", "water"], "city")
    assert 'from(bucket: "urban_personal_raw")' in water
    assert 'group(columns: ["_measurement", "_field", "zone"])' in water  # never per meter
    assert '"index"' not in water and 'to(bucket: "urban_daily", org: "city")' in water
    assert "every: 1d" in water and "range(start: -48h)" in water


def test_v2_writer_sends_household_water_to_its_own_bucket(fake_v2: FakeV2) -> None:
    cfg = _cfg(fake_v2.url)
    sink = _sink(cfg)
    lines = [schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0}, 1e9),
             schema.FAMILIES["air"].line({"device": "a-1", "zone": "n"}, {"no2": 1.0}, 1e9)]
    sink.write(b"\n".join(lines), 2)
    writes = {urllib.parse.parse_qs(urllib.parse.urlsplit(r.path).query)["bucket"][0]: r.lines()
              for r in fake_v2.requests if r.path.startswith("/api/v2/write")}
    assert writes == {"urban_personal_raw": [lines[0]], "urban": [lines[1]]}
    sink.close()
