"""``run --workers N``: zone partition, two worker processes through the real Mosquitto and InfluxDB.

Each worker owns disjoint zones (``$share/<group>-p<i>/city/<zone>/#``). With two workers: every
message reaches exactly one worker (the one owning its zone), InfluxDB holds exactly the expected
points, rules fire in both partitions exactly once per lamp, and a worker killed with SIGKILL is
restarted by the manager and drains what the broker queued for its session (no loss).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulators.city import generate_city
from simulators.publisher import Publisher
from simulators.telemetry import Message
from supervisor.bench.procs import free_port_range
from supervisor.workers import (
    WorkerManager,
    WorkersError,
    partition,
    plan_workers,
    split_subscriptions,
    worker_env,
    zone_weights,
)
from tests.integration._rig import local
from tests.integration.test_spine import COUNT_FIELD, _messages
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration
NIGHT = local(2025, 1, 15, 22, 0)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")



def _summary(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/summary", timeout=2) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data
    except OSError:
        return None


def _alarms(port: int) -> list[dict[str, Any]]:
    """The "worker restarted" alarms of the worker whose API listens on ``port``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alarms", timeout=2) as r:
            items: list[dict[str, Any]] = json.loads(r.read())["items"]
    except OSError:
        return []
    return [a for a in items if a["element"] == "worker"]


def _connected(port: int) -> bool:
    s = _summary(port)
    return s is not None and bool(s["mqtt"]["connected"])


def _count(influx: Influx, db: str, measurement: str) -> int:
    """Points of ``measurement``, household water read from its own retention policy too."""
    from supervisor.storage.retention import raw_sources

    policies = [str(v[0]) for s in influx.series(f'SHOW RETENTION POLICIES ON "{db}"', db)
                for v in s["values"]]  # type: ignore[union-attr]
    total = 0
    for source in raw_sources(measurement, policies):
        v = influx.scalar(f'SELECT count("{COUNT_FIELD[measurement]}") FROM {source}', db)
        total += int(v or 0)  # type: ignore[call-overload]
    return total


def _config(tmp: Path, broker: Mosquitto, influx: Influx, db: str, city: dict[str, Any], **extra: Any) -> Path:
    (tmp / "city.json").write_bytes(orjson.dumps(city))
    cfg = {
        "mode": "test", "log_level": "WARNING", "data_dir": str(tmp / "var"), "city": str(tmp / "city.json"),
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "wk"},
        "storage": {"backend": "influx-v1", "url": influx.url, "database": db, "flush_interval": 0.1},
        "commands": {"rate_per_device": 1000.0, "burst": 1000},
        **extra,
    }
    path = tmp / "supervisor.yaml"
    path.write_text(json.dumps(cfg))
    return path


# -- the plan (no service) ---------------------------------------------------------------------------
def test_partition_is_disjoint_complete_and_balanced() -> None:
    city = generate_city(seed=5, devices=5000)
    weights = zone_weights(city)
    assert len(weights) == 7 and sum(weights.values()) == 5000
    for n in (1, 2, 3, 7):
        parts = partition(weights, n)
        flat = [z for p in parts for z in p]
        assert sorted(flat) == sorted(weights) and len(flat) == len(set(flat))
        loads = [sum(weights[z] for z in p) for p in parts]
        assert max(loads) - min(loads) <= max(weights.values())
        assert parts == partition(weights, n)  # deterministic
    with pytest.raises(WorkersError, match="at least 8 zones"):
        partition(weights, 8)
    with pytest.raises(WorkersError, match="spans every zone"):
        split_subscriptions(["#"])
    assert split_subscriptions(["city/#", "tasmota/#"]) == (True, ["tasmota/#"])


def test_plan_gives_each_worker_its_identity_and_zones(tmp_path: Path, broker: Mosquitto, influx: Influx) -> None:
    city = generate_city(seed=5, devices=1000)
    cfg = _config(tmp_path, broker, influx, "unused", city, api={"port": 18000})
    specs = plan_workers(cfg, 2)
    assert len({s.client_id for s in specs}) == 2 and len({s.share_group for s in specs}) == 2
    assert len({s.data_dir for s in specs}) == 2 and [s.api_port for s in specs] == [18000, 18001]
    zones = [z for s in specs for z in s.zones]
    assert sorted(zones) == sorted(z["id"] for z in city["zones"])
    for s in specs:
        assert s.subscriptions == [f"city/{z}/#" for z in s.zones]
        assert s.city_path is not None
        sub = orjson.loads(s.city_path.read_bytes())
        assert {d["zone"] for d in sub["devices"]} == set(s.zones)
        written = json.loads(s.config_path.read_text())
        assert written["mqtt"]["client_id"] == s.client_id and written["data_dir"] == str(s.data_dir)
        # the open-data export runs once, in the manager; every worker's API serves its one directory
        assert written["opendata"]["enabled"] is False
    assert len({json.loads(s.config_path.read_text())["opendata"]["out_dir"] for s in specs}) == 1
    assert worker_env({"URBAN_MQTT__CLIENT_ID": "x", "URBAN_MQTT__HOST": "h", "PATH": "/bin"}) == {
        "URBAN_MQTT__HOST": "h", "PATH": "/bin"}
    no_city = tmp_path / "nocity.yaml"
    no_city.write_text(json.dumps({"mode": "test", "data_dir": str(tmp_path / "v2")}))
    with pytest.raises(WorkersError, match="set `city`"):
        plan_workers(no_city, 2)
    assert [s.zones for s in plan_workers(no_city, 2, zones=["a", "b", "c"])] == [["a", "c"], ["b"]]


