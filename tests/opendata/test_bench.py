"""``bench opendata --quick``: the scenario runs end to end and reports its figures (no timing assertion)."""

from __future__ import annotations

import argparse

from supervisor.bench import scenarios
from tests.support.services import INFLUX_URL, Influx


def test_bench_opendata_quick_reports_time_and_peak_rss(influx: Influx) -> None:
    mod = scenarios()["opendata"]
    args = argparse.Namespace(quick=True, influx_url=INFLUX_URL, opendata_devices=None, opendata_days=None,
                              opendata_traffic_interval=300.0)
    result = mod.run(args)
    assert result["days"] == 2 and result["points_stored"] > 0
    assert result["export_s"] > 0 and result["export_peak_rss_mb"] > 10
    assert set(result["rows"]) == {"traffic-hourly", "lighting-daily", "water-daily", "air-hourly"}
    assert all(n > 0 for n in result["rows"].values())
    names = {v[0] for v in influx.query("SHOW DATABASES")[0]["series"][0]["values"]}  # type: ignore[index]
    assert not any(str(n).startswith("urban_bench_opendata_") for n in names), "the bench drops its database"
