"""Simulated lights answer commands through a real broker; faults and unresponsive devices stay quiet."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.devices import FaultInjector, LightResponder
from simulators.runner import SimClock, SimulatedCity
from simulators.telemetry import CityTelemetry
from supervisor.cli import main
from tests.simulators.citydata import small_city
from tests.simulators.mqtt_helpers import Collector
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration
NIGHT = datetime(2026, 11, 26, 2, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def _commander(broker: Mosquitto) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="commander", protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def _telemetry_of(got: list[tuple[str, bytes]], device: str) -> list[dict[str, object]]:
    return [orjson.loads(p) for t, p in got if t.split("/")[3] == device and t.endswith("/telemetry")]


def test_lights_answer_commands_and_ignore_the_unresponsive_and_silenced(broker: Mosquitto) -> None:
    clock = SimClock(start=NIGHT, speed=1.0)
    tel = CityTelemetry(small_city(), seed=1, origin=NIGHT)
    faults = FaultInjector(tel)
    col = Collector(broker.host, broker.port, filters=("city/+/lighting/+/telemetry",))
    cmd = _commander(broker)
    try:
        with LightResponder(tel, host=broker.host, port=broker.port, clock=clock.now, faults=faults,
                            unresponsive={"lamp-5"}, delay=0.05) as resp:
            cmd.publish("city/centre/lighting/lamp-0/cmd", b'{"level": 40}', 1).wait_for_publish(5)
            cmd.publish("city/centre/lighting/cab-1/cmd", b'{"on": false, "circuit": "2"}', 1).wait_for_publish(5)
            cmd.publish("city/centre/lighting/lamp-5/cmd", b'{"level": 10}', 1).wait_for_publish(5)
            cmd.publish("city/centre/lighting/lamp-2/cmd", b'{"level": 400}', 1).wait_for_publish(5)
            cmd.publish("city/centre/lighting/lamp-3/cmd", b"not json", 1).wait_for_publish(5)
            cmd.publish("city/north/lighting/lamp-3/cmd", b'{"level": 1}', 1).wait_for_publish(5)
            got = col.wait_for(lambda m: len(m) >= 2)
            assert resp.wait_idle()
            faults.fail("cab-1")
            cmd.publish("city/centre/lighting/lamp-4/cmd", b'{"level": 20}', 1).wait_for_publish(5)
            got = col.drain(resp.client)  # the answers' own connection: ordered before the sentinel
            stats = resp.stats
    finally:
        cmd.disconnect()
        cmd.loop_stop()
        col.close()
    lamp0 = _telemetry_of(got, "lamp-0")
    assert len(lamp0) == 1 and lamp0[0]["level"] == 40.0 and lamp0[0]["on"] is True
    assert lamp0[0]["power"] == pytest.approx(24.0)
    cab = _telemetry_of(got, "cab-1")
    assert len(cab) == 1
    circuits = {c["id"]: c for c in cab[0]["circuits"]}  # type: ignore[union-attr]
    assert circuits["2"]["on"] is False and circuits["1"]["level"] == 100.0
    assert not _telemetry_of(got, "lamp-5") and not _telemetry_of(got, "lamp-4")
    assert len(got) == 2
    assert stats.received == 7 and stats.applied == 2 and stats.published == 2
    assert stats.ignored_unresponsive == 1 and stats.ignored_silenced == 1
    assert stats.rejected == {"bad_command": 1, "invalid_json": 1, "unknown_device": 1}
    assert stats.expected_points == {"lighting": 1 + 3}


def test_simulate_cli_prints_a_json_summary(broker: Mosquitto, capsys: pytest.CaptureFixture[str],
                                            tmp_path: object) -> None:
    rc = main(["simulate", "--devices", "60", "--seed", "4", "--host", broker.host, "--port", str(broker.port),
               "--speed", "0", "--messages", "800", "--bad-ratio", "0.05"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["sent"] == out["acked"] == 800 and out["complete"] is True
    assert out["devices"] == 60 and out["sent_bad"] > 0
    assert out["sent_good"] == sum(out["per_family"].values())


def test_simulate_cli_bulk_load(broker: Mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["simulate", "--devices", "60", "--seed", "4", "--host", broker.host, "--port", str(broker.port),
               "--speed", "0", "--messages", "3000", "--bulk", "--no-responders"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["sent"] == out["acked"] == out["sent_good"] == 3000 and out["complete"] is True


def test_simulate_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--devices", "10", "--speed", "0"]) == 2
    assert "--duration and/or --messages" in capsys.readouterr().err
    assert main(["simulate", "--devices", "10", "--messages", "5", "--bulk", "--bad-ratio", "0.1"]) == 2
    assert "bad_ratio must be 0 with bulk" in capsys.readouterr().err
    assert main(["simulate", "--city", "/nonexistent/city.json", "--messages", "1"]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("speed", [None, 7200.0])
def test_runner_covers_the_schedule_and_faults_silence_devices(broker: Mosquitto, speed: float | None) -> None:
    lamps = {f"lamp-{i}" for i in range(6)}
    col = Collector(broker.host, broker.port)
    try:
        with SimulatedCity(small_city(), host=broker.host, port=broker.port, speed=speed, start=NIGHT,
                           seed=9, responders=False) as sim:
            assert sim.faults.fail("feeder-1") == {"rs-1", "cab-1", "cam-1"} | lamps
            rep = sim.run(duration=3600, timeout=30)
            got = col.drain(sim.publisher.client)
    finally:
        col.close()
    # the same seed and origin give the same schedule as the pure generator, minus the silenced
    ref = CityTelemetry(small_city(), seed=9, origin=NIGHT)
    want = [m for m in ref.due(NIGHT + 3600) if m.device not in {"rs-1", "cab-1", "cam-1"} | lamps]
    assert rep.sent == rep.acked == len(want) == len(got) > 0
    assert {t.split("/")[3] for t, _ in got} == {"rs-2", "wm-1", "wm-2"}
