"""A real Supervisor (not started: no broker needed) fed through its real pipeline and drivers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rules import load_rules
from supervisor.api import ApiServer, create_app
from supervisor.config import ApiConfig, load_settings
from supervisor.model import CityModel
from supervisor.runtime import Supervisor
from tests.support.services import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
VIEWER = "viewer-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def msg(topic: str, payload: dict[str, Any], qos: int = 0) -> tuple[str, bytes, int, int, float]:
    return (topic, json.dumps(payload).encode(), 1, qos, time.time())


def traffic(device: str, zone: str = "centre", **values: float) -> tuple[str, bytes, int, int, float]:
    body = {"ts": time.time(), "flow": 420.0, "speed": 47.5, "occupancy": 12.3} | values
    return msg(f"city/{zone}/traffic/{device}/telemetry", body)


def lamp(device: str, zone: str = "centre", level: float = 70.0) -> tuple[str, bytes, int, int, float]:
    return msg(f"city/{zone}/lighting/{device}/telemetry",
               {"ts": time.time(), "on": level > 0, "level": level, "power": 45.2})


def camera(device: str, zone: str = "centre", online: bool = True) -> tuple[str, bytes, int, int, float]:
    return msg(f"city/{zone}/cctv/{device}/telemetry",
               {"ts": time.time(), "online": online, "recording": online, "fps": 25.0, "bitrate": 4096.0,
                "tamper": False})


def make_supervisor(tmp_path: Path, **kw: Any) -> Supervisor:
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"),  # its own durable alarm list
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3"), "spool_dir": str(tmp_path / "spool")},
        mqtt={"port": free_port()},
    )
    return Supervisor(settings, **kw)


@contextmanager
def served_api(sup: Supervisor) -> Iterator[str]:
    """The real API server of ``sup`` on a free port, with the viewer and operator tokens: its base URL."""
    cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    server = ApiServer(sup, cfg).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def make_city_supervisor(tmp_path: Path, model: CityModel) -> Supervisor:
    """A supervisor with the network model, the example rules and every device registered.

    The rules run through ``attach_rules``, as in production: their commands go out through the
    supervisor's own publisher (driver + MQTT, refusals logged, not raised into the API)."""
    sup = make_supervisor(tmp_path, model=model)
    sup.attach_rules(load_rules(EXAMPLES, model))
    now = time.time()
    for dev in model.devices.values():  # what Supervisor.start() does with the model
        sup.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
        sup.device_driver[dev.id] = dev.driver
    return sup


@pytest.fixture
def sup(tmp_path: Path) -> Supervisor:
    return make_supervisor(tmp_path)


@pytest.fixture
def tokens_cfg() -> ApiConfig:
    return ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]


@pytest.fixture
def client(sup: Supervisor, tokens_cfg: ApiConfig) -> Iterator[TestClient]:
    with TestClient(create_app(sup, tokens_cfg)) as c:
        yield c


@pytest.fixture
def open_client(sup: Supervisor) -> Iterator[TestClient]:
    with TestClient(create_app(sup, ApiConfig())) as c:
        yield c