# -- two workers through the real broker -------------------------------------------------------------
def _camera_events(city: dict[str, Any], zones: list[str], ts: float) -> list[Message]:
    out = []
    for zone in zones:
        cam = next(d for d in city["devices"] if d["family"] == "cctv" and d["zone"] == zone)
        body = orjson.dumps({"ts": ts, "type": "intrusion", "score": 0.95})
        out.append(Message(f"city/{zone}/cctv/{cam['id']}/event", body, "cctv", "events", 1, cam["id"]))
    return out


def test_two_workers_no_loss_no_duplicates_rules_fire(tmp_path: Path, broker: Mosquitto, influx: Influx,
                                                      influx_db: str) -> None:
    city = generate_city(seed=5, devices=300)  # two zones
    base = free_port_range(2)
    cfg = _config(tmp_path, broker, influx, influx_db, city, rules_dir="rules/examples", clock_start=NIGHT,
                  api={"port": base})
    specs = plan_workers(cfg, 2)
    zone_of = {z: s.index for s in specs for z in s.zones}
    msgs = _messages(city, time.time() - 3600, 6000)
    manager = WorkerManager(specs).start()
    t0 = time.time()
    try:
        _wait(lambda: all(_connected(s.api_port or 0) for s in specs), 40, "both workers connected")
        time.sleep(0.5)  # SUBACK
        with Publisher(broker.host, broker.port) as pub:
            rep = pub.run(msgs)
            assert rep.acked == rep.sent == len(msgs)
            # a camera intrusion in each zone at (virtual) night: the safety-lighting rule reacts
            events = _camera_events(city, list(zone_of), NIGHT + (time.time() - t0))
            assert pub.run(events).acked == len(events)
        expected = dict(rep.expected_points)
        expected["events"] = expected.get("events", 0) + len(events)
        _wait(lambda: sum((_summary(s.api_port or 0) or {"ingest": {"received": 0}})["ingest"]["received"]
                          for s in specs) >= len(msgs) + len(events), 60, "every message received")
        _wait(lambda: all(_count(influx, influx_db, m) >= n for m, n in expected.items()), 60, "the points")
        _wait(lambda: bool(influx.series('SELECT count("output") FROM decisions WHERE rule=\'cctv-safety-lighting\''
                                         ' GROUP BY "zone"', influx_db)), 30, "safety lighting decisions")
        _wait(lambda: len(influx.series('SELECT count("output") FROM decisions WHERE rule=\'cctv-safety-lighting\''
                                        ' GROUP BY "zone"', influx_db)) == 2, 30, "safety lighting in both zones")
    finally:
        manager.stop()
    summary = manager.summary()
    assert summary["restarts"] == 0 and summary["fatal"] is None
    # every message reached exactly one worker: the one owning its zone (``received`` also counts the
    # worker's own lamp commands, which come back on its zone's topics; ``decoded`` counts telemetry)
    per_zone = Counter(m.topic.split("/")[1] for m in msgs + events)
    for w in summary["per_worker"]:
        want = sum(n for z, n in per_zone.items() if zone_of[z] == w["index"])
        assert w["summary"]["ingest"]["decoded"] == want, (w["index"], w["summary"]["ingest"])
        assert w["summary"]["devices"]["total"] == sum(1 for d in city["devices"] if d["zone"] in w["zones"])
    # InfluxDB holds exactly the expected points (no loss, no duplicate)
    assert {m: _count(influx, influx_db, m) for m in expected} == expected
    # the schedule decided once per lamp, each lamp by the worker owning its zone
    rows = influx.series('SELECT count("output") FROM decisions WHERE rule=\'night-schedule\' GROUP BY "device"',
                         influx_db)
    lamps = {d["id"] for d in city["devices"] if d["kind"] == "lamp"}
    got = {r["tags"]["device"]: r["values"][0][1] for r in rows}  # type: ignore[index]
    assert set(got) == lamps and set(got.values()) == {1}


