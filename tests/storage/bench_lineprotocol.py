"""Micro-benchmark of the storage hot path (not collected by pytest).

    .venv/bin/python -m tests.storage.bench_lineprotocol [--influx]

Prints µs per line for each family shape, and with ``--influx`` the end-to-end rate of a batch
writer posting to the real InfluxDB 1.x (fresh database, dropped afterwards).
"""

from __future__ import annotations

import sys
import time

from drivers import Event, Reading
from supervisor.storage import BatchWriter, InfluxV1Sink, event_line, reading_line
from supervisor.storage.schema import reading_point

N = 50_000
TS = 1_764_115_200_000


def _shapes() -> dict[str, list[Reading]]:
    return {
        "traffic (3 floats)": [
            Reading(f"rs-{i % 2000}", "traffic", {"flow": 420.0 + i, "speed": 47.5, "occupancy": 12.3},
                    zone=f"z{i % 12}") for i in range(N)],
        "cabinet (7 mixed)": [
            Reading(f"cab-{i % 500}", "lighting", {"power": 1234.5, "energy": 5678.9 + i, "voltage": 231.2,
                    "current": 5.4, "lamp_failures": 2, "lamps": 24, "door_open": False}, zone=f"z{i % 12}")
            for i in range(N)],
        "circuit (channel)": [
            Reading(f"cab-{i % 500}", "lighting", {"on": True, "level": 70.0, "power": 600.0},
                    zone=f"z{i % 12}", channel=str(i % 4)) for i in range(N)],
        "water (str field)": [
            Reading(f"wm-{i % 5000}", "water", {"index": 1234.567 + i, "flow": 0.012, "alarms": "LEAK"},
                    zone=f"z{i % 12}") for i in range(N)],
    }


def main() -> None:
    for name, readings in _shapes().items():
        best = min(_time(lambda rs=readings: [reading_line(r, TS + i) for i, r in enumerate(rs)])
                   for _ in range(3))
        point = min(_time(lambda rs=readings: [reading_point(r, TS / 1000 + i) for i, r in enumerate(rs)])
                    for _ in range(3))
        print(f"{name:20s} reading_line {best / N * 1e6:5.2f} µs/line   reading_point {point / N * 1e6:5.2f} µs/line")
    events = [Event(f"cam-{i % 300}", "cctv", "motion", zone="z1", data={"score": 0.87}) for i in range(N)]
    t = min(_time(lambda: [event_line(e, TS + i) for i, e in enumerate(events)]) for _ in range(3))
    print(f"{'cctv event':20s} event_line   {t / N * 1e6:5.2f} µs/line")
    if "--influx" in sys.argv:
        _influx()


def _time(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def _influx() -> None:
    from tests.support.services import INFLUX_URL, Influx

    influx = Influx()
    db = influx.create()
    try:
        readings = _shapes()["traffic (3 floats)"] * 4
        lines = [reading_line(r, TS + i) for i, r in enumerate(readings)]
        w = BatchWriter(InfluxV1Sink(INFLUX_URL, db, create_database=False), batch_size=5000, flush_interval=0.5)
        w.start()
        t0 = time.perf_counter()
        for i in range(0, len(lines), 1000):
            w.submit(lines[i : i + 1000])
        w.flush(120)
        dt = time.perf_counter() - t0
        s = w.stats()
        w.stop(10)
        print(f"writer → InfluxDB 1.x: {s.points_written} points in {dt:.2f}s = {s.points_written / dt:,.0f} points/s "
              f"(batch 5000, gzip, last batch {s.last_latency_ms:.0f} ms)")
    finally:
        influx.drop(db)


if __name__ == "__main__":
    main()
