"""SNMP traps from Net-SNMP's ``snmptrap`` to the supervisor's receiver: a linkDown gives the
observed root-cause alarm within 1 s (v2c and v3 authNoPriv), linkUp then lets it recover; a trap
from an unknown agent or with a wrong community is refused and counted.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.snmp import free_udp_port
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.service.supervisor import Supervisor
from tests.integration._rig import wait
from tests.snmp.conftest import lab_city
from tests.support.services import Influx, Mosquitto

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("snmptrap") is None, reason="Net-SNMP's snmptrap (Debian snmp)")]

ACCESS, V3_SWITCH = "sw-z01-a01", "sw-z02-a01"
UPLINK, V3_UPLINK = f"{ACCESS}:up", f"{V3_SWITCH}:up"
ENGINE = "8000000001020304"
LINK_DOWN, LINK_UP, COLD = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"


def _link(ifindex: int, oper: int) -> list[str]:
    return [f"1.3.6.1.2.1.2.2.1.1.{ifindex}", "i", str(ifindex), f"1.3.6.1.2.1.2.2.1.7.{ifindex}", "i", "1",
            f"1.3.6.1.2.1.2.2.1.8.{ifindex}", "i", str(oper)]


@pytest.fixture
def sup(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> Iterator[Supervisor]:
    port = free_udp_port()
    city = lab_city(161)
    next(s for s in city["switches"] if s["id"] == V3_SWITCH)["mgmt"]["credentials"] = "v3-auth-priv"
    creds: dict[str, object] = {s["id"]: {"version": "2c", "community": s["id"]} for s in city["switches"]}
    # authNoPriv: pysnmp 7.1.30 fails to decrypt Net-SNMP's authPriv traps (usmStatsDecryptionErrors,
    # counted as bad_credentials), see docs/network-observed.md
    creds["v3-auth-priv"] = {"version": "3", "user": "trapper", "auth_protocol": "SHA", "auth_key": "auth-key-123",
                             "engine_id": ENGINE}
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"),
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"trap-{tmp_path.name[-16:]}"},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.1,
                 "spool_dir": str(tmp_path / "var" / "spool")},
        api={"enabled": False},
        snmp={"enabled": False, "credentials": creds, "traps": {"enabled": True, "host": "127.0.0.1", "port": port}})
    s = Supervisor(settings, model=city_from_dict(city))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _send(sup: Supervisor, *args: str, v3: bool = False, community: str = ACCESS) -> None:
    assert sup.snmp is not None
    port = sup.settings.snmp.traps.port
    auth = (["-v3", "-e", f"0x{ENGINE}", "-u", "trapper", "-l", "authNoPriv", "-a", "SHA", "-A", "auth-key-123"]
            if v3 else ["-v2c", "-c", community])
    subprocess.run(["snmptrap", *auth, f"127.0.0.1:{port}", "", *args], check=True, timeout=10)


def test_link_down_trap_raises_within_one_second(sup: Supervisor) -> None:
    assert sup.snmp is not None and sup.snmp.traps is not None
    t0 = time.monotonic()
    _send(sup, LINK_DOWN, *_link(1, 2))
    wait(lambda: any(a.element == UPLINK for a in sup.lifecycle.active()), 1.0, "the alarm of the linkDown trap")
    print(f"linkDown -> observed alarm in {time.monotonic() - t0:.3f} s")
    (alarm,) = sup.lifecycle.active()
    assert (alarm.kind, alarm.element, alarm.evidence) == ("root_cause", UPLINK, "observed")
    assert "linkDown" in alarm.text
    # linkUp: the evidence ends, the alarm recovers (its devices have not reported since: held, as today)
    _send(sup, LINK_UP, *_link(1, 1))
    wait(lambda: sup.alarms is not None and UPLINK not in sup.alarms.observed, 5.0, "the linkUp")
    assert sup.alarms is not None and sup.alarms.recovering(alarm.id)


def test_v3_trap_accepted(sup: Supervisor) -> None:
    _send(sup, LINK_DOWN, *_link(1, 2), v3=True)
    wait(lambda: any(a.element == V3_UPLINK for a in sup.lifecycle.active()), 1.0, "the v3 linkDown alarm")


def test_unknown_agent_and_bad_credentials_refused_and_counted(sup: Supervisor) -> None:
    assert sup.snmp is not None and sup.snmp.traps is not None
    traps = sup.snmp.traps
    _send(sup, LINK_DOWN, *_link(1, 2), community="wrong-community")
    wait(lambda: traps.refused.get("bad_credentials", 0) >= 1, 5.0, "the bad community counted")
    # the right community, but the switch it belongs to is no longer a known agent (a model without it)
    sup.snmp.traps.set_targets([t for t in sup.snmp.poller.targets if t.switch != ACCESS])
    _send(sup, LINK_DOWN, *_link(1, 2))
    wait(lambda: traps.refused.get("unknown_agent", 0) >= 1, 5.0, "the unknown agent counted")
    time.sleep(0.3)
    assert sup.lifecycle.active() == [] and traps.accepted == 0
    _send(sup, COLD, community=V3_SWITCH)  # known, but v2c credentials of a v3 switch: not that switch
    wait(lambda: traps.refused.get("unknown_agent", 0) >= 2, 5.0, "the second unknown agent")
    assert sup.snmp.fields()["snmp_traps_refused"] >= 3
