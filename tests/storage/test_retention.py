"""Retention and downsampling (supervisor/storage/retention.py) on the real InfluxDB 1.6.

Acceptance of issue #15, item 3: a policy change is applied without losing data; provisioning
twice changes nothing (``SHOW RETENTION POLICIES`` / ``SHOW CONTINUOUS QUERIES`` compared, and
the plan says "no change"); the output of a continuous query, run as the server stores it,
equals the same aggregation over the raw data and the values computed here from the known data.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from drivers import catalogue
from supervisor.cli import main as cli_main
from supervisor.config import StorageConfig
from supervisor.storage import BatchWriter, InfluxV1Sink, retention, schema
from supervisor.storage.writer import make_sink
from tests.support.services import Influx

pytestmark = pytest.mark.integration

HOUR = 3600


def _cfg(influx: Influx, db: str, **retention_cfg: Any) -> StorageConfig:
    return StorageConfig(url=influx.url, database=db, retention=retention_cfg)


def _sink(cfg: StorageConfig) -> InfluxV1Sink:
    sink = make_sink(cfg)
    assert isinstance(sink, InfluxV1Sink)
    return sink


def _state(influx: Influx, db: str) -> tuple[list[Any], list[Any]]:
    rps = influx.series(f'SHOW RETENTION POLICIES ON "{db}"', db)
    cqs = [s for s in influx.series("SHOW CONTINUOUS QUERIES", db) if s["name"] == db]
    return rps, cqs


def _durations(influx: Influx, db: str) -> dict[str, tuple[str, bool]]:
    (s,) = influx.series(f'SHOW RETENTION POLICIES ON "{db}"', db)
    cols = s["columns"]
    return {row[0]: (row[cols.index("duration")], row[cols.index("default")]) for row in s["values"]}


def _count(influx: Influx, db: str, rp: str, measurement: str, field: str) -> int:
    v = influx.scalar(f'SELECT count("{field}") FROM "{rp}"."{measurement}"', db)
    return int(v) if v is not None else 0  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- the declaration


def test_rollups_come_from_the_schema() -> None:
    """One fact in one place: every field aggregated is the schema's, with the schema's aggregation."""
    decl = retention.declare(StorageConfig(), "autogen")
    by = {(r.tier, r.measurement): r for r in decl.rollups}
    for m in schema.MEASUREMENTS.values():
        for tier in ("hourly", "daily"):
            if not m.rollup:
                assert (tier, m.name) not in by
                continue
            r = by[tier, m.name]
            assert dict(r.fields) == dict(m.rollup)
            assert r.source == ("personal_raw" if m.personal else "autogen")
    assert schema.FAMILIES["traffic"].rollup["count"] == "sum"
    assert schema.FAMILIES["traffic"].rollup["flow"] == "mean"
    assert schema.FAMILIES["lighting"].rollup["energy"] == "last"
    assert schema.FAMILIES["air"].rollup["eaqi"] == "max"
    assert "alarms" not in schema.FAMILIES["water"].rollup  # strings are not rolled up
    assert schema.FAMILIES["water"].personal and schema.FAMILIES["water"].rollup_tags == ("zone",)


def test_every_explicit_rollup_names_a_catalogue_measure() -> None:
    for family, measure in schema._ROLLUP:
        assert measure in catalogue.family(family).measures, (family, measure)


def test_a_rollup_the_schema_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the schema"):
        schema.Measurement("m", "", ("t",), {"x": float}, rollup={"y": "mean"})
    with pytest.raises(ValueError, match="not an aggregation"):
        schema.Measurement("m", "", ("t",), {"s": str}, rollup={"s": "mean"})
    with pytest.raises(ValueError, match="rollup tags"):
        schema.Measurement("m", "", ("t",), {"x": float}, rollup={"x": "mean"}, rollup_tags=("nope",))


def test_retention_config_is_checked() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        StorageConfig(retention={"raw": "30 days"})
    with pytest.raises(ValueError, match="must not be longer than raw"):
        StorageConfig(retention={"raw": "7d", "personal_raw": "14d"})
    with pytest.raises(ValueError, match="must differ"):
        StorageConfig(retention={"hourly_policy": "daily"})


# ----------------------------------------------------------------------------- provisioning


def test_provisioning_twice_changes_nothing(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    first = retention.provision(sink, cfg)
    assert first is not None and first.changed
    before = _state(influx, influx_db)
    assert {"autogen", "personal_raw", "hourly", "daily"} <= set(_durations(influx, influx_db))
    n_cq = len(before[1][0]["values"])
    assert n_cq == len(retention.declare(cfg, "autogen").rollups)

    second = retention.provision(sink, cfg)
    assert second is not None and not second.changed
    assert second.render().endswith("no change")
    assert _state(influx, influx_db) == before
    sink.close()


def test_durations_and_cq_names_are_the_configured_ones(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db, raw="30d", personal_raw="7d", hourly="730d", daily="3650d")
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    d = _durations(influx, influx_db)
    assert d["autogen"] == ("720h0m0s", True)  # raw: the default policy
    assert d["personal_raw"] == ("168h0m0s", False)
    assert d["hourly"] == ("17520h0m0s", False)
    assert d["daily"] == ("87600h0m0s", False)
    (cqs,) = [s for s in influx.series("SHOW CONTINUOUS QUERIES", influx_db) if s["name"] == influx_db]
    names = sorted(row[0] for row in cqs["values"])
    assert names == sorted(retention.continuous_queries(retention.declare(cfg, "autogen"), influx_db))
    assert all(re.fullmatch(r"us_(hourly|daily)_[a-z_]+_[0-9a-f]{8}", n) for n in names)
    sink.close()


def test_a_policy_change_is_applied_without_losing_data(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    now = int(time.time())
    raw = [f"traffic,device=tr-{d},zone=north flow={100 + d}.0 {(now - i * 600) * 1000}"
           for d in range(3) for i in range(50)]  # 150 points over the last ~8 hours
    water = [f"water,device=wm-{d},zone=north flow=0.5 {(now - i * 900) * 1000}" for d in range(4) for i in range(40)]
    sink.write("\n".join(raw + water).encode(), len(raw) + len(water))
    assert _count(influx, influx_db, "autogen", "traffic", "flow") == 150
    assert _count(influx, influx_db, "personal_raw", "water", "flow") == 160
    retention.backfill_v1(sink, cfg, now - 10 * HOUR, now)
    hourly_before = _count(influx, influx_db, "hourly", "traffic", "flow")
    assert hourly_before > 0

    for changed in ({"raw": "60d", "personal_raw": "21d", "hourly": "1000d"},  # longer
                    {"raw": "1d", "personal_raw": "1d", "hourly": "400d", "daily": "2000d"}):  # shorter, data inside
        cfg2 = _cfg(influx, influx_db, **changed)
        plan = retention.plan_v1(sink, cfg2)
        stmts = [a.statement for a in plan.actions]
        assert stmts and all(s.startswith("ALTER RETENTION POLICY") for s in stmts), stmts
        retention.apply(sink, plan)
        assert not retention.plan_v1(sink, cfg2).changed
        assert _durations(influx, influx_db)["autogen"][0] == f"{int(changed['raw'][:-1]) * 24}h0m0s"
        assert _count(influx, influx_db, "autogen", "traffic", "flow") == 150
        assert _count(influx, influx_db, "personal_raw", "water", "flow") == 160
        assert _count(influx, influx_db, "hourly", "traffic", "flow") == hourly_before
    # a 1-day policy needs shards shorter than the 7 days autogen was created with: altered with it
    (s,) = influx.series(f'SHOW RETENTION POLICIES ON "{influx_db}"', influx_db)
    shard = {row[0]: row[s["columns"].index("shardGroupDuration")] for row in s["values"]}
    assert shard["autogen"] == "1h0m0s"
    sink.close()


def test_a_changed_continuous_query_is_dropped_and_recreated(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    old = retention.continuous_queries(retention.declare(cfg, "autogen"), influx_db)
    traffic = schema.FAMILIES["traffic"]
    changed = schema.Measurement(traffic.name, traffic.doc, traffic.tags, traffic.fields,
                                 optional=traffic.optional, open_fields=True,
                                 rollup={**traffic.rollup, "flow": "max"})
    measurements = [changed if m.name == "traffic" else m for m in schema.MEASUREMENTS.values()]
    original = retention.declare
    try:
        retention.declare = lambda c, raw, ms=None, **kw: original(c, raw, measurements, **kw)  # type: ignore[assignment]
        plan = retention.plan_v1(sink, cfg)
        texts = [a.text for a in plan.actions]
        dropped = [t for t in texts if t.startswith("drop continuous query us_hourly_traffic_")]
        created = [t for t in texts if t.startswith("create continuous query us_hourly_traffic_")]
        assert len(dropped) == 1 and len(created) == 1 and len(texts) == 4  # hourly and daily traffic
        retention.apply(sink, plan)
        assert not retention.plan_v1(sink, cfg).changed
        (cqs,) = [s for s in influx.series("SHOW CONTINUOUS QUERIES", influx_db) if s["name"] == influx_db]
        stored = {row[0]: row[1] for row in cqs["values"]}
        (name,) = [n for n in stored if n.startswith("us_hourly_traffic_")]
        assert name not in old and "max(flow) AS flow" in stored[name]
    finally:
        retention.declare = original  # type: ignore[assignment]
    sink.close()


# ----------------------------------------------------------------------------- the aggregates


def _known_city(start: int) -> list[str]:
    """Three whole hours from ``start``: two traffic detectors, one lighting cabinet, three water meters.

    Values are multiples of 1/4 so that means and sums are exact in binary floating point."""
    lines: list[str] = []
    for i in range(36):  # every 5 minutes
        ts = (start + i * 300) * 1000
        h = i // 12
        lines.append(f"traffic,device=tr-1,zone=north flow={100 + 4 * h + (i % 4)}.0,count={i % 5}i,speed=50.0 {ts}")
        lines.append(f"traffic,device=tr-2,zone=south flow=20{i % 2}.0,count=2i,speed={40 + h}.0 {ts}")
        lines.append(f"lighting,device=cab-1,zone=north power={1000 + 10 * i}.0,energy={500 + 0.25 * i},"
                     f"lamp_failures={i % 3}i,lamps=24i,on=true {ts}")
        for m in range(3):
            lines.append(f"water,device=wm-{m},zone=north flow={0.25 * (m + 1)},max_flow={m + i % 2}.0 {ts}")
    return lines


def _stored_cq_select(influx: Influx, db: str, prefix: str, where: str) -> str:
    """The SELECT of a continuous query as the server stores it, restricted to ``where``."""
    (cqs,) = [s for s in influx.series("SHOW CONTINUOUS QUERIES", db) if s["name"] == db]
    (text,) = [row[1] for row in cqs["values"] if row[0].startswith(prefix)]
    m = re.search(r" BEGIN (SELECT .*) END$", text)
    assert m, text
    return m.group(1).replace(" GROUP BY ", f" WHERE {where} GROUP BY ", 1)


def _rows(influx: Influx, db: str, q: str) -> dict[tuple[str, ...], list[list[Any]]]:
    return {tuple(sorted((s.get("tags") or {}).items())): s["values"] for s in influx.series(q, db)}  # type: ignore[misc]


def test_continuous_query_output_equals_the_raw_aggregation(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    start = (int(time.time()) // HOUR - 5) * HOUR  # three whole hours, ending two hours ago
    lines = _known_city(start)
    sink.write("\n".join(lines).encode(), len(lines))
    where = f"time >= {start}s AND time < {start + 3 * HOUR}s"
    # run each continuous query exactly as the server stores it (what it does at the end of each hour)
    for prefix in ("us_hourly_traffic_", "us_hourly_lighting_", "us_hourly_water_", "us_daily_traffic_"):
        influx.query(_stored_cq_select(influx, influx_db, prefix, where), influx_db)

    got = _rows(influx, influx_db, f'SELECT "flow", "count", "speed" FROM "hourly"."traffic" WHERE {where} '
                                   'GROUP BY *')
    want = _rows(influx, influx_db, 'SELECT mean("flow") AS "flow", sum("count") AS "count", mean("speed") AS "speed" '
                                    f'FROM "autogen"."traffic" WHERE {where} GROUP BY time(1h), *')
    assert got == want
    tr1 = got[(("device", "tr-1"), ("zone", "north"))]
    # by hand: hour h has flows 100+4h + (0,1,2,3) x3 -> mean 101.5+4h; counts i%5 over i in the hour
    assert [row[1] for row in tr1] == [101.5, 105.5, 109.5]
    assert [row[2] for row in tr1] == [sum(i % 5 for i in range(12 * h, 12 * h + 12)) for h in range(3)]
    assert [row[0] for row in tr1] == [(start + h * HOUR) * 1000 for h in range(3)]  # stamped at the hour's start

    light = _rows(influx, influx_db, f'SELECT "power", "energy", "lamp_failures", "lamps", "on" '
                                     f'FROM "hourly"."lighting" WHERE {where} GROUP BY *')
    (cab,) = light.values()
    assert [r[1:] for r in cab] == [[1000 + 10 * (12 * h + 5.5), 500 + 0.25 * (12 * h + 11), 2, 24, True]
                                    for h in range(3)]

    # water: aggregated per zone only, never per meter (docs/data-protection.md)
    water = _rows(influx, influx_db, f'SELECT "flow", "max_flow" FROM "hourly"."water" WHERE {where} GROUP BY *')
    key = (("device", ""), ("zone", "north"))  # GROUP BY * names the database's tag keys: device is empty
    assert list(water) == [key]
    assert [r[1:] for r in water[key]] == [[0.5, 3.0]] * 3
    assert influx.series(f'SELECT "flow" FROM "hourly"."water" WHERE {where} AND "device" =~ /./', influx_db) == []

    day = _rows(influx, influx_db, f'SELECT "count" FROM "daily"."traffic" WHERE time >= {start // 86400 * 86400}s '
                                   f'AND time < {start + 3 * HOUR}s GROUP BY "device"')  # stamped at the day's start
    assert sum(r[1] for r in day[(("device", "tr-1"),)]) == sum(i % 5 for i in range(36))
    sink.close()


def test_backfill_runs_the_same_aggregation(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    start = (int(time.time()) // HOUR - 5) * HOUR
    lines = _known_city(start)
    sink.write("\n".join(lines).encode(), len(lines))
    written = retention.backfill_v1(sink, cfg, start, start + 3 * HOUR, tiers=("hourly",))
    assert written == 3 * (2 + 1 + 1)  # hours x (traffic devices + cabinet + water zone)
    where = f"time >= {start}s AND time < {start + 3 * HOUR}s"
    got = _rows(influx, influx_db, f'SELECT "flow" FROM "hourly"."traffic" WHERE {where} GROUP BY *')
    want = _rows(influx, influx_db, f'SELECT mean("flow") AS "flow" FROM "autogen"."traffic" WHERE {where} '
                                    'GROUP BY time(1h), *')
    assert got == want
    again = retention.backfill_v1(sink, cfg, start, start + 3 * HOUR, tiers=("hourly",))
    assert again == written  # the same points overwritten, nothing added
    assert _count(influx, influx_db, "hourly", "traffic", "flow") == 6
    sink.close()


# ----------------------------------------------------------------------------- the writer


def test_household_water_goes_to_its_own_policy(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    retention.provision(sink, cfg)
    writer = BatchWriter(sink, flush_interval=0.05)
    writer.start()
    now = time.time()
    writer.submit([schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0}, now),
                   schema.FAMILIES["traffic"].line({"device": "tr-1", "zone": "n"}, {"flow": 1.0}, now),
                   b"water,device=wm-2,zone=n flow=\"text\" " + str(int(now * 1000)).encode(),  # wrong type
                   schema.FAMILIES["water"].line({"device": "wm-2", "zone": "n"}, {"flow": 2.0}, now)])
    writer.flush(timeout=10)
    writer.stop(timeout=10)
    assert _count(influx, influx_db, "personal_raw", "water", "flow") == 2
    assert _count(influx, influx_db, "autogen", "water", "flow") == 0
    assert _count(influx, influx_db, "autogen", "traffic", "flow") == 1
    stats = writer.stats()
    assert stats.dead_letters == 1 and stats.points_written == 3


def test_without_retention_water_stays_in_the_default_policy(influx: Influx, influx_db: str) -> None:
    cfg = _cfg(influx, influx_db, enabled=False)
    sink = _sink(cfg)
    assert retention.provision(sink, cfg) is None
    now = time.time()
    line = schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0}, now)
    sink.write(line, 1)
    assert _count(influx, influx_db, "autogen", "water", "flow") == 1
    assert set(_durations(influx, influx_db)) == {"autogen"}
    sink.close()


# ----------------------------------------------------------------------------- the command


def test_cli_provision_dry_run_then_apply_then_no_change(influx: Influx, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = f"urban_test_ret_{int(time.time() * 1000) % 10**9}"
    monkeypatch.setenv("URBAN_MODE", "test")
    monkeypatch.setenv("URBAN_STORAGE__URL", influx.url)
    monkeypatch.setenv("URBAN_STORAGE__DATABASE", db)
    try:
        assert cli_main(["storage", "provision", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"create database {db}" in out and "dry run: nothing changed" in out
        assert db not in [r[0] for s in influx.series("SHOW DATABASES", "_internal") for r in s["values"]]
        assert cli_main(["storage", "provision"]) == 0
        assert "applied 23 change(s)" in capsys.readouterr().out
        assert cli_main(["storage", "provision"]) == 0
        assert capsys.readouterr().out.rstrip().endswith("no change")
        monkeypatch.setenv("URBAN_STORAGE__RETENTION__PERSONAL_RAW", "7d")
        assert cli_main(["storage", "provision", "--dry-run"]) == 0
        assert "alter retention policy personal_raw (raw points of personal data (household water meters)): " \
               "14d -> 7d" in capsys.readouterr().out
        assert cli_main(["storage", "backfill", "--from", "2h"]) == 0
        assert "aggregate point(s) written" in capsys.readouterr().out
    finally:
        influx.drop(db)


def test_the_data_protection_doc_lists_the_aggregates_of_the_schema() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "data-protection.md").read_text(encoding="utf-8")
    assert retention.markdown_table() in doc


# ----------------------------------------------------------------------------- the supervisor at start


def _supervisor(broker: Any, influx: Influx, db: str, tmp_path: Any, clock: Any = None) -> Any:
    from supervisor.config import load_settings
    from supervisor.runtime import Supervisor

    settings = load_settings(None, mode="test", data_dir=str(tmp_path),
                             mqtt={"host": broker.host, "port": broker.port, "client_id": f"ret-{db}"},
                             storage={"backend": "influx-v1", "url": influx.url, "database": db},
                             api={"enabled": False})
    return Supervisor(settings, clock=clock) if clock is not None else Supervisor(settings)


def test_the_supervisor_provisions_at_start_and_routes_water(broker: Any, influx: Influx, influx_db: str,
                                                             tmp_path: Any) -> None:
    sup = _supervisor(broker, influx, influx_db, tmp_path)
    assert sup.retention_active
    sup.start()
    try:
        sup.writer.submit([schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0},
                                                         time.time())])
        assert sup.writer.flush(10)
    finally:
        sup.stop()
    assert _durations(influx, influx_db)["autogen"] == ("720h0m0s", True)
    assert _count(influx, influx_db, "personal_raw", "water", "flow") == 1
    cfg = _cfg(influx, influx_db)
    sink = _sink(cfg)
    assert not retention.plan_v1(sink, cfg).changed  # what the start did is the declaration
    sink.close()
    before = _state(influx, influx_db)
    second = _supervisor(broker, influx, influx_db, tmp_path / "2")
    second.start()
    second.stop()
    assert _state(influx, influx_db) == before


def test_a_supervisor_rehearsing_the_past_leaves_retention_alone(broker: Any, influx: Influx, influx_db: str,
                                                                 tmp_path: Any) -> None:
    past = time.time() - 400 * 86400
    sup = _supervisor(broker, influx, influx_db, tmp_path, clock=lambda: past)
    assert not sup.retention_active
    sup.start()
    try:
        sup.writer.submit([schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0}, past)])
        assert sup.writer.flush(10)
    finally:
        sup.stop()
    assert set(_durations(influx, influx_db)) == {"autogen"}
    assert _durations(influx, influx_db)["autogen"] == ("0s", True)
    assert _count(influx, influx_db, "autogen", "water", "flow") == 1


def test_a_write_only_user_starts_with_water_in_the_default_policy(broker: Any, tmp_path: Any) -> None:
    """The compose deployment's writer may not create policies: the start goes on, water stays in
    the default policy, and an administrator's ``storage provision`` plus ``at_start: skip`` fix it."""
    import base64
    import json
    import subprocess
    import urllib.parse
    import urllib.request

    from supervisor.bench.reliability import InfluxProc
    from supervisor.config import load_settings
    from supervisor.runtime import Supervisor

    proc = InfluxProc(tmp_path / "influxd")
    proc.start()  # no auth yet: create the users, then restart with auth
    url = proc.url

    def q(stmt: str, user: str | None = None) -> Any:
        req = urllib.request.Request(url + "/query", data=urllib.parse.urlencode({"q": stmt, "db": "urban"}).encode())
        if user:
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:pw-{user}-1234".encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def count(source: str) -> int:
        series = q(f'SELECT count("flow") FROM {source}', "admin")["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0

    try:
        for stmt in ("CREATE USER admin WITH PASSWORD 'pw-admin-1234' WITH ALL PRIVILEGES", "CREATE DATABASE urban",
                     "CREATE USER writer WITH PASSWORD 'pw-writer-1234'", 'GRANT WRITE ON "urban" TO "writer"'):
            q(stmt)
        proc.stop()
        proc.conf.write_text(proc.conf.read_text().replace("auth-enabled = false", "auth-enabled = true"))
        proc.proc = subprocess.Popen(["influxd", "-config", str(proc.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Influx(url).ping():
            time.sleep(0.2)

        def supervisor(sub: str, **retention_cfg: Any) -> Any:
            settings = load_settings(None, mode="test", data_dir=str(tmp_path / sub),
                                     mqtt={"host": broker.host, "port": broker.port, "client_id": f"ret-wo-{sub}"},
                                     storage={"backend": "influx-v1", "url": url, "database": "urban",
                                              "username": "writer", "password": "pw-writer-1234",
                                              "create_database": False, "retention": retention_cfg},
                                     api={"enabled": False})
            return Supervisor(settings)

        def write_water(sup: Any) -> None:
            sup.start()
            try:
                sup.writer.submit([schema.FAMILIES["water"].line({"device": "wm-1", "zone": "n"}, {"flow": 1.0},
                                                                 time.time())])
                assert sup.writer.flush(10)
                assert sup.writer.stats().dead_letters == 0 and sup.writer.stats().spool_records == 0
            finally:
                sup.stop()

        write_water(supervisor("a"))  # refused provisioning: started anyway, water in the default policy
        assert count('"autogen"."water"') == 1
        admin = StorageConfig(url=url, database="urban", username="admin", password="pw-admin-1234")  # type: ignore[arg-type]
        sink = _sink(admin)
        assert retention.provision(sink, admin) is not None
        sink.close()
        write_water(supervisor("b", at_start="skip"))  # provisioned by the admin: water in its own policy
        assert count('"personal_raw"."water"') == 1 and count('"autogen"."water"') == 1
    finally:
        proc.stop()
