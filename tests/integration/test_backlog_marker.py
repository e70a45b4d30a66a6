"""A resumed session's backlog, through the real broker: what was queued while the supervisor was
away is stored, an old camera event in it lights nothing, a recent one does, and after the
session's marker came back a live event lights its street whatever the camera's clock says."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rules import load_rules
from simulators.city import generate_city
from supervisor.config import Settings, load_settings
from supervisor.ingest.backlog import marker_topic
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.integration._rig import wait
from tests.rules._city import MOTION_LIGHTS, write_rules
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration


def _cameras(model: CityModel, n: int) -> list[tuple[str, set[str]]]:
    """``n`` cameras with lamps within 80 m, no lamp shared between them."""
    out: list[tuple[str, set[str]]] = []
    taken: set[str] = set()
    for cam, info in sorted(model.devices.items()):
        if info.kind != "camera":
            continue
        lamps = set(model.devices_within(info.lon, info.lat, 80.0, family="lighting", kind="lamp"))
        if lamps and not lamps & taken:
            out.append((cam, lamps))
            taken |= lamps
        if len(out) == n:
            return out
    raise AssertionError(f"the city has fewer than {n} cameras with lamps of their own")


class _Commands:
    """The lamps commanded, as the broker delivered the commands."""

    def __init__(self, broker: Mosquitto) -> None:
        self.lamps: set[str] = set()
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="backlog-it-watch", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("city/+/lighting/+/cmd", qos=1)
        self.client.loop_start()
        assert ready.wait(10), "no SUBACK for the commands"

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.lamps.add(msg.topic.split("/")[3])

    def seen(self) -> set[str]:
        with self._lock:
            return set(self.lamps)


def _settings(broker: Mosquitto, tmp_path: Path) -> Settings:
    return load_settings(
        None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
        # the lane off: every event goes through the bulk session, the one with a backlog
        mqtt={"host": broker.host, "port": broker.port, "client_id": "backlog-it", "lane": False},
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "store.sqlite3"),
                 "spool_dir": str(tmp_path / "spool")},
        rules_backlog_max_age=120.0,
    )


def test_old_backlog_events_light_nothing_recent_and_live_ones_do(tmp_path: Path, broker: Mosquitto) -> None:
    model = city_from_dict(generate_city(seed=4, devices=120))
    (old_cam, old_lamps), (recent_cam, recent_lamps) = _cameras(model, 2)
    write_rules(tmp_path / "rules", MOTION_LIGHTS)
    settings = _settings(broker, tmp_path)
    commands = _Commands(broker)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="backlog-it-pub", protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()

    def motion(cam: str, age: float) -> None:
        topic = f"city/{model.devices[cam].zone}/cctv/{cam}/event"
        body = orjson.dumps({"type": "motion", "ts": time.time() - age, "score": 0.9})
        pub.publish(topic, body, qos=1).wait_for_publish(10)

    first = Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))
    first.start()  # the persistent session is made, with its subscriptions
    try:
        assert first.mqtt.wait_connected(10)
        wait(lambda: first.mqtt.stats.connected and not first.mqtt._pending_subs, 10, "the SUBACK")
        assert first.mqtt.backlog is not None and not first.mqtt.backlog.active, "a new session has no backlog"
    finally:
        first.stop()
    # away: the broker queues for the session
    motion(old_cam, 3600.0)
    motion(recent_cam, 10.0)
    sup = Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))
    sup.start()
    try:
        backlog = sup.mqtt.backlog
        assert backlog is not None
        wait(lambda: backlog.catch_ups == 1, 20, "the session's marker to come back")
        assert backlog.ended_by == "marker" and not backlog.active
        wait(lambda: recent_lamps <= commands.seen(), 10, "the recent camera's lamps")
        assert sup.pipeline.counters.events == 2, "both backlog events were taken (and stored)"
        assert sup.rules is not None
        stats = sup.rules.stats()
        assert stats["late_events"] == 1 and stats["late_requests"] == len(old_lamps)
        assert not old_lamps & commands.seen(), "the hour-old motion lit nothing"
        # live now: the same camera, its clock an hour behind, lights its street
        motion(old_cam, 3600.0)
        wait(lambda: old_lamps <= commands.seen(), 10, "the live event's lamps (a lagging camera clock)")
        assert sup.rules.stats()["late_events"] == 1
        c = sup.pipeline.counters
        assert c.received - c.ignored == 3 and c.decoded == 3, "the marker is not counted as telemetry"
        assert not c.errors, "the marker is not refused as an unknown topic"
        assert backlog.topic == marker_topic("backlog-it")
    finally:
        sup.stop()
        pub.loop_stop()
        commands.client.loop_stop()
