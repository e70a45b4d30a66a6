"""Observed evidence in the alarm manager, and the city file's ``mgmt``/``ifindex`` (no agent needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.alarms import AlarmManager
from supervisor.model import CityFileError, city_from_dict

CITY = generate_city(seed=3, devices=60)
ACCESS = "sw-z01-a01"
UPLINK = f"{ACCESS}:up"


def _city(**mgmt: Any) -> dict[str, Any]:
    c = copy.deepcopy(CITY)
    for sw in c["switches"]:
        sw["mgmt"] = {"host": "127.0.0.1", "port": 1161, "credentials": "lab", **mgmt}
    return c


def test_observed_port_raises_at_once_marked_observed() -> None:
    model = city_from_dict(_city())
    m = AlarmManager(model)
    behind = model.dependents(UPLINK)
    assert behind
    m.observe("snmp", {UPLINK: "SNMP: ifOperStatus down, ifAdminStatus up"})
    changes = m.update(set(), 1000.0)  # no device silent yet
    assert [(c.alarm.kind, c.alarm.element, c.alarm.evidence, c.state) for c in changes] == [
        ("root_cause", UPLINK, "observed", "raised")]
    alarm = changes[0].alarm
    assert set(alarm.devices) == behind
    assert "observed" in alarm.text and UPLINK in alarm.text
    assert alarm.as_dict()["evidence"] == "observed"
    assert changes[0].as_point()[2]["evidence"] == "observed"
    # the devices go stale later: the same alarm explains them, no second alarm
    later = m.update(set(behind), 2000.0, stale=set(behind),
                     last_seen=lambda d: 900.0 if d in behind else 1990.0)  # the others report
    assert later == []
    assert [a.id for a in m.active()] == [alarm.id]


def test_observed_clears_when_back_and_devices_report() -> None:
    model = city_from_dict(_city())
    m = AlarmManager(model)
    m.observe("snmp", {ACCESS: "SNMP: no answer"})
    (raised,) = m.update(set(), 1000.0)
    assert raised.alarm.element == ACCESS and raised.alarm.evidence == "observed"
    m.observe("snmp", {})
    out = m.update(set(), 1010.0, stale=set(), last_seen=lambda d: 1005.0)  # all reported since
    assert [(c.alarm.id, c.state, c.alarm.clear_reason) for c in out] == [(raised.alarm.id, "cleared", "recovered")]


def test_inferred_path_unchanged_and_marked_inferred() -> None:
    model = city_from_dict(_city())
    m = AlarmManager(model)
    out = m.update(model.dependents(ACCESS), 1000.0)
    assert [c.alarm.evidence for c in out if c.alarm.kind == "root_cause"] == ["inferred"]


def test_switch_down_hides_its_ports_and_unknown_elements_are_ignored() -> None:
    model = city_from_dict(_city())
    m = AlarmManager(model)
    m.observe("snmp", {ACCESS: "SNMP: no answer", UPLINK: "trap linkDown", f"{ACCESS}:p1": "x", "nope": "y"})
    assert "nope" not in m.observed
    out = m.update(set(), 1000.0)
    assert [c.alarm.element for c in out] == [ACCESS]  # one alarm: the ports add nothing


def test_spare_port_raises_nothing() -> None:
    c = _city()
    spare = f"{ACCESS}:p99"
    next(s for s in c["switches"] if s["id"] == ACCESS)["ports"].append({"id": spare, "vlans": [110]})
    model = city_from_dict(c)
    assert model.dependents(spare) == set()
    m = AlarmManager(model)
    m.observe("snmp", {spare: "SNMP: down"})
    assert m.update(set(), 1000.0) == []


def test_city_mgmt_validated() -> None:
    model = city_from_dict(_city())
    sw = model.switches[ACCESS]
    assert sw.mgmt is not None and (sw.mgmt.host, sw.mgmt.port, sw.mgmt.credentials) == ("127.0.0.1", 1161, "lab")
    assert model.ports[UPLINK].ifindex == 1
    bad = _city(port=0, community="public")
    bad["switches"][1]["ports"][0]["ifindex"] = 7
    bad["switches"][1]["ports"][1]["ifindex"] = 7
    with pytest.raises(CityFileError) as err:
        city_from_dict(bad)
    text = str([str(p) for p in err.value.problems])
    assert "mgmt: unknown key(s) ['community']" in text and "secrets belong" in text
    assert "mgmt.port must be an integer 1..65535, got 0" in text
    assert "ifindex 7 is already the ifindex of port" in text


def test_city_mgmt_engine_id() -> None:
    """``mgmt.engine_id``: the agent's snmpEngineID in hex (its v3 traps are authenticated against it)."""
    city = _city()
    sw = next(s for s in city["switches"] if s["id"] == ACCESS)
    sw["mgmt"]["engine_id"] = "0x80001F8880C2B08E41DB33CA5D"
    mgmt = city_from_dict(city).switches[ACCESS].mgmt
    assert mgmt is not None and mgmt.engine_id == "80001f8880c2b08e41db33ca5d"
    for bad in ("8000", "80001f8880c2b08e41db33ca5", "not-hex-at-all", 42):
        sw["mgmt"]["engine_id"] = bad
        with pytest.raises(CityFileError, match=r"mgmt.engine_id must be the agent's snmpEngineID in hex"):
            city_from_dict(city)


def test_missing_credentials_stop_the_start_naming_the_switch(tmp_path: Path) -> None:
    from supervisor.config import load_settings
    from supervisor.service.errors import SupervisorError
    from supervisor.service.supervisor import Supervisor

    settings = load_settings(None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
                             snmp={"enabled": True, "credentials": {"other": {"version": "2c", "community": "x"}}})
    with pytest.raises(SupervisorError) as err:
        Supervisor(settings, model=city_from_dict(_city()))
    assert f"{ACCESS}: credentials 'lab'" in str(err.value)


def test_drift_route_without_snmp_is_503_not_configured(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from supervisor.api import create_app
    from supervisor.config import ApiConfig
    from tests.api.conftest import VIEWER, bearer, make_supervisor

    sup = make_supervisor(tmp_path, model=city_from_dict(_city()))
    with TestClient(create_app(sup, ApiConfig(viewer_tokens=[VIEWER]))) as api:  # type: ignore[list-item]
        r = api.get("/api/v1/model/drift", headers=bearer(VIEWER))
    assert r.status_code == 503 and "not configured: no SNMP" in r.json()["detail"]
