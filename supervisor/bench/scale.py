"""``bench scale``: drain rate of 1 to N zone-partitioned workers (``run --workers N``).

The same pre-generated telemetry of a generated city (QoS 1) is queued once for every consumer
(persistent sessions), then each consumer drains it in turn, so no publisher shares the CPU with
the consumer being measured:

- baselines: ``mosquitto_sub`` to /dev/null (the broker's delivery rate) and a bare paho subscriber
  that only counts (the Python ceiling of one process);
- ``urban-supervisor run --workers N --config FILE`` for N = 1 .. ``--max-workers`` (the real CLI,
  zones partitioned, one process per worker), timed from the first poll that saw messages until
  every message was received and every point confirmed by InfluxDB; the points are then counted
  in a fresh database (``lost`` must be 0);
- the InfluxDB ceiling: pre-built line protocol posted (gzip, 5,000 lines a batch) by 1 and by 2
  concurrent writers, converted to messages/s with the points-per-message ratio of the load.

The report says which resource bounds the largest N: the broker (workers reach its drain rate),
InfluxDB (workers reach its write ceiling), or the CPU (more processes than cores; the broker and
InfluxDB run on the same machine here).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from supervisor.bench._load import PahoCounter, PublisherProcess, mosquitto_sub_drain, mosquitto_sub_session
from supervisor.bench.procs import end_process, free_port_range, mosquitto
from supervisor.bench.report import CpuMeter, bench_db, count_points, influx, influxd_pid, rss_mb

NAME = "scale"
HELP = "drain msg/s of 1..N zone-partitioned workers (run --workers N) vs mosquitto_sub, bare paho, InfluxDB"
TOPIC = "city/#"
CHUNK = 250_000  # messages per publisher file: bounds the publisher's memory


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale")
    g.add_argument("--scale-messages", type=int, default=None, help="messages (default 200000, quick 6000)")
    g.add_argument("--scale-devices", type=int, default=20000, help="devices of the generated city (quick 2000)")
    g.add_argument("--max-workers", type=int, default=2, help="largest worker count measured (default 2)")


# -- shared with bench storm ---------------------------------------------------------------------


def write_chunks(work: Path, city: dict[str, Any], count: int, seed: int = 1,
                 hours_back: float = 12.0) -> tuple[list[Path], dict[str, int]]:
    """``count`` telemetry messages of ``city`` written to publisher files of CHUNK messages (streamed).

    Returns the files and the expected points per measurement.
    """
    from simulators.telemetry import CityTelemetry

    tel = CityTelemetry(city, seed=seed, origin=time.time() - hours_back * 3600)

    def gen() -> Iterator[Any]:
        for _ in range(100_000_000):
            yield from tel.due(tel.next_due())

    expected: dict[str, int] = {}
    paths: list[Path] = []
    f = None
    try:
        for i, m in enumerate(gen()):
            if i >= count:
                break
            if i % CHUNK == 0:
                if f is not None:
                    f.close()
                paths.append(work / f"messages-{len(paths):03d}.jsonl")
                f = open(paths[-1], "wb")  # noqa: SIM115 - one file per chunk, closed below
            f.write(orjson.dumps([m.topic, m.payload.decode()]) + b"\n")  # type: ignore[union-attr]
            expected[m.measurement] = expected.get(m.measurement, 0) + m.points
            if m.events:
                expected["events"] = expected.get("events", 0) + m.events
    finally:
        if f is not None:
            f.close()
    return paths, expected


def publish_chunks(host: str, port: int, paths: list[Path], parallel: int = 2) -> dict[str, Any]:
    """Publish every file (``parallel`` publisher processes at a time, each waiting for its PUBACKs)."""
    t0 = time.monotonic()
    sent = acked = 0
    for i in range(0, len(paths), parallel):
        pubs = [PublisherProcess(host, port, p) for p in paths[i:i + parallel]]
        for pub in pubs:
            r = pub.wait(timeout=3600)
            sent += r["sent"]
            acked += r["acked"]
    elapsed = time.monotonic() - t0
    return {"sent": sent, "acked": acked, "seconds": round(elapsed, 2), "rate_msg_s": round(sent / elapsed)}




class WorkerSet:
    """``urban-supervisor run --workers N`` as one process tree, observed through each worker's API."""

    def __init__(self, work: Path, name: str, n: int, *, mqtt_port: int, influx_url: str, database: str,
                 city_path: Path | None, extra: dict[str, Any] | None = None) -> None:
        self.n = n
        self.base = free_port_range(n)
        self.cfg = work / f"{name}.yaml"
        cfg: dict[str, Any] = {
            "mode": "test", "log_level": "WARNING", "data_dir": str(work / name),
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": name},
            "storage": {"backend": "influx-v1", "url": influx_url, "database": database},
            "api": {"host": "127.0.0.1", "port": self.base},
        }
        if city_path is not None:
            cfg["city"] = str(city_path)
        for k, v in (extra or {}).items():  # e.g. rules_dir, or mqtt settings merged into the section
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
        self.cfg.write_text(json.dumps(cfg))
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0.0
        self.first: tuple[float, int] | None = None
        self.on_first: Callable[[], None] | None = None  # called when the first messages are seen

    def start(self) -> WorkerSet:
        exe = Path(sys.executable).with_name("urban-supervisor")
        self.proc = subprocess.Popen([str(exe), "run", "--config", str(self.cfg), "--workers", str(self.n)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.first = None
        return self

    def summaries(self) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for i in range(self.n):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.base + i}/api/v1/summary", timeout=2) as r:
                    out.append(json.loads(r.read()))
            except OSError:
                out.append(None)
        if self.proc is not None:
            self.peak_rss = max(self.peak_rss, self._tree_rss(self.proc.pid))
        return out

    @staticmethod
    def _tree_rss(pid: int) -> float:
        total = rss_mb(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return total
        return total + sum(rss_mb(int(c)) for c in children)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.summaries()
            if all(x is not None and x["mqtt"]["connected"] for x in s):
                time.sleep(0.3)  # SUBACK
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"run --workers {self.n} exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.n} workers did not connect in {timeout}s")

    def totals(self) -> dict[str, int] | None:
        s = self.summaries()
        if any(x is None for x in s):
            return None
        firsts = [x["ingest"].get("first_received") for x in s if x]
        lasts = [x["storage"].get("last_write_at") for x in s if x]
        return {"received": sum(x["ingest"]["received"] for x in s if x),
                "points": sum(x["ingest"]["points"] for x in s if x),
                "pending": sum(x["storage"]["pending"] for x in s if x),
                "errors": sum(x["ingest"]["errors"] for x in s if x),
                # the workers' own clocks: first message received, last batch InfluxDB accepted
                "first_received": min((f for f in firsts if f), default=0.0),
                "last_write_at": max((t for t in lasts if t), default=0.0)}

    def wait_stored(self, received: int, points: int, timeout: float) -> float:
        """Monotonic time at which every worker together received ``received`` and wrote ``points``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.totals()
            if t is not None and self.first is None and t["received"] > 0:
                self.first = (time.monotonic(), t["received"])
                if self.on_first is not None:
                    self.on_first()
            if t is not None and t["received"] >= received and t["pending"] == 0 and t["points"] >= points:
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"{self.n} workers did not store {points} points in {timeout}s: {self.totals()}")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None:
            return
        end_process(self.proc, timeout)
        self.proc = None


def influx_ceiling(url: str, database: str, points: int, writers: int) -> float:
    """Points/s that ``writers`` concurrent clients get from InfluxDB for pre-built, gzipped batches."""
    batch = 5000
    now_ms = int(time.time() * 1000) - 3_600_000
    bodies: list[list[bytes]] = [[] for _ in range(writers)]
    for b in range(0, points, batch):
        lines = b"\n".join(
            b"traffic,device=rs-%06d,zone=z%02d flow=%d.5,speed=47.5,occupancy=12.3 %d"
            % ((b + i) % 20000, (b + i) % 14, (b + i) % 900, now_ms + b + i)
            for i in range(min(batch, points - b)))
        bodies[(b // batch) % writers].append(gzip.compress(lines, 1))
    write_url = f"{url}/write?db={database}&precision=ms"

    def post(items: list[bytes]) -> None:
        for body in items:
            req = urllib.request.Request(write_url, data=body, headers={"Content-Encoding": "gzip"})
            with urllib.request.urlopen(req, timeout=120) as r:
                r.read()

    threads = [threading.Thread(target=post, args=(items,)) for items in bodies]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return points / (time.monotonic() - t0)


def queue_baseline_sessions(host: str, port: int, prefix: str) -> None:
    """Persistent sessions for mosquitto_sub and the bare paho counter (the broker queues for them)."""
    mosquitto_sub_session(host, port, TOPIC, f"{prefix}-sub")
    sess = PahoCounter(host, port, TOPIC, f"{prefix}-paho").start(10**12)
    sess.connected.wait(10)
    time.sleep(0.3)
    sess.stop()


def drain_baselines(host: str, port: int, prefix: str, n: int, timeout: float) -> dict[str, float]:
    """msg/s of mosquitto_sub and of the bare paho counter draining ``n`` queued messages."""
    broker_s = mosquitto_sub_drain(host, port, TOPIC, n, f"{prefix}-sub", timeout=timeout)
    counter = PahoCounter(host, port, TOPIC, f"{prefix}-paho")
    t0 = time.monotonic()
    counter.start(n)
    counter.done.wait(timeout)
    paho_s = counter.last - t0 if counter.done.is_set() else float("inf")
    counter.stop()
    return {"mosquitto_sub_msg_s": n / broker_s, "paho_msg_s": n / paho_s}


def _drain_workers(ws: WorkerSet, broker: Any, url: str, db: str, n: int,  # noqa: PLR0917
                   expected: dict[str, int], base: dict[str, float], timeout: float) -> dict[str, Any]:
    """Start one worker set on its queued sessions and time its drain into its own database."""
    lines_expected = sum(expected.values())
    ws.start()
    meter = CpuMeter({"workers": ws.proc.pid if ws.proc else None,
                      "broker": broker.proc.pid if broker.proc else None, "influxd": influxd_pid()},
                     trees=("workers",))
    ws.on_first = meter.restart
    try:
        ws.wait_stored(n, lines_expected, timeout)
        used = meter.cores()  # from the first messages seen to the last point stored
        final = ws.totals() or {}
        # timed by the workers' own clocks (start-up excluded; the API answers after MQTT)
        t_start, t_end = float(final["first_received"]), float(final["last_write_at"])
    finally:
        ws.stop()
    stored = count_points(url, db, sorted(expected))
    influx(url, f'DROP DATABASE "{db}"')
    rate = n / max(t_end - t_start, 1e-6)
    return {"rate_msg_s": round(rate), "seconds": round(t_end - t_start, 2),
            "peak_rss_mb": round(ws.peak_rss, 1), "lost": lines_expected - sum(stored.values()),
            "errors": final.get("errors"), "cpu_cores": used,
            "vs_broker": round(rate / base["mosquitto_sub_msg_s"], 2),
            "vs_paho": round(rate / base["paho_msg_s"], 2)}


def _influx_ceilings(url: str, db: str, points: int) -> dict[int, float]:
    """InfluxDB's own write ceiling (points/s) with one and two writers, in a database of its own."""
    influx(url, f'CREATE DATABASE "{db}"')
    try:
        return {w: influx_ceiling(url, db, points, w) for w in (1, 2)}
    finally:
        influx(url, f'DROP DATABASE "{db}"')


def _bottleneck(top: float, broker_rate: float, influx_rate: float, cores: int, max_workers: int) -> str:
    """Which resource held the largest worker set back, from this run's own ceilings."""
    if top >= 0.8 * broker_rate:
        return "broker: the workers drain at >= 80 % of mosquitto_sub's rate"
    if top >= 0.8 * influx_rate:
        return "InfluxDB: the workers write at >= 80 % of its measured write ceiling"
    if cores < max_workers + 2:
        return (f"CPU: {max_workers} workers + broker + InfluxDB share {cores} cores (the 1.6x target "
                f"assumes at least {max_workers + 2})")
    return "the workers (Python, one core each)"


# -- the scenario ------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from simulators.city import generate_city

    quick = bool(args.quick)
    n = args.scale_messages or (6000 if quick else 200_000)
    devices = 2000 if quick and args.scale_devices == 20000 else args.scale_devices
    max_workers = max(1, args.max_workers)
    url = args.influx_url.rstrip("/")
    timeout = 300 + n / 500
    cores = os.cpu_count() or 1
    city = generate_city(seed=1, devices=devices)
    if len(city["zones"]) < max_workers:
        raise RuntimeError(f"{max_workers} workers need {max_workers} zones; the city of {devices} devices has "
                           f"{len(city['zones'])} (raise --scale-devices)")
    result: dict[str, Any] = {"messages": n, "devices": devices, "zones": len(city["zones"]), "cores": cores}
    dbs = {k: bench_db(f"scale{k}") for k in range(1, max_workers + 1)}
    with tempfile.TemporaryDirectory(prefix="urban-bench-scale-") as tmp:
        work = Path(tmp)
        city_path = work / "city.json"
        city_path.write_bytes(orjson.dumps(city))
        paths, expected = write_chunks(work, city, n)
        lines_expected = sum(expected.values())
        result["points_per_message"] = round(lines_expected / n, 3)
        with mosquitto(work / "mosquitto") as broker:
            host, port = broker.host, broker.port
            queue_baseline_sessions(host, port, "scale")
            sets: dict[int, WorkerSet] = {}
            for k in range(1, max_workers + 1):  # create each worker set's sessions, then leave
                db = dbs[k]
                ws = WorkerSet(work, f"scale{k}", k, mqtt_port=port, influx_url=url, database=db,
                               city_path=city_path).start()
                try:
                    ws.wait_ready()
                finally:
                    ws.stop()
                sets[k] = ws
            result["publish"] = publish_chunks(host, port, paths)
            base = drain_baselines(host, port, "scale", n, timeout)
            result["broker_mosquitto_sub_drain_msg_s"] = round(base["mosquitto_sub_msg_s"])
            result["paho_counting_drain_msg_s"] = round(base["paho_msg_s"])
            per = {str(k): _drain_workers(ws, broker, url, dbs[k], n, expected, base,
                                          timeout) for k, ws in sets.items()}
    result["workers"] = per
    ceiling = _influx_ceilings(url, bench_db("scale_ceiling"), 20_000 if quick else 300_000)
    ppm = lines_expected / n
    result["influx_ceiling"] = {f"{w}_writer_points_s": round(v) for w, v in ceiling.items()} | {
        f"{w}_writer_as_msg_s": round(v / ppm) for w, v in ceiling.items()}
    r1 = per["1"]["rate_msg_s"]
    result["speedup"] = {k: round(v["rate_msg_s"] / r1, 2) for k, v in per.items()}
    result["bottleneck"] = _bottleneck(per[str(max_workers)]["rate_msg_s"], base["mosquitto_sub_msg_s"],
                                       max(ceiling.values()) / ppm, cores, max_workers)
    result["target_applies"] = cores >= max_workers + 2
    return result
