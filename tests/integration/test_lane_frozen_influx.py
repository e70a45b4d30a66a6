"""Issue 18 acceptance: InfluxDB frozen for 30 s under a load above the drain rate.

A private ``influxd`` is stopped with SIGSTOP (a frozen server: it accepts connections and never
answers, the worst case for a writer) while a publisher process sends a 1,000-device city's
telemetry at 2,000 msg/s. Nothing can be stored, so the supervisor's drain rate is zero: the
writer holds its batch, bulk telemetry waits in the inbox and then at the broker. Meanwhile a
camera event is published every 1.1 s, each from a different camera with its own lamps; every one
must light all its lamps within 100 ms (the commands on the broker), counted from when the broker
delivered the event (to the test's own subscriber, like ``bench rules``' probe hop: a stall of
the broker or of the machine is not the supervisor's). After SIGCONT every point is
stored exactly once: per measurement and device, InfluxDB holds what was published, no more, no
less (points are idempotent: a batch written again after a timeout overwrites itself). The
decisions and command states taken during the freeze are stored too (never dropped), and the
health points written during it show the backlog (the age of the oldest bulk message).

Real components only: the supervisor runs as ``urban-supervisor run`` in its own process, the
broker is a private Mosquitto, the publisher a process of its own (no GIL shared with the probes).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.city import generate_city
from supervisor.bench._load import PublisherProcess, write_messages
from supervisor.bench.reliability import COUNT_FIELD, InfluxHttp, InfluxProc, Load, SupervisorProc, supervisor_config
from supervisor.model import city_from_dict
from tests.rules._city import MOTION_LIGHTS
from tests.support.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = 1000
RATE = 2000.0  # msg/s: above the drain rate while InfluxDB is frozen (which is zero)
FREEZE_S = 30.0
BEFORE_S = 3.0  # load before the freeze
PROBE_EVERY_S = 1.1
REACTION_S = 0.100  # the acceptance bound, on each event: generous for milliseconds, real
RULES = MOTION_LIGHTS


class _Commands:
    """Every lamp command seen on the broker: (monotonic time, lamp); and every camera event, as
    ``event:<camera>`` (when the broker delivered the probe: the start of the supervisor's part)."""

    def __init__(self, host: str, port: int) -> None:
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lane-frozen-watch-{uuid.uuid4().hex[:6]}",
                        protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, *_: (cl.subscribe([("city/+/lighting/+/cmd", 1), ("city/+/cctv/+/event", 1)]),
                                       self.ready.set())
        c.on_message = self._on_message
        c.connect(host, port)
        c.loop_start()
        self.client = c

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        t = time.monotonic()
        parts = msg.topic.split("/")
        with self.lock:
            self.seen.append((t, f"event:{parts[3]}" if parts[2] == "cctv" else parts[3]))

    def first_after(self, t0: float, lamps: set[str]) -> dict[str, float]:
        with self.lock:
            out: dict[str, float] = {}
            for t, lamp in self.seen:
                if t >= t0 and lamp in lamps and lamp not in out:
                    out[lamp] = t
            return out

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _probe_cameras(city: dict[str, object]) -> list[tuple[str, str, set[str]]]:
    """Cameras whose lamps (within the rule's 80 m) no other chosen camera has: (camera, zone, lamps)."""
    model = city_from_dict(city)
    used: set[str] = set()
    out = []
    for cam, info in sorted(model.devices.items()):
        if info.kind != "camera":
            continue
        lamps = set(model.devices_within(info.lon, info.lat, 80.0, family="lighting", kind="lamp"))
        if lamps and not lamps & used:
            used |= lamps
            out.append((cam, info.zone, lamps))
    return out


def _counts_by_device(influx: InfluxHttp, db: str, measurements: list[str]) -> Counter[tuple[str, str]]:
    """Points per (measurement, device), household water read from its own retention policy too."""
    from supervisor.storage.retention import raw_sources

    rps = [r["name"] for r in influx.rows(f'SHOW RETENTION POLICIES ON "{db}"', db)]
    got: Counter[tuple[str, str]] = Counter()
    for m in measurements:
        for source in raw_sources(m, rps):
            for row in influx.rows(f'SELECT count("{COUNT_FIELD[m]}") AS n FROM {source} GROUP BY "device"', db):
                got[(m, str(row["device"]))] += int(row["n"])
    return got


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class _Setup:
    city: dict[str, object]
    probes: list[tuple[str, str, set[str]]]  # the cameras sent during the freeze
    expected: Counter[tuple[str, str]]  # points per (measurement, device)
    background: Path


def _setup(tmp_path: Path) -> _Setup:
    city = generate_city(seed=4, devices=DEVICES)
    probes = _probe_cameras(city)[: int(FREEZE_S / PROBE_EVERY_S) - 1]
    assert len(probes) == int(FREEZE_S / PROBE_EVERY_S) - 1, "the city has too few cameras with lamps of their own"
    # the city's telemetry, without the cameras' own events (a motion event in the background would
    # command lamps too, and blur which event a command answers)
    load = Load.city(DEVICES, int(RATE * (BEFORE_S + FREEZE_S + 2)), seed=4)
    messages = [m for m in load.messages if not m.topic.endswith("/event")]
    expected: Counter[tuple[str, str]] = Counter()
    for m in messages:
        expected[(m.measurement, m.device)] += m.points
        if m.events:
            expected[("events", m.device)] += m.events
    for cam, _zone, _lamps in probes:
        expected[("events", cam)] += 1
    background = tmp_path / "background.jsonl"
    write_messages(background, messages)
    (tmp_path / "city.json").write_bytes(orjson.dumps(city))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "lights.yaml").write_text(RULES)
    return _Setup(city, probes, expected, background)


