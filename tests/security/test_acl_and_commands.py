"""Topic ACL of the broker and command safety of the supervisor.

ACL (conftest.py, the recommendation of docs/security.md): the supervisor's user reads ``city/#``
and writes only ``city/+/+/+/cmd``; a device user writes only its own telemetry and reads only
its own commands. "Not delivered" is shown without timing: a forbidden publish is followed by an
allowed one from the same connection, and the broker keeps one client's order.

Commands: ``Supervisor.send_command`` publishes only to the command topic of a device of the city
model, never retained, and at most ``commands.burst`` back to back per device (token bucket).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers import Command, Publish
from drivers.lighting_cabinet import LightingCabinetDriver
from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.runtime import CommandRefusedError, Supervisor
from tests.security.conftest import Client, SecureBroker
from tests.support.services import Influx

pytestmark = pytest.mark.integration


def _client(sb: SecureBroker, user: str, clients: list[Client]) -> Client:
    c = Client(sb.host, sb.port, user, sb.passwords[user])
    clients.append(c)
    assert c.connect() == "Success", user
    return c


def test_supervisor_user_may_not_publish_telemetry(secure_broker: SecureBroker, clients: list[Client]) -> None:
    sb = secure_broker
    observer = _client(sb, "observer", clients)
    observer.subscribe("city/#")
    sup = _client(sb, "supervisor", clients)
    sup.publish("city/north/traffic/det-001/telemetry", b'{"flow": 1}')  # forbidden
    sup.publish("city/north/lighting/cab-01/cmd", b'{"level": 50.0}')  # allowed: delivered after it
    observer.wait(lambda: "city/north/lighting/cab-01/cmd" in observer.topics(), 10, "the command")
    assert observer.topics() == ["city/north/lighting/cab-01/cmd"]


def test_device_user_may_publish_only_its_own_telemetry(secure_broker: SecureBroker,
                                                        clients: list[Client]) -> None:
    sb = secure_broker
    sup = _client(sb, "supervisor", clients)
    sup.subscribe("city/#")
    dev = _client(sb, "det-001", clients)
    for topic in ("city/north/traffic/det-002/telemetry", "city/north/lighting/cab-01/cmd",
                  "city/north/traffic/det-001/cmd", "city/north/traffic/det-001/telemetry"):
        dev.publish(topic, b'{"flow": 1}')
    sup.wait(lambda: "city/north/traffic/det-001/telemetry" in sup.topics(), 10, "the own telemetry")
    assert sup.topics() == ["city/north/traffic/det-001/telemetry"]


def test_device_user_does_not_read_other_devices_commands(secure_broker: SecureBroker,
                                                          clients: list[Client]) -> None:
    sb = secure_broker
    cab1, cab2 = _client(sb, "cab-01", clients), _client(sb, "cab-02", clients)
    cab1.subscribe("city/#")  # asks for everything, gets only what the ACL lets it read
    cab2.subscribe("city/+/lighting/+/cmd")
    sup = _client(sb, "supervisor", clients)
    sup.publish("city/north/lighting/cab-01/cmd", b'{"level": 10.0}')
    sup.publish("city/north/lighting/cab-02/cmd", b'{"level": 20.0}')
    sup.publish("city/north/lighting/cab-01/cmd", b'{"level": 30.0}')
    cab1.wait(lambda: len(cab1.received) >= 2, 10, "cab-01's commands")
    cab2.wait(lambda: len(cab2.received) >= 1, 10, "cab-02's command")
    sup.publish("city/north/lighting/cab-02/cmd", b'{"level": 40.0}')  # after the others, in order
    cab2.wait(lambda: len(cab2.received) >= 2, 10, "cab-02's second command")
    assert [p for _, p, _ in cab1.received] == [b'{"level": 10.0}', b'{"level": 30.0}']
    assert [p for _, p, _ in cab2.received] == [b'{"level": 20.0}', b'{"level": 40.0}']
    assert {t for t, _, _ in cab2.received} == {"city/north/lighting/cab-02/cmd"}


# ----------------------------------------------------------------------------- send_command


@pytest.fixture
def commanding(secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str) -> Any:
    """A started supervisor with a generated 80-device city and tight command limits."""
    sb = secure_broker
    model = city_from_dict(generate_city(seed=4, devices=80))
    settings = load_settings(
        None, mode="production", data_dir=str(tmp_path / "var"), api={"enabled": False},
        mqtt={"host": sb.host, "port": sb.port, "client_id": "sup-cmd", "username": "supervisor",
              "password": sb.passwords["supervisor"]},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.2},
        commands={"rate_per_device": 0.2, "burst": 3},
        drivers={"road_sensor": {}, "lighting_cabinet": {}, "cctv": {}},  # water_meter not enabled
    )
    sup = Supervisor(settings, model=model)
    sup.start()
    assert sup.mqtt.wait_connected(10)
    yield sup, model
    sup.stop()


def _lights(model: Any) -> list[Any]:
    return sorted((d for d in model.devices.values() if d.driver == "lighting_cabinet"), key=lambda d: d.id)


def test_commands_go_only_to_model_devices_on_their_own_topic(
        commanding: Any, secure_broker: SecureBroker, clients: list[Client]) -> None:
    sup, model = commanding
    observer = _client(secure_broker, "observer", clients)
    observer.subscribe("city/#")
    light = _lights(model)[0]
    topics = sup.send_command(Command(light.id, "set_level", 40.0))  # zone from the model
    assert topics == [f"city/{light.zone}/lighting/{light.id}/cmd"]
    water = next(d for d in model.devices.values() if d.family == "water")
    refusals = [
        (Command("ghost-1", "set_level", 40.0, light.zone), "unknown device"),
        (Command(f"{light.id}/#", "set_level", 40.0, light.zone), "unknown device"),
        (Command("+", "switch", True, light.zone), "unknown device"),
        (Command(water.id, "switch", False), "not enabled"),
    ]
    published = sup.mqtt.stats.published
    for cmd, why in refusals:
        with pytest.raises(CommandRefusedError, match=why):
            sup.send_command(cmd)
    assert sup.commands_refused == len(refusals)
    assert sup.mqtt.stats.published == published
    sup.send_command(Command(light.id, "switch", False))  # after the refusals, in the same order
    observer.wait(lambda: len(observer.received) >= 2, 10, "the two commands")
    assert observer.received == [(topics[0], b'{"level":40.0}', False), (topics[0], b'{"on":false}', False)]


class _RogueDriver(LightingCabinetDriver):
    """A driver bug or a hostile plug-in: publishes to another device, a wildcard, or retained."""

    target = ""

    def encode(self, command: Command) -> list[Publish]:
        return [Publish(self.target, b'{"level": 100.0}', qos=1, retain=True)]


def test_a_driver_cannot_redirect_commands(commanding: Any, secure_broker: SecureBroker,
                                           clients: list[Client]) -> None:
    sup, model = commanding
    observer = _client(secure_broker, "observer", clients)
    observer.subscribe("city/#")
    a, b = _lights(model)[:2]
    rogue = _RogueDriver()
    sup.drivers["lighting_cabinet"] = rogue  # this supervisor only; the registry is untouched
    published = sup.mqtt.stats.published
    for target in (f"city/{b.zone}/lighting/{b.id}/cmd", f"city/{a.zone}/lighting/+/cmd", "city/#",
                   f"city/{a.zone}/lighting/{a.id}-x/cmd"):
        rogue.target = target
        with pytest.raises(CommandRefusedError, match="does not name the device"):
            sup.send_command(Command(a.id, "set_level", 100.0))
    assert sup.mqtt.stats.published == published
    # a topic that names the device is published, but never retained whatever the driver says
    rogue.target = f"city/{a.zone}/lighting/{a.id}/cmd"
    assert sup.send_command(Command(a.id, "set_level", 100.0)) == [rogue.target]
    observer.wait(lambda: len(observer.received) >= 1, 10, "the command")
    assert observer.received == [(rogue.target, b'{"level": 100.0}', False)]


def test_commands_are_rate_limited_per_device(commanding: Any, secure_broker: SecureBroker,
                                              clients: list[Client]) -> None:
    sup, model = commanding
    observer = _client(secure_broker, "observer", clients)
    observer.subscribe("city/+/lighting/+/cmd")
    a, b = _lights(model)[:2]
    for i in range(3):  # burst 3
        sup.send_command(Command(a.id, "set_level", float(i)))
    with pytest.raises(CommandRefusedError, match=r"rate limit: more than 0\.2/s \(burst 3\)"):
        sup.send_command(Command(a.id, "set_level", 99.0))
    sup.send_command(Command(b.id, "set_level", 5.0))  # another device has its own bucket
    # 5 s later (1 / 0.2 per s) one token is back; shift the bucket's stamp instead of sleeping
    bucket = sup._buckets[a.id]
    bucket.stamp -= 5.0 + 1e-3
    sup.send_command(Command(a.id, "set_level", 50.0))
    with pytest.raises(CommandRefusedError, match="rate limit"):
        sup.send_command(Command(a.id, "set_level", 51.0))
    sup.send_command(Command(b.id, "set_level", 6.0))  # published after the refusals: the last one seen
    observer.wait(lambda: len(observer.received) >= 6, 10, "six commands")
    levels = [p for _, p, _ in observer.received]
    assert levels == [b'{"level":0.0}', b'{"level":1.0}', b'{"level":2.0}', b'{"level":5.0}', b'{"level":50.0}',
                      b'{"level":6.0}']
    assert sup.commands_refused == 2
    assert all(not retained for _, _, retained in observer.received)
