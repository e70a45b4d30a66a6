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


def test_an_integer_beyond_64_bits_is_out_of_range_on_both_paths() -> None:
    """InfluxDB stores integers in 64 bits and refuses a whole line with a wider one."""
    import pytest

    from drivers import DecodeError, get
    from drivers.kit import INT64_MAX, check_range

    assert check_range("lorawan", "rx_ok", INT64_MAX) == INT64_MAX
    with pytest.raises(DecodeError) as exc:
        check_range("lorawan", "rx_ok", INT64_MAX + 1)
    assert exc.value.reason == "out_of_range" and "64-bit" in exc.value.detail
    drv = get("lorawan_gateway")({})
    for raw in (b'{"rx_ok": 9223372036854775808}', b'{"rx_ok": 9.223372036854776e+18}'):
        with pytest.raises(DecodeError) as exc:
            drv.decode("city/z1/lorawan/gw-1/telemetry", raw)
        assert exc.value.reason == "out_of_range"
