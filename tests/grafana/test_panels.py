"""Every panel, annotation and variable of every board, run against the real InfluxDB.

The data come from the ``grafana_db`` fixture (tests/grafana/conftest.py). Each target's
InfluxQL is expanded as Grafana does ($timeFilter, $__interval, template variables) and run
twice: with every variable on "All" (it must return data, with exactly the named columns) and
with a real value of each variable taken from the variable's own query (it must run, and what
it returns must have the same columns). Then the values the simulation fixes are checked.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from drivers import catalogue
from tests.grafana.boards import Json, expand, iter_targets, load_boards, outer_columns, variable_values
from tests.grafana.conftest import GrafanaData
from tests.support.services import Influx

pytestmark = pytest.mark.integration

BOARDS = load_boards()
TARGET_IDS = [(name, p["title"], t["refId"]) for name, b in BOARDS.items() for p, t in iter_targets(b)]


def _board_target(name: str, title: str, ref: str) -> tuple[Json, Json, Json]:
    board = BOARDS[name]
    for p, t in iter_targets(board):
        if p["title"] == title and t["refId"] == ref:
            return board, p, t
    raise AssertionError(f"{name}: no panel {title!r} target {ref}")


def run(influx: Influx, data: GrafanaData, board: Json, panel: Json, query: str, *,
        chosen: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    chosen = dict(chosen or {})
    # the rated lamp power is a property of the simulated city when it says so
    if "lamp_rated_w" in data.facts:
        chosen.setdefault("lamp_w", repr(float(data.facts["lamp_rated_w"])))
    q = expand(query, variable_values(board, chosen), data.start_ms, data.end_ms,
               min_interval=panel.get("interval"))
    return influx.series(q, data.db)


def has_values(series: list[dict[str, Any]]) -> bool:
    return any(v is not None for s in series for row in s.get("values", []) for v in row[1:])


def _build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build_panels",
                                                  Path(__file__).resolve().parents[2] / "grafana" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build()


def fact(data: GrafanaData, key: str) -> Any:
    if key not in data.facts:
        pytest.skip(f"the data producer does not fix the fact {key!r}")
    return data.facts[key]


def var_query(influx: Influx, data: GrafanaData, board: Json, var: Json, chosen: dict[str, str | None]) -> list[str]:
    q = expand(var["query"], variable_values(board, chosen), data.start_ms, data.end_ms)
    return [row[1] for s in influx.series(q, data.db) for row in s["values"]]


def real_values(influx: Influx, data: GrafanaData, board: Json) -> dict[str, str | None]:
    """One real value per query variable, each chosen under the values chosen before it."""
    chosen: dict[str, str | None] = {}
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            values = var_query(influx, data, board, var, chosen)
            assert values, f"{board['uid']}: variable {var['name']} has no value"
            chosen[var["name"]] = sorted(values)[0]
    return chosen


@pytest.mark.parametrize(("name", "title", "ref"), TARGET_IDS, ids=[f"{n}:{t}:{r}" for n, t, r in TARGET_IDS])
def test_panel_query_returns_named_columns(influx: Influx, grafana_db: GrafanaData, name: str, title: str,
                                           ref: str) -> None:
    board, panel, target = _board_target(name, title, ref)
    assert target["rawQuery"] is True
    columns = ["time", *outer_columns(target["query"])]

    series = run(influx, grafana_db, board, panel, target["query"])
    if title in grafana_db.not_fed and not has_values(series):
        pytest.skip(f"{grafana_db.source} data cannot feed {title!r}: {grafana_db.not_fed[title]}")
    assert series, f"no data for {title!r} with every variable on All"
    assert has_values(series), f"only nulls for {title!r}"
    for s in series:
        assert s["columns"] == columns

    specific = real_values(influx, grafana_db, board)
    for s in run(influx, grafana_db, board, panel, target["query"], chosen=specific):
        assert s["columns"] == columns


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_variables_and_annotations_run(influx: Influx, grafana_db: GrafanaData, name: str) -> None:
    board = BOARDS[name]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var_query(influx, grafana_db, board, var, {}), f"{var['name']} returns no value"
    zones = [v for v in board["templating"]["list"] if v["name"] == "zone"]
    if zones and "zones" in grafana_db.facts:
        assert sorted(var_query(influx, grafana_db, board, zones[0], {})) == sorted(grafana_db.facts["zones"])
    if grafana_db.source == "pipeline":
        assert "zones" in grafana_db.facts
    for ann in board["annotations"]["list"]:
        if ann.get("builtIn"):
            continue
        series = run(influx, grafana_db, board, {}, ann["query"])
        assert has_values(series), f"annotation {ann['name']} finds nothing"
        cols = series[0]["columns"]
        assert ann["textColumn"] in cols
        assert all(tag in cols for tag in ann["tagsColumn"].split(","))


def test_device_variables_list_every_device(influx: Influx, grafana_db: GrafanaData) -> None:
    per_family = fact(grafana_db, "devices_per_family")
    for name, family in (("traffic.json", "traffic"), ("lighting.json", "lighting"), ("cctv.json", "cctv"),
                         ("water.json", "water"), ("air-quality.json", "air")):
        board = BOARDS[name]
        (device,) = [v for v in board["templating"]["list"] if v["name"] == "device"]
        assert len(var_query(influx, grafana_db, board, device, {})) == per_family[family]


# ----------------------------------------------------------------------------- known values


def one(influx: Influx, data: GrafanaData, name: str, title: str, ref: str = "A", *,
        chosen: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    board, panel, target = _board_target(name, title, ref)
    return run(influx, data, board, panel, target["query"], chosen=chosen)


def row(series: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(series) == 1 and len(series[0]["values"]) == 1, series
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))


def by_tag(series: list[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    out = {}
    for s in series:
        assert len(s["values"]) == 1, s
        out[s["tags"][tag]] = dict(zip(s["columns"], s["values"][0], strict=True))
    return out


def test_overview_devices_by_family_and_status(influx: Influx, grafana_db: GrafanaData) -> None:
    per_family = fact(grafana_db, "devices_per_family")
    got = by_tag(one(influx, grafana_db, "city-overview.json", "Devices by service and status"), "family")
    assert {f: r["total"] for f, r in got.items()} == per_family
    for family, status in grafana_db.facts.get("fleet_status", {}).items():
        assert {k: got[family][k] for k in status} == status
    assert row(one(influx, grafana_db, "city-overview.json", "Devices"))["devices"] == sum(per_family.values())


def test_overview_alarms_and_rate(influx: Influx, grafana_db: GrafanaData) -> None:
    active = fact(grafana_db, "active_alarms")
    roots = fact(grafana_db, "active_root_causes")
    assert row(one(influx, grafana_db, "city-overview.json", "Active alarms"))["active alarms"] == active
    assert row(one(influx, grafana_db, "city-overview.json", "Root causes"))["root causes"] == len(roots)
    table = one(influx, grafana_db, "city-overview.json", "Active root causes")
    assert sorted(r[table[0]["columns"].index("element")] for r in table[0]["values"]) == sorted(roots)
    assert len(one(influx, grafana_db, "city-overview.json", "Active alarms", "A")) == 1
    rate = row(one(influx, grafana_db, "city-overview.json", "Messages per second"))["msg/s"]
    assert rate == pytest.approx(fact(grafana_db, "msg_rate"))


def test_overview_alarm_list_and_open_alarms_per_service(influx: Influx, grafana_db: GrafanaData) -> None:
    want = fact(grafana_db, "alarm_list")
    (series,) = one(influx, grafana_db, "city-overview.json", "Alarm list")
    cols = series["columns"]
    got = {(r[cols.index("kind")], r[cols.index("element")]):
           (r[cols.index("alarm")], r[cols.index("state")], r[cols.index("acknowledged by")])
           for r in series["values"]}
    assert got == want
    assert all(r[cols.index("raised")] > 0 for r in series["values"])  # the age's origin (ms)
    per_service = fact(grafana_db, "open_per_service")
    for i, svc in enumerate(build.SERVICES):
        ref = chr(ord("A") + i)
        assert row(one(influx, grafana_db, "city-overview.json", "Open alarms per service", ref))[svc] == \
            per_service[svc], svc


def test_overview_maintenance_windows(influx: Influx, grafana_db: GrafanaData) -> None:
    want = fact(grafana_db, "maintenance")
    (series,) = one(influx, grafana_db, "city-overview.json", "Maintenance windows")
    cols = series["columns"]
    got = {r[cols.index("window")]: (r[cols.index("element")], r[cols.index("state")], r[cols.index("from")],
                                     r[cols.index("until")]) for r in series["values"]}
    assert got == want


def test_open_alarms_per_service_covers_every_catalogue_service() -> None:
    assert sorted(build.SERVICES) == sorted({f.service for f in catalogue.families().values()})


def test_lighting_failed_lamps_day_burning_commands(influx: Influx, grafana_db: GrafanaData) -> None:
    failed = row(one(influx, grafana_db, "lighting.json", "Failed lamps"))["failed lamps"]
    assert failed == fact(grafana_db, "failed_lamps")
    expected_burning = fact(grafana_db, "day_burning")
    burning = row(one(influx, grafana_db, "lighting.json", "Day-burning"))["day-burning"]
    assert burning == expected_burning
    states = by_tag(one(influx, grafana_db, "lighting.json", "Command outcomes"), "state")
    assert {s: r["commands"] for s, r in states.items()} == fact(grafana_db, "command_states")


def test_lighting_savings_against_full_power_baseline(influx: Influx, grafana_db: GrafanaData) -> None:
    expected = fact(grafana_db, "savings_kwh")
    fact(grafana_db, "lamp_rated_w")
    board = BOARDS["lighting.json"]
    price, co2 = (float(variable_values(board, {})[k]) for k in ("price", "co2"))
    got = row(one(influx, grafana_db, "lighting.json", "Savings against full power"))
    assert expected > 0
    assert got["kWh saved"] == pytest.approx(expected, rel=1e-9)
    assert got["EUR saved"] == pytest.approx(expected * price, rel=1e-9)
    assert got["kg CO2 saved"] == pytest.approx(expected * co2, rel=1e-9)
    # the price and the emission factor are the board's textbox variables, not constants of the query
    other = row(one(influx, grafana_db, "lighting.json", "Savings against full power",
                    chosen={"price": "1", "co2": "2"}))
    assert other["EUR saved"] == pytest.approx(expected, rel=1e-9)
    assert other["kg CO2 saved"] == pytest.approx(2 * expected, rel=1e-9)
    # InfluxDB 1.6 answers a statement with two integral() over a sub-query inconsistently; the
    # board's statements hold one each, and must give the same answer every time
    again = [row(one(influx, grafana_db, "lighting.json", "Savings against full power")) for _ in range(5)]
    assert all(r == got for r in again)
    # per interval: saved = baseline - measured, and the intervals add up to the total
    title = "Energy: baseline, measured, saved"
    cols = {ref: {v[0]: v[1] for v in one(influx, grafana_db, "lighting.json", title, ref)[0]["values"]}
            for ref in "ABC"}
    assert cols["A"].keys() == cols["B"].keys() == cols["C"].keys()
    for t, saved in cols["C"].items():
        if saved is not None:
            assert math.isclose(saved, cols["A"][t] - cols["B"][t], rel_tol=1e-9, abs_tol=1e-9)
    assert sum(v for v in cols["C"].values() if v is not None) == pytest.approx(expected, rel=0.05)


def test_cctv_availability_and_tamper(influx: Influx, grafana_db: GrafanaData) -> None:
    cams = fact(grafana_db, "cameras")
    online = fact(grafana_db, "cameras_online")
    assert row(one(influx, grafana_db, "cctv.json", "Cameras"))["cameras"] == cams
    assert row(one(influx, grafana_db, "cctv.json", "Cameras online"))["online"] == online
    assert row(one(influx, grafana_db, "cctv.json", "Tampered cameras"))["tampered"] == fact(
        grafana_db, "cameras_tampered")
    offline = one(influx, grafana_db, "cctv.json", "Cameras offline")
    assert sorted(s["tags"]["device"] for s in offline) == sorted(fact(grafana_db, "cameras_offline"))
    status = fact(grafana_db, "fleet_status")["cctv"]
    avail = row(one(influx, grafana_db, "cctv.json", "Availability"))["availability"]
    assert avail == pytest.approx(100 * status["ok"] / (status["ok"] + status["stale"] + status["fault"]))


def test_water_minimum_night_flow_and_leaks(influx: Influx, grafana_db: GrafanaData) -> None:
    expected = fact(grafana_db, "min_night_flow")
    for title in ("Minimum night flow per district", "Lowest night flow in range"):
        series = one(influx, grafana_db, "water.json", title)
        # the simulated run lies within one day: min over the day buckets (Grafana's stat does the same)
        got = {s["tags"]["zone"]: min(v[1] for v in s["values"] if v[1] is not None) for s in series}
        assert got == {z: pytest.approx(v) for z, v in expected.items()}
    leaks = one(influx, grafana_db, "water.json", "Leak alarms")
    assert sorted(s["tags"]["device"] for s in leaks) == sorted(fact(grafana_db, "leak_devices"))


def test_network_availability_and_root_causes(influx: Influx, grafana_db: GrafanaData) -> None:
    per_family = fact(grafana_db, "devices_per_family")
    status = grafana_db.facts.get("fleet_status", {})
    got = by_tag(one(influx, grafana_db, "network-layers.json", "Availability per service"), "family")
    for family, total in per_family.items():
        ok = status.get(family, {}).get("ok", total)
        assert got[family]["availability"] == pytest.approx(100 * ok / total)
    table = one(influx, grafana_db, "network-layers.json", "Shared infrastructure: active root causes")
    elements = [r[table[0]["columns"].index("element")] for r in table[0]["values"]]
    assert sorted(elements) == sorted(fact(grafana_db, "active_root_causes"))


def test_supervisor_errors_by_reason(influx: Influx, grafana_db: GrafanaData) -> None:
    got = by_tag(one(influx, grafana_db, "supervisor-health.json", "Errors by reason, selected range"), "reason")
    assert {r: v["errors"] for r, v in got.items()} == fact(grafana_db, "errors_by_reason")


def test_supervisor_control_lane_panels(influx: Influx, grafana_db: GrafanaData) -> None:
    want = fact(grafana_db, "lane_health")
    ages = one(influx, grafana_db, "supervisor-health.json", "Control lane: reaction latency and waiting age")
    cols = ages[0]["columns"]
    assert cols == ["time", "reaction p50", "reaction p99", "lane oldest", "bulk oldest"]
    values = [dict(zip(cols, v, strict=True)) for v in ages[0]["values"] if v[1] is not None]
    assert values and {(v["reaction p50"], v["reaction p99"], v["lane oldest"], v["bulk oldest"]) for v in values} == {
        (want["reaction_p50_ms"], want["reaction_p99_ms"], want["lane_oldest_ms"], want["bulk_oldest_ms"])}
    depth = one(influx, grafana_db, "supervisor-health.json", "Inbox depth: control lane and bulk")
    rows = [dict(zip(depth[0]["columns"], v, strict=True)) for v in depth[0]["values"] if v[1] is not None]
    assert {r["lane"] for r in rows} == {want["lane_depth"]}
    assert max(r["bulk"] for r in rows) == want["bulk_depth_max"]


def test_traffic_one_row_per_segment(influx: Influx, grafana_db: GrafanaData) -> None:
    segments = one(influx, grafana_db, "traffic.json", "Segments, last reading")
    assert len(segments) == fact(grafana_db, "devices_per_family")["traffic"]
    zone = sorted(fact(grafana_db, "zones"))[0]
    in_zone = one(influx, grafana_db, "traffic.json", "Segments, last reading", chosen={"zone": zone})
    assert {s["tags"]["zone"] for s in in_zone} == {zone}


def test_air_quality_stations_index_and_last_readings(influx: Influx, grafana_db: GrafanaData) -> None:
    stations = fact(grafana_db, "air_stations")
    assert row(one(influx, grafana_db, "air-quality.json", "Stations"))["stations"] == stations
    last = one(influx, grafana_db, "air-quality.json", "Stations, last reading")
    assert len(last) == stations
    assert all(1 <= r["eaqi"] <= 6 for r in (row([s]) for s in last))
    # every station's index curve is within the index's levels
    curves = one(influx, grafana_db, "air-quality.json", "European Air Quality Index")
    assert len(curves) == stations
    assert {v[1] for s in curves for v in s["values"] if v[1] is not None} <= set(range(1, 7))
    worst = row(one(influx, grafana_db, "air-quality.json", "Worst index now"))["eaqi"]
    assert 1 <= worst <= 6
    poor = row(one(influx, grafana_db, "air-quality.json", "Stations at poor or worse"))["poor"]
    assert 1 <= poor <= stations and worst >= 4


def test_air_quality_known_values(influx: Influx, grafana_db: GrafanaData) -> None:
    last = one(influx, grafana_db, "air-quality.json", "Stations, last reading")
    worst = row(one(influx, grafana_db, "air-quality.json", "Worst index now"))["eaqi"]
    assert worst == fact(grafana_db, "air_worst_index")
    poor = row(one(influx, grafana_db, "air-quality.json", "Stations at poor or worse"))["poor"]
    assert poor == fact(grafana_db, "air_poor_stations")
    got = {s["tags"]["device"]: row([s]) for s in last}
    for dev, expected in fact(grafana_db, "air_last").items():
        assert {k: got[dev][k] for k in expected} == pytest.approx(expected), dev


def test_overview_device_map_one_row_per_device_with_position_and_status(influx: Influx,
                                                                         grafana_db: GrafanaData) -> None:
    """The Geomap's query: every device of the city once, at its model position, in its last status."""
    want = fact(grafana_db, "device_map")
    board, panel, target = _board_target("city-overview.json", "Devices on the map", "A")
    assert panel["type"] == "geomap" and target["resultFormat"] == "table"
    layer = panel["options"]["layers"][0]
    assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    assert layer["config"]["style"]["color"]["field"] == "code"
    series = run(influx, grafana_db, board, panel, target["query"])
    got = by_tag(series, "device")
    assert len(series) == len(got) == len(want)
    assert {d: (r["lat"], r["lon"], r["status"]) for d, r in got.items()} == {
        d: (pytest.approx(lat, abs=1e-9), pytest.approx(lon, abs=1e-9), status)
        for d, (lat, lon, status) in want.items()}
    codes = {name: code for name, code, _ in build.STATUS_COLOURS}
    assert all(r["code"] == codes[r["status"]] for r in got.values())
    # the zone variable narrows the map to the zone's devices
    zone = sorted(fact(grafana_db, "zones"))[0]
    narrowed = by_tag(run(influx, grafana_db, board, panel, target["query"], chosen={"zone": zone}), "device")
    assert narrowed and set(narrowed) < set(got)
