"""Dependency graph, impact, shared infrastructure, root cause and geography."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cache
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.model import CityModel, UnknownElementError, city_from_dict, model_benchmark
from tests.model._small import M_LAT, M_LON, REF, small_city

ID = re.compile(r"[A-Za-z0-9_.:-]+")


@cache
def gen_data() -> dict[str, Any]:
    return generate_city(seed=7, devices=1200)


@cache
def gen() -> CityModel:
    return city_from_dict(gen_data(), "generated")


@cache
def small() -> CityModel:
    return city_from_dict(small_city(), "small")


# ------------------------------------------------------------------ generator


def test_generator_is_deterministic() -> None:
    a = json.dumps(generate_city(seed=3, devices=300), sort_keys=True)
    assert a == json.dumps(generate_city(seed=3, devices=300), sort_keys=True)
    assert a != json.dumps(generate_city(seed=4, devices=300), sort_keys=True)


@pytest.mark.parametrize("n", [5, 50, 1200])
def test_generated_city_is_valid_with_every_family(n: int) -> None:
    data = generate_city(seed=1, devices=n)
    model = city_from_dict(data)
    assert len(model.devices) == n
    kinds = Counter(d.kind for d in model.devices.values())
    assert set(kinds) == {"lamp", "lighting_cabinet", "road_sensor", "camera", "water_meter"}
    if n >= 1000:
        share = {k: v / n for k, v in kinds.items()}
        assert share["lamp"] == pytest.approx(0.55, abs=0.01)
        assert share["water_meter"] == pytest.approx(0.20, abs=0.01)
        assert share["road_sensor"] == pytest.approx(0.12, abs=0.01)
        assert share["camera"] == pytest.approx(0.09, abs=0.01)
        assert share["lighting_cabinet"] == pytest.approx(0.04, abs=0.01)
    for d in model.devices.values():
        assert ID.fullmatch(d.id) and ID.fullmatch(d.zone)
    intervals = {d.family: d.interval for d in model.devices.values()}
    assert intervals == {"traffic": 60.0, "lighting": 300.0, "cctv": 60.0, "water": 900.0}


def test_every_street_with_a_road_sensor_has_lamps() -> None:
    model = gen()
    streets = {d.street for d in model.devices.values() if d.kind == "road_sensor"}
    assert streets
    for st in streets:
        assert st is not None
        assert model.lights_along(st), st


# ------------------------------------------------------------------ dependencies


def test_lamp_depends_on_its_cabinet_and_the_core() -> None:
    deps = small().dependencies("lamp-1")
    assert deps[:4] == ["cab-1", "lc-1", "lighting", "sw-1:p1"]  # direct parents first
    assert {"fd-2", "fd-1", "sw-1", "sw-1:up", "fo-1", "du-1", "sw-core:p1", "sw-core", "core"} <= set(deps)
    assert "cam-1" not in deps and "rg-1" not in deps


def test_water_meter_depends_on_gateway_not_on_power() -> None:
    deps = small().dependencies("wm-1")
    assert deps[0] == "rg-1"
    assert "lc-1" not in deps and "fd-2" not in deps


def test_dependents() -> None:
    m = small()
    assert m.dependents("lc-1") == {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5", "cam-1"}
    assert m.dependents("rg-1") == {"wm-1", "wm-2"}
    assert m.dependents("sw-core") == set(m.devices)
    assert m.dependents("cab-1") == {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5"}
    assert m.dependents("rs-1") == {"rs-1"}
    assert m.dependents("st-main") == set()  # a street is geography: nothing depends on it
    with pytest.raises(UnknownElementError):
        m.dependents("nope")


def test_full_graph_has_every_device() -> None:
    g = small().full_graph()
    assert set(small().devices) <= set(g.nodes)
    assert g.has_edge("lamp-1", "cab-1") and g.has_edge("wm-1", "rg-1") and g.has_edge("sw-1:p1", "sw-1")


# ------------------------------------------------------------------ impact on the generated city


def _expected_from_file(pred: Any) -> Counter[str]:
    return Counter(d["service"] for d in gen_data()["devices"] if pred(d))


def test_impact_of_an_access_switch() -> None:
    data = gen_data()
    sw = next(s for s in data["switches"] if s["id"].endswith("-a01"))
    ports = {p["id"] for p in sw["ports"]}
    gateways = {s["id"] for s in data["sites"] if s.get("port") in ports}
    expected = _expected_from_file(lambda d: d.get("port") in ports or d.get("gateway") in gateways)
    impact = gen().impact(sw["id"])
    assert {s: len(v) for s, v in impact.services.items()} == dict(expected)
    assert impact.total == sum(expected.values())
    assert len(expected) >= 2  # a switch carries several services
    assert set(impact.downstream) >= ports - {f"{sw['id']}:up"}
    out = impact.as_dict()
    json.dumps(out)
    assert out["services"]["lighting"]["count"] == expected["lighting"]


def test_impact_of_a_lighting_cabinet_includes_its_cameras() -> None:
    expected = _expected_from_file(lambda d: d.get("power") == "lc-0001")
    impact = gen().impact("lc-0001")
    assert {s: len(v) for s, v in impact.services.items()} == dict(expected)
    assert set(expected) == {"lighting", "cctv"}
    assert "pl-0001" in impact.downstream


def test_impact_of_a_radio_gateway() -> None:
    rg = next(s["id"] for s in gen_data()["sites"] if s["kind"] == "radio_gateway")
    expected = _expected_from_file(lambda d: d.get("gateway") == rg)
    impact = gen().impact(rg)
    assert impact.services.keys() == {"water"}
    assert impact.total == expected["water"] > 0


def test_shared_infrastructure_shows_the_pooling() -> None:
    shared = {s["element"]: s for s in gen().shared_infrastructure()}
    lc = shared["lc-0001"]
    assert set(lc["services"]) == {"lighting", "cctv"}
    assert lc["devices"] == sum(lc["services"].values())
    assert set(shared["sw-core"]["services"]) == {"lighting", "cctv", "traffic", "water"}
    assert "lighting" not in shared  # services themselves are not infrastructure
    assert not any(e.startswith("pl-") for e in shared)  # a pole carries one camera


# ------------------------------------------------------------------ root cause


def test_switch_failure_is_one_cause_across_services() -> None:
    m = gen()
    sw = next(s for s in m.switches if s.endswith("-a02"))
    silent = m.dependents(sw)
    result = m.root_causes(silent)
    assert len(result.causes) == 1
    cause = result.causes[0]
    assert cause.element == sw and cause.kind == "switch"
    assert set(cause.devices) == silent
    assert len(cause.services) >= 2
    assert f"{sw}:up" in cause.alternatives  # indistinguishable from its uplink
    assert result.unexplained == set()


def test_cabinet_power_cut_takes_lamps_and_cameras() -> None:
    m = small()
    silent = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5", "cam-1"}
    result = m.root_causes(silent)
    assert [(c.element, set(c.devices), c.services) for c in result.causes] == [("lc-1", silent, ("lighting", "cctv"))]
    assert result.causes[0].alternatives == ("fd-2",)  # fd-2 feeds only lc-1
    assert result.unexplained == set()


def test_lamps_and_controller_without_cameras_blame_the_controller() -> None:
    silent = {"cab-1", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5"}
    result = small().root_causes(silent)
    assert [c.element for c in result.causes] == ["cab-1"]


def test_radio_gateway_failure() -> None:
    result = small().root_causes({"wm-1", "wm-2"})
    assert [(c.element, c.kind, c.devices, c.services) for c in result.causes] == [
        ("rg-1", "radio_gateway", ("wm-1", "wm-2"), ("water",))
    ]


def test_one_camera_alone_is_unexplained() -> None:
    result = small().root_causes({"cam-1"})
    assert result.causes == [] and result.unexplained == {"cam-1"}


def test_partial_failure_does_not_blame_the_cabinet() -> None:
    result = small().root_causes({"lamp-1", "lamp-2"})
    assert result.causes == [] and result.unexplained == {"lamp-1", "lamp-2"}


def test_two_failures_and_a_loner_in_a_generated_city() -> None:
    m = gen()
    rg = next(s for s in m.sites.values() if s.kind == "radio_gateway").id
    lone = next(d for d in m.devices.values() if d.kind == "camera" and d.power != "lc-0003").id
    silent = m.dependents("lc-0003") | m.dependents(rg) | {lone, "unknown-device"}
    result = m.root_causes(silent)
    assert sorted(c.element for c in result.causes) == sorted(["lc-0003", rg])
    assert result.unexplained == {lone, "unknown-device"}
    json.dumps(result.as_dict())


def test_root_cause_on_whole_zone() -> None:
    m = gen()
    zone_sw = next(s for s in m.switches.values() if not s.core and s.id.count("-") == 1)
    silent = m.dependents(zone_sw.id)
    result = m.root_causes(silent)
    assert len(result.causes) == 1 and set(result.causes[0].devices) == silent


# ------------------------------------------------------------------ geography


def _ll(x: float, y: float) -> tuple[float, float]:
    return REF[0] + x / M_LON, REF[1] + y / M_LAT


def test_devices_within_radius() -> None:
    m = small()
    # lamp-1 (0, 8), lamp-2 (30, 8), lamp-3 (60, 8), cab-1 (-10, -12): distances from (0, 8):
    # lamp-1 0 m, lamp-2 30 m, cab-1 22.4 m, lamp-3 60 m
    lon, lat = _ll(0, 8)
    assert m.devices_within(lon, lat, 35) == ["lamp-1", "cab-1", "lamp-2"]
    assert m.devices_within(lon, lat, 35, kind="lamp") == ["lamp-1", "lamp-2"]
    assert m.devices_within(lon, lat, 35, family="cctv") == []
    assert m.devices_within(lon, lat, 65, family="lighting", kind="lamp") == ["lamp-1", "lamp-2", "lamp-3"]


def test_devices_near_line() -> None:
    m = small()
    # a line along x = 150 from y = -50 to y = 50: cam-1 (150, -9) at 0 m, rs-1 (120, 1.5) at 30 m
    line = [_ll(150, -50), _ll(150, 50)]
    assert m.devices_near_line(line, 10) == ["cam-1"]
    assert m.devices_near_line(line, 31) == ["cam-1", "rs-1"]
    assert m.devices_near_line(line, 31, family="traffic") == ["rs-1"]


def test_lights_along_street() -> None:
    m = small()
    assert m.lights_along("st-main") == ["lamp-1", "lamp-2", "lamp-3", "lamp-4"]  # lamp-5 is 60 m off
    assert m.lights_along("st-main", buffer_m=61) == ["lamp-1", "lamp-2", "lamp-3", "lamp-4", "lamp-5"]
    assert m.lights_along("st-side") == []
    with pytest.raises(UnknownElementError):
        m.lights_along("st-nowhere")


def test_nearest_device() -> None:
    m = small()
    assert m.nearest_device(*_ll(295, 100)) == "wm-1"
    assert m.nearest_device(*_ll(0, 8), family="water") == "wm-1"
    assert m.nearest_device(*_ll(312, 100), family="water") == "wm-2"
    assert m.nearest_device(*_ll(0, 0), family="gas") is None


def test_metric_projection_matches_hand_computed_distance() -> None:
    m = small()
    x0, y0 = m.to_metric(*_ll(0, 0))
    x1, y1 = m.to_metric(*_ll(300, 400))
    # the test helper converts metres with a spherical approximation (about 0.5 % off at 49 N)
    assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(500, rel=0.01)


def test_model_exposes_the_public_tables() -> None:
    m = small()
    assert m.center == pytest.approx(_ll(0, 0), abs=1e-6)
    assert m.elements["sw-1"].layer == "l2" and m.elements["lc-1"].kind == "lighting_cabinet"
    assert m.elements["lighting"].layer == "l3" and m.elements["z1"].layer == "geography"
    assert "lamp-1" not in m.elements
    d = m.devices["lamp-1"]
    assert (d.family, d.kind, d.driver, d.cabinet, d.power, d.port, d.street) == (
        "lighting",
        "lamp",
        "lighting_cabinet",
        "cab-1",
        "lc-1",
        "sw-1:p1",
        "st-main",
    )
    assert m.streets["st-main"].coords[0] == pytest.approx(_ll(0, 0))


def test_model_benchmark_small() -> None:
    out = model_benchmark(2000)
    assert out["devices"] == 2000
    assert out["impact_devices"] > 0 and out["load_s"] > 0 and out["rss_after_load_mb"] > 0
