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
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from supervisor.bench.procs import mosquitto
from supervisor.bench.report import bench_db, count_points, influx, rss_mb
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


def _drain(sup: WorkerSet, url: str, db: str, n: int,  # noqa: PLR0917
           expected: dict[str, int], timeout: float) -> dict[str, Any]:
    """Start the supervisor on its queued session and time the drain into a database of its own."""
    lines_expected = sum(expected.values())
    influx(url, f'CREATE DATABASE "{db}"')
    try:
        t_proc = time.monotonic()
        sup.start()
        try:
            t_seen = sup.wait_stored(n, lines_expected, timeout)
            final = sup.totals() or {}
            # the supervisor's own clock: first message received, last batch InfluxDB accepted
            t_first, t_last = float(final["first_received"]), float(final["last_write_at"])
            t_end = t_seen - (time.time() - t_last)  # on the monotonic scale of t_proc
        finally:
            sup.stop()
        stored = count_points(url, db, sorted(expected))
    finally:
        influx(url, f'DROP DATABASE "{db}"')
    rate = n / max(t_last - t_first, 1e-6)
    lost = lines_expected - sum(stored.values())
    return {
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
                              "restart_broker": bool(args.restart_broker)}
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
            sup = WorkerSet(work, "storm", workers, mqtt_port=port, influx_url=url, database=db,
                            city_path=city_path if workers > 1 else None)
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
            result["supervisor"] = _drain(sup, url, db, n, expected, timeout)
    rate = result["supervisor"]["drain_msg_s"]
    result["ratios"] = {"vs_broker_drain": round(rate / base["mosquitto_sub_msg_s"], 2),
                        "vs_paho_drain": round(rate / base["paho_msg_s"], 2)}
    return result
