"""A test city fed through the real pipeline and drivers, with every NGSI-LD type represented."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from simulators.city import generate_city
from supervisor.api import create_app
from supervisor.config import ApiConfig
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, VIEWER, bearer, make_city_supervisor, msg

V = bearer(VIEWER)


@pytest.fixture(scope="module")
def model() -> CityModel:
    return city_from_dict(generate_city(devices=80, seed=3, air_per_zone=1))


def telemetry(model: CityModel, ts: float) -> list[tuple[str, bytes, int, int, float]]:
    """One report of every device of the model, in the native scheme; every third lamp failed."""
    out = []
    payloads: dict[str, Any] = {
        "road_sensor": {"flow": 420.0, "speed": 47.5, "occupancy": 12.3, "count": 7, "interval": 60.0},
        "lighting_cabinet": {"power": 1234.5, "energy": 5678.9, "voltage": 231.2, "current": 5.4, "lamps": 24,
                             "circuits": [{"id": "1", "on": True, "level": 70.0, "power": 600.0},
                                          {"id": "2", "on": False, "level": 0.0, "power": 0.0}]},
        "camera": {"online": True, "recording": True, "fps": 25.0, "bitrate": 4096.0, "tamper": False},
        "water_meter": {"index": 1234.567, "flow": 0.012, "alarms": []},
        "air_station": {"no2": 41.0, "pm10": 22.0, "pm25": 12.5, "o3": 80.0, "eaqi": 2, "temperature": 11.5,
                        "humidity": 64.0},
    }
    for i, d in enumerate(sorted(model.devices)):
        info = model.devices[d]
        body = {"on": True, "level": 20.0 + i % 5 * 20, "power": 45.2} if info.kind == "lamp" \
            else dict(payloads[info.kind])
        family = "lighting" if info.kind in ("lamp", "lighting_cabinet") else info.family
        out.append(msg(f"city/{info.zone}/{family}/{d}/telemetry", body | {"ts": ts}))
    return out


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, model: CityModel) -> Supervisor:
    sup = make_city_supervisor(tmp_path_factory.mktemp("ngsi"), model)
    counters = sup.pipeline.counters
    sup.pipeline.process(telemetry(model, time.time() - 5))
    assert counters.error_total == 0, dict(counters.errors)
    return sup


@pytest.fixture(scope="module")
def client(city: Supervisor) -> Iterator[TestClient]:
    cfg = ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    with TestClient(create_app(city, cfg)) as c:
        yield c
