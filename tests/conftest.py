from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Influx, Mosquitto, mosquitto

SYSTEM_BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="session")
def influx() -> Influx:
    client = Influx()
    if not client.ping():
        pytest.fail(f"InfluxDB does not answer at {client.url}; run scripts/services.sh (make test does)")
    return client


@pytest.fixture
def influx_db(influx: Influx) -> Iterator[str]:
    """A fresh database on the real InfluxDB, dropped afterwards."""
    name = influx.create()
    try:
        yield name
    finally:
        influx.drop(name)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free port, with unbounded queues (safe for load)."""
    with mosquitto(tmp_path / "mosquitto") as m:
        yield m
