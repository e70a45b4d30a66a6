"""The control lane through the real broker: with the storage down and the bulk held back (the
writer is full, bulk telemetry waits in the inbox and at the broker), a camera event still reaches
the rules through the lane session and its lamps are commanded."""

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
from supervisor.config import load_settings
from supervisor.ingest.lane import BULK_SLICE
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.rules._city import MOTION_LIGHTS, write_rules
from tests.support.services import Mosquitto, free_port

pytestmark = pytest.mark.integration

RULES = MOTION_LIGHTS


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_camera_event_lights_its_lamps_while_the_bulk_is_held_back(tmp_path: Path, broker: Mosquitto) -> None:
    model = city_from_dict(generate_city(seed=4, devices=120))
    cam = next(d for d, i in sorted(model.devices.items()) if i.kind == "camera"
               and model.devices_within(i.lon, i.lat, 80.0, family="lighting", kind="lamp"))
    info = model.devices[cam]
    lamps = set(model.devices_within(info.lon, info.lat, 80.0, family="lighting", kind="lamp"))
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
        # a window larger than the writer's room: the bulk piles up in the inbox behind a full writer
        # (with the default window of 2,000 the broker keeps it, and the writer never fills)
        mqtt={"host": broker.host, "port": broker.port, "client_id": "lane-it", "inbox_max": 2000,
              "receive_maximum": 20_000, "lane_topics": ["city/+/cctv/+/event"]},
        # nothing listens there: every write fails and is retried, the writer fills up
        storage={"backend": "influx-v1", "url": f"http://127.0.0.1:{free_port()}", "batch_size": 100,
                 "max_retries": 100_000, "retry_min_delay": 0.05, "retry_max_delay": 0.1, "timeout": 0.5},
    )
    write_rules(tmp_path / "rules", RULES)
    sup = Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))
    commands: list[tuple[float, str]] = []
    got = threading.Event()
    watch = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lane-it-watch", protocol=mqtt.MQTTv5)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        commands.append((time.monotonic(), msg.topic.split("/")[3]))
        got.set()

    watch.on_message = on_message
    watch.connect(broker.host, broker.port)
    watch.subscribe("city/+/lighting/+/cmd", qos=1)
    watch.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lane-it-pub", protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    sup.start()
    try:
        _wait(lambda: sup.lane.mqtt.stats.connected and sup.lane._filters_granted, 10, "the lane session")
        sensor = next(d for d, i in sorted(model.devices.items()) if i.kind == "road_sensor")
        topic = f"city/{model.devices[sensor].zone}/traffic/{sensor}/telemetry"
        for i in range(15_000):  # bounded: more than the writer (10,000 lines) and the inbox (2,000) take
            pub.publish(topic, orjson.dumps({"ts": time.time(), "flow": float(i % 900), "speed": 40.0}), qos=1)
        _wait(lambda: not sup.writer.has_room(BULK_SLICE) and sup.inbox.depths()[1] > 0, 60, "the bulk held back")
        time.sleep(0.5)  # the camera's topic is seen for the first time on the lane
        t0 = time.monotonic()
        pub.publish(f"city/{info.zone}/cctv/{cam}/event",
                    orjson.dumps({"type": "motion", "ts": time.time(), "score": 0.9}), qos=1)
        assert got.wait(10.0), "no lamp was commanded"
        _wait(lambda: {d for _, d in commands} >= lamps, 5, "every lamp around the camera")
        assert commands[0][0] - t0 < 2.0  # milliseconds in practice; bounded loosely for a shared machine
        assert sup.lane_pipeline.counters.received >= 1 and sup.lane_pipeline.counters.events == 1
        assert sup.inbox.depths()[1] > 0 and not sup.writer.has_room(BULK_SLICE), "the bulk was still held back"
        fields = sup.lane_fields()
        assert fields["bulk_depth"] > 0 and fields["reaction_p99_ms"] > 0
    finally:
        pub.loop_stop()
        watch.loop_stop()
        sup._stop.set()
        sup.lane.stop()
        sup.mqtt.stop()
        sup.writer.stop(1.0)
