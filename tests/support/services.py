"""Real services for integration tests: a private Mosquitto per test, InfluxDB databases.

Nothing here mocks a service. Brokers that take load set ``max_queued_messages 0`` because
Mosquitto's stock configuration silently drops a slow subscriber's messages beyond 1,000 queued,
even at QoS 1, while the publisher still gets its PUBACK.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
import uuid

from supervisor.bench.procs import Mosquitto, free_port, mosquitto, wait_port

__all__ = ["INFLUX_URL", "Influx", "Mosquitto", "free_port", "mosquitto", "wait_port"]

INFLUX_URL = os.environ.get("URBAN_TEST_INFLUX_URL", "http://127.0.0.1:8086")


class Influx:
    """Minimal InfluxDB 1.x HTTP client for tests (queries and database lifecycle)."""

    def __init__(self, url: str = INFLUX_URL) -> None:
        self.url = url.rstrip("/")

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=2) as r:
                return r.status == 204
        except OSError:
            return False

    def query(self, q: str, db: str | None = None, epoch: str = "ms") -> list[dict[str, object]]:
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=60) as r:
            body = json.loads(r.read())
        results = body.get("results", [])
        for res in results:
            if "error" in res:
                raise RuntimeError(f"InfluxQL error for {q!r}: {res['error']}")
        return results  # type: ignore[no-any-return]

    def series(self, q: str, db: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for res in self.query(q, db):
            out.extend(res.get("series", []))  # type: ignore[arg-type]
        return out

    def scalar(self, q: str, db: str) -> object:
        s = self.series(q, db)
        if not s:
            return None
        values = s[0]["values"]
        return values[0][1] if values else None  # type: ignore[index]

    def create(self, name: str | None = None) -> str:
        name = name or f"urban_test_{uuid.uuid4().hex[:10]}"
        self.query(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')
