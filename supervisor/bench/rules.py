"""``bench rules``: rule reaction latency, traffic message published → dimming command published.

A supervisor process runs a generated city with a schedule and an adaptive-lighting rule (no hold,
a 100 %/s ramp whose first step leads, so every change of traffic class is a command at once), on
a virtual clock set at night. A probe publishes road-sensor telemetry alternating between a busy
and a quiet flow, at random gaps; a subscriber records when the first resulting command for the
street's lamps appears on the broker. Meanwhile a publisher process sends the city's background
telemetry at ``--rules-load`` msg/s.

Latency includes two broker hops and the supervisor (its pipeline wakes when messages arrive and
the adaptive rule reacts within the batch). The baseline, measured on the same probes, is the
probe's own trip through the broker to a bare paho subscriber (one hop). When the background load
exceeds what the supervisor drains, the probes queue behind it: the figure then measures the
backlog, and the report says so (``lag``).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gc
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from supervisor.bench._load import PublisherProcess, drop_session, generate_messages, write_messages
from supervisor.bench.ingest import SupervisorProcess
from supervisor.bench.procs import end_process, mosquitto
from supervisor.bench.report import bench_db, influx, percentile

NAME = "rules"
HELP = "rule reaction latency (traffic message → command), p50/p99, under background load"

RULES = """\
version: 1
rules:
  - id: night-schedule
    kind: schedule
    lights: {family: lighting, kind: lamp}
    on_offset_min: 0
    off_offset_min: 0
    level: 100
  - id: traffic-dims-lights
    kind: adaptive_lighting
    sensors: {family: traffic, kind: road_sensor}
    schedule: night-schedule
    buffer_m: 25
    classes:
      - {name: M3, min_flow: 1000, level: 100}
      - {name: M6, min_flow: 0, level: 30}
    hysteresis: 0
    hold_s: 0
    ramp_pct_per_min: 6000
    step_pct: 1
    min_level: 30
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rules")
    g.add_argument("--rules-load", type=float, nargs="*", default=None,
                   help="background loads in msg/s (default 10000 and 3000; quick 1000)")
    g.add_argument("--probes", type=int, default=None, help="probes per load (default 200, quick 30)")
    g.add_argument("--runs", type=int, default=None,
                   help="runs per load, each with a fresh supervisor (default 5, quick 1): each p99 and the worst")
    g.add_argument("--lane", choices=("on", "inputs", "off"), default="on",
                   help="the control lane: on (default), inputs (no confirmations), off (one FIFO, as before)")
    g.add_argument("--background-start", default=BACKGROUND_START, metavar="HH:MM",
                   help="the city's local time of the background's first message (default %(default)s: its "
                        "morning peak ends 6-12 s into the load and most streets change class: a wave of "
                        "commands; 12:00 gives a load without one)")


#: The background's simulated clock runs ~870x faster than the wall clock (2,000 devices at 10k msg/s),
#: so its traffic goes through hours of the day in seconds. Its phase used to follow the time of day
#: the bench ran (its first message 12 h before now): the wave of commands of a morning or evening
#: decline fell in the probes' window on some runs and not on others. It is fixed now, and reported.
BACKGROUND_START = "07:00"