def test_killed_worker_is_restarted_and_drains_its_queue(tmp_path: Path, broker: Mosquitto, influx: Influx,
                                                          influx_db: str) -> None:
    city = generate_city(seed=6, devices=300)
    base = free_port_range(2)
    cfg = _config(tmp_path, broker, influx, influx_db, city, api={"port": base})
    specs = plan_workers(cfg, 2)
    first, second = (_messages(city, time.time() - 7200, 8000)[i::2] for i in range(2))
    manager = WorkerManager(specs).start()
    stop = threading.Event()
    supervising = threading.Thread(target=manager.run, args=(stop, 120.0), daemon=True)
    supervising.start()
    try:
        _wait(lambda: all(_connected(s.api_port or 0) for s in specs), 40, "both workers connected")
        time.sleep(0.5)
        with Publisher(broker.host, broker.port) as pub:
            rep1 = pub.run(first)
            old = manager.kill(1, signal.SIGKILL)  # mid-stream: some of its messages are unacknowledged
            rep2 = pub.run(second)  # queued by the broker for the dead worker's session
        assert rep1.acked + rep2.acked == len(first) + len(second)
        _wait(lambda: manager.workers[1].restarts == 1 and manager.pids()[1] not in (None, old), 30,
              "the manager to restart worker 1")
        expected = Counter(rep1.expected_points) + Counter(rep2.expected_points)
        _wait(lambda: all(_count(influx, influx_db, m) >= n for m, n in expected.items()), 60,
              "every point after the restart")
        # the restarted worker says so in its alarm list
        _wait(lambda: _alarms(specs[1].api_port or 0), 30, "the worker-restarted alarm")
        (restarted,) = _alarms(specs[1].api_port or 0)
        assert restarted["kind"] == "supervisor" and restarted["severity"] == "major"
        assert "restart 1" in restarted["text"] and f"signal {int(signal.SIGKILL)}" in restarted["text"]
        assert _alarms(specs[0].api_port or 0) == []  # the other worker was not restarted
    finally:
        stop.set()
        supervising.join(5)
        # the restarted worker gets two SIGTERMs here: the death signal of `supervising` (the thread that
        # spawned it) and the manager's. Its handler once hung on them (supervisor/cli/_signals.py); a
        # stop over 30 s dumps the worker's threads to stderr, shown by pytest
        manager.stop(timeout=90.0)
    summary = manager.summary()
    assert summary["restarts"] == 1 and summary["per_worker"][1]["exit_codes"][0] == -signal.SIGKILL
    assert summary["per_worker"][1]["summary"]["mqtt"]["connects"] >= 1
    assert {m: _count(influx, influx_db, m) for m in expected} == dict(expected)


def test_sighup_to_the_manager_reloads_every_worker(tmp_path: Path, broker: Mosquitto, influx: Influx,
                                                    influx_db: str) -> None:
    """The manager validates the city, rewrites each worker's copy and tells each worker (SIGHUP)."""
    city = generate_city(seed=5, devices=300)  # two zones
    base = free_port_range(2)
    cfg = _config(tmp_path, broker, influx, influx_db, city, api={"port": base})
    specs = plan_workers(cfg, 2)
    manager = WorkerManager(specs).start()
    try:
        _wait(lambda: all(_connected(s.api_port or 0) for s in specs), 40, "both workers connected")
        added = []
        new = json.loads(json.dumps(city))
        for s in specs:  # one new road sensor in a zone of each worker
            base_dev = next(d for d in city["devices"] if d["family"] == "traffic" and d["zone"] == s.zones[0])
            added.append(base_dev | {"id": f"rs-reloaded-{s.index}"})
        new["devices"] += added
        bad = json.loads(json.dumps(new))
        bad["zones"] = bad["zones"][:1]  # a zone less: the partition changes, refused by the manager
        (tmp_path / "city.json").write_bytes(orjson.dumps(bad))
        assert not manager.reload_city(tmp_path / "city.json")
        (tmp_path / "city.json").write_bytes(orjson.dumps(new))
        assert manager.reload_city(tmp_path / "city.json")
        for s in specs:
            assert s.city_path is not None
            assert f"rs-reloaded-{s.index}" in {d["id"] for d in orjson.loads(s.city_path.read_bytes())["devices"]}
        _wait(lambda: all((_summary(s.api_port or 0) or {}).get("model_reloads", {}).get("model_reloads") == 1
                          for s in specs), 60, "every worker reloaded")
        msgs = []
        for dev in added:
            body = orjson.dumps({"ts": time.time() - 60, "flow": 12.0, "speed": 40.0, "occupancy": 3.0})
            msgs.append(Message(f"city/{dev['zone']}/traffic/{dev['id']}/telemetry", body, "traffic", "traffic", 1,
                                dev["id"]))
        with Publisher(broker.host, broker.port) as pub:
            assert pub.run(msgs).acked == len(msgs)
        _wait(lambda: len(influx.series('SELECT count("flow") FROM traffic WHERE device =~ /^rs-reloaded-/ '
                                        'GROUP BY "device"', influx_db)) == 2, 60, "the added sensors' points")
        assert manager.pids() == [w.proc.pid for w in manager.workers if w.proc is not None]  # none restarted
    finally:
        manager.stop()
    assert manager.summary()["restarts"] == 0
