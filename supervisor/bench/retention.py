"""``bench retention``: provisioning time, and the cost of the rollups on a month of data.

On a fresh database of the InfluxDB 1.x at ``--influx-url`` (dropped at the end):

1. provisioning from nothing (database, four retention policies, the continuous queries), then
   again (the plan is empty: "no change"), a few times each;
2. a month (30 days; 3 with ``--quick``) of traffic readings, every 5 minutes from each of
   ``--retention-devices`` detectors (100; 10 with ``--quick``), written through the supervisor's sink;
3. the continuous queries' work: the hourly rollup of one hour and the daily rollup of one day (what
   InfluxDB runs at the end of each period), then the whole month backfilled (hourly and daily),
   with the aggregate points written. Figures only, no assertion.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

NAME = "retention"
HELP = "retention: provisioning time, rollup (continuous query) cost on a month of data"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retention")
    g.add_argument("--retention-devices", type=int, default=None, help="traffic detectors (default 100; quick 10)")
    g.add_argument("--retention-days", type=int, default=None, help="days of data (default 30; quick 3)")


def _provision_times(sink: Any, cfg: Any, db: str) -> dict[str, Any]:
    from supervisor.storage import retention

    first: list[float] = []
    again: list[float] = []
    changes = 0
    for _ in range(3):
        sink.query(f'DROP DATABASE "{db}"', on_database=False)
        t0 = time.perf_counter()
        plan = retention.provision(sink, cfg)
        first.append(time.perf_counter() - t0)
        assert plan is not None
        changes = len(plan.actions)
        for _ in range(3):
            t0 = time.perf_counter()
            p2 = retention.provision(sink, cfg)
            again.append(time.perf_counter() - t0)
            assert p2 is not None and not p2.changed
    return {"changes_from_nothing": changes, "provision_from_nothing_ms": round(statistics.median(first) * 1000, 1),
            "provision_no_change_ms": round(statistics.median(again) * 1000, 1)}


def _write_month(sink: Any, devices: int, start: int, end: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    lines: list[bytes] = []
    n = 0
    for ts in range(start, end, 300):
        for d in range(devices):
            lines.append(f"traffic,device=tr-{d:04d},zone=z{d % 10} flow={300 + (ts // 300 + d) % 97}.0,"
                         f"speed={40 + d % 30}.0,occupancy={(ts // 300) % 50}.0,count={d % 7}i "
                         f"{ts * 1000}".encode())
        if len(lines) >= 20_000:
            sink.write(b"\n".join(lines), len(lines))
            n += len(lines)
            lines = []
    if lines:
        sink.write(b"\n".join(lines), len(lines))
        n += len(lines)
    return {"raw_points": n, "write_s": round(time.perf_counter() - t0, 1)}


def _rollup_costs(sink: Any, cfg: Any, start: int, end: int) -> dict[str, Any]:
    from supervisor.storage import retention

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    retention.backfill_v1(sink, cfg, end - 3600, end, tiers=("hourly",))
    out["hourly_run_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    t0 = time.perf_counter()
    retention.backfill_v1(sink, cfg, end - 86400, end, tiers=("daily",))
    out["daily_run_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    for tier in ("hourly", "daily"):
        t0 = time.perf_counter()
        written = retention.backfill_v1(sink, cfg, start, end, tiers=(tier,))
        out[f"month_{tier}_backfill_s"] = round(time.perf_counter() - t0, 2)
        out[f"month_{tier}_points"] = written
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from supervisor.config import StorageConfig
    from supervisor.storage import InfluxV1Sink
    from supervisor.storage.writer import make_sink

    devices = args.retention_devices or (10 if args.quick else 100)
    days = args.retention_days or (3 if args.quick else 30)
    db = f"urban_bench_retention_{uuid.uuid4().hex[:8]}"
    cfg = StorageConfig(url=args.influx_url, database=db, retention={"raw": f"{max(days + 10, 30)}d"}, timeout=300)
    sink = make_sink(cfg)
    assert isinstance(sink, InfluxV1Sink)
    out: dict[str, Any] = {"devices": devices, "days": days}
    end = int(time.time()) // 86400 * 86400  # midnight today: whole days
    start = end - days * 86400
    try:
        out |= _provision_times(sink, cfg, db)
        out |= _write_month(sink, devices, start, end)
        out |= _rollup_costs(sink, cfg, start, end)
    finally:
        try:
            sink.query(f'DROP DATABASE "{db}"', on_database=False)
        finally:
            sink.close()
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            out["loadavg"] = f.read().split()[0]
    except OSError:
        pass
    return out