def _background_origin(city: dict[str, Any], hhmm: str) -> float:
    """UTC epoch s of ``hhmm`` (the city's local time), two days ago."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    try:
        hour, minute = (int(x) for x in hhmm.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise SystemExit(f"bench rules: --background-start wants HH:MM (00:00-23:59), got {hhmm!r}") from None
    tz = ZoneInfo(str(city.get("timezone") or "UTC"))
    day = (datetime.now(tz) - timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp()


def _night_start(lat: float, lon: float) -> float:
    from datetime import UTC, datetime, timedelta

    from rules.sun import sun_times

    day = (datetime.now(UTC) - timedelta(days=2)).date()
    sunset = sun_times(day, lat, lon).sunset
    base = sunset if sunset is not None else datetime(day.year, day.month, day.day, 20, tzinfo=UTC).timestamp()
    return base + 2 * 3600  # two hours into the night


def _probe_target(city: dict[str, Any]) -> tuple[str, str, str, set[str]]:
    """A road sensor whose street has lamps: (sensor, zone, street, lamps)."""
    from supervisor.model import city_from_dict

    model = city_from_dict(city)
    for d in model.devices.values():
        if d.kind == "road_sensor" and d.street:
            lamps = set(model.lights_along(d.street, 25.0))
            if lamps:
                return d.id, d.zone, d.street, lamps
    raise RuntimeError("the generated city has no road sensor with lamps along its street")


class _CommandWatch:
    """Records the first command for the street's lamps, and when the probe itself came through the
    broker (one hop, bare paho: the baseline under the same load, at the same moment).

    It subscribes to the probe street's lamps only. It used to take every lamp command (a wildcard,
    QoS 1) to count them: in a wave of 7,000 commands/s that Python client fell behind, and the
    probe's own command and hop then waited in the broker's queue for it (hops of 53-92 ms, 4 Dec
    2026): the harness measured its own backlog. :class:`_CommandCount` counts them apart."""

    def __init__(self, host: str, port: int, lamps: set[str], probe_topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lamps = lamps
        self.first: float | None = None
        self.event = threading.Event()
        self.levels: list[float] = []
        self.probe_seen: float | None = None
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-cmd-watch", protocol=mqtt.MQTTv5)

        def on_connect(*_: Any) -> None:
            c.subscribe([(f"city/+/lighting/{lamp}/cmd", 1) for lamp in sorted(lamps)] + [(probe_topic, 1)])
            self.connected.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            if msg.topic == probe_topic:
                if self.probe_seen is None:
                    self.probe_seen = time.monotonic()
                return
            dev = msg.topic.split("/")[3]
            if dev in self.lamps and self.first is None:
                self.first = time.monotonic()
                self.levels.append(float(orjson.loads(msg.payload).get("level", -1)))
                self.event.set()

        c.on_connect = on_connect
        c.on_message = on_message
        c.connect(host, port)
        c.loop_start()
        self.client = c

    def arm(self) -> None:
        self.first = None
        self.probe_seen = None
        self.event.clear()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _CommandCount:
    """Every lamp command of every rule, as the broker delivers them: ``mosquitto_sub`` at QoS 0
    writes each one's arrival (wall time) to a file. A C client out of the harness's process: it
    takes no GIL from the watcher and, at QoS 0, holds nothing back at the broker."""

    def __init__(self, host: str, port: int, path: Path) -> None:
        self.path = path
        self._out = open(path, "wb")  # noqa: SIM115 - held while mosquitto_sub runs
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", host, "-p", str(port), "-q", "0", "-i",
                                      "bench-cmd-count", "-t", "city/+/lighting/+/cmd", "-F", "%U"],
                                     stdout=self._out, stderr=subprocess.DEVNULL)

    def times(self) -> list[float]:
        """Stop counting; the arrival times (wall clock, s), in order."""
        end_process(self.proc, 10.0)
        self._out.close()
        out: list[float] = []
        for line in self.path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                out.append(float(line))
        return out


def _wait_flowing(sup: SupervisorProcess, load: float) -> None:
    """Warm up: probe once the background has flowed for a second (caches warm, steady batches);
    the first probe otherwise met the publisher's and the supervisor's start-up (~1 s)."""
    base = (sup.summary() or {}).get("ingest", {}).get("received", 0)
    warm = time.monotonic() + 30.0
    while time.monotonic() < warm:
        got = (sup.summary() or {}).get("ingest", {}).get("received", 0) - base
        if got >= max(load, 1.0):
            break
        time.sleep(0.1)
    time.sleep(0.5)


# (s since the first probe, its broker hop in ms, wall time, monotonic time it was sent)
_Timeline = list[tuple[float, float | None, float, float]]


def _probe_loop(watch: _CommandWatch, probe: Any, topic: str,
                probes: int) -> tuple[list[float], list[float], _Timeline, int]:
    """Send the probes one at a time and time each one's first command: (latencies, hops, when, missed)."""
    latencies: list[float] = []
    hop: list[float] = []
    when: _Timeline = []
    missed = 0
    flows = (1200.0, 50.0)
    rng = random.Random(7)
    deadline = time.monotonic() + max(60.0, probes * 2.0)
    # the harness itself must not pause: a full collection over what it generated (hundreds of
    # thousands of messages, ~800 MB) stopped the watcher's thread for up to 1.25 s, which was
    # then measured as the first probe's latency
    gc.collect()
    gc.freeze()
    t_probes = time.monotonic()
    for i in range(probes):
        if time.monotonic() > deadline:
            break
        watch.arm()
        t0, wall = time.monotonic(), time.time()
        probe.publish(topic, orjson.dumps({"flow": flows[i % 2], "speed": 40.0, "occupancy": 5.0}), qos=1)
        if watch.event.wait(5.0) and watch.first is not None:
            latencies.append((watch.first - t0) * 1000.0)
            seen = watch.probe_seen
            when.append((round(t0 - t_probes, 2), round((seen - t0) * 1000.0, 1) if seen is not None else None,
                         round(wall, 3), t0))
        else:
            missed += 1
        if watch.probe_seen is not None:
            hop.append((watch.probe_seen - t0) * 1000.0)
        time.sleep(rng.uniform(0.02, 0.08))  # random gaps: no phase lock with periodic work
    return latencies, hop, when, missed


