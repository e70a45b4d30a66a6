"""``bench ingest``: end-to-end messages/s against the raw broker and a bare paho subscriber.

Three consumers receive the same pre-generated, mixed-family telemetry (QoS 1) from a private
Mosquitto, each in two modes:

- *live*: a publisher process sends while the consumer consumes;
- *drain*: the messages are queued first (persistent session), then the consumer starts.

Consumers: ``mosquitto_sub`` to /dev/null (the broker's delivery rate), a bare paho subscriber
that only counts (the Python ceiling), and the supervisor (``urban-supervisor run`` as its own
process: MQTT → drivers → state → rules → line protocol → InfluxDB, acknowledged after storage).
The supervisor's figure ends when InfluxDB confirmed every point; the point counts are checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from supervisor.bench._load import (
    PahoCounter,
    PublisherProcess,
    generate_messages,
    mosquitto_sub_drain,
    mosquitto_sub_session,
    write_messages,
)
from supervisor.bench.procs import end_process, free_port, mosquitto
from supervisor.bench.report import CpuMeter, bench_db, count_points, influx, influx_points_ok, influxd_pid, rss_mb

NAME = "ingest"
HELP = "end-to-end msg/s (simulator → broker → supervisor → InfluxDB) vs mosquitto_sub and bare paho"
TOPIC = "city/#"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ingest")
    g.add_argument("--messages", type=int, default=None, help="messages per phase (default 200000, quick 6000)")
    g.add_argument("--devices", type=int, default=2000, help="devices of the generated city")
    g.add_argument("--ingest-workers", type=int, default=2,
                   help="also measure live with run --workers N (zone-partitioned shared subscriptions; "
                        "default 2, 1 to skip)")
    g.add_argument("--node-red", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the Node-RED 4 baseline (default: when node and npm are installed)")


class SupervisorProcess:
    """``urban-supervisor run`` in its own process, observed through its API summary."""

    def __init__(self, workdir: Path, mqtt_port: int, influx_url: str, database: str, client_id: str, *,
                 extra: dict[str, Any] | None = None, mqtt: dict[str, Any] | None = None) -> None:
        self.api_port = free_port()
        cfg = workdir / f"{client_id}.yaml"
        cfg.write_text(json.dumps({
            **(extra or {}),
            "mode": "test",
            "log_level": "WARNING",
            "data_dir": str(workdir / client_id),
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": client_id, **(mqtt or {})},
            "storage": {"backend": "influx-v1", "url": influx_url, "database": database},
            "api": {"host": "127.0.0.1", "port": self.api_port},
        }))
        exe = Path(sys.executable).with_name("urban-supervisor")
        self.proc = subprocess.Popen([str(exe), "run", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.peak_rss = 0.0

    def summary(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v1/summary", timeout=2) as r:
                data: dict[str, Any] = json.loads(r.read())
        except OSError:
            return None
        self.sample_rss()
        return data

    def sample_rss(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb(self.proc.pid))

    def stored(self, received: int, points: int) -> bool:
        return _says_stored(self.summary(), received, points)

    def wait_stored_live(self, url: str, base: int, received: int, points: int, timeout: float) -> float:
        """Monotonic time at which InfluxDB had accepted ``points`` more points than ``base``,
        confirmed by the supervisor's summary: both consumers are timed the same way (InfluxDB's
        counter every 50 ms). The summary, polled every 20 ms before, takes the pipeline's lock; the
        change measured no difference (3 interleaved pairs, 4 Dec 2026: 37.2/40.0/41.7k msg/s polled,
        38.1/40.0/42.3k counted), but the two figures are now taken alike."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            self.sample_rss()
            if influx_points_ok(url) - base >= points:
                t_hit = time.monotonic()
                if self.stored(received, points):  # its own health points count in InfluxDB's counter too
                    return t_hit
        raise TimeoutError(f"supervisor did not store {points} points in {timeout}s: {self.summary()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.summary()
            if s is not None and s["mqtt"]["connected"]:
                time.sleep(0.3)  # SUBACK
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"supervisor exited: {self.proc.stderr.read().decode()[-800:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        raise TimeoutError("supervisor did not connect")

    def wait_stored(self, received: int, points: int, timeout: float) -> float:
        """Monotonic time at which ``received`` messages were in and ``points`` lines written.

        Also records ``first``: the first poll that saw messages arriving, and how many were in,
        so that a drain can be timed without the process start-up.
        """
        deadline = time.monotonic() + timeout
        self.first: tuple[float, int] | None = None
        while time.monotonic() < deadline:
            s = self.summary()
            if s is not None and self.first is None and s["ingest"]["received"] > 0:
                self.first = (time.monotonic(), s["ingest"]["received"])
            if _says_stored(s, received, points):
                return time.monotonic()
            time.sleep(0.02)
        raise TimeoutError(f"supervisor did not store {points} points in {timeout}s: {self.summary()}")

    def stop(self) -> None:
        end_process(self.proc, 30)


def _says_stored(s: dict[str, Any] | None, received: int, points: int) -> bool:
    """Whether a supervisor's summary says ``received`` messages are in and ``points`` lines written."""
    return s is not None and s["ingest"]["received"] >= received and s["storage"]["pending"] == 0 \
        and s["ingest"]["points"] >= points


def _wait_node_red_writing(nr: Any, probe: list[str], probe_q: str, url: str, db: str) -> None:
    """Publish a probe until it reaches InfluxDB: Node-RED is subscribed and writing."""
    deadline = time.monotonic() + 120
    while True:
        nr.check_alive()
        subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
        time.sleep(0.5)
        if influx(url, probe_q, db)["results"][0].get("series"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Node-RED wrote nothing in 120 s: {nr.log_path.read_text(errors='replace')[-800:]}")


def _node_red_live(work: Path, host: str, port: int, url: str, path: Path, n: int,  # noqa: PLR0917
                   expected: dict[str, int], broker_pid: int | None) -> dict[str, Any]:
    """Node-RED 4 (mqtt in → json → function → influxdb batch) live on the same messages."""
    from supervisor.bench._nodered import NodeRedProcess

    db = bench_db("nodered")
    influx(url, f'CREATE DATABASE "{db}"')
    lines_expected = sum(expected.values())
    nr = NodeRedProcess(work, port, url, db)
    probe = ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-t", "city/probe/traffic/probe/telemetry",
             "-m", '{"flow": 1.0}']
    probe_q = """SELECT count("flow") FROM "traffic" WHERE "device" = 'probe'"""
    try:
        _wait_node_red_writing(nr, probe, probe_q, url, db)
        time.sleep(0.3)
        base = influx_points_ok(url)
        meter = CpuMeter({"node_red": nr.proc.pid, "broker": broker_pid, "influxd": influxd_pid()})
        pub = PublisherProcess(host, port, path)
        t_hit = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            time.sleep(0.05)
            nr.sample_rss()
            nr.check_alive()
            if influx_points_ok(url) - base >= lines_expected:
                t_hit = time.monotonic()
                break
        pub_rep = pub.wait()
        t0 = pub_rep["first_send"]
        cores = meter.cores({"publisher": pub_rep["cpu_s"]})
        # confirm by counting (other writers may share the server's counter); poll sparsely
        t_end = t_hit
        while True:
            stored = count_points(url, db, sorted(expected))
            series = influx(url, probe_q, db)["results"][0].get("series")
            stored["traffic"] -= int(series[0]["values"][0][1]) if series else 0
            if sum(stored.values()) >= lines_expected or time.monotonic() > deadline:
                break
            t_end = None
            nr.sample_rss()
            time.sleep(1.0)
        if t_end is None:
            t_end = time.monotonic()
        nr.sample_rss()
    finally:
        nr.stop()
        influx(url, f'DROP DATABASE "{db}"')
    return {
        "rate_msg_s": round(n / (t_end - t0)),
        "seconds": round(t_end - t0, 2),
        "peak_rss_mb": round(nr.peak_rss, 1),
        "points_stored": stored,
        "lost": lines_expected - sum(stored.values()),
        "cpu_cores": cores,
        "flow": "mqtt in (QoS 1, city/#) -> json -> function (same points, batches of 5000 / 100 ms) "
                "-> influxdb batch; acknowledged on receipt, no validation, no state, no rules",
    }


def _workers_live(work: Path, host: str, port: int, url: str, path: Path, n: int,  # noqa: PLR0917
                  expected: dict[str, int], workers: int, devices: int, broker_pid: int | None) -> dict[str, Any]:
    """``run --workers N`` on the generated city (zones split among the workers), live, into InfluxDB."""
    import orjson

    from simulators.city import generate_city
    from supervisor.bench.scale import WorkerSet

    city_path = work / "ingest-city.json"
    city_path.write_bytes(orjson.dumps(generate_city(seed=1, devices=devices)))  # the city of the messages
    db = bench_db("workers")
    lines_expected = sum(expected.values())
    ws = WorkerSet(work, f"sup-w{workers}", workers, mqtt_port=port, influx_url=url, database=db,
                   city_path=city_path).start()
    try:
        ws.wait_ready()
        meter = CpuMeter({"workers": ws.proc.pid if ws.proc else None, "broker": broker_pid,
                          "influxd": influxd_pid()}, trees=("workers",))
        pub = PublisherProcess(host, port, path)
        t_end = ws.wait_stored(n, lines_expected, 900)
        pub_rep = pub.wait()
        cores = meter.cores({"publisher": pub_rep["cpu_s"]})
        final = ws.totals() or {}
    finally:
        ws.stop()
    stored = count_points(url, db, sorted(expected))
    influx(url, f'DROP DATABASE "{db}"')
    elapsed = t_end - pub_rep["first_send"]
    return {
        "workers": workers,
        "rate_msg_s": round(n / elapsed),
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(ws.peak_rss, 1),
        "points_stored": stored,
        "lost": lines_expected - sum(stored.values()),
        "errors": final.get("errors"),
        "cpu_cores": cores,
    }


def _broker_phase(host: str, port: int, path: Path, n: int) -> tuple[dict[str, Any], float, float]:
    """mosquitto_sub to /dev/null, live then drain: the broker's own ceiling on these messages."""
    mosquitto_sub_session(host, port, TOPIC, "b-live")
    pub = PublisherProcess(host, port, path)
    mosquitto_sub_drain(host, port, TOPIC, n, "b-live", timeout=600)
    # the subscription existed before publishing: elapsed counts from the first publish
    t_done = time.monotonic()
    pub_live = pub.wait()
    broker_live = t_done - pub_live["first_send"]
    mosquitto_sub_session(host, port, TOPIC, "b-drain")
    PublisherProcess(host, port, path).wait()
    broker_drain = mosquitto_sub_drain(host, port, TOPIC, n, "b-drain", timeout=600)
    return pub_live, broker_live, broker_drain


def _paho_phase(host: str, port: int, path: Path, n: int) -> tuple[float, float]:
    """A bare paho subscriber that only counts, live then drain (seconds for ``n`` messages)."""
    counter = PahoCounter(host, port, TOPIC, "p-live").start(n)
    counter.connected.wait(10)
    time.sleep(0.3)
    pub = PublisherProcess(host, port, path)
    counter.done.wait(600)
    paho_live = counter.last - pub.wait()["first_send"]
    counter.stop()
    sess = PahoCounter(host, port, TOPIC, "p-drain").start(10**12)
    sess.connected.wait(10)
    time.sleep(0.3)
    sess.stop()
    PublisherProcess(host, port, path).wait()
    counter = PahoCounter(host, port, TOPIC, "p-drain")
    t_start = time.monotonic()
    counter.start(n)
    counter.done.wait(600)
    paho_drain = counter.last - t_start
    counter.stop()
    return paho_live, paho_drain


def _supervisor_phase(mode: str, work: Path, broker: Any, url: str, path: Path, n: int,  # noqa: PLR0917
                      expected: dict[str, int]) -> dict[str, Any]:
    """The supervisor end to end into InfluxDB: ``live`` (publisher running) or ``drain`` (queued while down)."""
    host, port = broker.host, broker.port
    lines_expected = sum(expected.values())
    db = bench_db(mode)
    sup = SupervisorProcess(work, port, url, db, f"sup-{mode}")
    cores: dict[str, Any] | None = None
    try:
        sup.wait_ready()
        if mode == "drain":
            sup.stop()
            PublisherProcess(host, port, path).wait()
            sup = SupervisorProcess(work, port, url, db, f"sup-{mode}")
            sup.wait_stored(n, lines_expected, 900)
            # timed by the supervisor's own clock, from the first message received to the
            # last batch InfluxDB accepted (process start-up excluded): the drain may be over
            # before the API, which starts after MQTT, answers its first poll
            done = sup.summary() or {}
            t_start = float(done["ingest"]["first_received"])
            t_end = t_start + max(1e-3, float(done["storage"]["last_write_at"]) - t_start)
        else:
            broker_pid = broker.proc.pid if broker.proc else None
            meter = CpuMeter({"supervisor": sup.proc.pid, "broker": broker_pid, "influxd": influxd_pid()})
            base = influx_points_ok(url)
            pub = PublisherProcess(host, port, path)
            t_end = sup.wait_stored_live(url, base, n, lines_expected, 900)
            pub_rep = pub.wait()
            t_start = pub_rep["first_send"]
            cores = meter.cores({"publisher": pub_rep["cpu_s"]})
        final = sup.summary() or {}
    finally:
        sup.stop()
    stored = count_points(url, db, sorted(expected))
    influx(url, f'DROP DATABASE "{db}"')
    out: dict[str, Any] = {
        "rate_msg_s": round(n / (t_end - t_start)),
        "seconds": round(t_end - t_start, 2),
        "peak_rss_mb": round(sup.peak_rss, 1),
        "points_expected": expected,
        "points_stored": stored,
        "lost": sum(expected.values()) - sum(stored.values()),
        "errors": final.get("ingest", {}).get("errors"),
    }
    if cores is not None:
        out["cpu_cores"] = cores
    return out


def _node_red_phase(args: argparse.Namespace, work: Path, broker: Any, url: str, path: Path, n: int,  # noqa: PLR0917
                    expected: dict[str, int]) -> dict[str, Any] | None:
    """Node-RED 4, live, same messages, same InfluxDB (None when Node-RED is not available or not wanted)."""
    want = getattr(args, "node_red", None)
    if want is None:
        from supervisor.bench._nodered import available

        want = available()
    if not want:
        return None
    try:
        return _node_red_live(work, broker.host, broker.port, url, path, n, expected,
                              broker.proc.pid if broker.proc else None)
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:1000]}


