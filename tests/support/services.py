"""Real services for integration tests: a private Mosquitto per test, InfluxDB databases.

Nothing here mocks a service. Brokers that take load set ``max_queued_messages 0`` because
Mosquitto's stock configuration silently drops a slow subscriber's messages beyond 1,000 queued,
even at QoS 1, while the publisher still gets its PUBACK.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

INFLUX_URL = os.environ.get("URBAN_TEST_INFLUX_URL", "http://127.0.0.1:8086")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A private mosquitto process on a free loopback port."""

    workdir: Path
    port: int = 0
    extra_conf: str = ""
    persistence: bool = False
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    conf_path: Path = field(init=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port()
        self.conf_path = self.workdir / "mosquitto.conf"

    def write_conf(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.workdir}/mosquitto.log",
        ]
        if "allow_anonymous" not in self.extra_conf:
            lines.append("allow_anonymous true")
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf + "\n")

    def start(self) -> Mosquitto:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (run scripts/services.sh)")
        self.write_conf()
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf_path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)
        return self

    def stop(self, timeout: float = 10) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


@contextmanager
def mosquitto(workdir: Path, **kw: object) -> Iterator[Mosquitto]:
    workdir.mkdir(parents=True, exist_ok=True)
    m = Mosquitto(workdir, **kw)  # type: ignore[arg-type]
    m.start()
    try:
        yield m
    finally:
        m.stop()


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
