"""Push mode against a real local NGSI-LD receiver (an HTTP server on loopback, no mock):
every change arrives, only changes are sent, per entity never faster than ``min_interval_s``,
refused entities are counted, and with the receiver down (5 s here, 60 s in the slow test) nothing
is lost and no entity is ever sent older than its last state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.model import CityModel, city_from_dict
from supervisor.ngsi.config import NgsiPushConfig
from supervisor.ngsi.push import UPSERT_PATH, NgsiPusher, _version
from supervisor.runtime import Supervisor
from supervisor.service.facade import Service
from tests.api.conftest import make_city_supervisor
from tests.ngsi.conftest import telemetry
from tests.support.services import free_port


class Receiver:
    """An NGSI-LD upsert endpoint: records every entity it receives, in order; ``refuse`` ids get a 207 error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.refuse: set[str] = set()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == UPSERT_PATH and self.headers["Content-Type"] == "application/ld+json"
                with outer.lock:
                    outer.requests += 1
                    ok = [e for e in body if e["id"] not in outer.refuse]
                    outer.received += ok
                bad = [{"entityId": e["id"], "error": {"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                                                       "title": "refused"}} for e in body if e["id"] in outer.refuse]
                answer = json.dumps({"success": [e["id"] for e in ok], "errors": bad}).encode() if bad else b""
                self.send_response(207 if bad else 204)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def last(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {e["id"]: e for e in self.received}

    def versions(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        with self.lock:
            for e in self.received:
                out.setdefault(e["id"], []).append(_version(e))
        return out


@pytest.fixture
def model() -> CityModel:
    return city_from_dict(generate_city(devices=40, seed=5, air_per_zone=1))


@pytest.fixture
def city(tmp_path: Path, model: CityModel) -> Supervisor:
    return make_city_supervisor(tmp_path, model)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    if r.server is not None:
        r.stop()


def pusher(city: Supervisor, tmp_path: Path, port: int, **kw: Any) -> NgsiPusher:
    options: dict[str, Any] = {"scan_interval_s": 0.2, "min_interval_s": 0.0, "batch_size": 25, "retry_max_s": 1.0,
                               "timeout_s": 2.0} | kw
    cfg = NgsiPushConfig(enabled=True, url=f"http://127.0.0.1:{port}", **options)
    return Service(city).ngsi_pusher(cfg, tmp_path)


def current(city: Supervisor) -> dict[str, dict[str, Any]]:
    """Every entity of the city now, as the broker must end up holding it."""
    total, page = Service(city).ngsi_entities(_all())
    assert total == len(page)
    return {e["id"]: e for e in page}


def _all() -> Any:
    from supervisor.ngsi import ENTITY_TYPES, Query

    return Query(ENTITY_TYPES, limit=1_000_000)


def wait_synced(city: Supervisor, receiver: Receiver, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.last() == current(city):
            return
        time.sleep(0.1)
    want, got = current(city), receiver.last()
    missing = [i for i in want if got.get(i) != want[i]]
    raise AssertionError(f"{len(missing)} of {len(want)} entities not in sync, e.g. {missing[:3]}")


def feed(city: Supervisor, model: CityModel, ts: float) -> None:
    city.pipeline.process(telemetry(model, ts))


def assert_never_older(receiver: Receiver) -> None:
    for entity, versions in receiver.versions().items():
        assert versions == sorted(versions), f"{entity} was sent older than its last state: {versions}"


def test_every_change_arrives_once_and_only_changes(city: Supervisor, model: CityModel, tmp_path: Path,
                                                    receiver: Receiver) -> None:
    feed(city, model, time.time() - 30)
    p = pusher(city, tmp_path, receiver.port).start()
    try:
        wait_synced(city, receiver, 20)
        requests = receiver.requests
        time.sleep(1.0)  # nothing changed: nothing is sent
        assert receiver.requests == requests
        feed(city, model, time.time() - 20)  # a new reading of every device
        wait_synced(city, receiver, 20)
        counts = p.outbox.counts()
        assert counts["pending"] == 0 and counts["failed"] == 0
        # each entity went out once per state it had: static ones once, reporting ones twice
        per_entity = {i: len(v) for i, v in receiver.versions().items()}
        assert set(per_entity.values()) <= {1, 2}
        assert_never_older(receiver)
    finally:
        p.stop()


def test_rate_limited_per_entity(city: Supervisor, model: CityModel, tmp_path: Path, receiver: Receiver) -> None:
    p = pusher(city, tmp_path, receiver.port, min_interval_s=3.0)
    feed(city, model, time.time() - 30)
    p.scan()
    p.flush()
    first = len(receiver.received)
    feed(city, model, time.time() - 20)
    p.scan()
    assert p.flush() == 0  # changed, but sent less than 3 s ago: waits
    time.sleep(3.2)
    assert p.flush() > 0 and len(receiver.received) > first
    p.stop()


def test_refused_entities_are_counted_and_retried_at_their_next_change(
        city: Supervisor, model: CityModel, tmp_path: Path, receiver: Receiver) -> None:
    lamp = next(f"urn:ngsi-ld:Streetlight:{d.id}" for d in model.devices.values() if d.kind == "lamp")
    receiver.refuse = {lamp}
    p = pusher(city, tmp_path, receiver.port)
    feed(city, model, time.time() - 30)
    p.scan()
    p.flush()
    assert p.outbox.counts()["failed"] == 1 and p.stats["refused"] == 1
    receiver.refuse = set()
    feed(city, model, time.time() - 20)
    p.scan()
    p.flush()
    assert receiver.last()[lamp] == current(city)[lamp] and p.outbox.counts()["failed"] == 0
    p.stop()


def outage(city: Supervisor, model: CityModel, tmp_path: Path, receiver: Receiver, down_s: float) -> None:
    p = pusher(city, tmp_path, receiver.port).start()
    try:
        feed(city, model, time.time() - 300)
        wait_synced(city, receiver, 20)
        receiver.stop()
        started = time.monotonic()
        ts = time.time() - 290
        while time.monotonic() - started < down_s:  # states keep changing while the broker is down
            feed(city, model, ts)
            ts += 1
            time.sleep(min(1.0, down_s / 5))
        assert p.stats["retries"] > 0 and p.outbox.counts()["pending"] > 0
        receiver.start()
        wait_synced(city, receiver, 30)
        assert_never_older(receiver)
    finally:
        p.stop()


def test_nothing_lost_while_the_receiver_is_down_5s(city: Supervisor, model: CityModel, tmp_path: Path,
                                                     receiver: Receiver) -> None:
    outage(city, model, tmp_path, receiver, 5.0)


@pytest.mark.slow
def test_nothing_lost_while_the_receiver_is_down_60s(city: Supervisor, model: CityModel, tmp_path: Path,
                                                      receiver: Receiver) -> None:
    outage(city, model, tmp_path, receiver, 60.0)


def test_a_restart_resumes_from_the_outbox(city: Supervisor, model: CityModel, tmp_path: Path,
                                           receiver: Receiver) -> None:
    """Queued while the broker is down, the process stops; a new pusher on the same file sends it all."""
    receiver.stop()
    p = pusher(city, tmp_path, receiver.port)
    feed(city, model, time.time() - 30)
    p.scan()
    p.flush()
    pending = p.outbox.counts()["pending"]
    assert pending == len(current(city))
    p.stop()
    receiver.start()
    again = pusher(city, tmp_path, receiver.port).start()  # scans afresh: the outbox drops what it already has
    try:
        wait_synced(city, receiver, 10)  # the batch that failed waits out its backoff (retry_max_s=1)
    finally:
        again.stop()
    assert receiver.requests <= pending // 25 + 2  # each entity went out once


def test_push_target_is_an_endpoint_production_refuses_plain_http_beyond_loopback() -> None:
    from supervisor.config import ConfigFileError, Insecure, insecurities, load_settings

    def flagged(url: str) -> list[str]:
        s = load_settings(None, ngsi={"push": {"enabled": True, "url": url}})
        return [f.key for f in insecurities(s) if f.name == Insecure.PLAINTEXT_HTTP]

    assert flagged("http://orion.example:1026") == ["ngsi.push.url"]
    assert flagged("https://orion.example:1026") == []
    assert flagged("http://127.0.0.1:1026") == []
    with pytest.raises(ConfigFileError, match=r"ngsi.push.url: required"):
        load_settings(None, ngsi={"push": {"enabled": True}})
    with pytest.raises(ConfigFileError, match=r"http:// or https://"):
        load_settings(None, ngsi={"push": {"url": "file:///etc/passwd"}})


def test_run_starts_the_push(tmp_path: Path, receiver: Receiver, broker: Any) -> None:
    """``urban-supervisor run`` with ``ngsi.push`` sends the city's entities to the broker (real MQTT broker)."""
    import os
    import subprocess
    import sys

    import yaml

    from simulators.city import write_city

    city_file = write_city(tmp_path / "city.json", seed=3, devices=20)
    config = {"mode": "test", "data_dir": str(tmp_path / "var"), "city": str(city_file),
              "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"ngsi-push-{os.getpid()}"},
              "storage": {"backend": "sqlite", "sqlite_path": str(tmp_path / "s.sqlite3"),
                          "spool_dir": str(tmp_path / "spool")},
              "ngsi": {"push": {"enabled": True, "url": f"http://127.0.0.1:{receiver.port}", "scan_interval_s": 0.5}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("URBAN_")}
    done = subprocess.run([sys.executable, "-m", "supervisor", "run", "--config", str(tmp_path / "config.yaml"),
                           "--duration", "6", "--no-api"], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lamps = {f"urn:ngsi-ld:Streetlight:{d['id']}" for d in json.loads(city_file.read_text())["devices"]
             if d["kind"] == "lamp"}
    assert lamps and lamps <= set(receiver.last())
    assert (tmp_path / "var" / "ngsi-outbox.sqlite3").exists()
