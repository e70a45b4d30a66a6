"""``bench opendata``: time and peak memory (RSS) of a one-month open-data export.

A seeded city is generated (``--opendata-devices``, default 500 with 2 air stations per zone), its
telemetry for ``--opendata-days`` days (default 30) is simulated by :class:`simulators.telemetry.
CityTelemetry`, decoded by the real drivers and written through the stored schema
(:func:`supervisor.storage.schema.reading_point`) into a fresh InfluxDB database: exactly the points
the supervisor stores. Road sensors report every ``--opendata-traffic-interval`` s (default 300: a
5-minute counting period; 60 s would multiply the traffic points by 5 for the same dataset).
Then ``urban-supervisor export opendata`` runs in a child process over the whole period; its wall
time and its peak RSS (``wait4``) are the figures. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

NAME = "opendata"
HELP = "open-data export: time and peak RSS of a one-month export"
DAY = 86400


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("opendata")
    g.add_argument("--opendata-devices", type=int, default=None, help="city size (default 500; quick 120)")
    g.add_argument("--opendata-days", type=int, default=None, help="days exported (default 30; quick 2)")
    g.add_argument("--opendata-traffic-interval", type=float, default=300.0,
                   help="road sensors' reporting interval, s (default 300)")


def _query(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q, **({"db": db} if db else {})}
    with urllib.request.urlopen(url + "/query", data=urllib.parse.urlencode(params).encode(), timeout=120) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def with_intervals(city: Mapping[str, Any], intervals: Mapping[str, float]) -> dict[str, Any]:
    """A copy of ``city`` whose devices of the given families report every ``intervals[family]`` s."""
    out = copy.deepcopy(dict(city))
    for d in out["devices"]:
        if d["family"] in intervals:
            d["interval"] = intervals[d["family"]]
    return out


def fill(city: Mapping[str, Any], influx_url: str, db: str, start: float, end: float, *, seed: int = 1,
         silent: Callable[[float], set[str]] | None = None, night_level: float = 100.0,
         batch: int = 20000) -> dict[str, int]:
    """Simulate ``city``'s telemetry over ``[start, end)`` and store it as the supervisor would.

    Lamps and cameras are left out (no dataset reads them); lamps burn at ``night_level`` % at night
    (below 100: the lighting savings are not zero); ``silent(t)`` names more devices that
    say nothing at time ``t`` (a meter off the air). Returns points written per measurement.
    """
    from drivers import get as get_driver
    from simulators.telemetry import CityTelemetry
    from supervisor.ingest.router import Router
    from supervisor.storage import InfluxV1Sink
    from supervisor.storage.schema import event_point, reading_point

    kinds = {"road_sensor", "lighting_cabinet", "water_meter", "air_station"}
    tele = CityTelemetry(city, seed=seed, origin=start, max_catchup=10**9, night_level=night_level)
    quiet = {d.id for d in tele.devices if d.kind not in kinds}
    names = {str(d.get("driver")) for d in city["devices"] if d["kind"] in kinds}
    router = Router([get_driver(n)() for n in sorted(names)])
    sink = InfluxV1Sink(influx_url, db, gzip=True, timeout=120)
    sink.ensure_ready()
    written: dict[str, int] = {}
    lines: list[bytes] = []

    def flush() -> None:
        if lines:
            sink.write(b"\n".join(lines), len(lines))
            lines.clear()

    t = start
    try:
        while t < end:
            t = min(t + 3600.0, end)
            skip = quiet | (silent(t) if silent is not None else set())
            for msg in tele.due(t - 0.001, skip):
                drv = router.route(msg.topic)
                if drv is None or not hasattr(drv, "decode"):
                    continue
                decoded = drv.decode(msg.topic, msg.payload)
                for r in decoded.readings:
                    lines.append(reading_point(r, r.ts if r.ts is not None else t))
                    written[r.family] = written.get(r.family, 0) + 1
                for e in decoded.events:
                    lines.append(event_point(e, e.ts if e.ts is not None else t))
                if len(lines) >= batch:
                    flush()
        flush()
    finally:
        sink.close()
    return written


def run(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.city import generate_city

    quick = bool(getattr(args, "quick", False))
    devices = args.opendata_devices or (120 if quick else 500)
    days = args.opendata_days or (2 if quick else 30)
    url = args.influx_url.rstrip("/")
    city = with_intervals(generate_city(devices=devices, seed=7, air_per_zone=2),
                          {"traffic": args.opendata_traffic_interval})
    end = (int(time.time()) // DAY) * DAY
    start = end - days * DAY
    db = f"urban_bench_opendata_{uuid.uuid4().hex[:8]}"
    _query(url, f'CREATE DATABASE "{db}"')
    try:
        t0 = time.monotonic()
        points = fill(city, url, db, start, end, night_level=70.0)
        fill_s = time.monotonic() - t0
        with tempfile.TemporaryDirectory(prefix="opendata-bench-") as tmp:
            city_file = Path(tmp) / "city.json"
            city_file.write_text(json.dumps(city))
            out = Path(tmp) / "out"
            from supervisor.opendata.datasets import day

            env = {**os.environ, "URBAN_STORAGE__URL": url, "URBAN_STORAGE__DATABASE": db, "URBAN_MODE": "test"}
            cmd = [sys.executable, "-m", "supervisor", "export", "opendata", "--from", day(start), "--to", day(end),
                   "--out", str(out), "--city", str(city_file)]
            t1 = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            export_s = time.monotonic() - t1
            stdout = proc.stdout.read() if proc.stdout else b""
            stderr = proc.stderr.read() if proc.stderr else b""
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"export failed: {stderr.decode(errors='replace')[-2000:]}")
            result = json.loads(stdout)
            sizes = {f["name"]: f["bytes"] for f in result["files"]}
            rows = {f["dataset"]: f["rows"] for f in result["files"]}
    finally:
        _query(url, f'DROP DATABASE "{db}"')
    return {
        "devices": devices, "days": days, "points_stored": sum(points.values()), "points_by_family": points,
        "fill_s": round(fill_s, 1), "export_s": round(export_s, 2),
        "export_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rows": rows, "bytes": sum(sizes.values()), "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
