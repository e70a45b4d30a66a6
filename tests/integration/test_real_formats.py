"""The rule engine drives real-world lights: a Tasmota dimmer and a Zigbee2MQTT bulb, through the broker.

Two lamps of a generated city are declared with the ``tasmota`` and ``zigbee2mqtt`` drivers and
mapped from their own identifiers (a Tasmota topic, a Zigbee2MQTT friendly name containing ``/``).
A manual override through the rule engine must reach them on their own command topics at their
own scales, and their state reports, decoded by their drivers, must confirm the commands.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rules import VirtualClock
from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

NIGHT = 1_736_985_600.0  # 2025-01-16T00:00:00Z
RULES = """\
version: 1
rules:
  - id: night-schedule
    kind: schedule
    lights: {family: lighting, kind: lamp}
    level: 100
"""


class _Recorder:
    def __init__(self, host: str, port: int, *filters: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="real-formats-rec", protocol=mqtt.MQTTv5)

        def on_connect(*_: Any) -> None:
            for f in filters:
                self.c.subscribe(f, 1)
            self.ready.set()

        self.c.on_connect = on_connect
        self.c.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.connect(host, port)
        self.c.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_for(self, topic: str, want: Any, timeout: float = 10.0) -> bytes:
        """The first payload on ``topic`` that satisfies ``want``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, p in list(self.got):
                if t == topic and want(p):
                    return p
            time.sleep(0.05)
        raise AssertionError(f"nothing on {topic} within {timeout}s; got {[t for t, _ in self.got]}")

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_rules_drive_tasmota_and_zigbee2mqtt_lights(broker: Mosquitto, influx: Influx, influx_db: str,
                                                    tmp_path: Any) -> None:
    city = generate_city(seed=8, devices=60)
    lamps = [d for d in city["devices"] if d["kind"] == "lamp"]
    tas, zb = lamps[0], lamps[1]
    tas["driver"], zb["driver"] = "tasmota", "zigbee2mqtt"
    model = city_from_dict(city)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yaml").write_text(RULES)
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "data"), rules_dir=str(rules_dir), api={"enabled": False},
        mqtt={"host": broker.host, "port": broker.port, "client_id": "real-formats"},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.2},
        drivers={"road_sensor": {}, "lighting_cabinet": {}, "cctv": {}, "water_meter": {}, "tasmota": {},
                 "zigbee2mqtt": {}},
        identity={"map": {"tasmota": {"tasmota_AABBCC": tas["id"]}, "zigbee2mqtt": {"street:lamp_7": zb["id"]}}},
    )
    rec = _Recorder(broker.host, broker.port, "cmnd/#", "zigbee2mqtt/+/+/set")
    assert rec.ready.wait(10)
    clock = VirtualClock(NIGHT, 1.0)  # a winter night in the city, whatever the hour of the test
    sup = Supervisor(settings, model=model, clock=clock.now)
    sup.start()
    try:
        assert sup.mqtt.wait_connected(10)
        time.sleep(0.3)
        # the devices announce themselves in their own formats
        rec.publish("stat/tasmota_AABBCC/RESULT", b'{"POWER":"ON","Dimmer":100}')
        rec.publish("zigbee2mqtt/street/lamp_7", b'{"state":"ON","brightness":254,"linkquality":120}')
        _wait(lambda: sup.state.last_value(tas["id"], "level") == 100.0
              and sup.state.last_value(zb["id"], "level") == 100.0, 10, "both lamps to report")
        until = clock.now() + 600
        with sup.lock:
            sup.rules.override(tas["id"], 40.0, until, "alice")
            sup.rules.override(zb["id"], 50.0, until, "alice")
        # each on its own topic, at its own scale: Tasmota Dimmer text 0..100, Zigbee brightness 0..254
        assert rec.wait_for("cmnd/tasmota_AABBCC/Dimmer", lambda p: p == b"40") == b"40"
        z2m = orjson.loads(rec.wait_for("zigbee2mqtt/street/lamp_7/set",
                                        lambda p: orjson.loads(p).get("brightness") != 254))
        assert z2m == {"state": "ON", "brightness": round(50 * 254 / 100)}
        # the lights apply the commands and report in their formats: the commands are confirmed
        rec.publish("stat/tasmota_AABBCC/RESULT", b'{"POWER":"ON","Dimmer":40}')
        rec.publish("zigbee2mqtt/street/lamp_7", orjson.dumps({"state": "ON", "brightness": z2m["brightness"]}))

        def states() -> dict[str, str]:
            with sup.lock:
                return {dev: str(c["state"]) for dev, c in sup.rules.commands().items()
                        if dev in (tas["id"], zb["id"])}

        _wait(lambda: states() == {tas["id"]: "confirmed", zb["id"]: "confirmed"}, 10, "confirmations")
        assert sup.pipeline.counters.error_total == 0
    finally:
        sup.stop()
        rec.stop()
