"""Zigbee2MQTT driver: base topic option and the 0..254 scale in both directions."""

from __future__ import annotations

import orjson
import pytest

from drivers import Command, ConfigError, DecodeError
from drivers.lighting import percent_to_zigbee as percent_to_brightness
from drivers.lighting import zigbee_to_percent as brightness_to_percent
from drivers.zigbee2mqtt import Zigbee2MqttDriver


def test_brightness_both_directions() -> None:
    assert brightness_to_percent(0) == 0.0
    assert brightness_to_percent(127) == 50.0
    assert brightness_to_percent(254) == 100.0
    assert percent_to_brightness(50) == 127
    assert percent_to_brightness(100) == 254
    assert percent_to_brightness(0.1) == 1
    for raw in range(255):  # every reported brightness survives decode → encode
        assert percent_to_brightness(brightness_to_percent(raw)) == raw


def test_command_then_state_round_trip() -> None:
    d = Zigbee2MqttDriver()
    for level in (1.0, 33.3, 50.0, 99.9):
        (p,) = d.encode(Command("park:lamp_12", "set_level", level))
        assert p.topic == "zigbee2mqtt/park/lamp_12/set" and not p.retain and p.qos == 1
        sent = orjson.loads(p.payload)
        (r,) = d.decode("zigbee2mqtt/park/lamp_12", orjson.dumps({**sent, "linkquality": 40})).readings
        assert r.device == "park:lamp_12"
        assert r.values["on"] is True and abs(float(r.values["level"]) - level) <= 50 / 254


def test_base_topic_option() -> None:
    d = Zigbee2MqttDriver({"base_topic": "z2m/site-a"})
    assert d.topics == ("z2m/site-a/#",)
    (r,) = d.decode("z2m/site-a/lamp_1/availability", b"online").readings
    assert (r.device, r.values) == ("lamp_1", {"online": True})
    (p,) = d.encode(Command("lamp_1", "switch", True))
    assert p.topic == "z2m/site-a/lamp_1/set"
    with pytest.raises(DecodeError) as info:
        d.decode("zigbee2mqtt/lamp_1", b'{"state":"ON"}')
    assert info.value.reason == "unknown_topic"
    for bad in ({"base_topic": "z/#"}, {"base_topic": ""}, {"brightness_percent": "yes"}, {"colour": 1}):
        with pytest.raises(ConfigError):
            Zigbee2MqttDriver(bad)
