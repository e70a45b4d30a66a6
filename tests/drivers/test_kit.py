"""The option helpers of the public kit (drivers/kit.py) that drivers compose."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from drivers import ConfigError, Decoded
from drivers.kit import TopicOptionDriver, timezone_option, topic_root_option


class _Counter(TopicOptionDriver):
    name = "toy_counter"
    families = ("traffic",)
    measures = {("traffic", "count"): "veh"}
    default_topic = "toy/{device}/stats"

    def decode(self, topic: str, payload: bytes) -> Decoded:
        self._topic.require(topic)
        return Decoded()


def test_topic_option_driver_derives_and_configures_its_topics() -> None:
    assert _Counter.topics == ("toy/+/stats",)
    assert _Counter().topics == ("toy/+/stats",)
    moved = _Counter({"topic": "site/a/{device}"})
    assert moved.topics == ("site/a/+",)
    assert moved._topic.match("site/a/c-1") == {"device": "c-1"}
    with pytest.raises(ConfigError, match=r"must capture \{device\}"):
        _Counter({"topic": "site/+/x"})
    with pytest.raises(ConfigError, match="unknown option"):
        _Counter({"topics": "x/{device}"})


def test_topic_root_option() -> None:
    assert topic_root_option("d", {}, "base_topic", "zigbee2mqtt") == "zigbee2mqtt"
    assert topic_root_option("d", {"base_topic": "site/z2m"}, "base_topic", "zigbee2mqtt") == "site/z2m"
    for bad in ("", "a/#", "a/+/b", "a/", 3, None):
        with pytest.raises(ConfigError, match="base_topic must be a topic without wildcards"):
            topic_root_option("d", {"base_topic": bad}, "base_topic", "zigbee2mqtt")


def test_timezone_option() -> None:
    assert timezone_option("d", {}) is None
    assert timezone_option("d", {"timezone": "Europe/Paris"}) == ZoneInfo("Europe/Paris")
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Olympus'"):
        timezone_option("d", {"timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="must be an IANA name"):
        timezone_option("d", {"timezone": 2})
