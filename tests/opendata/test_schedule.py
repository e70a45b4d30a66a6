"""The scheduled export: which days are due, each exported once, an interrupted one redone, off the caller's thread."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import StorageConfig
from supervisor.opendata import OpenDataConfig, OpenDataExport, OpenDataScheduler, due_periods
from supervisor.opendata import export as export_module
from supervisor.opendata.datasets import DAY, day
from supervisor.opendata.source import InfluxReader
from tests.opendata.conftest import Week
from tests.support.services import INFLUX_URL

D = 1_796_083_200  # a UTC midnight (2026-12-01)


def test_the_previous_day_is_due_after_the_daily_time_and_missed_days_are_caught_up(tmp_path: Path) -> None:
    cfg = OpenDataConfig(at="02:30", catch_up_days=3)
    exp = OpenDataExport(tmp_path, cfg, model=None)  # type: ignore[arg-type]  # due_periods reads the state only
    before = due_periods(cfg, D + 2 * 3600, exp)
    after = due_periods(cfg, D + 2 * 3600 + 1800, exp)
    assert [p.key for p in before] == [f"{day(D - n * DAY)}_{day(D - (n - 1) * DAY)}" for n in (4, 3, 2)]
    assert [p.key for p in after][-1] == f"{day(D - DAY)}_{day(D)}" and len(after) == 3


def test_bad_schedule_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        OpenDataConfig(at="25:00")
    with pytest.raises(ValueError, match="k"):
        OpenDataConfig(k=1)
    with pytest.raises(ValueError, match="http"):
        OpenDataConfig(base_url="ftp://x")


def _scheduler(week: Week, out: Path, **kw: Any) -> OpenDataScheduler:
    cfg = OpenDataConfig(enabled=True, catch_up_days=3, **kw)
    now = week.start + 3 * DAY + cfg.at_seconds() + 60  # days 0, 1 and 2 of the week are due
    return OpenDataScheduler(cfg, out, week.model, lambda: InfluxReader(StorageConfig(database=week.db)),
                             clock=lambda: now, min_retry_s=0.2)


def test_each_due_day_is_exported_once(week: Week, tmp_path: Path) -> None:
    s = _scheduler(week, tmp_path)
    assert s.run_due() == 3
    state = json.loads((tmp_path / ".opendata-state.json").read_text())
    assert sorted(state["periods"]) == [f"{day(week.start + i * DAY)}_{day(week.start + (i + 1) * DAY)}"
                                        for i in range(3)]
    stamps = {p: v["finished_at"] for p, v in state["periods"].items()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.csv")}
    assert s.run_due() == 0, "a finished day is not exported again"
    state = json.loads((tmp_path / ".opendata-state.json").read_text())
    assert {p: v["finished_at"] for p, v in state["periods"].items()} == stamps
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.csv")} == mtimes
    cat = json.loads((tmp_path / "catalog.jsonld").read_text())
    water = next(d for d in cat["dcat:dataset"] if d["dct:identifier"] == "water-daily")
    assert len([x for x in water["dcat:distribution"] if x["dct:format"] == "text/csv"]) == 3


def test_an_interrupted_export_is_redone_and_never_half_listed(week: Week, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_module.write_atomic
    calls = 0

    def crash_on_third_file(path: Path, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("disk full (injected)")
        real(path, data)

    monkeypatch.setattr(export_module, "write_atomic", crash_on_third_file)
    s = _scheduler(week, tmp_path)
    with pytest.raises(OSError, match="injected"):
        s.run_due()
    assert not (tmp_path / ".opendata-state.json").exists() and not (tmp_path / "catalog.jsonld").exists()
    assert len(list(tmp_path.glob("*.csv"))) == 2, "two files of the first day were written before the crash"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
    monkeypatch.setattr(export_module, "write_atomic", real)
    assert s.run_due() == 3, "the interrupted day is redone, with the two others"
    state = json.loads((tmp_path / ".opendata-state.json").read_text())
    assert len(state["periods"]) == 3


def test_the_schedule_runs_on_its_own_thread_and_retries_after_a_failure(week: Week, tmp_path: Path) -> None:
    cfg = OpenDataConfig(enabled=True, catch_up_days=2)
    now = week.start + 2 * DAY + cfg.at_seconds() + 60
    attempts: list[str] = []

    def reader() -> InfluxReader:
        attempts.append("x")
        if len(attempts) == 1:  # InfluxDB unreachable on the first attempt: nothing listens on port 9
            return InfluxReader(StorageConfig(url="http://127.0.0.1:9", database=week.db), timeout=2)
        return InfluxReader(StorageConfig(database=week.db))

    s = OpenDataScheduler(cfg, tmp_path, week.model, reader, clock=lambda: now, min_retry_s=0.2)
    t0 = time.monotonic()
    s.start()
    assert time.monotonic() - t0 < 1.0, "start() returns at once: the export runs on its own thread"
    try:
        deadline = time.monotonic() + 120
        while s.exported < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        s.stop()
    assert s.exported == 2 and s.failures == 1 and s.last_error is not None
    assert "opendata-reader" in s.last_error


def _run_config(tmp_path: Path, **over: Any) -> Path:
    cfg = {"mode": "test", "data_dir": str(tmp_path / "var"), "log_level": "WARNING",
           "mqtt": {"host": "127.0.0.1", "port": 1883, "client_id": f"opendata-test-{uuid.uuid4().hex[:8]}"},
           **over}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_run_refuses_the_schedule_without_a_city(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from supervisor.cli import main

    cfg = _run_config(tmp_path, storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "s.sqlite3")},
                      opendata={"enabled": True})
    assert main(["run", "--config", str(cfg), "--no-api", "--duration", "0"]) == 2
    assert "opendata.enabled needs the network model" in capsys.readouterr().err


def test_run_exports_the_due_days_in_the_background(week: Week, tmp_path: Path) -> None:
    """``urban-supervisor run`` with ``opendata.enabled``: the days due now are exported while it runs."""
    from supervisor.cli import main

    city = tmp_path / "city.json"
    city.write_text(json.dumps(week.city))
    cfg = _run_config(tmp_path, city=str(city), storage={"url": INFLUX_URL, "database": week.db},
                      opendata={"enabled": True, "at": "00:00", "catch_up_days": 2, "out_dir": str(tmp_path / "od")})
    assert main(["run", "--config", str(cfg), "--no-api", "--duration", "25"]) == 0
    state = json.loads((tmp_path / "od" / ".opendata-state.json").read_text())
    today = int(time.time()) // DAY * DAY
    assert sorted(state["periods"]) == [f"{day(today - 2 * DAY)}_{day(today - DAY)}",
                                        f"{day(today - DAY)}_{day(today)}"]
    assert (tmp_path / "od" / "catalog.jsonld").is_file()
