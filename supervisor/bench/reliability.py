"""``urban-supervisor bench reliability``: lose nothing under faults, measured with real processes.

Every scenario runs a private Mosquitto, the supervisor as a subprocess (``urban-supervisor run
--no-api``) and InfluxDB (a fresh database on the shared server, or a private ``influxd`` when the
scenario stops it), publishes a seeded city's telemetry at a bounded rate, injects its fault
mid-load and finally counts, per measurement, what InfluxDB holds against what the publisher got
PUBACKs for. Timestamps are unique per device and replays overwrite, so the counts are exact:
``lost`` is expected minus stored, ``duplicates`` stored minus expected.

Faults:

- ``kill``: SIGKILL of the supervisor under load, restart with the same client id (persistent
  session): the broker redelivers what was not acknowledged;
- ``influx_outage``: the InfluxDB server is stopped (60 s or more; shorter with ``--quick``) under
  load: batches go to the fsync'ed spool, and are replayed when it is back;
- ``broker_restart``: Mosquitto with persistence is restarted under load; the publisher publishes
  in chunks and re-publishes a chunk that was not fully acknowledged (at-least-once on its side too);
- ``spool_full``: a tiny spool while InfluxDB is down: the writer stops acknowledging, the broker
  keeps the messages; the supervisor is even SIGKILLed and restarted in that state, then InfluxDB
  comes back and everything is stored.

The tests in ``tests/reliability`` call the same scenario functions and assert zero loss.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import yaml

from supervisor.bench.procs import Mosquitto, end_process, free_port

NAME = "reliability"
HELP = "fault scenarios (SIGKILL, InfluxDB outage, broker restart, full spool): sent, stored, lost, recovery"

_log = logging.getLogger(__name__)

# a field present in every point of each measurement, to count points
COUNT_FIELD = {"traffic": "flow", "lighting": "power", "cctv": "online", "water": "index", "events": "value"}
FAULTS = ("kill", "influx_outage", "broker_restart", "spool_full")
# Started as root, mosquitto drops to the ``mosquitto`` user and then cannot write its persistence
# file (nor its log) in a root-owned temp directory: the session is silently not persisted and a
# restart loses every queued message. Stay root in that case.
BROKER_EXTRA = "user root" if os.geteuid() == 0 else ""


# -- InfluxDB ---------------------------------------------------------------------------------------


class InfluxHttp:
    """A small InfluxDB 1.x query client (stdlib only)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=2) as r:
                return int(r.status) == 204
        except OSError:
            return False

    def query(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=60) as r:
            body = json.loads(r.read())
        results: list[dict[str, Any]] = body.get("results", [])
        for res in results:
            if "error" in res:
                raise RuntimeError(f"InfluxQL error for {q!r}: {res['error']}")
        return results

    def create(self, name: str | None = None) -> str:
        name = name or f"urban_rel_{uuid.uuid4().hex[:10]}"
        self.query(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')

    def counts(self, db: str, measurements: list[str]) -> dict[str, int]:
        """Points per measurement, in one request (one ``count`` statement each); household water is
        read from its own retention policy, where the supervisor writes it (docs/data-protection.md)."""
        from supervisor.storage.retention import raw_sources

        rps = [row[0] for res in self.query(f'SHOW RETENTION POLICIES ON "{db}"', db)
               for s in res.get("series") or [] for row in s["values"]]
        pairs = [(m, source) for m in measurements for source in raw_sources(m, rps)]
        q = ";".join(f'SELECT count("{COUNT_FIELD[m]}") FROM {source}' for m, source in pairs)
        out: dict[str, int] = dict.fromkeys(measurements, 0)
        for (m, _), res in zip(pairs, self.query(q, db), strict=True):
            series = res.get("series") or []
            out[m] += int(series[0]["values"][0][1]) if series and series[0]["values"] else 0
        return out

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of the first series set of ``q`` as dicts (column -> value)."""
        out: list[dict[str, Any]] = []
        for res in self.query(q, db):
            for s in res.get("series") or []:
                tags = s.get("tags") or {}
                out.extend({**tags, **dict(zip(s["columns"], v, strict=True))} for v in s["values"])
        return out


@dataclass
class InfluxProc:
    """A private ``influxd`` (1.x) on free loopback ports with its own data directory, so that a
    scenario can stop and restart it without disturbing a shared server."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.rpc_port = free_port()
        self.conf = self.workdir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> InfluxProc:
        self.workdir.mkdir(parents=True, exist_ok=True)
        d = self.workdir
        self.conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
""")
        with open(d / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen(["influxd", "-config", str(self.conf)], stdout=log, stderr=log)
        client = InfluxHttp(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"influxd did not answer on {self.url}; see {d / 'influxd.log'}")

    def stop(self, timeout: float = 30.0) -> None:
        end_process(self.proc, timeout)
        self.proc = None


# -- the supervisor as a subprocess ---------------------------------------------------------------------


def supervisor_config(
    data_dir: Path, broker: Mosquitto, influx_url: str, database: str, client_id: str, **storage: Any
) -> dict[str, Any]:
    """A configuration for a test supervisor: persistent session, InfluxDB v1, short retries."""
    st: dict[str, Any] = {
        "backend": "influx-v1", "url": influx_url, "database": database, "batch_size": 5000,
        "flush_interval": 0.2, "max_retries": 3, "retry_min_delay": 0.2, "retry_max_delay": 2.0,
        "timeout": 5.0, "spool_dir": "spool",
    }
    st.update(storage)
    return {
        "mode": "test",
        "log_level": "INFO",
        "data_dir": str(data_dir),
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": client_id,
                 "reconnect_min_delay": 0.5, "reconnect_max_delay": 2.0},
        "storage": st,
        "api": {"enabled": False},
    }


class SupervisorProc:
    """``urban-supervisor run --config FILE --no-api`` as a subprocess; stderr (the log) appended to
    ``log_path`` across restarts, stdout (the JSON summary) per start."""

    def __init__(self, workdir: Path, config: Mapping[str, Any], *, api: bool = False) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "supervisor.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config)))
        self.log_path = workdir / "supervisor.log"
        self.api = api
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0

    def start(self) -> SupervisorProc:
        self.starts += 1
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [sys.executable, "-m", "supervisor", "run", "--config", str(self.config_path)]
        if not self.api:
            cmd.append("--no-api")
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("URBAN_")}
        with open(self.log_path, "ab") as err, open(self.workdir / f"summary-{self.starts}.json", "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        return self

    def log(self, this_run: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            if this_run:
                f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the log of the current run contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(this_run=True):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"supervisor exited ({self.proc.returncode}):\n{self.log(True)[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not in the supervisor log after {timeout}s:\n{self.log(True)[-3000:]}")

    def wait_connected(self, timeout: float = 30.0) -> None:
        self.wait_log("MQTT: connected", timeout)
        time.sleep(0.5)  # the SUBACK (paho does not block on it)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def terminate(self, timeout: float = 90.0) -> dict[str, Any] | None:
        """SIGTERM, wait, and return the run's JSON summary (None when it had none)."""
        if self.proc is None:
            return None
        end_process(self.proc, timeout)
        self.proc = None
        try:
            data: dict[str, Any] = json.loads((self.workdir / f"summary-{self.starts}.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def spool_bytes(data_dir: Path) -> int:
    d = data_dir / "spool"
    try:
        return sum(p.stat().st_size for p in d.glob("seg-*.spool"))
    except OSError:
        return 0


# -- load --------------------------------------------------------------------------------------------


@dataclass
class Load:
    """A seeded city's messages with their expected points (total and cumulative)."""

    messages: list[Any]
    expected: dict[str, int]
    cumulative: list[int]  # cumulative[i]: points of messages[:i]

    @classmethod
    def city(cls, devices: int, count: int, seed: int = 7) -> Load:
        from simulators.city import generate_city
        from simulators.telemetry import CityTelemetry, Message

        city = generate_city(seed=seed, devices=devices)
        tel = CityTelemetry(city, seed=seed, origin=time.time() - 6 * 3600)

        def gen() -> Iterator[Message]:
            for _ in range(100_000):  # bounded: far more rounds than needed
                yield from tel.due(tel.next_due())

        msgs = list(islice(gen(), count))
        expected: dict[str, int] = {}
        cum = [0]
        for m in msgs:
            expected[m.measurement] = expected.get(m.measurement, 0) + m.points
            if m.events:
                expected["events"] = expected.get("events", 0) + m.events
            cum.append(cum[-1] + m.points + m.events)
        return cls(msgs, expected, cum)

    def points_before(self, n: int) -> int:
        return self.cumulative[min(max(n, 0), len(self.messages))]


class ChunkedPublisher(threading.Thread):
    """Publishes a :class:`Load` in chunks through :class:`simulators.publisher.Publisher` (QoS 1,
    every PUBACK waited for). A chunk that is not fully acknowledged (broker gone) is published
    again, whole, on a new connection: at-least-once from the device side too. Re-published
    messages carry the same timestamps, so InfluxDB keeps one point each.

    ``progress`` counts the messages of the fully acknowledged leading chunks.
    """

    def __init__(self, host: str, port: int, load: Load, *, rate: float, chunk: int = 500,
                 ack_timeout: float = 5.0, deadline_s: float = 600.0) -> None:
        super().__init__(name="reliability-publisher", daemon=True)
        self.host, self.port = host, port
        self.load = load
        self.rate = rate
        self.chunk = chunk
        self.ack_timeout = ack_timeout
        self.deadline_s = deadline_s
        self.client_id = f"urban-rel-pub-{uuid.uuid4().hex[:6]}"
        self.progress = 0
        self.published = 0  # every PUBLISH sent, re-publications included
        self.republished_chunks = 0
        self.reconnects = 0
        self.error: str | None = None
        self.started_at = 0.0
        self.done_at = 0.0

    def _connect(self, until: float) -> Any:
        from simulators.publisher import Publisher, PublishError

        while time.monotonic() < until:
            pub = Publisher(self.host, self.port, client_id=self.client_id, connect_timeout=5.0)
            try:
                return pub.connect()
            except PublishError:
                time.sleep(0.3)
        raise TimeoutError(f"cannot reach the broker {self.host}:{self.port}")

    def run(self) -> None:
        from simulators.publisher import PublishError

        self.started_at = time.monotonic()
        until = self.started_at + self.deadline_s
        msgs = self.load.messages
        pub: Any = None
        try:
            pub = self._connect(until)
            for i in range(0, len(msgs), self.chunk):
                part = msgs[i : i + self.chunk]
                for attempt in range(1000):
                    if time.monotonic() > until:
                        raise TimeoutError(f"publishing took more than {self.deadline_s}s")
                    if pub is None:
                        pub = self._connect(until)
                        self.reconnects += 1
                    try:
                        rep = pub.run(part, rate=self.rate, ack_timeout=self.ack_timeout)
                        ok = rep.complete and rep.sent == len(part)
                        self.published += rep.sent
                    except PublishError:
                        ok = False
                    if ok:
                        break
                    if attempt == 0:
                        self.republished_chunks += 1
                    pub.close()
                    pub = None
                    time.sleep(0.2)
                self.progress = i + len(part)
        except Exception as exc:  # reported by the scenario
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if pub is not None:
                pub.close()
            self.done_at = time.monotonic()

    def wait_progress(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.progress < n and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)


class StoreMonitor(threading.Thread):
    """Polls InfluxDB's counts sparsely (one request per ``interval``) to time the catch-up."""

    def __init__(self, influx: InfluxHttp, db: str, load: Load, pub: ChunkedPublisher, interval: float = 1.0) -> None:
        super().__init__(name="reliability-monitor", daemon=True)
        self.influx, self.db, self.load, self.pub = influx, db, load, pub
        self.interval = interval
        self.measurements = sorted(load.expected)
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, stored total, published points)
        self.polls = 0

    def run(self) -> None:
        for _ in range(100_000):
            if self.stop_event.wait(self.interval):
                return
            published = self.load.points_before(self.pub.progress)
            try:
                total = sum(self.influx.counts(self.db, self.measurements).values())
            except (OSError, RuntimeError, ValueError):
                continue  # InfluxDB down: nothing to count
            self.polls += 1
            self.samples.append((time.monotonic(), total, published))

    def caught_up_after(self, t: float) -> float | None:
        """Seconds from ``t`` to the first sample at or after it where InfluxDB held at least every
        point of the messages acknowledged to the publisher by then."""
        times = [s[0] for s in self.samples]
        for when, total, published in self.samples[bisect.bisect_left(times, t):]:
            if total >= published:
                return round(when - t, 1)
        return None


def wait_stored(influx: InfluxHttp, db: str, expected: Mapping[str, int], timeout: float,
                interval: float = 2.0) -> dict[str, int]:
    """Poll (sparsely) until every measurement holds at least its expected points."""
    ms = sorted(expected)
    deadline = time.monotonic() + timeout
    got: dict[str, int] = {}
    while True:
        try:
            got = influx.counts(db, ms)
        except (OSError, RuntimeError, ValueError):
            got = {}
        if got and all(got[m] >= expected[m] for m in ms):
            return got
        if time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def outcome(fault: str, load: Load, pub: ChunkedPublisher, stored: Mapping[str, int], **extra: Any) -> dict[str, Any]:
    """The figures of one scenario (what the report quotes as one JSON line)."""
    exp = load.expected
    lost = sum(max(0, exp[m] - stored.get(m, 0)) for m in exp)
    dup = sum(max(0, stored.get(m, 0) - exp[m]) for m in exp)
    return {
        "fault": fault,
        "messages": len(load.messages),
        "messages_acked": pub.progress,
        "publishes": pub.published,
        "republished_chunks": pub.republished_chunks,
        "points_expected": sum(exp.values()),
        "points_stored": sum(stored.get(m, 0) for m in exp),
        "lost": lost,
        "duplicates": dup,
        "expected": dict(exp),
        "stored": {m: stored.get(m, 0) for m in exp},
        "publisher_error": pub.error,
        **extra,
    }


@dataclass
class _Rig:
    """Broker, InfluxDB database and supervisor of one scenario, torn down in reverse."""

    workdir: Path
    influx: InfluxHttp
    db: str
    broker: Mosquitto
    sup: SupervisorProc
    own_influx: InfluxProc | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.sup.terminate(30)
        self.broker.stop()
        with contextlib.suppress(OSError, RuntimeError):
            self.influx.drop(self.db)
        if self.own_influx is not None:
            self.own_influx.stop()


def _rig(workdir: Path, influx_url: str | None, *, persistence: bool = True, **storage: Any) -> _Rig:
    own = None
    if influx_url is None:
        own = InfluxProc(workdir / "influxdb").start()
        influx_url = own.url
    influx = InfluxHttp(influx_url)
    db = influx.create()
    broker = Mosquitto(workdir / "mosquitto", persistence=persistence, extra_conf=BROKER_EXTRA).start()
    cfg = supervisor_config(workdir / "var", broker, influx_url, db, f"urban-rel-{uuid.uuid4().hex[:6]}", **storage)
    sup = SupervisorProc(workdir / "sup", cfg)
    return _Rig(workdir, influx, db, broker, sup, own)


def _finish(rig: _Rig, load: Load, pub: ChunkedPublisher, drain_timeout: float) -> tuple[dict[str, int], float,
                                                                                          dict[str, Any] | None]:
    pub.join(pub.deadline_s)
    t_load_end = time.monotonic()
    stored = wait_stored(rig.influx, rig.db, load.expected, drain_timeout)
    drain = time.monotonic() - t_load_end
    summary = rig.sup.terminate()
    time.sleep(0.5)
    stored = rig.influx.counts(rig.db, sorted(load.expected))  # exact, after the supervisor stopped
    return stored, round(drain, 1), summary


# -- scenarios ---------------------------------------------------------------------------------------------


def _publish_and_watch(rig: _Rig, load: Load, rate: float) -> tuple[ChunkedPublisher, StoreMonitor]:
    """Start publishing ``load`` at ``rate`` and watching the store catch up with it."""
    pub = ChunkedPublisher(rig.broker.host, rig.broker.port, load, rate=rate)
    mon = StoreMonitor(rig.influx, rig.db, load, pub)
    pub.start()
    mon.start()
    return pub, mon


def scenario_kill(workdir: Path, influx_url: str | None, *, devices: int = 1000, count: int = 20_000,
                  rate: float = 2000.0, down_s: float = 2.0, kills: int = 1) -> dict[str, Any]:
    """SIGKILL the supervisor under load (``kills`` times), restart it with the same client id."""
    load = Load.city(devices, count)
    rig = _rig(workdir, influx_url)
    try:
        rig.sup.start().wait_connected()
        pub, mon = _publish_and_watch(rig, load, rate)
        restarts = []
        for k in range(kills):
            pub.wait_progress(int(count * (k + 1) / (kills + 1.5)), 120)
            rig.sup.kill()
            time.sleep(down_s)
            rig.sup.start().wait_connected()
            restarts.append(time.monotonic())
        stored, drain, summary = _finish(rig, load, pub, 120)
        mon.stop_event.set()
        recover = [mon.caught_up_after(t) for t in restarts]
        return outcome("kill", load, pub, stored, kills=kills, down_s=down_s, recover_s=recover[0] if kills == 1
                       else recover, drain_after_load_s=drain,
                       redelivered_to_last_run=(summary or {}).get("mqtt", {}).get("received"))
    finally:
        rig.close()


def scenario_influx_outage(workdir: Path, *, devices: int = 1000, count: int = 30_000, rate: float = 400.0,
                           outage_s: float = 62.0, fault_at: float = 0.1) -> dict[str, Any]:
    """Stop the (private) InfluxDB server under load for ``outage_s`` seconds, then start it again."""
    load = Load.city(devices, count)
    rig = _rig(workdir, None)
    assert rig.own_influx is not None
    data_dir = workdir / "var"
    try:
        rig.sup.start().wait_connected()
        pub, mon = _publish_and_watch(rig, load, rate)
        pub.wait_progress(int(count * fault_at), 120)
        rig.own_influx.stop()
        t_down = time.monotonic()
        peak = 0
        acked_at_down = pub.progress
        while time.monotonic() - t_down < outage_s:
            peak = max(peak, spool_bytes(data_dir))
            time.sleep(0.5)
        acked_during = pub.progress - acked_at_down
        rig.own_influx.start()
        t_up = time.monotonic()
        outage = t_up - t_down
        stored, drain, summary = _finish(rig, load, pub, 180)
        mon.stop_event.set()
        spool_left = spool_bytes(data_dir)
        metric = rig.influx.rows('SELECT max("spool_bytes") AS spool_bytes FROM "supervisor"', rig.db)
        log = rig.sup.log()
        return outcome(
            "influx_outage", load, pub, stored, outage_s=round(outage, 1), messages_acked_during_outage=acked_during,
            spool_peak_bytes=peak, spool_metric_max_bytes=int(metric[0]["spool_bytes"]) if metric else 0,
            spool_left_bytes=spool_left, replay_logged="replayed" in log,
            recover_s=mon.caught_up_after(t_up), drain_after_load_s=drain,
            storage=(summary or {}).get("storage"),
        )
    finally:
        rig.close()


def scenario_broker_restart(workdir: Path, influx_url: str | None, *, devices: int = 1000, count: int = 20_000,
                            rate: float = 2000.0, down_s: float = 2.0) -> dict[str, Any]:
    """Restart Mosquitto (persistence on, clean shutdown) under load; the publisher re-publishes."""
    load = Load.city(devices, count)
    rig = _rig(workdir, influx_url, persistence=True)
    try:
        rig.sup.start().wait_connected()
        pub, mon = _publish_and_watch(rig, load, rate)
        pub.wait_progress(int(count * 0.4), 120)
        rig.broker.stop()
        time.sleep(down_s)
        rig.broker.start()
        t_up = time.monotonic()
        stored, drain, summary = _finish(rig, load, pub, 120)
        mon.stop_event.set()
        mq = (summary or {}).get("mqtt", {})
        log = rig.sup.log()
        return outcome("broker_restart", load, pub, stored, down_s=down_s, recover_s=mon.caught_up_after(t_up),
                       drain_after_load_s=drain, supervisor_connects=mq.get("connects"),
                       supervisor_received=mq.get("received"),
                       session_resumed=log.count("session present: True") >= 1)
    finally:
        rig.close()


def scenario_spool_full(workdir: Path, *, devices: int = 1000, count: int = 8000, rate: float = 2000.0,
                        spool_max_bytes: int = 256 * 1024, kill_while_full: bool = True) -> dict[str, Any]:
    """InfluxDB down and a tiny spool: the spool fills, the writer holds and stops acknowledging, the
    broker keeps the rest. Optionally SIGKILL and restart the supervisor in that state (still
    InfluxDB down). Then InfluxDB comes back: everything is stored, the spool alarm is in the log and
    in the ``alarms`` measurement."""
    load = Load.city(devices, count)
    rig = _rig(workdir, None, batch_size=100, spool_max_bytes=spool_max_bytes, max_retries=1,
               retry_max_delay=1.0)
    assert rig.own_influx is not None
    data_dir = workdir / "var"
    try:
        rig.sup.start().wait_connected()
        rig.own_influx.stop()
        t_down = time.monotonic()
        pub = ChunkedPublisher(rig.broker.host, rig.broker.port, load, rate=rate)
        pub.start()
        pub.join(pub.deadline_s)  # the broker acknowledges everything although nothing can be stored
        rig.sup.wait_log("spool full", 60)
        peak = spool_bytes(data_dir)
        first_log = rig.sup.log()
        restarted_while_full = False
        if kill_while_full:
            rig.sup.kill()
            rig.sup.start().wait_connected(60)
            # the restarted process finds the full spool and raises its own alarm; its point is written
            # once InfluxDB is back (the first process's point died with it: the full spool held it in
            # memory only). A fixed 3 s wait here lost that race once on a slow machine (4 Dec 2026)
            rig.sup.wait_log("% full (", 30)
            restarted_while_full = rig.sup.alive
            peak = max(peak, spool_bytes(data_dir))
        rig.own_influx.start()
        t_up = time.monotonic()
        outage = t_up - t_down
        stored, drain, summary = _finish(rig, load, pub, 120)
        log = rig.sup.log()
        alarms = rig.influx.rows('SELECT "id", "text" FROM "alarms" WHERE "element" = \'spool\' GROUP BY "state"',
                                 rig.db)
        return outcome(
            "spool_full", load, pub, stored, spool_max_bytes=spool_max_bytes, spool_peak_bytes=peak,
            spool_peak_ratio=round(peak / spool_max_bytes, 3), outage_s=round(outage, 1),
            full_logged="spool full" in first_log, alarm_logged="% full (" in log,
            alarm_points={st: sum(1 for a in alarms if a.get("state") == st) for st in ("raised", "cleared")},
            restarted_while_full=restarted_while_full, spool_left_bytes=spool_bytes(data_dir),
            recover_s=drain, storage=(summary or {}).get("storage"),
        )
    finally:
        rig.close()


# -- bench plug-in -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("reliability")
    g.add_argument("--faults", default=",".join(FAULTS),
                   help=f"reliability: comma-separated faults to inject (default all: {','.join(FAULTS)})")
    g.add_argument("--outage", type=float, default=None, metavar="S",
                   help="reliability: InfluxDB outage length (default 62 s, 10 s with --quick)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    influx_url = getattr(args, "influx_url", "http://127.0.0.1:8086")
    if not InfluxHttp(influx_url).ping():
        influx_url = None  # no shared server: every scenario starts its own influxd
    faults = [f for f in str(getattr(args, "faults", ",".join(FAULTS))).split(",") if f]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise SystemExit(f"reliability: unknown fault(s) {unknown}; choose among {FAULTS}")
    outage = getattr(args, "outage", None) or (10.0 if quick else 62.0)
    n = 5000 if quick else 20_000
    out: dict[str, Any] = {"devices": 1000, "outage_s": outage}
    with tempfile.TemporaryDirectory(prefix="urban-rel-") as tmp:
        base = Path(tmp)
        for f in faults:
            t0 = time.monotonic()
            if f == "kill":
                res = scenario_kill(base / f, influx_url, count=n)
            elif f == "influx_outage":
                res = scenario_influx_outage(base / f, count=int(400 * (outage + 15)), rate=400.0,
                                             outage_s=outage)
            elif f == "broker_restart":
                res = scenario_broker_restart(base / f, influx_url, count=n)
            else:
                res = scenario_spool_full(base / f, count=2000 if quick else 8000)
            res["seconds"] = round(time.monotonic() - t0, 1)
            print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}), file=sys.stderr)
            out[f] = {k: v for k, v in res.items() if k not in ("expected", "stored", "storage", "fault")}
    return out


def broker_counter(host: str, port: int, topic: str = "$SYS/broker/publish/messages/dropped",
                   timeout: float = 5.0) -> int | None:
    """A Mosquitto ``$SYS`` counter (published every ``sys_interval``), or None when none came."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[int] = []
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            got.append(int(msg.payload))
        except ValueError:
            return
        done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"urban-rel-sys-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.connect(host, port)
    c.subscribe(topic)
    c.loop_start()
    try:
        done.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()
    return got[-1] if got else None