def _measure(host: str, port: int, work: Path, city: dict[str, Any], *, city_path: Path, rules_dir: Path,
             load: float, probes: int, influx_url: str, background: Path, lane: str) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    sensor, zone, _street, lamps = _probe_target(city)
    lon, lat = city["devices"][0]["geometry"]["coordinates"]
    db = bench_db("rules")
    cfg_extra = {"city": str(city_path), "rules_dir": str(rules_dir), "clock_start": _night_start(lat, lon),
                 "commands": {"rate_per_device": 1000.0, "burst": 1000}}
    sup = SupervisorProcess(work, port, influx_url, db, f"sup-rules-{int(load)}", extra=cfg_extra,
                            mqtt={"lane": lane != "off", "lane_confirmations": lane == "on"})
    topic = f"city/{zone}/traffic/{sensor}/telemetry"
    watch = _CommandWatch(host, port, lamps, topic)
    count = _CommandCount(host, port, work / f"commands-{int(load)}.txt")
    command_times: list[float] = []
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=mqtt.MQTTv5)
    probe.connect(host, port)
    probe.loop_start()
    pub = None
    try:
        sup.wait_ready(60)
        watch.connected.wait(10)
        # settle: let the schedule light the lamps and the first traffic level apply
        probe.publish(topic, orjson.dumps({"flow": 50.0, "speed": 40.0, "occupancy": 2.0}), qos=1)
        time.sleep(2.0)
        pub = PublisherProcess(host, port, background, rate=load) if load > 0 else None
        # warm up: probe once the background has flowed for a second (caches warm, steady batches);
        # the first probe otherwise met the publisher's and the supervisor's start-up (~1 s)
        _wait_flowing(sup, load)
        t_probes = time.time()
        latencies, hop, when, missed = _probe_loop(watch, probe, topic, probes)
        t_end = time.time()
        gc.unfreeze()
        summary = sup.summary() or {}
        bg = pub.wait(600) if pub is not None else {"rate": 0.0}
    finally:
        if pub is not None and pub.proc.poll() is None:
            pub.proc.kill()
        probe.loop_stop()
        watch.stop()
        command_times = count.times()
        sup.stop()
        drop_session(host, port, f"sup-rules-{int(load)}")  # the next load must not queue for it
        # the next run must not share the machine with this one's compactions: the databases were
        # kept, ~0.4M points each, and after a sitting of 40 runs influxd held 2.2 GB and a core's
        # fifth in the background (5 Dec 2026)
        influx(influx_url, f'DROP DATABASE "{db}"')
    return {
        "background_target_msg_s": load,
        "background_achieved_msg_s": round(bg.get("rate", 0.0)),
        "probes": len(latencies) + missed,
        "missed": missed,
        "latency_ms": _stats(latencies),
        # the first ONSET_S of probes, then the rest: when the background starts, every street's first
        # readings set its target and ~1,000 lamps are commanded within about a second
        "latency_ms_onset": _stats([lat for lat, (at, *_) in zip(latencies, when, strict=True) if at < ONSET_S]),
        "latency_ms_after_onset": _stats([lat for lat, (at, *_) in zip(latencies, when, strict=True)
                                          if at >= ONSET_S]),
        # lamp commands of every rule seen on the broker while the probes ran (the bench's adaptive rule
        # has no hysteresis and 1 % steps: a heavy, deliberate control load)
        "commands_per_s": round(sum(1 for t in command_times if t_probes <= t <= t_end)
                                / max(t_end - t_probes, 1e-9)),
        # the busiest second of commands while the probes ran: the background's device clocks run
        # ~870x faster than the city's (2,000 devices at 10k msg/s), so the decline of its morning peak
        # (BACKGROUND_START) comes ~6-12 s into the load and most streets change class within ~3 s
        # (1,000 veh/h): a wave of commands that every lane input then waits behind (4 Dec 2026:
        # ~7,000 commands in its busiest second against ~450/s before it; the "stall 10 s into the
        # load" of issue 18)
        "commands_per_s_peak": _peak_rate(command_times, t_probes, t_end),
        # the slowest probes and when they were sent (s after the first): start-up or periodic work?
        # with the probe's own hop: a slow hop means the broker or the harness, not the supervisor
        # ``at``: wall time, to match with the supervisor's own ``loop`` diagnostics below
        # ``commands_1s``: lamp commands of every rule seen on the broker in the second before this
        # probe's own command, that one included (a wave of other streets' commands, or not)
        "slowest": [{"ms": round(lat, 1), "at_s": at, "hop_ms": h, "at": wall,
                     "commands_1s": _count_between(command_times, wall + lat / 1000.0 - 1.0,
                                                   wall + lat / 1000.0 + COUNT_GRACE_S)}
                    for lat, (at, h, wall, _t0) in sorted(zip(latencies, when, strict=True))[-3:]],
        # baseline: the probe's own trip through the broker to a bare paho subscriber (one hop; the
        # measured latency has two hops and the supervisor in between)
        "broker_hop_paho_ms": {"p50": round(percentile(hop, 50), 1), "p99": round(percentile(hop, 99), 1)},
        "supervisor_lag_ms_last": summary.get("ingest", {}).get("lag_ms"),
        "supervisor_received": summary.get("ingest", {}).get("received"),
        "peak_rss_mb": round(sup.peak_rss, 1),
        "lane": summary.get("lane", {}),
        # the supervisor's slow pipeline iterations, long collections, slow writes (wall times)
        "loop": summary.get("loop", {}),
    }


