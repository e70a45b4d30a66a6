"""``bench scale --quick`` and ``bench storm --quick``: CI smoke of the scale-out scenarios.

Real private Mosquitto and the real InfluxDB; small counts; no timing assertion, only that the
scenarios run to the end, measure their baselines, and lose no point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import INFLUX_URL

pytestmark = pytest.mark.integration


def _bench(*args: str) -> dict[str, object]:
    exe = Path(sys.executable).with_name("urban-supervisor")
    out = subprocess.run([str(exe), "bench", *args, "--quick", "--influx-url", INFLUX_URL],
                         capture_output=True, timeout=180, check=True)
    report: dict[str, object] = json.loads(out.stdout)
    return report


def test_scale_quick_smoke(influx: object) -> None:
    r = _bench("scale", "--max-workers", "2")["scale"]
    assert isinstance(r, dict)
    assert r["publish"]["acked"] == r["messages"]
    assert r["broker_mosquitto_sub_drain_msg_s"] > 0 and r["paho_counting_drain_msg_s"] > 0
    assert set(r["workers"]) == {"1", "2"}
    for w in r["workers"].values():
        assert w["lost"] == 0 and w["errors"] == 0
    assert r["bottleneck"]


def test_storm_quick_smoke_with_broker_restart(influx: object) -> None:
    r = _bench("storm", "--restart-broker", "--storm-messages", "8000")["storm"]
    assert isinstance(r, dict)
    assert r["publish"]["acked"] == r["messages"] == 8000
    assert r["supervisor"]["zero_loss"] and r["supervisor"]["received"] >= 8000
    assert r["broker_mosquitto_sub_drain_msg_s"] > 0 and r["paho_counting_drain_msg_s"] > 0
    # probes during the drain (their events are counted in zero_loss); a quick drain may end first
    probes = r["supervisor"]["probes_during_drain"]
    assert probes["answered"] + probes["missed"] <= probes["sent"]
    assert (probes["latency_ms"] is None) == (probes["answered"] == 0)
    assert (probes["broker_hop_paho_ms"] is None) == (probes["answered"] == 0)
    # the resumed session found where the broker's backlog ended, and says how many old events it withheld
    (seen,) = r["supervisor"]["backlog"]
    assert seen["backlog"]["ended_by"] == "marker" and seen["backlog"]["catch_ups"] >= 1
    assert set(seen["rules"]) >= {"late_events", "late_requests"} and not seen["backlog"]["catching_up"]


def test_storm_quick_smoke_two_workers(influx: object) -> None:
    r = _bench("storm", "--storm-workers", "2", "--storm-messages", "8000")["storm"]
    assert isinstance(r, dict)
    assert r["supervisor"]["zero_loss"] and r["workers"] == 2
