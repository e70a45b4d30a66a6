"""Simulated air-quality stations: realistic daily cycles, in the native format the driver decodes."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

import drivers
from drivers import CANONICAL
from drivers.air_quality import eaqi
from simulators.city import generate_city
from simulators.telemetry import CityTelemetry, air_values

PARIS = ZoneInfo("Europe/Paris")
JANUARY, JULY = 15, 196  # days of the year


def mean_at(h: float, measure: str, day: int = JANUARY, pollution: float = 1.0) -> float:
    rng = random.Random(7)
    return statistics.fmean(air_values(h, day, pollution, rng)[measure] for _ in range(400))


def test_values_are_canonical_at_every_hour_and_season() -> None:
    rng = random.Random(1)
    for day in (JANUARY, 100, JULY, 300):
        for h in range(24):
            for pollution in (0.6, 1.0, 1.5):
                values = air_values(h + 0.5, day, pollution, rng)
                assert set(values) == {"no2", "pm10", "pm25", "o3", "temperature", "humidity"}
                for m, v in values.items():
                    spec = CANONICAL["air"][m]
                    assert isinstance(v, float) and spec.lo is not None and spec.hi is not None
                    assert spec.lo <= v <= spec.hi, (m, v, h, day)
                assert values["pm25"] < values["pm10"]


def test_daily_and_seasonal_cycles() -> None:
    assert mean_at(8.0, "no2") > 2.5 * mean_at(3.5, "no2")  # the morning rush
    assert mean_at(17.5, "no2") > 2.0 * mean_at(3.5, "no2")  # and the evening one
    assert mean_at(15.0, "o3", JULY) > 2.0 * mean_at(4.0, "o3", JULY)  # sunlight makes ozone
    assert mean_at(15.0, "o3", JULY) > mean_at(15.0, "o3", JANUARY)
    assert mean_at(12.0, "pm10", JANUARY) > mean_at(12.0, "pm10", JULY)  # winter heating
    assert mean_at(15.0, "temperature") > mean_at(4.0, "temperature") + 7.0
    assert mean_at(15.0, "temperature", JULY) > mean_at(15.0, "temperature", JANUARY) + 12.0
    assert mean_at(15.0, "humidity") < mean_at(4.0, "humidity") - 20.0
    assert mean_at(8.0, "no2", pollution=1.4) == pytest.approx(1.4 * mean_at(8.0, "no2"), rel=0.01)


def test_stations_report_what_the_driver_decodes() -> None:
    city = generate_city(seed=4, devices=200, air_per_zone=2)
    origin = datetime(2026, 7, 1, tzinfo=PARIS).timestamp()
    tel = CityTelemetry(city, seed=2, origin=origin)
    msgs = [m for m in tel.due(origin + 86400.0) if m.family == "air"]
    zone_of = {d["id"]: d["zone"] for d in city["devices"] if d["kind"] == "air_station"}
    stations = set(zone_of)
    assert {m.device for m in msgs} == stations
    assert Counter(m.device for m in msgs) == dict.fromkeys(stations, 144)  # every 10 minutes for a day
    driver = drivers.get("air_quality")()
    sent_index: set[str] = set()
    levels: Counter[int] = Counter()
    for m in msgs:
        assert m.topic == f"city/{zone_of[m.device]}/air/{m.device}/telemetry"
        body = orjson.loads(m.payload)
        (reading,) = driver.decode(m.topic, m.payload).readings
        if "eaqi" in body:
            sent_index.add(m.device)
        assert reading.values["eaqi"] == eaqi({k: v for k, v in body.items() if k != "eaqi"})
        levels[reading.values["eaqi"]] += 1
    assert 0 < len(sent_index) < len(stations)  # some stations send their own index, the driver computes the rest
    assert len(levels) >= 2  # the index moves over a day
    assert max(levels) <= 5  # and an ordinary city is never "extremely poor"

