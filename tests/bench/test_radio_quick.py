"""``bench radio --quick``: the scenario runs and reports every figure (no timing assertion)."""

from __future__ import annotations

import argparse

from supervisor.bench import radio, scenarios


def test_radio_quick_reports_its_figures() -> None:
    assert scenarios()["radio"] is radio
    r = radio.run(argparse.Namespace(quick=True, radio_gateways=None, radio_runs=None))
    assert r["gateways"] == 10
    assert r["pipeline_ns_per_msg"]["without"] > 0 and r["pipeline_ns_per_msg"]["with_radio"] > 0
    assert r["ratio_with_vs_without"] > 0
    assert set(r["watch_ns_per_reading"]) == {"other_families", "gateway_readings"}
    assert r["link_figure_us"] > 0 and r["evaluate_all_ms"] >= 0 and r["store_check_all_ms"] >= 0
