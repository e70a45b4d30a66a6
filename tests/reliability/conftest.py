"""Fault tests with real processes: a private Mosquitto, the supervisor as a subprocess, InfluxDB.

Each test prints one JSON line (``RELIABILITY {...}``) with what was sent, stored and lost, so
that docs/reliability.md can quote it (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest


def report(result: dict[str, Any]) -> None:
    flat = {k: v for k, v in result.items() if not isinstance(v, dict)}
    print("RELIABILITY " + json.dumps(flat))


def assert_nothing_lost(result: dict[str, Any]) -> None:
    assert result["publisher_error"] is None, result
    assert result["messages_acked"] == result["messages"], result
    assert result["stored"] == result["expected"], result
    assert result["lost"] == 0 and result["duplicates"] == 0, result


@pytest.fixture(autouse=True)
def _needs_influxd() -> None:
    if shutil.which("influxd") is None or shutil.which("mosquitto") is None:
        pytest.fail("influxd and mosquitto are needed; run scripts/services.sh")
