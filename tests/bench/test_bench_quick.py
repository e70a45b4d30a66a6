"""``bench ingest|model|rules --quick``: CI smoke of the main scenarios (no timing assertion).

They must run to the end on the real Mosquitto and InfluxDB, measure their baselines in the same
run, and (ingest) lose no point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import INFLUX_URL

pytestmark = pytest.mark.integration


def _bench(*args: str) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("urban-supervisor")
    out = subprocess.run([str(exe), "bench", *args, "--quick", "--influx-url", INFLUX_URL],
                         capture_output=True, timeout=300, check=True)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_ingest_quick(influx: object) -> None:
    r = _bench("ingest")["ingest"]
    for mode in ("live", "drain"):
        e2e = r["supervisor_e2e"][mode]
        assert e2e["lost"] == 0 and e2e["points_stored"] == e2e["points_expected"]
        assert e2e["rate_msg_s"] > 0
    assert r["broker_mosquitto_sub"]["drain_msg_s"] > 0 and r["paho_counting"]["drain_msg_s"] > 0
    assert set(r["ratios"]) >= {"e2e_live_vs_broker_live", "e2e_live_vs_paho_live", "e2e_drain_vs_broker_drain",
                                "e2e_drain_vs_paho_drain"}


def test_model_quick() -> None:
    r = _bench("model")["model"]["10000"]
    assert r["devices"] == 10000 and r["load_s"] > 0 and r["rss_model_mb"] > 0 and r["impact_devices"] > 0


def test_rules_quick(influx: object) -> None:
    out = _bench("rules")["rules"]
    assert out["background_start_local"] == "07:00"  # the background's phase is fixed, and said
    r = out["load_1000"]
    assert 0 < r["probes"] <= 30 and r["missed"] < r["probes"]  # bounded in time: a slow CI may send fewer
    assert r["latency_ms"]["p50"] > 0 and r["background_achieved_msg_s"] > 0
    # the onset and the rest split the answered probes; the schedule lit every lamp: commands were seen
    assert r["latency_ms_onset"]["n"] + r["latency_ms_after_onset"]["n"] == r["probes"] - r["missed"]
    assert r["commands_per_s"] > 0 and len(r["p99_after_onset_each"]) == len(r["p99_each"]) == 1
    # the command waves are reported: each slow probe's second before its command holds that command
    assert r["commands_per_s_peak"] >= 1 and r["runs"][0]["commands_per_s_peak"] == r["commands_per_s_peak"]
    assert r["slowest"] and all(s["commands_1s"] >= 1 for s in r["slowest"])


def test_retention_quick(influx: object) -> None:
    r = _bench("retention")["retention"]
    assert r["changes_from_nothing"] > 4 and r["raw_points"] == 10 * 3 * 288
    assert r["month_hourly_points"] == 10 * 3 * 24 and r["month_daily_points"] == 10 * 3
    assert r["provision_no_change_ms"] > 0 and r["hourly_run_ms"] > 0


def test_snmp_quick() -> None:
    r = _bench("snmp", "--snmp-interval", "5")["snmp"]
    assert r["switches"] == 20 and len(r["per_round"]) == 2 and r["agents"] == "fast"
    for rnd in r["per_round"]:
        # a figure, not a verdict: on a loaded CI an agent may miss its timeout; every switch is still
        # read or counted unreachable
        assert rnd["unreachable"] < 20 and rnd["ports_read"] == (20 - rnd["unreachable"]) * 48
        assert rnd["points"] == 20 + rnd["ports_read"]  # a point per switch and per port read
        assert rnd["varbinds"] >= rnd["ports_read"] * 6 and rnd["poller_cpu_s"] > 0
    assert r["round_s"]["max"] >= r["round_s"]["median"] > 0 and r["poller_cpu_share_of_one_core"] > 0
