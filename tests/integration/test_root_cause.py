"""Root-cause alarms end to end: simulator faults → real Mosquitto → supervisor → real InfluxDB.

A generated city of a few hundred devices is the supervisor's model. An element failed in the
simulator (``FaultInjector`` with the model's ``dependents`` as resolver) silences its devices; the
supervisor must raise ONE root-cause alarm for that element listing them, no device alarm for any of
them, clear it once the element is restored and the devices report again, and write the raised and
cleared points to the ``alarms`` measurement.

Every device reports every 60 s in this city (``with_intervals``), so that the silence of a failed
element's devices is complete three intervals after the fault whatever their family.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.model import CityModel
from tests.integration._rig import Rig, local, with_intervals
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

INTERVAL = 60.0
START = local(2025, 3, 10, 14, 0)
WARMUP = 4 * INTERVAL  # everyone reported at least once (phases are within one interval)
SILENCE = 3 * INTERVAL * 1.5  # past the stale limit (3 intervals) for every silent device


def _city() -> dict[str, Any]:
    return with_intervals(generate_city(seed=11, devices=300),
                          {"traffic": INTERVAL, "lighting": INTERVAL, "cctv": INTERVAL, "water": INTERVAL})


@pytest.fixture
def rig(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> Iterator[Rig]:
    r = Rig.start(_city(), broker, influx, influx_db, tmp_path=tmp_path, start=START, check_interval=5.0)
    try:
        r.advance(WARMUP)
        assert r.sup.alarms.active() == [], [a.text for a in r.sup.alarms.active()]
        yield r
    finally:
        r.close()


def _access_switch(model: CityModel) -> str:
    """The access switch whose failure silences the most services (then devices)."""
    best = max((e for e, info in model.elements.items() if info.kind == "switch" and "-a" in e),
               key=lambda e: (len(model.impact(e).services), len(model.dependents(e)), e))
    return best


def _cabinet_site(model: CityModel) -> str:
    """A lighting-cabinet site powering lamps and cameras."""
    for e, info in sorted(model.elements.items()):
        if info.kind == "lighting_cabinet":
            kinds = {model.devices[d].kind for d in model.dependents(e)}
            if {"lamp", "camera"} <= kinds:
                return e
    raise AssertionError("no lighting cabinet powers a camera in this city")


def _gateway(model: CityModel) -> str:
    return min(e for e, info in model.elements.items() if info.kind == "radio_gateway")


def _device_alarms(rig: Rig) -> dict[str, Any]:
    return {a.element: a for a in rig.sup.alarms.active() if a.kind == "device"}


def _root_causes(rig: Rig) -> list[Any]:
    return [a for a in rig.sup.alarms.active() if a.kind == "root_cause"]


def _alarm_points(rig: Rig, element: str) -> list[dict[str, Any]]:
    rig.flush()
    return rig.rows(f"SELECT \"id\", \"devices\", \"services\", \"affected\" FROM \"alarms\" "
                    f"WHERE \"element\" = '{element}' GROUP BY \"kind\", \"state\"")


def _fail_and_restore(rig: Rig, element: str, expect_services: set[str]) -> None:
    model = rig.model
    silent = model.dependents(element)
    silent &= set(model.devices)  # devices only (the model lists devices; be explicit)
    assert len(silent) >= 2
    assert {model.devices[d].service for d in silent} >= expect_services
    injected = rig.sim.faults.fail(element)
    assert set(injected) == silent | ({element} & set(model.devices))

    rig.advance(SILENCE)
    rcs = _root_causes(rig)
    assert [a.element for a in rcs] == [element], [(a.element, a.alternatives, len(a.devices)) for a in rcs]
    (rc,) = rcs
    assert set(rc.devices) == silent and len(rc.devices) == len(silent)
    assert set(rc.services) == {model.devices[d].service for d in silent}
    assert rig.sup.state.not_ok() == silent, "only the failed element's devices are silent"
    assert not (set(_device_alarms(rig)) & silent), "a device alarm for a device the root cause explains"
    assert _device_alarms(rig) == {}
    # a device alarm raised while the silence spread (devices turn stale at different checks) must
    # have been cleared as suppressed by the root cause
    for ch in rig.sup.alarms.history:
        if ch.alarm.kind == "device" and ch.state == "cleared" and ch.alarm.element in silent:
            assert ch.alarm.clear_reason == f"suppressed by {rc.id}", ch.alarm.as_dict()

    rig.sim.faults.restore(element)
    rig.advance(2 * INTERVAL)
    assert rig.sup.state.not_ok() == set()
    assert rig.sup.alarms.active() == []
    cleared = rig.sup.alarms.get(rc.id)
    assert cleared.state == "cleared" and cleared.clear_reason == "recovered"

    # InfluxDB: one raised and one cleared point of the root-cause alarm of the element
    pts = _alarm_points(rig, element)
    by_state = {(p["kind"], p["state"]): p for p in pts}
    assert sorted(by_state) == [("root_cause", "cleared"), ("root_cause", "raised")], pts
    assert len(pts) == 2, pts
    for p in by_state.values():
        assert p["id"] == rc.id and p["devices"] == len(silent)
        assert set(p["services"].split(",")) == set(rc.services)
    # and no device alarm point was ever left standing: every raised one has its cleared one
    rig.flush()
    dev_pts = rig.rows("SELECT \"id\" FROM \"alarms\" WHERE \"kind\" = 'device' GROUP BY \"state\"")
    raised = {p["id"] for p in dev_pts if p["state"] == "raised"}
    cleared_ids = {p["id"] for p in dev_pts if p["state"] == "cleared"}
    assert raised <= cleared_ids


def test_switch_failure_gives_one_root_cause_across_services(rig: Rig) -> None:
    sw = _access_switch(rig.model)
    services = set(rig.model.impact(sw).services)
    assert len(services) >= 2, (sw, services)
    _fail_and_restore(rig, sw, services)


def test_lighting_cabinet_power_cut_takes_its_lamps_and_cameras(rig: Rig) -> None:
    lc = _cabinet_site(rig.model)
    _fail_and_restore(rig, lc, {"lighting", "cctv"})


def test_radio_gateway_failure_takes_its_water_meters(rig: Rig) -> None:
    gw = _gateway(rig.model)
    _fail_and_restore(rig, gw, {"water"})
    assert {rig.model.devices[d].kind for d in rig.model.dependents(gw)} == {"water_meter"}


def test_one_camera_unplugged_is_a_device_alarm(rig: Rig) -> None:
    cam = min(d for d, info in rig.model.devices.items() if info.kind == "camera")
    assert rig.sim.faults.fail(cam) == {cam}
    rig.advance(SILENCE)
    active = rig.sup.alarms.active()
    assert [(a.kind, a.element, a.devices) for a in active] == [("device", cam, (cam,))]
    (alarm,) = active
    rig.sim.faults.restore(cam)
    rig.advance(2 * INTERVAL)
    assert rig.sup.alarms.active() == []
    assert rig.sup.alarms.get(alarm.id).state == "cleared"
    pts = _alarm_points(rig, cam)
    assert sorted((p["kind"], p["state"]) for p in pts) == [("device", "cleared"), ("device", "raised")]
    assert {p["id"] for p in pts} == {alarm.id}
    assert all(p["devices"] == 1 and p["affected"] == f'["{cam}"]' for p in pts)
