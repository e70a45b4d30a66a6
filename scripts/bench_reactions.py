"""Reaction benchmark: the pipeline thread's time per rule command, in process.

The city and rules of ``urban-supervisor bench rules`` (2,000 devices, adaptive lighting over every
road sensor, 1 % steps): every road sensor reports a busy, then a quiet flow, so every street changes
class and commands its lamps, through the real lane pipeline, rule engine, command sender and
writer (its thread running, writing to a scratch database of the local InfluxDB, dropped at the
end). MQTT is left out: the stage's commands are only collected. Prints the wall time per command,
the sensors' own decoding included. Usage::

    .venv/bin/python scripts/bench_reactions.py [--rounds 6] [--repeat 3] [--influx-url URL]

5 Dec 2026: 36.2-45.5 us per command (median ~37.5) with a stage's points queued in one submit
(:class:`supervisor.service.supervisor._Stage`), against 41.9-55.3 us (median ~43) with one submit
per point, six runs each, interleaved.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from simulators.city import generate_city
from supervisor.bench.report import influx
from supervisor.bench.rules import RULES, _night_start
from supervisor.config import load_settings
from supervisor.ingest.mqtt import Message
from supervisor.model import city_from_dict
from supervisor.service.supervisor import Supervisor

DB = "bench_reactions_scratch"


def once(work: Path, city: dict[str, object], rounds: int, influx_url: str) -> tuple[int, int, float]:
    """(inputs, commands, seconds) of ``rounds`` rounds of class changes on every street."""
    devices = city["devices"]
    assert isinstance(devices, list)
    lon, lat = devices[0]["geometry"]["coordinates"]
    settings = load_settings(
        None, data_dir=str(work / "var"), city=str(work / "city.json"), rules_dir=str(work / "rules"),
        clock_start=_night_start(lat, lon), api={"enabled": False},
        commands={"rate_per_device": 1e6, "burst": 1_000_000},
        storage={"url": influx_url, "database": DB})
    sup = Supervisor(settings, model=city_from_dict(city))
    sup.register_model(sup.clock())  # what start() does first, without connecting to MQTT
    sent: list[object] = []
    sup.lane.mqtt.publish_many = sent.extend  # type: ignore[method-assign,assignment]
    sup.lane.mqtt.stats.connected = True
    sup._prepare_storage()
    sup.writer.start()
    sensors = [(d["id"], d["zone"]) for d in devices if d["kind"] == "road_sensor"]

    def batch(flow: float) -> list[Message]:
        body = orjson.dumps({"flow": flow, "speed": 40.0, "occupancy": 2.0})
        return [(f"city/{z}/traffic/{s}/telemetry", body, 0, 0, time.time()) for s, z in sensors]

    try:
        with sup.lock:
            for _ in range(3):  # settle: the schedule, then every street's first class
                with sup.stage:
                    sup.lane_pipeline.process(batch(50.0))
                sup.periodic.run()
            n0 = len(sent)
            t0 = time.perf_counter()
            for i in range(rounds):
                with sup.stage:
                    sup.lane_pipeline.process(batch(1200.0 if i % 2 == 0 else 50.0))
            dt = time.perf_counter() - t0
    finally:
        sup.writer.stop(30.0)
    return rounds * len(sensors), len(sent) - n0, dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--influx-url", default="http://127.0.0.1:8086")
    args = p.parse_args()
    city = generate_city(seed=1, devices=2000)
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-reactions-") as tmp:
                work = Path(tmp)
                (work / "city.json").write_bytes(orjson.dumps(city))
                (work / "rules").mkdir()
                (work / "rules" / "bench.yaml").write_text(RULES)
                inputs, commands, dt = once(work, city, args.rounds, args.influx_url)
                print(f"{inputs} inputs, {commands} commands in {dt * 1000:.0f} ms: "
                      f"{dt / max(commands, 1) * 1e6:.1f} us per command (inputs included)")
    finally:
        influx(args.influx_url, f'DROP DATABASE "{DB}"')


if __name__ == "__main__":
    main()
