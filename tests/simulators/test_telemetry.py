"""Pure tests of the simulated telemetry: shapes, timestamps, daily curves, lighting, water, faults."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import drivers
from drivers import CANONICAL
from simulators.devices import FaultInjector, default_resolver
from simulators.publisher import BAD_KINDS, expected_from, make_bad
from simulators.telemetry import CityFormatError, CityTelemetry, CommandError, Leak, Message, parse_devices
from tests.simulators.citydata import small_city

PARIS = ZoneInfo("Europe/Paris")
# 2026-11-26 00:00 local: winter, dark from ~17:00 to ~08:00 in Lyon
ORIGIN = datetime(2026, 11, 26, 0, 0, tzinfo=PARIS).timestamp()
TOPIC = re.compile(r"^city/([A-Za-z0-9_.:-]+)/(traffic|lighting|cctv|water)/([A-Za-z0-9_.:-]+)/(telemetry|event)$")
DRIVER_OF = {"traffic": "road_sensor", "lighting": "lighting_cabinet", "cctv": "cctv", "water": "water_meter"}

SHAPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "traffic": {"ts": float, "flow": float, "speed": float, "occupancy": float, "heavy_flow": float},
    "cabinet": {"ts": float, "power": float, "energy": float, "voltage": float, "current": float,
                "lamp_failures": int, "lamps": int, "door_open": bool, "circuits": list},
    "lamp": {"ts": float, "on": bool, "level": float, "power": float},
    "cctv": {"ts": float, "online": bool, "recording": bool, "fps": float, "bitrate": float, "tamper": bool},
    "event": {"ts": float, "type": str, "score": float},
    "water": {"ts": float, "index": float, "flow": float, "alarms": list},
}


def day_of(city_seed: int = 1, hours: float = 48.0, **kw: object) -> tuple[CityTelemetry, list[Message]]:
    tel = CityTelemetry(small_city(), seed=city_seed, origin=ORIGIN, **kw)  # type: ignore[arg-type]
    return tel, list(tel.due(ORIGIN + hours * 3600))


def local_hour(ts: float) -> float:
    lt = datetime.fromtimestamp(ts, PARIS)
    return lt.hour + lt.minute / 60


def shape_of(m: Message) -> str:
    if m.topic.endswith("/event"):
        return "event"
    if m.family == "lighting":
        return "lamp" if m.device.startswith("lamp") else "cabinet"
    return m.family


def test_payloads_have_the_native_shapes_and_canonical_ranges() -> None:
    _, msgs = day_of()
    seen = set()
    for m in msgs:
        match = TOPIC.match(m.topic)
        assert match, m.topic
        assert match.group(3) == m.device and match.group(2) == m.family
        body = orjson.loads(m.payload)
        shape = shape_of(m)
        seen.add(shape)
        want = SHAPES[shape]
        assert set(body) == set(want), (m.topic, body)
        for key, typ in want.items():
            assert isinstance(body[key], typ) and not (typ is float and isinstance(body[key], bool)), (key, body)
            spec = CANONICAL[m.family].get(key)
            if spec is not None and isinstance(body[key], float):
                assert spec.lo is None or body[key] >= spec.lo, (key, body)
                assert spec.hi is None or body[key] <= spec.hi, (key, body)
        if shape == "cabinet":
            for c in body["circuits"]:
                assert set(c) == {"id", "on", "level", "power"} and isinstance(c["id"], str)
    assert seen == set(SHAPES)


def test_timestamps_are_unique_per_device_and_millisecond_apart() -> None:
    _, msgs = day_of(hours=30)
    last: dict[str, float] = {}
    for m in msgs:
        ts = orjson.loads(m.payload)["ts"]
        assert round(ts * 1000) == pytest.approx(ts * 1000, abs=1e-3)
        if m.device in last:
            assert round(ts * 1000) >= round(last[m.device] * 1000) + 1, m
        last[m.device] = ts


def test_every_payload_decodes_with_the_native_driver_and_points_match() -> None:
    available = drivers.available()
    if not all(n in available for n in DRIVER_OF.values()):
        pytest.skip("native drivers not installed")
    tel, msgs = day_of(hours=36)
    tel.set_lamp_failures("cab-1", 2)
    msgs += list(tel.due(ORIGIN + 40 * 3600))
    insts = {f: available[n]() for f, n in DRIVER_OF.items()}
    got: dict[str, int] = defaultdict(int)
    for m in msgs:
        decoded = insts[m.family].decode(m.topic, m.payload)
        for r in decoded.readings:
            got[r.family] += 1
        got["events"] += len(decoded.events)
    _, expected = expected_from(msgs)
    assert dict(got) == expected


def test_traffic_has_peaks_and_a_low_night_and_consistent_occupancy() -> None:
    _, msgs = day_of(hours=72)
    by_hour: dict[int, list[float]] = defaultdict(list)
    for m in msgs:
        if m.family != "traffic":
            continue
        b = orjson.loads(m.payload)
        by_hour[int(local_hour(b["ts"]))].append(b["flow"])
        # occupancy = flow x 6.5 m / speed (rounding tolerance)
        assert b["occupancy"] == pytest.approx(b["flow"] * 6.5 / (b["speed"] * 1000) * 100, rel=0.01, abs=0.02)
    mean = {h: sum(v) / len(v) for h, v in by_hour.items()}
    night = min(mean[h] for h in (2, 3, 4))
    assert mean[8] > 4 * night and mean[17] > 4 * night
    assert mean[8] > mean[12] and mean[17] > mean[13]


def test_lamps_are_dark_by_day_and_lit_at_night_and_cabinet_power_is_their_sum() -> None:
    _, msgs = day_of(hours=24, night_level=80.0)
    cab_night = 0
    for m in msgs:
        if m.family != "lighting":
            continue
        b = orjson.loads(m.payload)
        h = local_hour(b["ts"])
        if 10 <= h < 15:
            assert b["power"] == 0.0
        if h < 6 or h >= 19:
            if "circuits" in b:
                cab_night += 1
                assert b["power"] == pytest.approx(6 * 60.0 * 0.8)
                assert b["power"] == pytest.approx(sum(c["power"] for c in b["circuits"]))
                assert b["current"] == pytest.approx(b["power"] / b["voltage"], abs=2e-3)
            else:
                assert b == {"ts": b["ts"], "on": True, "level": 80.0, "power": 48.0}
    assert cab_night > 0


def test_lamp_failures_lower_the_power_and_are_reported() -> None:
    tel = CityTelemetry(small_city(), seed=3, origin=ORIGIN)
    night = ORIGIN + 2 * 3600
    failed = tel.set_lamp_failures("cab-1", 2)
    assert len(failed) == 2
    body = orjson.loads(tel.snapshot("cab-1", night)[0].payload)
    assert body["lamp_failures"] == 2 and body["lamps"] == 6
    assert body["power"] == pytest.approx(4 * 60.0)
    dead = orjson.loads(tel.snapshot(str(failed[0]), night)[0].payload)
    assert dead["power"] == 0.0
    with pytest.raises(ValueError, match="cannot fail 7"):
        tel.set_lamp_failures("cab-1", 7)


def test_energy_integrates_power() -> None:
    tel = CityTelemetry(small_city(), seed=3, origin=ORIGIN)
    t = ORIGIN + 3600
    e0 = orjson.loads(tel.snapshot("cab-1", t)[0].payload)["energy"]
    e1 = orjson.loads(tel.snapshot("cab-1", t + 1800)[0].payload)["energy"]
    assert e1 - e0 == pytest.approx(360.0 * 0.5 / 1000, abs=1e-3)


def test_commands_override_until_the_next_dusk_or_dawn() -> None:
    tel = CityTelemetry(small_city(), seed=3, origin=ORIGIN)
    night, day = ORIGIN + 2 * 3600, ORIGIN + 12 * 3600
    tel.apply_command("cab-1", {"level": 40.0, "circuit": "1"}, night)
    body = orjson.loads(tel.snapshot("cab-1", night + 1)[0].payload)
    levels = {c["id"]: c["level"] for c in body["circuits"]}
    assert levels == {"1": 40.0, "2": 100.0}
    assert body["power"] == pytest.approx(3 * 60 * 0.4 + 3 * 60)
    tel.apply_command("lamp-0", {"on": False}, night)
    assert orjson.loads(tel.snapshot("lamp-0", night + 2)[0].payload)["on"] is False
    # by day the override has expired: everything is off again
    assert orjson.loads(tel.snapshot("cab-1", day)[0].payload)["power"] == 0.0
    # a daytime command lights the lamp at once
    tel.apply_command("lamp-1", {"level": 30}, day)
    assert orjson.loads(tel.snapshot("lamp-1", day + 1)[0].payload)["level"] == 30.0
    for bad, match in (({"level": 150}, "within 0..100"), ({"on": "yes"}, "boolean"), ({}, "needs"),
                       ({"level": 5, "circuit": "9"}, "no circuit")):
        with pytest.raises(CommandError, match=match):
            tel.apply_command("cab-1", bad, day)
    with pytest.raises(CommandError, match="no such lighting device"):
        tel.apply_command("rs-1", {"level": 5}, day)


def _water(msgs: list[Message], dev: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in msgs if m.device == dev]


def test_water_has_a_night_minimum_and_the_index_integrates_flow() -> None:
    _, msgs = day_of(hours=72)
    rows = _water(msgs, "wm-1")
    night = [r["flow"] for r in rows if 2 <= local_hour(r["ts"]) < 5]
    day = [r["flow"] for r in rows if 7 <= local_hour(r["ts"]) < 9]
    assert min(night) == 0.0
    assert sum(day) / len(day) > 5 * sum(night) / len(night)
    for a, b in itertools.pairwise(rows):
        dt = b["ts"] - a["ts"]
        assert b["index"] - a["index"] == pytest.approx(b["flow"] * dt / 3600, abs=2e-4)
    assert all(r["alarms"] == [] for r in rows)


def test_a_leak_adds_night_flow_from_the_given_night() -> None:
    tel, msgs = day_of(hours=4 * 24, leaks={"wm-2": Leak(rate=0.05, from_night=1)})
    rows = _water(msgs, "wm-2")

    def night_min(n: int) -> float:
        start = tel.night_start(n)
        return min(r["flow"] for r in rows if start + 2 * 3600 <= r["ts"] < start + 5 * 3600)

    assert night_min(0) < 0.01
    assert night_min(1) >= 0.05 and night_min(2) >= 0.05
    start1 = tel.night_start(1)
    assert datetime.fromtimestamp(start1, PARIS).hour == 0
    assert all(r["flow"] >= 0.05 for r in rows if r["ts"] >= start1)
    leak_alarm = [r["ts"] for r in rows if "LEAK" in r["alarms"]]
    # the meter raises LEAK once its flow has not dropped to zero for 24 h (it may have been in
    # use just before the leak started)
    assert leak_alarm and min(leak_alarm) >= start1 + 12 * 3600
    assert all("LEAK" not in r["alarms"] for r in _water(msgs, "wm-1"))


def test_default_resolver_and_faults_silence_the_right_devices() -> None:
    tel = CityTelemetry(small_city(), seed=1, origin=ORIGIN)
    resolve = default_resolver(tel.devices)
    lamps = {f"lamp-{i}" for i in range(6)}
    assert resolve("feeder-1") == {"rs-1", "cab-1", "cam-1"} | lamps  # lamps through their cabinet
    assert resolve("gw-1") == {"rs-2", "wm-1"} | lamps
    assert resolve("sw-1") == {"rs-1", "cab-1", "cam-1"} | lamps
    assert resolve("sw-1/3") == {"cam-1"}
    assert resolve("sw-10") == set()
    faults = FaultInjector(tel)
    assert faults.fail("cab-1") == {"cab-1"} | lamps
    faults.fail("gw-2")
    out = list(tel.due(ORIGIN + 2 * 3600, faults.silenced))
    talking = {m.device for m in out}
    assert talking == {"rs-1", "rs-2", "cam-1", "wm-1"}
    assert faults.restore("cab-1") == {"cab-1"} | lamps
    out = list(tel.due(ORIGIN + 4 * 3600, faults.silenced))
    assert {m.device for m in out} == talking | {"cab-1"} | lamps
    # a model resolver is plugged the same way
    faults2 = FaultInjector(tel, resolver=lambda e: {"rs-2"} if e == "sw-core" else set())
    assert faults2.fail("sw-core") == {"rs-2"}


def test_malformed_kinds_are_refused_by_the_drivers() -> None:
    available = drivers.available()
    if not all(n in available for n in DRIVER_OF.values()):
        pytest.skip("native drivers not installed")
    _, msgs = day_of(hours=2)
    by_family = {m.family: m for m in msgs if not m.topic.endswith("event")}
    for fam, m in by_family.items():
        drv = available[DRIVER_OF[fam]]()
        for kind in BAD_KINDS:
            topic, payload = make_bad(kind, m, oversize=1000)
            if kind == "oversized":  # size is the ingest's limit, not the driver's
                assert len(make_bad(kind, m)[1]) > 256 * 1024
                continue
            with pytest.raises(drivers.DecodeError):
                drv.decode(topic, payload)


def test_bad_city_input_gets_a_specific_error() -> None:
    city = small_city()
    city["devices"][0]["kind"] = "toaster"
    with pytest.raises(CityFormatError, match=r"rs-1.*unknown kind 'toaster'"):
        parse_devices(city)
    with pytest.raises(CityFormatError, match="'devices' must be a list"):
        parse_devices({"devices": {}})
    city = small_city()
    city["devices"][1]["id"] = "rs-1"
    with pytest.raises(CityFormatError, match="duplicate id"):
        parse_devices(city)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), start_hour=st.floats(0, 24))
def test_any_seed_stays_within_canonical_ranges(seed: int, start_hour: float) -> None:
    tel = CityTelemetry(small_city(), seed=seed, origin=ORIGIN + start_hour * 3600)
    for m in tel.due(tel.origin + 6 * 3600):
        body = orjson.loads(m.payload)
        for key, value in body.items():
            spec = CANONICAL[m.family].get(key)
            if spec is not None and isinstance(value, float):
                assert (spec.lo is None or value >= spec.lo) and (spec.hi is None or value <= spec.hi), (key, body)


def test_same_seed_same_telemetry() -> None:
    a = [m.payload for m in day_of(city_seed=5, hours=6)[1]]
    b = [m.payload for m in day_of(city_seed=5, hours=6)[1]]
    c = [m.payload for m in day_of(city_seed=6, hours=6)[1]]
    assert a == b and a != c


def test_camera_faults_are_reported_and_cleared() -> None:
    from simulators.city import generate_city
    from simulators.telemetry import CityTelemetry

    city = generate_city(seed=3, devices=60)
    tel = CityTelemetry(city, seed=1, origin=1_700_000_000.0)
    cams = [d["id"] for d in city["devices"] if d["family"] == "cctv"][:2]
    tel.set_camera_fault(cams[0], "tamper")
    tel.set_camera_fault(cams[1], "offline")
    seen: dict[str, dict[str, object]] = {}
    tamper_events = 0
    for _ in range(2000):
        for m in tel.due(tel.next_due()):
            if m.device in cams and m.topic.endswith("/telemetry"):
                seen[m.device] = orjson.loads(m.payload)
            if m.device == cams[0] and m.topic.endswith("/event") and b'"tamper"' in m.payload:
                tamper_events += 1
        if len(seen) == 2:
            break
    assert seen[cams[0]]["tamper"] is True and seen[cams[0]]["online"] is True
    assert tamper_events == 1
    assert seen[cams[1]]["online"] is False and seen[cams[1]]["fps"] == 0.0
    tel.set_camera_fault(cams[0], None)
    with pytest.raises(ValueError, match="camera fault must be"):
        tel.set_camera_fault(cams[0], "broken")
    with pytest.raises(KeyError):
        tel.set_camera_fault("lamp-000001", "tamper")
