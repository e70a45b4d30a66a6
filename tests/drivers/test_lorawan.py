"""LoRaWAN drivers: profiles and units refused at start, gateway selection, the decode CLI, the simulator.

The message-level behaviour is pinned by the case files of ``drivers/chirpstack/cases`` and
``drivers/the_things_stack/cases``; this file covers what a case cannot: configuration refusals,
the unit table, and the two ends that produce or print the messages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from drivers import ConfigError, DecodeError
from drivers.chirpstack import ChirpStackDriver
from drivers.lorawan_gateway import LorawanGatewayDriver
from drivers.the_things_stack import TheThingsStackDriver
from drivers.units import conversion
from simulators.city import generate_city
from simulators.telemetry import CityTelemetry

SCRIPT = Path(sys.executable).parent / "urban-supervisor"
UP = "application/app/device/0101010101010101/event/up"
METER = {"family": "water", "measures": {"index": {"key": "volume", "unit": "L"}}}


def up(**extra: Any) -> bytes:
    body = {"time": "2025-11-26T00:00:00Z", "deviceInfo": {"deviceProfileName": "meter", "devEui": "0101010101010101"},
            "object": {"volume": 1500}, "rxInfo": [{"gatewayId": "AA555A0000000101", "rssi": -100, "snr": -3.5},
                                                    {"gatewayId": "aa555a0000000202", "rssi": -60, "snr": 8}]}
    body.update(extra)
    return orjson.dumps(body)


@pytest.mark.parametrize(("family", "measure", "unit", "value", "want"), [
    ("water", "index", "L", 1500.0, 1.5),
    ("water", "index", "m3", 1.5, 1.5),
    ("water", "temperature", "degF", 212.0, 100.0),
    ("water", "temperature", "K", 273.15, 0.0),
    ("water", "flow", "L/min", 10.0, 0.6),
    ("air", "humidity", "ratio", 0.5, 50.0),
    ("air", "pm25", "mg/m3", 0.02, 20.0),
    ("lighting", "power", "kW", 1.25, 1250.0),
])
def test_units_convert_into_the_canonical_unit(family: str, measure: str, unit: str, value: float,
                                               want: float) -> None:
    assert conversion(family, measure, unit, "t").apply(value) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("measures", "words"), [
    ({"index": {"key": "v", "unit": "kWh"}}, ["'kWh' (energy) cannot be converted to 'm3'", "water.index"]),
    ({"index": {"key": "v", "unit": "bushel"}}, ["unknown unit 'bushel'"]),
    ({"volume": "v"}, ["water.volume is not a canonical measure"]),
    ({"index": {"key": "v", "units": "L"}}, ["index: expected a key or {key: <key>, unit: <unit>}"]),
    ({}, ["measures must map at least one canonical measure"]),
])
def test_a_profile_that_cannot_work_stops_the_start(measures: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        ChirpStackDriver({"profiles": {"meter": {"family": "water", "measures": measures}}})
    assert "driver 'chirpstack': profile 'meter'" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_a_count_or_an_unknown_family_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="unit '%' \\(share\\) cannot be converted to 'count'"):
        ChirpStackDriver({"profiles": {"gw": {"family": "lorawan", "measures": {"rx_ok": {"key": "n", "unit": "%"}}}}})
    with pytest.raises(ConfigError, match="unknown family 'gas'"):
        ChirpStackDriver({"profiles": {"meter": {"family": "gas", "measures": {"index": "v"}}}})


@pytest.mark.parametrize(("options", "words"), [
    ({"profiles": {"meter": METER}, "devices": {"01010101": "meter"}}, "is not a DevEUI"),
    ({"profiles": {"meter": METER}, "devices": {"0101010101010101": "other"}}, "unknown profile 'other'"),
    ({"profiles": ["meter"]}, "profiles must map profile names"),
    ({"gateways": "some"}, "gateways must be 'all', 'none' or a list"),
    ({"gateway_topic": "eu868/gateway/+/event/stats"}, "must capture {gateway}"),
    ({"colour": "red"}, "unknown option(s) colour"),
])
def test_options_are_checked_at_start(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        ChirpStackDriver(options)
    assert words in str(err.value)


def test_gateways_option_selects_the_reported_gateways() -> None:
    def gateways(option: Any) -> list[tuple[str, float]]:
        d = ChirpStackDriver({"profiles": {"meter": METER}, "gateways": option})
        return [(r.device, r.values["rssi"]) for r in d.decode(UP, up()).readings if r.family == "lorawan"]

    assert gateways("all") == [("aa555a0000000101", -100.0), ("aa555a0000000202", -60.0)]
    assert gateways(["AA555A0000000202"]) == [("aa555a0000000202", -60.0)]
    assert gateways("none") == []


def test_configured_profiles_widen_the_instance_declaration_only() -> None:
    d = TheThingsStackDriver({"profiles": {"meter": METER}})
    assert d.families == ("lorawan", "water") and TheThingsStackDriver.families == ("lorawan",)
    assert d.measures[("water", "index")] == "m3" and ("water", "index") not in TheThingsStackDriver.measures


def test_without_profiles_every_device_uplink_is_refused_never_guessed() -> None:
    with pytest.raises(DecodeError) as err:
        ChirpStackDriver().decode(UP, up())
    assert err.value.reason == "unknown_profile" and "'meter' is not configured" in err.value.detail


def test_decode_cli_with_profile_options() -> None:
    proc = subprocess.run(
        [str(SCRIPT), "decode", "--driver", "chirpstack", "--topic", UP, "-o",
         "profiles={meter: {family: water, measures: {index: {key: volume, unit: L}}}}", "-o", "gateways=none"],
        input=up(), capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"device": "0101010101010101", "family": "water", "measure": "index", "value": 1.5, "unit": "m3",
         "ts": 1764115200.0}]
    refused = subprocess.run([str(SCRIPT), "decode", "--driver", "chirpstack", "--topic", UP],
                             input=up(), capture_output=True, timeout=30, check=False)
    assert refused.returncode == 2 and b"unknown_profile" in refused.stderr


def test_the_simulated_gateway_reports_decode() -> None:
    city = generate_city(seed=3, devices=20)
    city["devices"].append({"id": "lgw-1", "family": "lorawan", "kind": "lorawan_gateway",
                            "driver": "lorawan_gateway", "service": "water", "zone": "z01",
                            "geometry": city["devices"][0]["geometry"], "gateway": "rg-z01-01", "interval": 60.0})
    sim = CityTelemetry(city, origin=1_764_115_200.0)
    driver = LorawanGatewayDriver()
    for k in range(20):
        (msg,) = sim.snapshot("lgw-1", 1_764_115_200.0 + 60.0 * k)
        (reading,) = driver.decode(msg.topic, msg.payload).readings
        assert (reading.device, reading.family, msg.measurement, msg.points) == ("lgw-1", "lorawan", "lorawan", 1)
        values = reading.values
        assert isinstance(values["rx_ok"], int) and isinstance(values["rx_received"], int)
        assert 0 <= values["rx_ok"] <= values["rx_received"] and values["tx_emitted"] == values["tx_received"]
        assert set(values) == {m for _, m in driver.measures}
