"""``bench storm``: millions of messages queued while the supervisor is down, drained after its restart.

The supervisor (``urban-supervisor run``, ``--storm-workers N`` for the zone-partitioned workers)
connects once to create its persistent session, then stops. A storm of pre-generated telemetry
(3 million messages by default, QoS 1) is published and queued by a private Mosquitto for the
supervisor's session and for the two baselines' sessions (``mosquitto_sub`` to /dev/null and a
bare paho subscriber that only counts). With ``--restart-broker`` the broker is restarted too
(persistence on: the queues must survive it). Then the baselines drain, and the supervisor is
started again and drains its queue into a fresh InfluxDB database; the points are counted there
(``lost`` must be 0: at-least-once end to end, acknowledgement after storage).

Figures: publish rate, broker RSS with the queues, each drain's msg/s and the ratios, the
supervisor's time to drain including its start-up, and the points lost.

Probes during the drain (issue 18; ``--storm-probe-rate``, default 5/s, 0 for none): the supervisor
then runs with the city model and a camera rule (a motion event lights the lamps within 80 m, the
``when_then`` of rules/README.md); from its first drained message until the backlog is gone, a
motion event of a different camera is published every ``1/rate`` s and the first command for one
of its lamps is timed on the broker (two hops, like ``bench rules``). The report gives their
p50/p99/max, how many had no command within 5 s, and the drain rate with the rules running;
the probes' own event points are counted in ``lost`` like the rest. Without probes the supervisor
drains without a model (the figure of earlier runs).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from supervisor.bench.procs import mosquitto
from supervisor.bench.report import bench_db, count_points, influx, percentile, rss_mb
from supervisor.bench.scale import (
    WorkerSet,
    drain_baselines,
    publish_chunks,
    queue_baseline_sessions,
    write_chunks,
)

NAME = "storm"
HELP = "3 million messages queued while the supervisor is down, drained after a restart (zero loss)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("storm")
    g.add_argument("--storm-messages", type=int, default=None, help="queued messages (default 3000000, quick 20000)")
    g.add_argument("--storm-devices", type=int, default=100_000,
                   help="devices of the generated city (quick 2000)")
    g.add_argument("--storm-workers", type=int, default=1, help="drain with run --workers N (default 1)")
    g.add_argument("--restart-broker", action="store_true",
                   help="also restart the broker (persistence on) between the storm and the drain")
    g.add_argument("--storm-probe-rate", type=float, default=5.0,
                   help="camera-event probes per second during the drain, each timed to its lamps' first "
                        "command (default 5; 0: no probes, no city model, as before)")

RULES = """\
version: 1
rules:
  - id: motion-lights
    kind: when_then
    when:
      devices: {family: cctv}
      event: {kinds: [motion]}
    then:
      command: {level: 90, priority: 70, lease_s: 300, radius_m: 80}
