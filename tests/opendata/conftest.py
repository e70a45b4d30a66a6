"""A simulated week of a city's telemetry in the real InfluxDB, exported once for the module's tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.bench.opendata import fill, with_intervals
from supervisor.model import CityModel, city_from_dict
from supervisor.opendata.datasets import DAY
from tests.support.services import INFLUX_URL, Influx

DAYS = 7
K = 10
KEPT = 4  # meters of z02 still heard on the silent days: fewer than K


@dataclass
class Week:
    city: dict[str, Any]
    model: CityModel
    db: str
    start: int
    end: int
    silent_days: tuple[int, int]  # the UTC days (epoch s) on which z02 hears only KEPT meters
    meters: list[str]


@pytest.fixture(scope="module")
def week(influx: Influx) -> Iterator[Week]:
    """200 devices (2 zones of 20 water meters, 2 air stations), road sensors every 5 min, lamps at
    70 % at night; on days 3 and 4 all but 4 meters of zone z02 are off the air."""
    city = with_intervals(generate_city(devices=200, seed=11, air_per_zone=1), {"traffic": 300.0})
    model = city_from_dict(city)
    end = (int(time.time()) // DAY - 1) * DAY
    start = end - DAYS * DAY
    z02 = sorted(d["id"] for d in city["devices"] if d["kind"] == "water_meter" and d["zone"] == "z02")
    assert len(z02) >= K + KEPT, "the test city needs more than K meters in z02"
    off = set(z02[KEPT:])
    lo, hi = start + 2 * DAY, start + 4 * DAY

    def silent(t: float) -> set[str]:
        return off if lo < t <= hi else set()

    db = influx.create()
    try:
        fill(city, INFLUX_URL, db, start, end, silent=silent, night_level=70.0)
        meters = [d["id"] for d in city["devices"] if d["kind"] == "water_meter"]
        yield Week(city, model, db, start, end, (lo, lo + DAY), meters)
    finally:
        influx.drop(db)


@pytest.fixture(scope="module")
def exported(week: Week, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The week exported by the CLI, as an operator runs it."""
    import json
    import os
    from unittest import mock

    from supervisor.cli import main
    from supervisor.opendata.datasets import day

    tmp = tmp_path_factory.mktemp("opendata")
    city_file = tmp / "city.json"
    city_file.write_text(json.dumps(week.city))
    out = tmp / "out"
    env = {"URBAN_MODE": "test", "URBAN_STORAGE__URL": INFLUX_URL, "URBAN_STORAGE__DATABASE": week.db}
    with mock.patch.dict(os.environ, env):
        rc = main(["export", "opendata", "--from", day(week.start), "--to", day(week.end), "--out", str(out),
                   "--city", str(city_file)])
    assert rc == 0
    return out
