"""Issue 14's SNMP acceptance on real agents (snmpsim, started here, serving walk files generated
from the test city): a port set down in the agent gives one root-cause alarm marked observed within
about one poll interval (1 s), long before the devices behind it could go stale (300 s x 3); the
``network`` points reach the real InfluxDB; a counter wrap and an agent reboot give no negative rate.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from simulators.snmp import PortSpec
from supervisor.config import Settings, load_settings
from supervisor.model import city_from_dict
from supervisor.service.supervisor import Supervisor
from supervisor.snmp.config import SnmpConfig
from supervisor.snmp.poller import Poller, Target, evidence, network_lines, targets_from_model
from tests.integration._rig import wait
from tests.snmp.conftest import Lab
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

ACCESS = "sw-z01-a01"
UPLINK = f"{ACCESS}:up"


def _settings(lab: Lab, broker: Mosquitto, influx: Influx, db: str, tmp: Path) -> Settings:
    return load_settings(
        None, mode="test", data_dir=str(tmp / "var"),
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"snmp-{tmp.name[-16:]}"},
        storage={"backend": "influx-v1", "url": influx.url, "database": db, "flush_interval": 0.1,
                 "spool_dir": str(tmp / "var" / "spool")},
        api={"enabled": False},
        snmp={"enabled": True, "interval": 1.0, "timeout": 1.0, "retries": 1, "credentials": lab.credentials()})


def test_port_down_gives_one_observed_alarm_within_a_poll_interval(
        lab: Lab, broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> None:
    model = city_from_dict(lab.city)
    behind = model.dependents(UPLINK)
    assert len(behind) >= 2 and max(model.intervals(sorted(behind))) >= 300.0
    sup = Supervisor(_settings(lab, broker, influx, influx_db, tmp_path), model=model)
    sup.start()
    try:
        assert sup.snmp is not None
        wait(lambda: sup.snmp is not None and sup.snmp.rounds >= 2, 30, "two poll rounds")
        assert sup.lifecycle.active() == []
        lab.agents[ACCESS].port(1).oper = 2  # the uplink port: link down, admin still up
        t0 = time.monotonic()
        lab.push(ACCESS)
        wait(lambda: any(a.element == UPLINK for a in sup.lifecycle.active()), 10, "the observed alarm")
        delay = time.monotonic() - t0
        active = sup.lifecycle.active()
        assert [(a.kind, a.element, a.evidence) for a in active] == [("root_cause", UPLINK, "observed")]
        assert set(active[0].devices) == behind
        assert active[0].as_dict()["evidence"] == "observed"
        print(f"observed alarm {delay:.2f} s after the agent changed (poll interval 1 s)")
        assert delay < 5.0  # one 1-s interval plus snmpsim's re-index; the devices would need 900 s
        time.sleep(2.5)  # more rounds with the port still down: still one alarm, no duplicate
        assert [a.element for a in sup.lifecycle.active()] == [UPLINK]
        sup.write_health()
        assert sup.writer.flush(30)
        rows = influx.query(f"SELECT last(status) FROM network WHERE port = '{UPLINK}'", influx_db)
        assert rows and rows[0]["series"][0]["values"][0][1] == "down"  # type: ignore[index]
        alarm_rows = influx.query(f"SELECT evidence FROM alarms WHERE element = '{UPLINK}'", influx_db)
        assert alarm_rows[0]["series"][0]["values"][0][1] == "observed"  # type: ignore[index]
        health = influx.query("SELECT last(snmp_rounds), last(snmp_unreachable) FROM supervisor", influx_db)
        assert health[0]["series"][0]["values"][0][1] >= 2  # type: ignore[index]
    finally:
        sup.stop()


def test_unreachable_switch_is_observed(lab: Lab, tmp_path: Path) -> None:
    model = city_from_dict(lab.city)
    cfg = SnmpConfig(timeout=0.3, retries=1, credentials=lab.credentials())  # type: ignore[arg-type]
    targets = targets_from_model(model, cfg)
    dead = next(t for t in targets if t.switch == ACCESS)
    dead = Target(dead.switch, "127.0.0.1", 9, dead.credentials, dead.ports, dead.zone)  # nothing listens
    poller = Poller(cfg, [dead, *[t for t in targets if t.switch != ACCESS]])
    try:
        results = poller.round_sync()
    finally:
        poller.close()
    seen = evidence(results)
    assert list(seen) == [ACCESS] and "no answer after 2 tries" in seen[ACCESS]


def test_counter_wrap_and_reboot_give_no_negative_rate(lab: Lab) -> None:
    model = city_from_dict(lab.city)
    cfg = SnmpConfig(timeout=1.0, credentials=lab.credentials())  # type: ignore[arg-type]
    target = next(t for t in targets_from_model(model, cfg) if t.switch == ACCESS)
    poller = Poller(cfg, [target])
    agent = lab.agents[ACCESS]
    p = agent.port(2)

    def poll() -> dict[str, object]:
        lines = network_lines(poller.round_sync(), poller.rates)
        line = next(x for x in lines if f"port={p.name},".encode() in x)
        fields = line.split(b" ")[1].decode()
        return dict(kv.split("=", 1) for kv in fields.split(","))

    try:
        p.in_octets, p.out_octets, p.in_errors = 2**64 - 1000, 5_000, 2**32 - 10
        agent.uptime = 1_000_000
        lab.push(ACCESS)
        first = poll()
        assert "in_bps" not in first  # nothing to compare with yet
        time.sleep(1.0)
        p.in_octets, p.out_octets, p.in_errors = 4000, 6_000, 5  # the 64-bit and 32-bit counters wrapped
        agent.uptime = 1_000_500
        lab.push(ACCESS)
        wrapped = poll()
        assert float(str(wrapped["in_bps"])) > 0 and float(str(wrapped["out_bps"])) > 0
        assert float(str(wrapped["in_errors_ps"])) > 0
        # 5000 octets (40,000 bits) and 15 errors over the 1-10 s between the polls: the wrapped deltas
        assert 4_000 <= float(str(wrapped["in_bps"])) <= 40_000
        assert 1.5 <= float(str(wrapped["in_errors_ps"])) <= 15
        time.sleep(1.0)
        p.in_octets, p.out_octets, p.in_errors = 10, 10, 0  # the agent rebooted: counters restart
        agent.uptime = 300
        lab.push(ACCESS)
        rebooted = poll()
        assert not any(k.endswith(("_bps", "_ps")) for k in rebooted), rebooted
        time.sleep(1.0)
        p.in_octets = 5  # a counter going backwards without a reboot (cleared): a reset, no rate
        agent.uptime = 500
        lab.push(ACCESS)
        reset = poll()
        assert "in_bps" not in reset and float(str(reset["out_bps"])) == 0.0
    finally:
        poller.close()


def test_recabled_link_shows_in_model_drift(lab: Lab, tmp_path: Path) -> None:
    import subprocess
    import sys

    import orjson
    import yaml

    city, up, dist, spare = _with_spare_port(lab)
    city_file = tmp_path / "city.json"
    city_file.write_bytes(orjson.dumps(city))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"mode": "test", "city": str(city_file), "data_dir": str(tmp_path / "var"),
                                      "snmp": {"credentials": lab.credentials(), "timeout": 1.0}}))

    def drift() -> tuple[int, dict[str, object]]:
        out = subprocess.run([sys.executable, "-m", "supervisor", "model", "drift", "--config", str(config), "--json"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode in (0, 1), out.stderr
        return out.returncode, orjson.loads(out.stdout)

    code, report = drift()
    assert (code, report["drift"], report["unreachable"]) == (0, [], []), report
    # recable: the access switch's fibre moves from the designed port to the spare one
    _recable(lab, city, dist, spare)
    code, report = drift()
    found = {(d["port"], d["kind"], d["expected"], d["seen"]) for d in report["drift"]}  # type: ignore[index, union-attr]
    assert code == 1
    assert found == {(up["to"], "missing", up["port"], None), (spare, "unexpected", None, up["port"]),
                     (up["port"], "miscabled", up["to"], spare)}, report


def _with_spare_port(lab: Lab) -> tuple[dict[str, Any], dict[str, str], str, str]:
    """The lab city with a spare (designed unused) port on the access switch's distribution switch."""
    up = next(s for s in lab.city["switches"] if s["id"] == ACCESS)["uplink"]
    dist = up["to"].split(":")[0]
    spare = f"{dist}:p9"
    city = copy.deepcopy(lab.city)
    dsw = next(s for s in city["switches"] if s["id"] == dist)
    dsw["ports"].append({"id": spare, "vlans": dsw["ports"][-1]["vlans"]})
    lab.agents[dist].ports.append(PortSpec(len(dsw["ports"]), spare))
    lab.push(dist)
    return city, up, dist, spare


