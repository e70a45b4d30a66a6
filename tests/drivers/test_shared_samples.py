"""The shared public samples of the FIWARE, Telraam, Digitraffic and wmbusmeters formats decode to
the expected, unit-normalised observations; driver options behave.

Samples are read from ``/work/shared/payloads`` (CC-BY-4.0, see its SOURCES.md) at test time and the
test is skipped when they are absent. JSONC comments are stripped here, in the loader only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from drivers import ConfigError, DecodeError, available
from drivers.air_quality import eaqi
from drivers.kit import records
from tests.drivers.casefiles import canonical

SHARED = Path(os.environ.get("URBAN_SHARED_PAYLOADS", "/work/shared/payloads"))
FIWARE_OPTIONS = {"power_unit": "W", "energy_unit": "kWh", "water_volume_unit": "L"}
T_IST = 1610360462.0  # 2021-01-11T15:51:02+05:30
T_FEEDER = 1615458062.0  # 2021-03-11T15:51:02+05:30
T_TRAFFIC = 1481109000.0  # 2016-12-07T11:10:00Z


def strip_jsonc(text: str) -> str:
    """Remove // and /* */ comments outside JSON strings."""
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def sample(relative: str) -> bytes:
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"shared sample {path} is absent")
    text = path.read_text(encoding="utf-8")
    return (strip_jsonc(text) if path.suffix == ".jsonc" else text).encode("utf-8")


def obs(device: str, family: str, measure: str, value: Any, unit: str, ts: float | None,  # noqa: PLR0917
        channel: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"device": device, "family": family, "measure": measure, "value": value,
                           "unit": unit, "ts": ts}
    if channel is not None:
        rec["channel"] = channel
    return rec


def streetlight(with_energy: bool) -> list[dict[str, Any]]:
    d, L = "streetlight:guadalajara:4567", "lighting"
    out = [obs(d, L, "on", False, "bool", T_IST), obs(d, L, "power", 10.0, "W", T_IST),
           obs(d, L, "current", 250.0, "A", T_IST), obs(d, L, "voltage", 50.0, "V", T_IST),
           obs(d, L, "power_factor", 0.7, "1", T_IST), obs(d, L, "faults", "", "tokens", T_IST)]
    return out + ([obs(d, L, "energy", 93.4, "kWh", T_IST)] if with_energy else [])


def cabinet() -> list[dict[str, Any]]:
    d, L = "streetlightcontrolcabinet:A45HGJK", "lighting"
    out = [obs(d, L, "energy", 162456.0, "kWh", None)]
    for phase, amps, var in (("L1", 20.1, 45000.0), ("L2", 14.4, 43500.0), ("L3", 22.0, 42000.0)):
        out += [obs(d, L, "current", amps, "A", None, phase), obs(d, L, "reactive_power", var, "var", None, phase)]
    return out


def feeder() -> list[dict[str, Any]]:
    d, L, t = "feeder-1", "lighting", T_FEEDER
    out = [obs(d, L, "on", True, "bool", t), obs(d, L, "power", 30.0, "W", t),
           obs(d, L, "reactive_power", 200.0, "var", t), obs(d, L, "lamps", 45, "count", t)]
    for phase, volts, amps, watts, var in (("L1", 240.0, 25.0, 120.0, 25.0), ("L2", 120.0, 28.0, 200.0, 28.0),
                                           ("L3", 50.0, 30.0, 150.0, 30.0)):
        out += [obs(d, L, "voltage", volts, "V", t, phase), obs(d, L, "current", amps, "A", t, phase),
                obs(d, L, "power", watts, "W", t, phase), obs(d, L, "reactive_power", var, "var", t, phase)]
    return out


def traffic_flow() -> list[dict[str, Any]]:
    d, T, t = "TrafficFlowObserved-Valladolid-osm-60821110", "traffic", T_TRAFFIC
    return [obs(d, T, "count", 197, "veh", t), obs(d, T, "interval", 300.0, "s", t),
            obs(d, T, "flow", 2364.0, "veh/h", t), obs(d, T, "occupancy", 76.0, "%", t),
            obs(d, T, "speed", 52.6, "km/h", t)]


def water() -> list[dict[str, Any]]:
    d, W = "Consumer01", "water"
    return [obs(d, W, "index", 191.051, "m3", None), obs(d, W, "max_flow", 0.62, "m3/h", None),
            obs(d, W, "min_flow", 0.001, "m3/h", None),
            obs(d, W, "alarms", "ALARM_IN_PROGRESS,MODULE_TAMPERED", "tokens", None),
            {"event": "alarm", "device": d, "family": W, "ts": None, "data": {"token": "ALARM_IN_PROGRESS"}},
            {"event": "alarm", "device": d, "family": W, "ts": None, "data": {"token": "MODULE_TAMPERED"}}]


def camera(device: str) -> list[dict[str, Any]]:
    return [obs(device, "cctv", "online", True, "bool", None)]


DEVICE = [obs("device-9845A", "cctv", "battery", 75.0, "%", None)]  # rssi 0.86 has no unitCode: no value