"""
PROBE_TIMEOUT_S = 5.0


class DrainProbes:
    """Camera motion events published while the backlog drains, each timed to its lamps' first command.

    Each probe is a different camera whose lamps no earlier probe lit (a lamp already at the
    commanded level could answer nothing); the probes stop when the cameras run out;
    the events carry the current time. Runs in a thread of the bench process, outside the
    supervisor (its own paho clients: a publisher and a watcher of the lamps' command topics).
    """

    def __init__(self, host: str, port: int, city: dict[str, Any], rate: float) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from supervisor.model import city_from_dict

        model = city_from_dict(city)
        self.targets: list[tuple[str, str, frozenset[str]]] = []
        used: set[str] = set()  # a lamp another probe already lit (lease 300 s) would answer nothing
        for cam, info in sorted(model.devices.items()):
            if info.kind == "camera":
                lamps = frozenset(model.devices_within(info.lon, info.lat, 80.0, family="lighting", kind="lamp"))
                if lamps and not lamps & used:
                    used |= lamps
                    self.targets.append((cam, info.zone, lamps))
        self.period = 1.0 / rate
        self.latencies: list[float] = []
        self.walls: list[float] = []  # wall time each answered probe was sent
        # each answered probe's own trip through the broker to this bare paho watcher (one hop): a slow
        # probe with a slow hop waited in the broker (or this process), not in the supervisor
        self.hops: list[float | None] = []
        self._hop: float | None = None  # when the current probe's event came back to the watcher
        self._probe_topic = ""
        self.missed = 0
        self.missed_at: list[tuple[float, str]] = []  # (s after the first probe, camera)
        self.ready: Callable[[], bool] | None = None  # the supervisor's lane session is up
        self.commands_seen = 0
        self.commands_other: set[str] = set()  # lamps commanded that no probe asked for (backlog events)
        self._probed: set[str] = set()
        self.waited_lane_s = 0.0
        self.sent = 0
        self._stop = threading.Event()
        self._first: dict[str, float] = {}  # lamp -> first command seen since the current probe
        self._armed_at = 0.0
        self._lock = threading.Lock()
        self.watch = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-storm-watch", protocol=mqtt.MQTTv5)
        self.watch.on_message = self._on_command
        self.watch.connect(host, port)
        self.watch.subscribe([("city/+/lighting/+/cmd", 1), ("city/+/cctv/+/event", 1)])
        self.watch.loop_start()
        self.pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-storm-probe", protocol=mqtt.MQTTv5)
        self.pub.connect(host, port)
        self.pub.loop_start()
        self._thread = threading.Thread(target=self._run, name="storm-probes", daemon=True)

    def _on_command(self, _c: Any, _u: Any, msg: Any) -> None:
        t = time.monotonic()
        if msg.topic.endswith("/event"):  # a probe itself (only probes are published live)
            with self._lock:
                if msg.topic == self._probe_topic and self._hop is None:
                    self._hop = t
            return
        lamp = msg.topic.split("/")[3]
        with self._lock:
            self.commands_seen += 1
            if lamp not in self._probed:
                self.commands_other.add(lamp)
            if t >= self._armed_at and lamp not in self._first:
                self._first[lamp] = t

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        t_wait = time.monotonic()
        while self.ready is not None and not self.ready() and time.monotonic() < t_wait + 30.0:
            if self._stop.wait(0.05):
                return
        self.waited_lane_s = time.monotonic() - t_wait
        t_start = time.monotonic()
        for cam, zone, lamps in self.targets:
            if self._stop.is_set():
                return
            topic = f"city/{zone}/cctv/{cam}/event"
            with self._lock:
                self._first = {}
                self._probed |= lamps
                self._probe_topic, self._hop = topic, None
                t0 = self._armed_at = time.monotonic()
            self.pub.publish(topic,
                             orjson.dumps({"type": "motion", "ts": time.time(), "score": 0.9}), qos=1)
            self.sent += 1
            got = None
            while time.monotonic() < t0 + PROBE_TIMEOUT_S and not self._stop.is_set():
                with self._lock:
                    hits = [t for lamp, t in self._first.items() if lamp in lamps]
                if hits:
                    got = min(hits)
                    break
                time.sleep(0.001)
            if got is not None:
                self.latencies.append((got - t0) * 1000.0)
                self.walls.append(round(time.time() - (time.monotonic() - t0), 3))
                with self._lock:
                    hop = self._hop
                self.hops.append(None if hop is None else round((hop - t0) * 1000.0, 1))
            elif not self._stop.is_set():
                self.missed += 1
                self.missed_at.append((round(t0 - t_start, 1), cam))
            self._stop.wait(max(0.0, t0 + self.period - time.monotonic()))

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(PROBE_TIMEOUT_S + 1)
        self.pub.loop_stop()
        self.watch.loop_stop()
        lat = self.latencies
        hops = [h for h in self.hops if h is not None]
        return {"sent": self.sent, "answered": len(lat), "missed": self.missed,
                "missed_at_s_camera": self.missed_at,
                "started_after_lane_wait_s": round(self.waited_lane_s, 2),
                # the slowest, with the wall time they were sent (to match with the supervisor's ``loop``)
                "slowest": [{"ms": round(ms, 1), "at": at, "hop_ms": hop}
                            for ms, at, hop in sorted(zip(lat, self.walls, self.hops, strict=True),
                                                      key=lambda x: x[0])[-5:]],
                "broker_hop_paho_ms": ({"p50": round(percentile(hops, 50), 1), "p99": round(percentile(hops, 99), 1),
                                        "max": round(max(hops), 1)} if hops else None),
                "commands_seen": self.commands_seen, "lamps_commanded_not_by_probes": len(self.commands_other),
                "latency_ms": {"p50": round(percentile(lat, 50), 1), "p99": round(percentile(lat, 99), 1),
                               "max": round(max(lat), 1)} if lat else None}


def _drain(sup: WorkerSet, url: str, db: str, n: int,  # noqa: PLR0917
           expected: dict[str, int], timeout: float, probes: DrainProbes | None = None) -> dict[str, Any]:
    """Start the supervisor on its queued session and time the drain into a database of its own;
    ``probes`` start with the first drained message and stop when the backlog is stored."""
    lines_expected = sum(expected.values())
    probed: dict[str, Any] | None = None
    influx(url, f'CREATE DATABASE "{db}"')
    try:
        t_proc = time.monotonic()
        if probes is not None:
            # probes start with the drain, once the lane session is up and its camera filter granted
            # (before, an event would queue behind the backlog on the bulk session: the lane's first
            # second, not its tempo; waiting for the connection only, the first probe was missed once)
            probes.ready = lambda: all(x is not None and x["mqtt"].get("lane_ready") for x in sup.summaries())
            sup.on_first = probes.start
        sup.start()
        try:
            t_seen = sup.wait_stored(n, lines_expected, timeout)
            final = sup.totals() or {}
            # the pipeline thread's slowest iterations, long collections, slow writes (wall times):
            # what a late probe waited for
            summaries = [x or {} for x in sup.summaries()]
            loops = [x.get("loop") for x in summaries]
            # where the resumed session's backlog ended, and the backlog events too old to command
            backlogs = [{"backlog": (x.get("mqtt") or {}).get("backlog"), "rules": x.get("rules")}
                        for x in summaries]
            if probes is not None:
                probed = probes.stop()
                # the probes' events are stored too (the bulk session receives them): wait for them
                expected = {**expected, "events": expected.get("events", 0) + probes.sent}
                lines_expected += probes.sent
                sup.wait_stored(n + probes.sent, lines_expected, 120)
            # the supervisor's own clock: first message received, last batch InfluxDB accepted
            t_first, t_last = float(final["first_received"]), float(final["last_write_at"])
            t_end = t_seen - (time.time() - t_last)  # on the monotonic scale of t_proc
        finally:
            if probes is not None and probed is None:
                probes.stop()
            sup.stop()
        stored = count_points(url, db, sorted(expected))
    finally:
        influx(url, f'DROP DATABASE "{db}"')
    rate = n / max(t_last - t_first, 1e-6)
    lost = lines_expected - sum(stored.values())
    return {
        **({"probes_during_drain": probed, "loop": loops, "backlog": backlogs} if probed is not None else {}),
        "drain_msg_s": round(rate),
        "drain_s_from_first_message": round(t_last - t_first, 1),
        "drain_s_from_process_start": round(t_end - t_proc, 1),
        "received": final.get("received"),
        "errors": final.get("errors"),
        "peak_rss_mb": round(sup.peak_rss, 1),
        "points_expected": lines_expected,
        "points_stored": sum(stored.values()),
        "lost": lost,
        "zero_loss": lost == 0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.city import generate_city

    quick = bool(args.quick)
    n = args.storm_messages or (20_000 if quick else 3_000_000)
    devices = 2000 if quick and args.storm_devices == 100_000 else args.storm_devices
    workers = max(1, args.storm_workers)
    url = args.influx_url.rstrip("/")
    timeout = 300 + n / 500  # bounded: far longer than any drain measured here
    city = generate_city(seed=2, devices=devices)
    result: dict[str, Any] = {"messages": n, "devices": devices, "workers": workers,
                              "restart_broker": bool(args.restart_broker),
                              "probe_rate": float(args.storm_probe_rate or 0.0)}
    db = bench_db("storm")
    # persistence: Mosquitto drops privileges to `mosquitto` unless told otherwise when run as root;
    # the autosave interval is long so that the queue is written at shutdown, not every second
    extra = "autosave_interval 3600\n" + ("user root\n" if os.geteuid() == 0 else "")
    with tempfile.TemporaryDirectory(prefix="urban-bench-storm-") as tmp:
        work = Path(tmp)
        city_path = work / "city.json"
        city_path.write_bytes(orjson.dumps(city))
        t0 = time.monotonic()
        # device clocks cover the recent past and end just before now (about 1.5 h at the default size)
        span_h = n / (devices * 0.0057) / 3600
        paths, expected = write_chunks(work, city, n, seed=2, hours_back=span_h + 0.1)
        result["generate_s"] = round(time.monotonic() - t0, 1)
        with mosquitto(work / "mosquitto", extra_conf=extra, persistence=bool(args.restart_broker)) as broker:
            host, port = broker.host, broker.port
            queue_baseline_sessions(host, port, "storm")
            probe_rate = float(args.storm_probe_rate or 0.0)
            sup_extra: dict[str, Any] = {}
            if probe_rate > 0:  # the rules need the city model; a camera's first event is on the lane at once
                (work / "rules").mkdir()
                (work / "rules" / "storm.yaml").write_text(RULES)
                sup_extra = {"rules_dir": str(work / "rules"), "mqtt": {"lane_topics": ["city/+/cctv/+/event"]}}
            sup = WorkerSet(work, "storm", workers, mqtt_port=port, influx_url=url, database=db,
                            city_path=city_path if workers > 1 or probe_rate > 0 else None, extra=sup_extra)
            sup.start()
            try:
                sup.wait_ready()
            finally:
                sup.stop()  # the supervisor is down: its session stays, the broker queues for it
            result["publish"] = publish_chunks(host, port, paths)
            result["broker_rss_mb_queued"] = round(rss_mb(broker.proc.pid if broker.proc else None), 1)
            if args.restart_broker:
                t0 = time.monotonic()
                broker.restart()
                result["broker_restart_s"] = round(time.monotonic() - t0, 2)
            base = drain_baselines(host, port, "storm", n, timeout)
            result["broker_mosquitto_sub_drain_msg_s"] = round(base["mosquitto_sub_msg_s"])
            result["paho_counting_drain_msg_s"] = round(base["paho_msg_s"])
            probes = DrainProbes(host, port, city, probe_rate) if probe_rate > 0 else None
            result["supervisor"] = _drain(sup, url, db, n, expected, timeout, probes)
    rate = result["supervisor"]["drain_msg_s"]
    result["ratios"] = {"vs_broker_drain": round(rate / base["mosquitto_sub_msg_s"], 2),
                        "vs_paho_drain": round(rate / base["paho_msg_s"], 2)}
    return result