def _supervisor(tmp_path: Path, broker: Mosquitto, influx_url: str, db: str) -> SupervisorProc:
    cfg = supervisor_config(tmp_path / "var", broker, influx_url, db, f"lane-frozen-{uuid.uuid4().hex[:6]}",
                            # a frozen server never answers: every write times out and is retried
                            # for the whole freeze (nothing goes to the spool, so nothing drains);
                            # the writer holds the Receive Maximum's 2,000 unacknowledged messages, the
                            # broker the rest (the backlog)
                            timeout=1.0, max_retries=1000, retry_min_delay=0.2, retry_max_delay=1.0,
                            batch_size=1000)
    cfg["city"] = str(tmp_path / "city.json")
    cfg["rules_dir"] = str(tmp_path / "rules")
    cfg["mqtt"]["lane_topics"] = ["city/+/cctv/+/event"]  # a camera's first event is already on the lane
    cfg["mqtt"]["inbox_max"] = 5000
    return SupervisorProc(tmp_path / "sup", cfg)


def _probe_during(freeze_s: float, probes: list[tuple[str, str, set[str]]], client: mqtt.Client,
                  watch: _Commands) -> list[tuple[str, float | None, float | None]]:
    """One camera event every PROBE_EVERY_S for ``freeze_s``: (camera, s from the event's delivery by
    the broker until all its lamps were commanded, s from its publication)."""
    t_start = time.monotonic()
    reactions: list[tuple[str, float | None, float | None]] = []
    for cam, zone, lamps in probes:
        time.sleep(PROBE_EVERY_S)
        t0 = time.monotonic()
        client.publish(f"city/{zone}/cctv/{cam}/event",
                       orjson.dumps({"type": "motion", "ts": time.time(), "score": 0.9}), qos=1)
        want = lamps | {f"event:{cam}"}
        got: dict[str, float] = {}
        while time.monotonic() < t0 + 5.0:
            got = watch.first_after(t0, want)
            if set(got) == want:
                break
            time.sleep(0.005)
        if set(got) == want:
            done = max(t for k, t in got.items() if k in lamps)
            reactions.append((cam, done - got[f"event:{cam}"], done - t0))
        else:
            reactions.append((cam, None, None))
    time.sleep(max(0.0, freeze_s - (time.monotonic() - t_start)))
    return reactions