FIWARE_SAMPLES: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("lighting/fiware-Streetlight-example.json", "fiware/Streetlight/sl", streetlight(True)),
    ("lighting/fiware-Streetlight-example-normalized.json", "fiware/Streetlight/sl", streetlight(True)),
    ("lighting/fiware-Streetlight-example-normalized.jsonld", "fiware/Streetlight/sl", streetlight(False)),
    *[(f"lighting/fiware-StreetlightControlCabinet-example{s}", "fiware/StreetlightControlCabinet/c", cabinet())
      for s in (".json", "-normalized.json", "-normalized.jsonld")],
    *[(f"lighting/fiware-StreetlightGroup-example{s}", "fiware/StreetlightGroup/g",
       [obs("streetlightgroup:mycity:A12", "lighting", "on", True, "bool", None)])
      for s in (".json", "-normalized.json", "-normalized.jsonld")],
    # the Feeder id is a URL: the topic names the device
    *[(f"lighting/fiware-StreetlightFeeder-example{s}", "fiware/StreetlightFeeder/feeder-1", feeder())
      for s in (".json", "-normalized.json", "-normalized.jsonld")],
    *[(f"traffic/fiware-TrafficFlowObserved-example{s}", "fiware/TrafficFlowObserved/tf", traffic_flow())
      for s in (".json", "-normalized.json", "-normalized.jsonld")],
    ("water/fiware-WaterConsumptionObserved-example.json", "fiware/WaterConsumptionObserved/w", water()),
    ("water/fiware-WaterConsumptionObserved-example-normalized.json", "fiware/WaterConsumptionObserved/w", water()),
    ("cctv/fiware-Camera-example.json", "fiware/Camera/Cam2", camera("Cam2")),
    # "urn:ngsi-ld:Smart Data Models-Camera" has spaces: the topic names the device
    ("cctv/fiware-Camera-example-normalized.json", "fiware/Camera/Cam2", camera("Cam2")),
    ("cctv/fiware-Camera-example-normalized.jsonld", "fiware/Camera/Cam2", camera("Smart-Data-Models-Camera")),
    *[(f"cctv/fiware-Device-example{s}", "fiware/Device/d", DEVICE)
      for s in (".json", "-normalized.json", "-normalized.jsonld")],
]


@pytest.mark.parametrize(("relative", "topic", "expected"), FIWARE_SAMPLES, ids=[s[0] for s in FIWARE_SAMPLES])
def test_fiware_samples(relative: str, topic: str, expected: list[dict[str, Any]]) -> None:
    driver = available()["fiware"](FIWARE_OPTIONS)
    assert canonical(records(driver, driver.decode(topic, sample(relative)))) == canonical(expected)


UNSUPPORTED = [f"{fam}/fiware-{t}-example{s}" for fam, t in (("lighting", "StreetlightModel"),
                                                             ("water", "DeviceMeasurement"),
                                                             ("water", "SmartMeteringObservation"))
               for s in (".json", "-normalized.json", "-normalized.jsonld")]


@pytest.mark.parametrize("relative", UNSUPPORTED)
def test_fiware_unsupported_samples_are_refused_whole(relative: str) -> None:
    driver = available()["fiware"](FIWARE_OPTIONS)
    etype = relative.split("fiware-")[1].split("-example", maxsplit=1)[0]
    with pytest.raises(DecodeError) as info:
        driver.decode(f"fiware/{etype}/x", sample(relative))
    assert info.value.reason == "wrong_kind"


def test_fiware_units_are_never_guessed() -> None:
    bare = available()["fiware"]()
    for relative, topic in (("lighting/fiware-Streetlight-example.json", "fiware/Streetlight/sl"),
                            ("lighting/fiware-StreetlightFeeder-example.json", "fiware/StreetlightFeeder/f"),
                            ("water/fiware-WaterConsumptionObserved-example.json",
                             "fiware/WaterConsumptionObserved/w")):
        with pytest.raises(DecodeError) as info:
            bare.decode(topic, sample(relative))
        assert info.value.reason == "unknown_unit", relative
    # kW as the deployment unit scales the same sample
    kw = available()["fiware"]({**FIWARE_OPTIONS, "power_unit": "kW", "water_volume_unit": "m3"})
    got = {r["measure"]: r["value"] for r in records(kw, kw.decode("fiware/Streetlight/sl", sample(
        "lighting/fiware-Streetlight-example.json")))}
    assert got["power"] == 10000.0
    got = {r["measure"]: r["value"] for r in records(kw, kw.decode("fiware/WaterConsumptionObserved/w", sample(
        "water/fiware-WaterConsumptionObserved-example.json"))) if "measure" in r}
    assert got["index"] == 191051.0


