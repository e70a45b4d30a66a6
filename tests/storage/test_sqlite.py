"""SQLite sink: the embedded store of the demo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from drivers import Event, Reading
from supervisor.storage import PartialWriteError, SqliteSink, event_line, point_line, reading_line

TS = 1_764_115_200_000


def test_write_count_select(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.sqlite3")
    sink.ensure_ready()
    lines = [reading_line(Reading(f"d{i % 2}", "lighting", {"power": float(i), "on": i % 3 == 0, "lamps": i},
                                  zone="z", channel="1"), TS + i) for i in range(10)]
    lines.append(event_line(Event("cam", "cctv", "motion", zone="z", data={"score": 0.5}), TS))
    lines.append(point_line("fleet", {"family": "lighting", "zone": "z"}, {"total": 2, "ok": 2}, TS))
    sink.write(b"\n".join(lines), len(lines))
    assert sink.query_counts() == {"lighting": 10, "events": 1, "fleet": 1}
    assert sink.count("lighting") == 10 and sink.count("nothing") == 0
    pts = sink.select("lighting", "power", device="d1", since=TS + 5)
    assert [(p.ts_ms, p.value) for p in pts] == [(TS + 5, 5.0), (TS + 7, 7.0), (TS + 9, 9.0)]
    assert pts[0].tags == {"channel": "1", "device": "d1", "zone": "z"}
    assert [p.value for p in sink.select("lighting", "on", device="d0")] == [1, 0, 0, 1, 0]
    ev = sink.select("events", "data")
    assert ev[0].value == '{"score":0.5}' and ev[0].tags["kind"] == "motion"
    sink.close()


def test_rewrite_overwrites_like_influxdb(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.sqlite3")
    line = reading_line(Reading("d", "traffic", {"flow": 1.0}), TS)
    sink.write(line, 1)
    sink.write(line, 1)
    sink.write(reading_line(Reading("d", "traffic", {"flow": 2.0}), TS), 1)
    assert sink.count("traffic") == 1
    assert [p.value for p in sink.select("traffic", "flow")] == [2.0]
    sink.close()


def test_bad_line_is_refused_alone(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "s.sqlite3")
    good = [reading_line(Reading("d", "traffic", {"flow": float(i)}), TS + i) for i in range(3)]
    with pytest.raises(PartialWriteError) as info:
        sink.write(b"\n".join([good[0], b"garbage without fields", good[1], b"m v=1i", good[2]]), 5)
    assert info.value.rejected == [b"garbage without fields", b"m v=1i"]
    assert info.value.written == 3
    assert sink.count("traffic") == 3
    sink.close()


def test_wal_mode_and_concurrent_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    sink = SqliteSink(path)
    sink.write(reading_line(Reading("d", "traffic", {"flow": 1.0}), TS), 1)
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 1
    sink.close()