def _ratios(e2e: dict[str, Any], node_red: dict[str, Any] | None, rates: dict[str, float]) -> dict[str, float]:
    """Every ratio of the run, each between two figures measured in this same run."""
    live = e2e["live"]["rate_msg_s"]
    out = {
        "e2e_live_vs_broker_live": round(live / rates["b_live"], 2),
        "e2e_live_vs_paho_live": round(live / rates["p_live"], 2),
        "e2e_drain_vs_broker_drain": round(e2e["drain"]["rate_msg_s"] / rates["b_drain"], 2),
        "e2e_drain_vs_paho_drain": round(e2e["drain"]["rate_msg_s"] / rates["p_drain"], 2),
    }
    workers = e2e.get("live_workers")
    if workers is not None:
        out["e2e_live_workers_vs_one"] = round(workers["rate_msg_s"] / live, 2)
    if node_red is not None and "rate_msg_s" in node_red:
        out["e2e_live_vs_node_red_live"] = round(live / node_red["rate_msg_s"], 2)
        if workers is not None:
            out["e2e_live_workers_vs_node_red_live"] = round(workers["rate_msg_s"] / node_red["rate_msg_s"], 2)
        out["rss_vs_node_red"] = round(
            max(e2e["live"]["peak_rss_mb"], e2e["drain"]["peak_rss_mb"]) / max(node_red["peak_rss_mb"], 1e-6), 2)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.messages or (6000 if args.quick else 200_000)
    url = args.influx_url.rstrip("/")
    t0 = time.monotonic()
    msgs = generate_messages(args.devices, n)
    gen_s = time.monotonic() - t0
    result: dict[str, Any] = {"messages": n, "devices": args.devices, "payload_bytes_mean":
                              round(sum(len(m.payload) for m in msgs) / n, 1), "generate_s": round(gen_s, 2)}
    with tempfile.TemporaryDirectory(prefix="urban-bench-") as tmp:
        work = Path(tmp)
        path = work / "messages.jsonl"
        expected = write_messages(path, msgs)
        del msgs
        with mosquitto(work / "mosquitto") as broker:
            pub_live, broker_live, broker_drain = _broker_phase(broker.host, broker.port, path, n)
            paho_live, paho_drain = _paho_phase(broker.host, broker.port, path, n)
            e2e = {mode: _supervisor_phase(mode, work, broker, url, path, n, expected) for mode in ("live", "drain")}
            # the supervisor as N zone-partitioned workers (run --workers N), live
            workers = max(1, int(getattr(args, "ingest_workers", 1) or 1))
            if workers > 1:
                e2e["live_workers"] = _workers_live(work, broker.host, broker.port, url, path, n, expected, workers,
                                                    args.devices, broker.proc.pid if broker.proc else None)
            node_red = _node_red_phase(args, work, broker, url, path, n, expected)
    rates = {"b_live": n / broker_live, "b_drain": n / broker_drain, "p_live": n / paho_live, "p_drain": n / paho_drain}
    result.update({
        "publisher_rate_msg_s": round(pub_live["rate"]),
        "broker_mosquitto_sub": {"live_msg_s": round(rates["b_live"]), "drain_msg_s": round(rates["b_drain"])},
        "paho_counting": {"live_msg_s": round(rates["p_live"]), "drain_msg_s": round(rates["p_drain"])},
        "supervisor_e2e": e2e,
        "ratios": _ratios(e2e, node_red, rates),
    })
    if node_red is not None:
        result["node_red"] = node_red
    return result
