"""The committed boards are the generator's output and valid Grafana dashboards (no services)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.grafana.boards import DASHBOARD_DIR, ROOT, iter_targets, load_boards

DATASOURCE_UID = "urban-influx"
# uids are part of every link and bookmark to a board: changing one breaks them
STABLE_UIDS = {
    "city-overview.json": "urban-overview",
    "lighting.json": "urban-lighting",
    "traffic.json": "urban-traffic",
    "cctv.json": "urban-cctv",
    "water.json": "urban-water",
    "air-quality.json": "urban-air",
    "network-layers.json": "urban-network",
    "supervisor-health.json": "urban-supervisor-health",
}
BOARDS = load_boards()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", ROOT / "grafana" / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_json_is_the_generator_output() -> None:
    rendered = _generator().render()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert sorted(committed) == sorted(rendered), "run: .venv/bin/python grafana/build.py"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} differs from grafana/build.py's output; run it and commit"


def test_generator_writes_where_asked(tmp_path: Path) -> None:
    assert _generator().main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(STABLE_UIDS)


def test_uids_are_stable_and_unique() -> None:
    assert {name: b["uid"] for name, b in BOARDS.items()} == STABLE_UIDS
    titles = [b["title"] for b in BOARDS.values()]
    assert len(set(titles)) == len(titles)
    for uid in STABLE_UIDS.values():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_is_valid_grafana_json(name: str) -> None:
    b = BOARDS[name]
    assert isinstance(b["schemaVersion"], int) and b["schemaVersion"] >= 36
    assert b["title"] and b["time"]["from"] and b["time"]["to"] == "now"
    assert "id" not in b or b["id"] is None  # provisioning assigns ids
    assert b["panels"], "a board without panels"
    ids = [p["id"] for p in b["panels"]]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in b["panels"]:
        g = p["gridPos"]
        assert set(g) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in g.values())
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["y"] >= 0
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        assert p["type"] in {"timeseries", "stat", "table", "bargauge", "gauge", "geomap"}
        assert p["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        assert p["title"] and p["description"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs)
    for p, t in iter_targets(b):
        assert t["datasource"]["uid"] == DATASOURCE_UID
        assert t["rawQuery"] is True and t["resultFormat"] in {"time_series", "table"}
        assert "$timeFilter" in t["query"], f"{p['title']}: a query without $timeFilter reads all history"
        if p["type"] == "table":
            assert t["resultFormat"] == "table"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_variables_and_decision_annotations(name: str) -> None:
    b = BOARDS[name]
    variables = b["templating"]["list"]
    assert variables, "every board has template variables"
    names = [v["name"] for v in variables]
    assert len(set(names)) == len(names)
    for v in variables:
        if v["type"] == "query":
            assert v["datasource"]["uid"] == DATASOURCE_UID
            assert v["query"].startswith("SHOW TAG VALUES FROM ")
            assert v["includeAll"] and v["allValue"] == ".*"
    used = " ".join(t["query"] for _, t in iter_targets(b))
    for n in names:
        assert f"${n}" in used, f"variable {n} is used by no panel"
    (ann,) = [a for a in b["annotations"]["list"] if not a.get("builtIn")]
    assert ann["datasource"]["uid"] == DATASOURCE_UID and ann["enable"]
    assert 'FROM "decisions"' in ann["query"] and "$timeFilter" in ann["query"]


def test_board_variables_cover_what_the_city_filters_by() -> None:
    def names(f: str) -> set[str]:
        return {v["name"] for v in BOARDS[f]["templating"]["list"]}

    for f in ("traffic.json", "lighting.json", "cctv.json", "water.json", "air-quality.json"):
        assert {"zone", "device"} <= names(f)
    assert {"family", "zone"} <= names("city-overview.json")
    assert {"family", "zone"} <= names("network-layers.json")
    assert "instance" in names("supervisor-health.json")
    lighting = {v["name"]: v for v in BOARDS["lighting.json"]["templating"]["list"]}
    for n in ("price", "co2", "lamp_w", "standby_w"):
        assert lighting[n]["type"] == "textbox"
        float(lighting[n]["current"]["value"])


def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/influxdb.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert "password" in source["secureJsonData"] and source["secureJsonData"]["password"].startswith("${")
    prov = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/provider.yaml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
