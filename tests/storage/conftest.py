from __future__ import annotations

import gzip
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.services import free_port


@pytest.fixture
def closed_port() -> int:
    """A loopback port where nothing listens (connections are refused)."""
    return free_port()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def lines(self) -> list[bytes]:
        raw = gzip.decompress(self.body) if self.headers.get("Content-Encoding") == "gzip" else self.body
        return raw.split(b"\n")


@dataclass
class FakeV2:
    """A local HTTP endpoint speaking the InfluxDB v2 write API shape, recording every request.

    ``responses`` is a queue of (status, body, headers) answered to writes in order; when empty,
    writes get 204. ``reject_substring`` makes any write whose body contains it answer 400
    (to exercise bad-line isolation).
    """

    port: int
    requests: list[Recorded] = field(default_factory=list)
    responses: list[tuple[int, dict[str, object], dict[str, str]]] = field(default_factory=list)
    reject_substring: bytes | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def fake_v2() -> Iterator[FakeV2]:
    state = FakeV2(free_port())
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: dict[str, object] | None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Recorded:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n) if n else b""
            rec = Recorded(self.command, self.path, dict(self.headers.items()), body)
            with lock:
                state.requests.append(rec)
            return rec

        def do_GET(self) -> None:
            self._record()
            if self.path.startswith("/api/v2/buckets"):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                found = [{"name": b} for b in state.buckets if query.get("name") == [b]]
                self._reply(200, {"buckets": found})
            elif self.path.startswith("/api/v2/orgs"):
                self._reply(200, {"orgs": [{"id": "0123456789abcdef", "name": "city"}]})
            elif self.path == "/ping":
                self._reply(204, None)
            else:
                self._reply(404, {"code": "not found", "message": "path not found"})

        def do_POST(self) -> None:
            rec = self._record()
            if self.path == "/api/v2/buckets":
                doc = json.loads(rec.body)
                state.buckets.append(doc["name"])
                self._reply(201, {"id": "b1", "name": doc["name"]})
                return
            with lock:
                queued = state.responses.pop(0) if state.responses else None
            if queued is not None:
                self._reply(*queued)
            elif state.reject_substring is not None and state.reject_substring in b"\n".join(rec.lines()):
                self._reply(400, {"code": "invalid", "message": "unable to parse line"})
            else:
                self._reply(204, None)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