def _check_stored(influx: InfluxHttp, db: str, setup: _Setup, freeze: tuple[float, float],
                  summary: dict[str, Any] | None) -> None:
    expected = setup.expected
    stored = _counts_by_device(influx, db, sorted({m for m, _ in expected}))
    wrong = {k: (v, stored.get(k, 0)) for k, v in expected.items() if stored.get(k, 0) != v}
    extra = {k: v for k, v in stored.items() if k not in expected}
    assert not wrong and not extra, f"not once (expected, stored): {dict(list(wrong.items())[:10])} {extra}"
    # the backlog was real: the health points written during the freeze (stored after it) show bulk
    # telemetry waiting for seconds (not stored: in the writer, the broker holding the rest), while
    # the lane's reactions stayed in milliseconds
    rows = influx.rows('SELECT max("bulk_oldest_ms") AS oldest FROM "supervisor" '
                       f"WHERE time >= {int(freeze[0] * 1e9)} AND time <= {int(freeze[1] * 1e9)}", db)
    assert rows and rows[0]["oldest"] >= 10_000, rows
    # decisions and command states taken during the freeze were queued without blocking the lane,
    # and stored after it: none dropped
    lamps = set().union(*(lamps for _c, _z, lamps in setup.probes))
    rows = influx.rows('SELECT count("level") AS n FROM "commands" GROUP BY "device"', db)
    commanded = {str(r["device"]) for r in rows}
    assert lamps <= commanded, f"command states missing for {sorted(lamps - commanded)[:10]}"
    decided = influx.rows('SELECT count("output") AS n FROM "decisions"', db)
    assert decided and decided[0]["n"] >= len(setup.probes), decided
    assert summary is not None and summary["storage"]["dead_letters"] == 0
    assert summary["lane"]["lane_received"] >= len(setup.probes)
    print("lane", summary["lane"])


def test_camera_events_light_their_lamps_while_influxdb_is_frozen_and_every_point_is_stored_once(
        tmp_path: Path, broker: Mosquitto) -> None:
    if shutil.which("influxd") is None:
        pytest.fail("influxd is needed; run scripts/services.sh")
    setup = _setup(tmp_path)
    influxd = InfluxProc(tmp_path / "influxdb").start()
    influx = InfluxHttp(influxd.url)
    db = influx.create()
    sup = _supervisor(tmp_path, broker, influxd.url, db)
    watch = _Commands(broker.host, broker.port)
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lane-frozen-probe-{uuid.uuid4().hex[:6]}",
                        protocol=mqtt.MQTTv5)
    probe.connect(broker.host, broker.port)
    probe.loop_start()
    pub: PublisherProcess | None = None
    frozen = False
    try:
        sup.start().wait_connected()
        assert watch.ready.wait(10)
        pub = PublisherProcess(broker.host, broker.port, setup.background, rate=RATE)
        time.sleep(BEFORE_S)
        assert influxd.proc is not None
        os.kill(influxd.proc.pid, signal.SIGSTOP)
        frozen, wall_freeze = True, time.time()
        reactions = _probe_during(FREEZE_S, setup.probes, probe, watch)
        os.kill(influxd.proc.pid, signal.SIGCONT)
        frozen, wall_thaw = False, time.time()
        ms = [(cam, None if s is None else round(s * 1000.0, 1), None if r is None else round(r * 1000.0, 1))
              for cam, s, r in reactions]
        print("reactions during the freeze, ms from the event's delivery (from its publication):",
              [f"{s} ({r})" for _, s, r in ms])
        late = [m for m in ms if m[1] is None or m[1] > REACTION_S * 1000.0]
        pub.wait(120)
        total = sum(setup.expected.values())
        measurements = sorted({m for m, _ in setup.expected})
        _wait(lambda: sum(_counts_by_device(influx, db, measurements).values()) >= total, 120,
              "every point in InfluxDB after the thaw")
        summary = sup.terminate()
        _check_stored(influx, db, setup, (wall_freeze, wall_thaw), summary)
        # last, so that the supervisor's own diagnostics of a late reaction are in the message
        assert not late, (f"camera events whose lamps were not all commanded within 100 ms: {late}; "
                          f"the supervisor's slowest iterations: {(summary or {}).get('loop')}")
    finally:
        if frozen and influxd.proc is not None:
            os.kill(influxd.proc.pid, signal.SIGCONT)
        if pub is not None and pub.proc.poll() is None:
            pub.proc.kill()
        probe.loop_stop()
        watch.stop()
        sup.terminate(30)
        influxd.stop()
