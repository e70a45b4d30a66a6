"""Acceptance of the open-data export (issue 15): a simulated week in the real InfluxDB, exported by
the CLI; every file validated with frictionless, no cell under k meters, no meter id anywhere."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from frictionless import Resource, Schema

from supervisor.opendata import DATASETS, OpenDataConfig
from supervisor.opendata.datasets import DAY, HOUR, day, iso
from tests.opendata.conftest import DAYS, KEPT, K, Week
from tests.support.services import Influx


def rows(out: Path, dataset: str) -> list[dict[str, str]]:
    (path,) = out.glob(f"{dataset}_*.csv")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def validate(out: Path, csv_name: str, schema_name: str) -> Any:
    schema = Schema.from_descriptor(json.loads((out / schema_name).read_text()))
    return Resource(path=csv_name, schema=schema, basepath=str(out)).validate()


def test_every_csv_passes_frictionless_validation_against_its_table_schema(exported: Path) -> None:
    for name in DATASETS:
        (path,) = exported.glob(f"{name}_*.csv")
        report = validate(exported, path.name, f"{name}.schema.json")
        errors = [e.message for t in report.tasks for e in t.errors]
        assert report.valid, f"{path.name}: {errors[:5]}"
        assert rows(exported, name), f"{path.name} has no rows: the validation proved nothing"


def test_the_water_schema_itself_refuses_a_cell_of_fewer_than_k_meters(exported: Path, tmp_path: Path) -> None:
    schema = json.loads((exported / "water-daily.schema.json").read_text())
    meters = next(f for f in schema["fields"] if f["name"] == "meters")
    assert meters["constraints"]["minimum"] == K
    (path,) = exported.glob("water-daily_*.csv")
    lines = path.read_text().splitlines()
    zone, name, date, volume, _, *rest = next(ln for ln in lines[1:] if ",false," in ln).split(",")
    lines.append(",".join([zone, name, date, volume, str(K - 1), *rest]).replace(date, "2000-01-01"))
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.json").write_text(json.dumps(schema))
    report = validate(tmp_path, "w.csv", "s.json")
    assert not report.valid and {e.type for t in report.tasks for e in t.errors} == {"constraint-error"}


def test_validation_can_fail(exported: Path, tmp_path: Path) -> None:
    """The check above is not vacuous: a count that is not a number, a missing required id, a bad date fail."""
    (path,) = exported.glob("traffic-hourly_*.csv")
    lines = path.read_text().splitlines()
    lines[1] = ",".join(["", "Rue", "yesterday", lines[1].split(",")[3], "many", "", "1"])
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.json").write_text((exported / "traffic-hourly.schema.json").read_text())
    report = validate(tmp_path, "bad.csv", "s.json")
    kinds = {e.type for t in report.tasks for e in t.errors}
    assert not report.valid and {"constraint-error", "type-error"} <= kinds


def test_csv_format_utf8_iso_dates_dot_decimals(exported: Path) -> None:
    for name in DATASETS:
        (path,) = exported.glob(f"{name}_*.csv")
        text = path.read_bytes().decode("utf-8")  # strict: raises on anything but UTF-8
        assert ";" not in text.splitlines()[0]
        for r in rows(exported, name)[:50]:
            for key, value in r.items():
                if key in {"start_datetime", "end_datetime"}:
                    assert value.endswith("Z") and value[10] == "T", value
                if key == "date":
                    assert len(value) == 10 and value[4] == value[7] == "-", value
                if key.endswith(("_kwh", "_m3", "_kmh", "_ugm3")) and value:
                    float(value)
                    assert "," not in value


def test_no_water_cell_aggregates_fewer_than_k_meters_and_suppressions_are_recorded(exported: Path,
                                                                                   week: Week) -> None:
    water = rows(exported, "water-daily")
    assert len(water) == DAYS * len(week.model.zones), "one row per district and day, suppressed or not"
    suppressed = {(r["zone_id"], r["date"]) for r in water if r["suppressed"] == "true"}
    for r in water:
        if r["suppressed"] == "false":
            assert int(r["meters"]) >= K and r["volume_m3"] != "" and r["suppression_reason"] == ""
        else:
            assert r["meters"] == "" and r["volume_m3"] == "" and f"{K}" in r["suppression_reason"]
    lo, _ = week.silent_days
    assert suppressed == {("z02", day(lo)), ("z02", day(lo + DAY))}, \
        f"the days z02 heard only {KEPT} meters are the suppressed ones"


def test_no_household_meter_id_appears_anywhere_in_the_output(exported: Path, week: Week) -> None:
    assert week.meters
    files = [p for p in exported.rglob("*") if p.is_file()]
    assert len(files) >= 12
    blobs = {p.name: p.read_bytes() for p in files}
    for meter in week.meters:
        for name, data in blobs.items():
            assert meter.encode() not in data, f"meter {meter} found in {name}"


def test_the_inventory_has_positions_and_no_network_identifiers(exported: Path, week: Week) -> None:
    city = week.city
    secrets = {p["id"] for s in city["switches"] for p in s["ports"]} | {s["id"] for s in city["switches"]}
    secrets |= {s["id"] for s in city["sites"] if s["kind"] in {"radio_gateway", "core", "street_cabinet"}}
    secrets |= {s["subnet"] for s in city["services"]} | {f["id"] for f in city["feeders"]}
    text = b"".join(p.read_bytes() for p in exported.iterdir() if p.suffix in {".geojson", ".csv", ".jsonld"})
    for ident in secrets:
        assert ident.encode() not in text, f"{ident} published"
    lamps = json.loads((exported / "lamps.geojson").read_text())
    n_lamps = sum(1 for d in city["devices"] if d["kind"] == "lamp")
    assert len(lamps["features"]) == n_lamps
    f = lamps["features"][0]
    assert f["geometry"]["type"] == "Point" and set(f["properties"]) == {"id", "cabinet_id", "street_id", "zone_id"}
    cabinets = json.loads((exported / "cabinets.geojson").read_text())
    assert sum(c["properties"]["lamps"] for c in cabinets["features"]) == n_lamps


def test_traffic_counts_match_the_raw_points(exported: Path, week: Week, influx: Influx) -> None:
    row = next(r for r in rows(exported, "traffic-hourly") if r["start_datetime"] == iso(week.start + 9 * HOUR))
    sensors = [d.id for d in week.model.devices.values() if d.street == row["street_id"] and d.family == "traffic"]
    total, n = 0.0, 0
    for dev in sensors:
        pts = influx.series(f"SELECT \"flow\" FROM \"traffic\" WHERE \"device\" = '{dev}' AND time >= "
                            f"{week.start + 9 * HOUR}s AND time < {week.start + 10 * HOUR}s", week.db)
        flows = [v[1] for s in pts for v in s["values"]]  # type: ignore[union-attr]
        if flows:
            total += sum(flows) / len(flows)
            n += 1
    assert int(row["sensors"]) == n and float(row["count"]) == pytest.approx(total, abs=0.1)


def test_water_volume_matches_the_raw_meter_indexes(exported: Path, week: Week, influx: Influx) -> None:
    d0 = week.start
    row = next(r for r in rows(exported, "water-daily") if r["zone_id"] == "z01" and r["date"] == day(d0))
    series = influx.series(f"SELECT \"index\" FROM \"water\" WHERE \"zone\" = 'z01' AND time >= {d0 - DAY}s "
                           f"AND time < {d0 + DAY}s GROUP BY \"device\"", week.db)
    volume, meters = 0.0, 0
    for s in series:
        pts = [(t / 1000, v) for t, v in s["values"]]  # type: ignore[union-attr]
        steps = [max(0.0, b[1] - a[1]) for a, b in itertools.pairwise(pts) if b[0] >= d0]
        if steps:
            volume += sum(steps)
            meters += 1
    assert int(row["meters"]) == meters and float(row["volume_m3"]) == pytest.approx(volume, abs=0.002)


def test_lighting_savings_against_the_full_power_baseline(exported: Path) -> None:
    cfg = OpenDataConfig()
    light = rows(exported, "lighting-daily")
    assert light
    for r in light:
        full = int(r["lamps"]) * cfg.lamp_rated_w * float(r["hours_lit"]) / 1000  # no failed lamp in this city
        assert float(r["full_power_kwh"]) == pytest.approx(full, rel=0.01)
        assert float(r["savings_kwh"]) == pytest.approx(float(r["full_power_kwh"]) - float(r["energy_kwh"]), abs=0.002)
    # lamps at 70 % at night: a real saving, under the 30 % it would be were they dimmed all night
    assert all(0 < float(r["savings_pct"]) <= 30.5 for r in light if float(r["hours_lit"]) > 1)


def test_the_catalogue_is_dcat_ap_with_sizes_checksums_licence_and_coverage(exported: Path, week: Week) -> None:
    cat = json.loads((exported / "catalog.jsonld").read_text())
    assert cat["@type"] == "dcat:Catalog" and "dcat" in cat["@context"]
    assert cat["dct:license"]["@id"] == "https://spdx.org/licenses/etalab-2.0.html"
    by_id = {d["dct:identifier"]: d for d in cat["dcat:dataset"]}
    assert set(DATASETS) | {"lamps", "cabinets", "streets", "districts"} <= set(by_id)
    for name in DATASETS:
        d = by_id[name]
        assert d["dct:temporal"]["dcat:startDate"]["@value"] == iso(week.start)
        assert d["dct:temporal"]["dcat:endDate"]["@value"] == iso(week.end)
        assert d["dct:spatial"]["dcat:bbox"]["@value"].startswith("POLYGON((")
        assert d["dct:accrualPeriodicity"]["@id"].endswith(("DAILY", "IRREG"))
    for d in cat["dcat:dataset"]:
        for dist in d["dcat:distribution"]:
            data = (exported / dist["dcat:downloadURL"]["@id"]).read_bytes()
            assert int(dist["dcat:byteSize"]["@value"]) == len(data)
            assert dist["spdx:checksum"]["spdx:checksumValue"] == hashlib.sha256(data).hexdigest()
            assert dist["dcat:mediaType"]["@id"].startswith("https://www.iana.org/assignments/media-types/")
    traffic = by_id["traffic-hourly"]
    assert any("comptage-mobilites" in c["@id"] for c in traffic["dct:conformsTo"])


def test_exporting_the_same_period_again_gives_the_same_files(exported: Path, week: Week, tmp_path: Path) -> None:
    from supervisor.config import StorageConfig
    from supervisor.opendata import OpenDataExport, Period
    from supervisor.opendata.source import InfluxReader

    reader = InfluxReader(StorageConfig(database=week.db))
    try:
        result = OpenDataExport(tmp_path, OpenDataConfig(), week.model).run(reader, Period(week.start, week.end))
    finally:
        reader.close()
    first = json.loads((exported / ".opendata-state.json").read_text())
    (period,) = first["periods"].values()
    assert {f["name"]: f["sha256"] for f in result["files"]} == {f["name"]: f["sha256"] for f in period["files"]}


def test_bad_periods_and_configurations_are_refused_with_exit_2(tmp_path: Path, capsys: Any) -> None:
    from supervisor.cli import main

    city = tmp_path / "c.json"
    city.write_text("{}")
    assert main(["export", "opendata", "--from", "2026-11-08", "--to", "2026-11-01", "--out", str(tmp_path),
                 "--city", str(city)]) == 2
    assert "--to 2026-11-01 must be after --from" in capsys.readouterr().err
    assert main(["export", "opendata", "--from", "1 Nov", "--to", "2026-11-08", "--out", str(tmp_path),
                 "--city", str(city)]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["export", "opendata", "--from", "2026-11-01", "--to", "2026-11-08", "--k", "1",
                 "--out", str(tmp_path), "--city", str(city)]) == 2
    assert "--k must be at least 2" in capsys.readouterr().err


def test_an_unreachable_influxdb_exits_1_and_records_nothing(week: Week, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from supervisor.cli import main

    city = tmp_path / "city.json"
    city.write_text(json.dumps(week.city))
    monkeypatch.setenv("URBAN_MODE", "test")
    monkeypatch.setenv("URBAN_STORAGE__URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    out = tmp_path / "out"
    assert main(["export", "opendata", "--from", day(week.start), "--to", day(week.start + DAY), "--out", str(out),
                 "--city", str(city)]) == 1
    assert "opendata-reader" in capsys.readouterr().err
    assert not (out / ".opendata-state.json").exists() and not list(out.glob("*.csv"))


def test_household_water_is_read_from_its_own_retention_policy(exported: Path, week: Week, influx: Influx,
                                                                 tmp_path: Path) -> None:
    """Once retention is provisioned the supervisor writes household water to ``personal_raw``
    (docs/data-protection.md): the export reads it there and gives the same water cells."""
    import os
    from unittest import mock

    from supervisor.cli import main
    from supervisor.config import StorageConfig
    from supervisor.storage import InfluxV1Sink
    from supervisor.storage.retention import apply, plan_v1, raw_from
    from tests.support.services import INFLUX_URL

    db = influx.create()
    try:
        cfg = StorageConfig(url=INFLUX_URL, database=db)
        sink = InfluxV1Sink(INFLUX_URL, db, create_database=False)
        apply(sink, plan_v1(sink, cfg))
        own = raw_from(cfg, "water")
        assert own != '"water"', "water should live in its own policy once retention is on"
        influx.query(f'SELECT * INTO "{db}".{own} FROM "{week.db}".."water" GROUP BY *', db)
        assert not influx.series('SELECT count("index") FROM "water"', db), "the copy went to the default policy"
        city_file = tmp_path / "city.json"
        city_file.write_text(json.dumps(week.city))
        out = tmp_path / "out"
        env = {"URBAN_MODE": "test", "URBAN_STORAGE__URL": INFLUX_URL, "URBAN_STORAGE__DATABASE": db}
        with mock.patch.dict(os.environ, env):
            assert main(["export", "opendata", "--from", day(week.start), "--to", day(week.end), "--out", str(out),
                         "--city", str(city_file)]) == 0
        assert rows(out, "water-daily") == rows(exported, "water-daily")
        assert any(r["volume_m3"] for r in rows(out, "water-daily"))
    finally:
        influx.drop(db)