def test_fiware_options() -> None:
    cls = available()["fiware"]
    for bad in ({"power_unit": "hp"}, {"water_volume_unit": "gal"}, {"iota_types": {"x": "Bench"}},
                {"topic": "ngsi/{type}/+"}, {"command_topic": "x/+/cmd"}, {"iota_apikey": "a b"}, {"colour": 1}):
        with pytest.raises(ConfigError):
            cls(bad)
    d = cls({"topic": "ngsi/{type}/{device}", "iota_topic": "/ul/{apikey}/{device}/attrs",
             "iota_types": {"cam-3": "Camera"}})
    assert d.topics == ("ngsi/+/+", "/ul/+/+/attrs")
    (r,) = d.decode("/ul/k/cam-3/attrs", b'{"on": "false"}').readings
    assert (r.device, r.family, r.values) == ("cam-3", "cctv", {"online": False})
    with pytest.raises(DecodeError) as info:
        d.decode("fiware/Camera/cam-3", b'{"id": "cam-3", "type": "Camera", "on": true}')
    assert info.value.reason == "unknown_topic"


def test_telraam_samples() -> None:
    d = available()["telraam"]()
    got = records(d, d.decode("telraam/9000011165/hourly",
                              sample("traffic/telraam-starwit-doc-reports-traffic-per-hour-response.json")))
    s, T, t = "9000011165", "traffic", 1779361200.0
    assert canonical(got) == canonical([
        obs(s, T, "flow", 144.0, "veh/h", t), obs(s, T, "heavy_flow", 6.0, "veh/h", t),
        obs(s, T, "bike_flow", 12.0, "veh/h", t), obs(s, T, "pedestrian_flow", 50.0, "ped/h", t),
        obs(s, T, "interval", 3600.0, "s", t), obs(s, T, "uptime", 99.94444444, "%", t),
        obs(s, T, "v85", 43.5, "km/h", t)])
    # segment metadata is a FeatureCollection without counts: nothing to report, not an error
    meta = d.decode("telraam/9000011165/segment", sample("traffic/telraam-starwit-doc-segment-by-id-response.json"))
    assert meta.readings == [] and meta.events == []


def test_telraam_and_wmbusmeters_topic_options() -> None:
    t = available()["telraam"]({"topic": "counters/telraam/{device}"})
    assert t.topics == ("counters/telraam/+",)
    row = b'{"date":"2026-05-21T11:00:00Z","interval":"hourly","car":1,"heavy":1}'
    (r,) = t.decode("counters/telraam/42", row).readings
    assert r.device == "42" and r.values["flow"] == 2.0
    w = available()["wmbusmeters"]({"topic": "home/meters/{device}/json"})
    assert w.topics == ("home/meters/+/json",)
    (r,) = w.decode("home/meters/Park_North/json", b'{"total_m3": 3.5}').readings
    assert (r.device, r.values) == ("Park_North", {"index": 3.5})
    with pytest.raises(ConfigError):
        available()["wmbusmeters"]({"topic": "home/meters/+"})  # must capture {device}


def test_digitraffic_sample_and_sensor_option() -> None:
    cls = available()["digitraffic"]
    payload = sample("traffic/digitraffic-docs-mqtt-tms-v2-sensor-message.json")
    (r,) = cls().decode("tms-v2/23001/5055", payload).readings
    assert (r.device, r.channel, r.ts, r.values) == ("23001", "dir2_60min", 1667972911.0,
                                                      {"flow": 108.0, "interval": 3600.0})
    with pytest.raises(DecodeError) as info:
        cls().decode("tms-v2/23001/5067", payload)
    assert info.value.reason == "wrong_kind"
    custom = cls({"sensors": {"5067": {"measure": "speed", "direction": 2, "window": 900}}})
    (r,) = custom.decode("tms-v2/23001/5067", b'{"value": 61.5, "time": 1667972911}').readings
    assert (r.channel, r.values) == ("dir2_15min", {"speed": 61.5, "interval": 900.0})
    bad: dict[str, Any]
    for bad in ({"sensors": {"1": {"measure": "colour", "direction": 1, "window": 60}}},
                {"sensors": {"1": {"measure": "flow", "direction": 3, "window": 60}}},
                {"sensors": {"1": {"measure": "flow", "direction": 1, "window": 0}}}, {"sensors": []}):
        with pytest.raises(ConfigError):
            cls(bad)


@pytest.mark.parametrize(("pollutant", "bounds"), [("pm25", (10, 20, 25, 50, 75)), ("pm10", (20, 40, 50, 100, 150)),
                                                    ("no2", (40, 90, 120, 230, 340)), ("o3", (50, 100, 130, 240, 380))])
def test_eaqi_bands(pollutant: str, bounds: tuple[int, ...]) -> None:
    base = {"no2": 0.0, "pm10": 0.0}
    for level, upper in enumerate(bounds, start=1):
        assert eaqi({**base, pollutant: float(upper)}) == level  # an upper bound stays in its band
        assert eaqi({**base, pollutant: upper + 0.1}) == level + 1
    assert eaqi({**base, pollutant: 5000.0}) == 6


def test_eaqi_needs_no2_and_pm() -> None:
    assert eaqi({"pm10": 200.0, "pm25": 90.0}) is None
    assert eaqi({"no2": 500.0, "o3": 10.0}) is None
    assert eaqi({"no2": 10.0, "pm25": 30.0}) == 4


def test_jsonc_loader_strips_comments_only_outside_strings() -> None:
    assert strip_jsonc('{"a": "x // y", /* c */ "b": 1} // end') == '{"a": "x // y",  "b": 1} '