ONSET_S = 2.0  # s of probes counted as the load's onset
#: ``mosquitto_sub`` may get a command a little after the watcher: its count of "the second before the
#: probe's command" runs this much past it, so that it holds the probe's own command
COUNT_GRACE_S = 0.1


def _count_between(times: list[float], lo: float, hi: float) -> int:
    """How many of the sorted ``times`` fall in (lo, hi]."""
    return bisect.bisect_right(times, hi) - bisect.bisect_right(times, lo)


def _peak_rate(times: list[float], start: float, end: float) -> int:
    """The most ``times`` (sorted) within any one second of [start, end] (windows starting at each time)."""
    inside = times[bisect.bisect_left(times, start):bisect.bisect_right(times, end)]
    return max((_count_between(inside, t - 1e-9, t + 1.0 - 1e-9) for t in inside), default=0)


def _stats(latencies: list[float]) -> dict[str, float | int]:
    return {"n": len(latencies), "p50": round(percentile(latencies, 50), 1),
            "p90": round(percentile(latencies, 90), 1), "p99": round(percentile(latencies, 99), 1),
            "max": round(max(latencies, default=0.0), 1)}


def _runs(each: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst run in full (by p99), with every run's p50/p99/max: the figure must hold on each run."""
    worst = max(each, key=lambda r: r["latency_ms"]["p99"])
    return {**worst,
            "runs": [{**r["latency_ms"], "missed": r["missed"], "lane_received": r["lane"].get("lane_received"),
                      "p99_after_onset": r["latency_ms_after_onset"]["p99"], "commands_per_s": r["commands_per_s"],
                      "commands_per_s_peak": r["commands_per_s_peak"]}
                     for r in each],
            "p99_each": [r["latency_ms"]["p99"] for r in each], "p99_worst": worst["latency_ms"]["p99"],
            "p99_after_onset_each": [r["latency_ms_after_onset"]["p99"] for r in each],
            "p50_worst": max(r["latency_ms"]["p50"] for r in each)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.city import generate_city

    loads = args.rules_load or ([1000.0] if args.quick else [10000.0, 3000.0])
    probes = args.probes or (30 if args.quick else 200)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="urban-bench-rules-") as tmp:
        work = Path(tmp)
        city = generate_city(seed=1, devices=2000)
        city_path = work / "city.json"
        city_path.write_bytes(orjson.dumps(city))
        rules_dir = work / "rules"
        rules_dir.mkdir()
        (rules_dir / "bench.yaml").write_text(RULES)
        n_bg = int(max(loads) * (probes * 0.1 + 10)) if max(loads) > 0 else 0
        background = work / "background.jsonl"
        # the road sensors of the probe's street stay out of the background: the street takes its
        # busiest sensor's flow, so their simulated flows would change its class between probes,
        # and a probe that changes nothing sends no command
        street = _probe_target(city)[2]
        quiet = {d["id"] for d in city["devices"] if d["kind"] == "road_sensor" and d.get("street") == street}
        origin = _background_origin(city, args.background_start)
        write_messages(background, [m for m in generate_messages(2000, max(n_bg, 1), seed=1, origin=origin)
                                    if m.device not in quiet])
        runs = max(1, args.runs or (1 if args.quick else 5))
        with mosquitto(work / "mosquitto") as broker:
            for load in loads:
                each = [_measure(broker.host, broker.port, work, city, city_path=city_path, rules_dir=rules_dir,
                                 load=load, probes=probes, influx_url=args.influx_url.rstrip("/"),
                                 background=background, lane=args.lane) for _ in range(runs)]
                out[f"load_{int(load)}"] = _runs(each)
    out["background_start_local"] = args.background_start
    out["note"] = ("latency = probe publish → first command for the street's lamps seen on the broker "
                   "(two broker hops); when the background exceeds the supervisor's drain rate, probes "
                   "queue behind the backlog")
    return out
