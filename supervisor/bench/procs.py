"""Real service processes for benchmarks and tests: a private Mosquitto on a free loopback port.

Brokers started here set ``max_queued_messages 0`` and ``max_queued_bytes 0``: Mosquitto's stock
configuration silently drops a slow subscriber's messages beyond 1,000 queued, even at QoS 1, while
the publisher still gets its PUBACK.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_range(n: int) -> int:
    """A base port p with p .. p+n-1 free on loopback (bounded search)."""
    start = 20000 + (os.getpid() * 37) % 20000
    for base in range(start, start + 20000, 101):
        socks: list[socket.socket] = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def end_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child if it still runs, wait up to ``timeout`` s, then SIGKILL it and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        if os.geteuid() == 0 and "\nuser " not in f"\n{self.extra_conf}":
            # as root, mosquitto drops to the 'mosquitto' user, which cannot write its persistence
            # file (nor read keys) in our root-owned temporary directory
            lines.append("user root")
        if "allow_anonymous" not in self.extra_conf:
            lines.append("allow_anonymous true")
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf + "\n")

    def start(self) -> Mosquitto:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (run scripts/services.sh)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_conf()
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf_path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)
        return self

    def stop(self, timeout: float = 10) -> None:
        end_process(self.proc, timeout)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


@contextmanager
def mosquitto(
    workdir: Path, port: int = 0, extra_conf: str = "", persistence: bool = False
) -> Iterator[Mosquitto]:
    m = Mosquitto(workdir, port=port, extra_conf=extra_conf, persistence=persistence)
    m.start()
    try:
        yield m
    finally:
        m.stop()
