"""Lose nothing: SIGKILL, InfluxDB outage, broker restart and a full spool, under load.

A 1,000-device city is published at a bounded rate so that the fault lands mid-load; at the end
InfluxDB must hold exactly the points of every message the publisher got a PUBACK for: zero lost,
zero duplicates (timestamps are unique per device, replays overwrite).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from supervisor.bench.procs import mosquitto
from supervisor.bench.reliability import (
    ChunkedPublisher,
    InfluxHttp,
    InfluxProc,
    Load,
    SupervisorProc,
    scenario_broker_restart,
    scenario_influx_outage,
    scenario_kill,
    scenario_spool_full,
    supervisor_config,
    wait_stored,
)
from tests.reliability.conftest import assert_nothing_lost, report
from tests.support.services import Influx

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigkill_under_load_loses_nothing(tmp_path: Path, influx: Influx) -> None:
    res = scenario_kill(tmp_path, influx.url, devices=1000, count=20_000, rate=2000.0)
    report(res)
    assert_nothing_lost(res)


def test_two_sigkills_in_a_row_lose_nothing(tmp_path: Path, influx: Influx) -> None:
    res = scenario_kill(tmp_path, influx.url, devices=1000, count=12_000, rate=2000.0, down_s=0.5, kills=2)
    report(res)
    assert_nothing_lost(res)


def test_influxdb_outage_of_a_minute_under_load_loses_nothing(tmp_path: Path) -> None:
    res = scenario_influx_outage(tmp_path, devices=1000, count=30_000, rate=400.0, outage_s=62.0)
    report(res)
    assert res["outage_s"] >= 60
    assert res["messages_acked_during_outage"] > 10_000  # the load really went on during the outage
    assert res["spool_peak_bytes"] > 1_000_000  # the points went to the spool...
    assert res["spool_metric_max_bytes"] > 0  # ...which the supervisor's health metric showed
    assert res["replay_logged"]
    assert res["spool_left_bytes"] == 0  # ...and was replayed
    assert_nothing_lost(res)


def test_broker_restart_with_persistence_under_load_loses_nothing(tmp_path: Path, influx: Influx) -> None:
    res = scenario_broker_restart(tmp_path, influx.url, devices=1000, count=20_000, rate=2000.0)
    report(res)
    assert res["supervisor_connects"] >= 2  # the supervisor did see the broker go
    assert res["session_resumed"]  # the broker restored its persistent session
    assert_nothing_lost(res)


def test_full_spool_holds_data_at_the_broker_and_raises_the_alarm(tmp_path: Path) -> None:
    res = scenario_spool_full(tmp_path, devices=1000, count=8000, spool_max_bytes=256 * 1024)
    report(res)
    assert res["full_logged"], "the writer must log that the spool is full"
    assert res["spool_peak_ratio"] >= 0.8
    assert res["spool_peak_bytes"] <= 256 * 1024  # the bound holds
    assert res["restarted_while_full"], "a supervisor must start while InfluxDB is down"
    assert res["alarm_logged"], "the spool alarm must be in the supervisor's log"
    assert res["alarm_points"]["raised"] >= 1, "the spool alarm must reach the alarms measurement"
    assert res["spool_left_bytes"] == 0
    assert_nothing_lost(res)


def test_supervisor_starts_while_influxdb_is_down(tmp_path: Path) -> None:
    """Restarting during an outage must work: otherwise the spool cannot take the broker's backlog and
    a bounded broker queue (deploy/mosquitto: max_queued_messages) ends up dropping messages."""
    influxd = InfluxProc(tmp_path / "influxdb")  # port chosen, server not started yet
    load = Load.city(200, 1000)
    with mosquitto(tmp_path / "mq", persistence=True) as broker:
        cfg = supervisor_config(tmp_path / "var", broker, influxd.url, "urban_down", "urban-rel-down")
        sup = SupervisorProc(tmp_path / "sup", cfg)
        try:
            sup.start().wait_connected(30)
            pub = ChunkedPublisher(broker.host, broker.port, load, rate=2000.0)
            pub.start()
            pub.join(60)
            time.sleep(2.0)
            assert sup.alive
            influxd.start()
            stored = wait_stored(InfluxHttp(influxd.url), "urban_down", load.expected, 60, interval=1.0)
            assert stored == load.expected
        finally:
            sup.terminate(30)
            influxd.stop()


def test_a_bounded_broker_queue_is_the_only_place_that_drops_and_it_counts(tmp_path: Path, influx: Influx) -> None:
    """Past the broker's bound for an offline persistent session (``max_queued_messages``) Mosquitto
    drops new messages although the publisher got its PUBACK. That is the one place where data can
    be shed; it is not silent: the loss equals ``$SYS/broker/publish/messages/dropped``."""
    from supervisor.bench.procs import Mosquitto
    from supervisor.bench.reliability import BROKER_EXTRA, broker_counter

    load = Load.city(200, 1500)
    bound = 500
    # a later option wins in mosquitto.conf: this bound replaces procs' `max_queued_messages 0`
    broker = Mosquitto(tmp_path / "mq", extra_conf=f"{BROKER_EXTRA}\nsys_interval 1\nmax_queued_messages {bound}")
    broker.start()
    db = influx.create()
    sup = SupervisorProc(tmp_path / "sup", supervisor_config(tmp_path / "var", broker, influx.url, db, "urban-rel-q"))
    try:
        time.sleep(0.5)
        sup.start().wait_connected(30)
        sup.terminate(30)  # offline: the persistent session queues at the broker
        pub = ChunkedPublisher(broker.host, broker.port, load, rate=3000.0)
        pub.start()
        pub.join(60)
        # $SYS counters are republished every sys_interval: read until the count settles (bounded)
        dropped, deadline = -1, time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1.2)
            now = broker_counter(broker.host, broker.port)
            if now == dropped:
                break
            dropped = now
        sup.start().wait_connected(30)
        time.sleep(3.0)
        stored = wait_stored(InfluxHttp(influx.url), db, load.expected, 6, interval=2.0)
        sup.terminate(30)
        stored = InfluxHttp(influx.url).counts(db, sorted(load.expected))
        alarms = influx.series('SELECT "text", "severity" FROM "alarms" WHERE "element" = \'broker-queue\'', db)
    finally:
        sup.terminate(30)
        broker.stop()
        influx.drop(db)
    lost_points = sum(load.expected.values()) - sum(stored.values())
    # the first `bound` messages were kept, the rest dropped (newest shed first)
    kept = load.messages[:bound]
    kept_points = sum(m.points + m.events for m in kept)
    report({"fault": "broker_queue_bound", "messages": len(load.messages), "messages_acked": pub.progress,
            "broker_dropped": dropped, "points_expected": sum(load.expected.values()),
            "points_stored": sum(stored.values()), "lost": lost_points})
    assert pub.progress == len(load.messages)  # every message was PUBACKed to the devices
    assert dropped == len(load.messages) - bound
    assert sum(stored.values()) == kept_points
    # and the supervisor said so itself: it watches the broker's drop counter (and kept its last
    # value while down), so the drops of its offline queue are one critical alarm once it is back
    rows = alarms[0]["values"] if alarms else []  # type: ignore[index]
    assert len(rows) == 1, rows
    assert f"the broker dropped {dropped} messages since the last reading (0)" in rows[0][1], rows
