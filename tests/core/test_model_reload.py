"""Model reload in process (no broker): the diff, and every holder of the model following the swap.

A real Supervisor (not started) with a generated city and the example rules; the city file is
rewritten and reloaded. The end-to-end test under load is tests/integration/test_model_reload.py.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.model import CityModel, city_from_dict, diff_models, load_city
from supervisor.runtime import Supervisor
from supervisor.service.reload import ReloadTriggers
from tests.support.services import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


@pytest.fixture(scope="module")
def city() -> dict[str, Any]:
    return generate_city(seed=7, devices=300)


def _of(city: dict[str, Any], family: str, n: int = 1) -> list[dict[str, Any]]:
    return [d for d in city["devices"] if d["family"] == family][:n]


def _supervisor(tmp_path: Path, city: dict[str, Any], rules_dir: Path | None = EXAMPLES,
                **extra: Any) -> Supervisor:
    city_file = tmp_path / "city.json"
    city_file.write_text(json.dumps(city))
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"), city=str(city_file),
        rules_dir=str(rules_dir) if rules_dir is not None else None, mqtt={"port": free_port()},
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3"), "spool_dir": str(tmp_path / "sp")},
        **extra)
    sup = Supervisor(settings, model=load_city(city_file))
    now = time.time()
    for dev in sup.model.devices.values() if sup.model is not None else ():  # what start() does
        sup.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
        sup.device_driver[dev.id] = dev.driver
    return sup


def _write(sup: Supervisor, city: dict[str, Any] | str) -> None:
    assert sup.settings.city is not None
    sup.settings.city.write_text(city if isinstance(city, str) else json.dumps(city))


# -- the diff ---------------------------------------------------------------------------------------
def test_diff_names_added_removed_and_changed_elements_and_devices_with_their_attributes(
        city: dict[str, Any]) -> None:
    new = copy.deepcopy(city)
    sensor, meter = _of(new, "traffic")[0], _of(new, "water")[0]
    new["devices"].remove(meter)
    sensor["geometry"]["coordinates"][0] += 0.0001
    sensor["interval"] = 30.0
    added = copy.deepcopy(sensor) | {"id": "rs-new"}
    new["devices"].append(added)
    switch = next(s for s in new["switches"] if not s.get("core"))
    switch["ports"][1]["vlans"] = sorted(set(switch["ports"][1]["vlans"]))[:-1] or [1]
    new["name"] = "Renamed"
    d = diff_models(city_from_dict(city), city_from_dict(new))
    assert d.added == {"devices": ("rs-new",)}
    assert d.removed == {"devices": (meter["id"],)}
    assert d.changed["devices"] == {sensor["id"]: ("lon", "interval")}
    assert d.changed["city"] == {"<city>": ("name",)}
    assert d.counts()["changed"] == {"devices": 1, "elements": 1 + len(d.changed.get("ports", {}))}
    assert "added devices 1: rs-new" in d.summary()
    assert diff_models(city_from_dict(city), city_from_dict(city)).empty


def test_diff_lists_are_bounded_in_the_api_body(city: dict[str, Any]) -> None:
    new = copy.deepcopy(city)
    new["devices"] = [d for d in new["devices"] if d["family"] != "lighting"]
    d = diff_models(city_from_dict(city), city_from_dict(new))
    body = d.as_dict(limit=5)
    assert len(body["removed"]["devices"]) == 5 and body["truncated"]
    assert body["counts"]["removed"]["devices"] == len(d.removed["devices"]) > 5


# -- the swap ---------------------------------------------------------------------------------------
def test_reload_reaches_every_holder_of_the_model(tmp_path: Path, city: dict[str, Any]) -> None:
    sup = _supervisor(tmp_path, city)
    seen: list[CityModel] = []
    sup.on_model.append(seen.append)
    sup.on_model.append(lambda _m: 1 / 0)  # a failing callback is logged, the others still run
    new = copy.deepcopy(city)
    gone = _of(new, "traffic")[0]
    new["devices"].remove(gone)
    added = copy.deepcopy(_of(new, "traffic")[0]) | {"id": "rs-added"}
    new["devices"].append(added)
    lamp = _of(new, "lighting", 50)[-1]
    lamp["interval"] = 42.0
    assert sup.rules is not None
    cameras_rule = sup.rules._rules["camera-low-fps"]  # no camera changed: this rule runs on as it is
    _write(sup, new)
    out = sup.reload_model("api")
    assert out.ok, out.as_dict()
    model = sup.model
    assert model is not None and seen == [model]
    assert "camera-low-fps" not in out.rules["rebuilt"] and sup.rules._rules["camera-low-fps"] is cameras_rule
    assert cameras_rule.ctx.topology is model
    for pipeline in (sup.pipeline, sup.lane_pipeline):
        assert pipeline.identity is not None
        assert pipeline.identity.resolve("road_sensor", gone["id"]) is None
        assert pipeline.identity.resolve("road_sensor", "rs-added") == ("rs-added", added["zone"])
    assert sup.commands.model is model and sup.lifecycle.model is model
    assert sup.periodic.position_of("rs-added") is not None and sup.periodic.position_of(gone["id"]) is None
    assert sup.alarms is not None and sup.alarms.model is model
    assert sup.state.get(gone["id"]) is None and gone["id"] not in sup.device_driver
    st = sup.state.get("rs-added")
    assert st is not None and st.status == "ok" and sup.device_driver["rs-added"] == "road_sensor"
    lamp_state = sup.state.get(lamp["id"])
    assert lamp_state is not None and lamp_state.interval == 42.0
    # the rules re-resolved their selectors: the new sensor is read, the removed one is not
    assert sup.rules is not None
    indexed = sup.rules._reading_index  # the engine's device index is what matters here
    assert "rs-added" in indexed and gone["id"] not in indexed
    assert out.rules["rebuilt"] and not out.rules["added"] and not out.rules["removed"]
    assert sup.reloader.fields() == {"model_reloads": 1, "model_reloads_refused": 0}


def test_alarms_about_removed_devices_are_cleared_saying_why(tmp_path: Path, city: dict[str, Any]) -> None:
    sup = _supervisor(tmp_path, city, rules_dir=None)
    cam = _of(city, "cctv")[0]["id"]
    now = time.time()
    assert sup.alarms is not None
    sup.alarms.update({cam}, now)
    active = [a for a in sup.lifecycle.active() if a.element == cam]
    assert len(active) == 1
    new = copy.deepcopy(city)
    new["devices"] = [d for d in new["devices"] if d["id"] != cam]
    _write(sup, new)
    out = sup.reload_model("sighup")
    assert out.ok and out.alarms_cleared == 1
    assert not [a for a in sup.lifecycle.active() if a.element == cam]
    cleared = sup.lifecycle.store.get(active[0].id)
    assert cleared is not None and cleared.clear_reason == "removed from the network model by a reload"


def test_a_reload_does_not_make_the_lights_blink(tmp_path: Path, city: dict[str, Any]) -> None:
    """A rule re-bound to the new model keeps its requests on the actuators it still commands."""
    sup = _supervisor(tmp_path, city)
    assert sup.rules is not None
    night = datetime(2026, 12, 3, 23, 0, tzinfo=ZoneInfo(city["timezone"])).timestamp()
    sup.rules.tick(night)
    lamps = [d["id"] for d in _of(city, "lighting", 10_000) if d["kind"] == "lamp"]
    levels = {lamp: sup.rules.level(lamp) for lamp in lamps}
    assert all(level is not None and level > 0 for level in levels.values()), levels  # the schedule lit them
    decisions = sup.rules.stats()["decisions"]
    new = copy.deepcopy(city)
    for d in new["devices"]:
        if d["id"] == lamps[0]:
            d["interval"] = 99.0  # touches every rule commanding the lamps: they are rebuilt
    _write(sup, new)
    out = sup.reload_model("api")
    assert out.ok and "night-schedule" in out.rules["rebuilt"]
    sup.rules.tick(night + 0.1)
    assert {lamp: sup.rules.level(lamp) for lamp in lamps} == levels
    assert sup.rules.stats()["decisions"] == decisions  # no arbitration changed: no command went out


def test_a_bad_file_is_refused_and_the_running_model_stays(tmp_path: Path, city: dict[str, Any],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    sup = _supervisor(tmp_path, city)
    model = sup.model
    bad = copy.deepcopy(city)
    bad["devices"][3]["port"] = "sw-nowhere:p1"
    bad["devices"][4]["interval"] = -5
    _write(sup, bad)
    with caplog.at_level(logging.ERROR):
        out = sup.reload_model("sighup")
    assert not out.ok and sup.model is model
    assert "refused, the running model is kept: 2 problem(s)" in out.error
    assert any("sw-nowhere:p1" in p for p in out.problems) and any("interval" in p for p in out.problems)
    assert any(r.levelno == logging.ERROR and "model reload refused (sighup)" in r.getMessage()
               for r in caplog.records)
    _write(sup, "{not json")
    assert not sup.reload_model("api").ok and sup.model is model
    assert sup.reloader.fields() == {"model_reloads": 0, "model_reloads_refused": 2}


def test_rules_that_no_longer_resolve_refuse_the_reload_until_the_rules_dir_follows(
        tmp_path: Path, city: dict[str, Any]) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(EXAMPLES, rules_dir, ignore=shutil.ignore_patterns("more"))
    cam = _of(city, "cctv")[0]["id"]
    one = rules_dir / "one-camera.yaml"
    one.write_text(f"version: 1\nrules:\n  - id: that-camera\n    kind: threshold\n    devices: {{devices: [{cam}]}}\n"
                   "    measure: fps\n    op: \"<\"\n    value: 5\n")
    sup = _supervisor(tmp_path, city, rules_dir=rules_dir)
    assert sup.rules is not None and "that-camera" in sup.rules.rules()
    new = copy.deepcopy(city)
    new["devices"] = [d for d in new["devices"] if d["id"] != cam]
    _write(sup, new)
    out = sup.reload_model("api")
    assert not out.ok and "rules do not fit the new city file" in out.error
    assert any(cam in p for p in out.problems), out.problems
    one.unlink()  # the rule change that goes with the city change: both land in one reload
    out = sup.reload_model("api")
    assert out.ok and out.rules["removed"] == ["that-camera"]
    assert "that-camera" not in sup.rules.rules()


def test_no_city_means_nothing_to_reload(tmp_path: Path) -> None:
    settings = load_settings(None, mode="test", data_dir=str(tmp_path / "var"), mqtt={"port": free_port()},
                             storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3")})
    out = Supervisor(settings).reload_model("api")
    assert not out.ok and not out.configured and "restart" in out.error


def test_the_file_watch_reloads_a_changed_file_once_it_is_stable(tmp_path: Path, city: dict[str, Any]) -> None:
    sup = _supervisor(tmp_path, city, rules_dir=None, city_watch=0.05)
    watch = ReloadTriggers(sup, sup.settings.city_watch).start()
    try:
        new = copy.deepcopy(city)
        new["devices"].append(copy.deepcopy(_of(city, "water")[0]) | {"id": "wm-watched"})
        _write(sup, new)
        deadline = time.monotonic() + 10
        while sup.reloader.ok == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sup.reloader.last is not None and sup.reloader.last.trigger == "watch"
        assert sup.model is not None and "wm-watched" in sup.model.devices
        _write(sup, "{broken")  # refused once, not retried while the file stays the same
        deadline = time.monotonic() + 10
        while sup.reloader.refused == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert sup.reloader.fields() == {"model_reloads": 1, "model_reloads_refused": 1}
        watch.request()  # what SIGHUP does
        deadline = time.monotonic() + 10
        while sup.reloader.refused < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sup.reloader.last is not None and sup.reloader.last.trigger == "sighup"
    finally:
        watch.stop()


# -- the API --------------------------------------------------------------------------------------
def test_the_api_route_answers_the_diff_or_422_and_metrics_count_both(tmp_path: Path, city: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from supervisor.api import create_app
    from supervisor.config import ApiConfig

    sup = _supervisor(tmp_path, city, rules_dir=None)
    app = create_app(sup, ApiConfig(viewer_tokens=["v" * 24], operator_tokens=["o" * 24]))  # type: ignore[list-item]
    op, viewer = {"Authorization": f"Bearer {'o' * 24}"}, {"Authorization": f"Bearer {'v' * 24}"}
    with TestClient(app) as client:
        assert client.post("/api/v1/model/reload", headers=viewer).status_code == 403
        new = copy.deepcopy(city)
        new["devices"].append(copy.deepcopy(_of(city, "water")[0]) | {"id": "wm-api"})
        _write(sup, new)
        r = client.post("/api/v1/model/reload", headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["diff"]["added"] == {"devices": ["wm-api"]}
        assert client.get("/api/v1/model/elements/wm-api", headers=viewer).status_code == 200
        _write(sup, "[]")
        r = client.post("/api/v1/model/reload", headers=op)
        assert r.status_code == 422 and "top level must be an object" in r.json()["detail"], r.text
        assert client.get("/api/v1/model/elements/wm-api", headers=viewer).status_code == 200
        text = client.get("/metrics", headers=viewer).text
    assert 'urban_model_reloads_total{result="ok"} 1.0' in text and 'urban_model_reloads_total{result="refused"} 1.0' \
        in text, [ln for ln in text.splitlines() if "reload" in ln]


def test_the_cli_reloads_through_the_running_api(tmp_path: Path, city: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from supervisor.api import ApiServer
    from supervisor.cli import main
    from supervisor.config import ApiConfig

    sup = _supervisor(tmp_path, city, rules_dir=None)
    server = ApiServer(sup, ApiConfig(host="127.0.0.1", port=0, operator_tokens=["o" * 24])).start()  # type: ignore[list-item]
    monkeypatch.setenv("URBAN_API_TOKEN", "o" * 24)
    url = f"http://127.0.0.1:{server.port}"
    try:
        new = copy.deepcopy(city)
        new["devices"] = [d for d in new["devices"] if d["id"] != _of(city, "water")[0]["id"]]
        _write(sup, new)
        assert main(["model", "reload", "--url", url]) == 0
        assert "devices +0 -1 ~0, elements +0 -0 ~0" in capsys.readouterr().out
        _write(sup, "{")
        assert main(["model", "reload", "--url", url]) == 2
        err = capsys.readouterr().err
        assert "422" in err and "running model is kept" in err and "not valid JSON" in err, err
    finally:
        server.stop()


# -- SNMP credentials ------------------------------------------------------------------------------
def test_a_switch_naming_unknown_snmp_credentials_refuses_the_reload(
        tmp_path: Path, city: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """As at start: a switch whose ``mgmt.credentials`` the configuration lacks is refused in the
    preparation (API 422, CLI exit 2, SIGHUP logged and counted), the running model and the SNMP
    targets stay."""
    from supervisor.api import ApiServer
    from supervisor.cli import main
    from supervisor.config import ApiConfig

    with_mgmt = copy.deepcopy(city)
    for sw in with_mgmt["switches"]:
        sw["mgmt"] = {"host": "127.0.0.1", "port": 161, "credentials": "lab"}
    sup = _supervisor(tmp_path, with_mgmt, rules_dir=None,
                      snmp={"enabled": True, "credentials": {"lab": {"version": "2c", "community": "lab-secret"}}})
    assert sup.snmp is not None
    model, targets = sup.model, list(sup.snmp.poller.targets)
    bad = copy.deepcopy(with_mgmt)
    switch = bad["switches"][2]["id"]
    bad["switches"][2]["mgmt"]["credentials"] = "core-v3"
    bad["devices"].append(copy.deepcopy(_of(city, "water")[0]) | {"id": "wm-snmp"})
    _write(sup, bad)
    with caplog.at_level(logging.ERROR):
        out = sup.reload_model("sighup")
    assert not out.ok and sup.model is model and sup.snmp.poller.targets == targets
    assert "must name SNMP credentials of the configuration" in out.error
    assert any(switch in p and "'core-v3'" in p for p in out.problems), out.problems
    assert any(r.levelno == logging.ERROR and "model reload refused (sighup)" in r.getMessage() and switch in
               r.getMessage() for r in caplog.records)
    assert sup.reloader.fields() == {"model_reloads": 0, "model_reloads_refused": 1}
    assert "lab-secret" not in caplog.text

    server = ApiServer(sup, ApiConfig(host="127.0.0.1", port=0, operator_tokens=["o" * 24])).start()  # type: ignore[list-item]
    monkeypatch.setenv("URBAN_API_TOKEN", "o" * 24)
    url = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _post(f"{url}/api/v1/model/reload", "o" * 24)
        assert status == 422 and switch in body["detail"] and "'core-v3'" in body["detail"], body
        assert main(["model", "reload", "--url", url]) == 2
        err = capsys.readouterr().err
        assert "422" in err and switch in err and "'core-v3'" in err and "running model is kept" in err, err
        assert sup.model is model and "wm-snmp" not in model.devices
        assert sup.reloader.fields() == {"model_reloads": 0, "model_reloads_refused": 3}
        bad["switches"][2]["mgmt"]["credentials"] = "lab"  # the file fixed: swapped in
        _write(sup, bad)
        assert main(["model", "reload", "--url", url]) == 0
        assert sup.model is not None and "wm-snmp" in sup.model.devices
    finally:
        server.stop()


def _post(url: str, token: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