def _recable(lab: Lab, city: dict[str, Any], dist: str, spare: str, back: bool = False) -> None:
    """Move the access switch's fibre from its designed port to the spare one (``back``: undo)."""
    dsw = next(s for s in city["switches"] if s["id"] == dist)
    designed = next(s for s in city["switches"] if s["id"] == ACCESS)["uplink"]["to"]
    ifindex = [p["id"] for p in dsw["ports"]].index(designed if back else spare) + 1
    next(n for n in lab.agents[dist].neighbours if n.sys_name == ACCESS).local_ifindex = ifindex
    next(n for n in lab.agents[ACCESS].neighbours if n.sys_name == dist).port_id = designed if back else spare
    lab.push(dist)
    lab.push(ACCESS)


def test_drift_in_the_api_and_topology_alarms(lab: Lab, broker: Mosquitto, influx: Influx, influx_db: str,
                                              tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from supervisor.api import create_app
    from supervisor.config import ApiConfig
    from tests.api.conftest import VIEWER, bearer

    city, up, dist, spare = _with_spare_port(lab)
    settings = _settings(lab, broker, influx, influx_db, tmp_path)
    settings.snmp.lldp_interval = 1.0
    sup = Supervisor(settings, model=city_from_dict(city))
    sup.start()
    try:
        cfg = ApiConfig(viewer_tokens=[VIEWER])  # type: ignore[list-item]
        with TestClient(create_app(sup, cfg)) as api:
            assert sup.snmp is not None
            wait(lambda: sup.snmp is not None and sup.snmp.last_drift is not None, 30, "the first LLDP check")
            body = api.get("/api/v1/model/drift", headers=bearer(VIEWER)).json()
            assert body["drift"] == [] and body["switches"] == len(city["switches"]) and body["checked_at"]
            _recable(lab, city, dist, spare)
            wait(lambda: len(api.get("/api/v1/model/drift", headers=bearer(VIEWER)).json()["drift"]) == 3, 30,
                 "the recabled link in the API")
            topo = sorted(a.element for a in sup.lifecycle.active() if a.kind == "topology")
            assert topo == sorted([up["to"], spare, up["port"]])  # one alarm per drifted link end
            _recable(lab, city, dist, spare, back=True)
            wait(lambda: not any(a.kind == "topology" for a in sup.lifecycle.active()), 30,
                 "the topology alarms cleared")
    finally:
        sup.stop()
