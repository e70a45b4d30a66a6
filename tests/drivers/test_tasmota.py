"""Tasmota driver: options (FullTopic, timezone) and the scale conversions in both directions.

Option-dependent decodes live here rather than in cases/ because the catalogue's purity test runs
every decode case through one driver instance built with the first case's options.
"""

from __future__ import annotations

import orjson
import pytest

from drivers import Command, ConfigError, DecodeError
from drivers.lighting import percent_to_whole as percent_to_dimmer
from drivers.lighting import percent_to_zigbee, zigbee_to_percent
from drivers.tasmota import TasmotaDriver

Rows = list[tuple[str | None, dict[str, object], float | None]]


def values(driver: TasmotaDriver, topic: str, payload: bytes) -> Rows:
    return [(r.channel, r.values, r.ts) for r in driver.decode(topic, payload).readings]


def test_reordered_full_topic_decodes_and_encodes() -> None:
    d = TasmotaDriver({"full_topic": "tasmota/%topic%/%prefix%/"})
    assert d.topics == ("tasmota/+/tele/+", "tasmota/+/stat/+")
    assert values(d, "tasmota/lamp-cab07/tele/STATE", b'{"POWER":"ON","Dimmer":20}') == [
        (None, {"on": True, "level": 20.0}, None)]
    assert values(d, "tasmota/lamp-cab07/tele/LWT", b"Offline") == [(None, {"online": False}, None)]
    with pytest.raises(DecodeError) as info:
        d.decode("tele/lamp-cab07/STATE", b'{"POWER":"ON"}')  # the default layout is no longer ours
    assert info.value.reason == "unknown_topic"
    (p,) = d.encode(Command("lamp-cab07", "switch", False))
    assert (p.topic, p.payload, p.qos, p.retain) == ("tasmota/lamp-cab07/cmnd/Power", b"OFF", 1, False)


def test_default_class_filters() -> None:
    assert TasmotaDriver.topics == ("tele/+/+", "stat/+/+")
    assert TasmotaDriver().topics == ("tele/+/+", "stat/+/+")


@pytest.mark.parametrize("bad", ["%topic%/", "%prefix%/x%topic%/", "%prefix%/%topic%/%hostname%/", "%prefix%/+/%topic%",
                                 42])
def test_full_topic_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        TasmotaDriver({"full_topic": bad})


def test_unknown_option_and_zone_refused() -> None:
    with pytest.raises(ConfigError):
        TasmotaDriver({"fulltopic": "%prefix%/%topic%/"})
    with pytest.raises(ConfigError):
        TasmotaDriver({"timezone": "Mars/Olympus"})


def test_local_time_needs_the_zone_option() -> None:
    payload = b'{"Time":"2024-03-04T21:05:11","POWER":"OFF","Dimmer":70}'
    (r,) = TasmotaDriver().decode("tele/lamp-cab07/STATE", payload).readings
    assert r.ts is None  # unknown zone: the framework stamps the receive time
    (r,) = TasmotaDriver({"timezone": "Europe/Paris"}).decode("tele/lamp-cab07/STATE", payload).readings
    assert r.ts == 1709582711.0  # 21:05:11 CET = 20:05:11Z
    (r,) = TasmotaDriver({"timezone": "America/New_York"}).decode("tele/lamp-cab07/STATE", payload).readings
    assert r.ts == 1709582711.0 + 6 * 3600  # 21:05:11 EST = 02:05:11Z next day


def test_zigbee_level_both_directions() -> None:
    assert zigbee_to_percent(0) == 0.0
    assert zigbee_to_percent(254) == 100.0
    assert zigbee_to_percent(127) == 50.0
    assert percent_to_zigbee(0) == 0
    assert percent_to_zigbee(100) == 254
    assert percent_to_zigbee(50) == 127
    assert percent_to_zigbee(0.1) == 1  # never rounded to off
    for raw in range(255):  # every Zigbee level survives decode → encode
        assert percent_to_zigbee(zigbee_to_percent(raw)) == raw


def test_dimmer_percent_both_directions() -> None:
    d = TasmotaDriver()
    for level in (0, 1, 37, 100):
        (p,) = d.encode(Command("t1", "set_level", float(level)))
        assert p.topic == "cmnd/t1/Dimmer" and p.payload == str(level).encode()
        (r,) = d.decode("stat/t1/RESULT", orjson.dumps({"Dimmer": int(p.payload)})).readings
        assert r.values == {"level": float(level)}
    assert percent_to_dimmer(0.4) == 1 and percent_to_dimmer(99.5) == 100


def test_zbsend_round_trip_through_decode() -> None:
    d = TasmotaDriver()
    (p,) = d.encode(Command("zb-gw", "set_level", 33.0, channel="Lamp_12"))
    sent = orjson.loads(p.payload)
    assert sent == {"Device": "Lamp_12", "Send": {"Dimmer": 84}}  # round(33 * 2.54) = round(83.82)
    report = {"ZbReceived": {"0x1A2B": {"Name": "Lamp_12", "Dimmer": sent["Send"]["Dimmer"]}}}
    (r,) = d.decode("tele/zb-gw/SENSOR", orjson.dumps(report)).readings
    assert r.channel == "Lamp_12" and abs(float(r.values["level"]) - 33.0) < 100 / 254


def test_wifi_rssi_mapping() -> None:
    d = TasmotaDriver()
    for quality, dbm in ((1, -99.5), (62, -69.0), (99, -50.5)):
        (r,) = d.decode("tele/t/STATE", orjson.dumps({"Wifi": {"RSSI": quality}})).readings
        assert r.values == {"rssi": dbm}
    for clamped in (0, 100):
        with pytest.raises(DecodeError) as info:  # nothing else in the STATE
            d.decode("tele/t/STATE", orjson.dumps({"Wifi": {"RSSI": clamped}}))
        assert info.value.reason == "missing_field"


def test_never_half_decoded() -> None:
    with pytest.raises(DecodeError) as info:
        TasmotaDriver().decode("tele/t/SENSOR", b'{"ENERGY":{"Power":[52,"x"],"Voltage":230}}')
    assert info.value.reason == "bad_value"
