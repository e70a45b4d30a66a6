"""SNMP traps from Net-SNMP's ``snmptrap`` to the supervisor's receiver: a linkDown gives the
observed root-cause alarm within 1 s (v2c, v3 authNoPriv and authPriv traps, v3 informs), linkUp
then lets it recover; a trap from an unknown agent, with a wrong community, wrong keys, an unknown
user or engine id, or below its credential's security level is refused and counted by reason.
"""

from __future__ import annotations

import copy
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.snmp import free_udp_port
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.service.supervisor import Supervisor
from supervisor.snmp.config import SnmpConfig
from supervisor.snmp.traps import TrapReceiver
from tests.integration._rig import wait
from tests.snmp.conftest import lab_city
from tests.support.services import Influx, Mosquitto

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("snmptrap") is None, reason="Net-SNMP's snmptrap (Debian snmp)")]

ACCESS, V3_SWITCH, V3_AUTH = "sw-z01-a01", "sw-z02-a01", "sw-z02"
UPLINK, V3_UPLINK, V3_AUTH_UPLINK = f"{ACCESS}:up", f"{V3_SWITCH}:up", f"{V3_AUTH}:up"
ENGINE = "8000000001020304"  # V3_SWITCH's, from the city file (mgmt.engine_id)
ENGINE_AUTH = "800000000102030405"  # V3_AUTH's, from its credentials (snmp.credentials.*.engine_id)
OURS = "80001f8880aabbccddeeff"  # the receiver's (snmp.traps.engine_id), for informs
AUTH_KEY, PRIV_KEY = "auth-key-123", "priv-key-456"
LINK_DOWN, LINK_UP, COLD = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"
PRIV = ["-u", "trapper", "-l", "authPriv", "-a", "SHA", "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY]


def _link(ifindex: int, oper: int) -> list[str]:
    return [f"1.3.6.1.2.1.2.2.1.1.{ifindex}", "i", str(ifindex), f"1.3.6.1.2.1.2.2.1.7.{ifindex}", "i", "1",
            f"1.3.6.1.2.1.2.2.1.8.{ifindex}", "i", str(oper)]


def _city() -> dict[str, Any]:
    city = lab_city(161)
    switches = {s["id"]: s for s in city["switches"]}
    switches[V3_SWITCH]["mgmt"] |= {"credentials": "v3-auth-priv", "engine_id": f"0x{ENGINE}"}
    switches[V3_AUTH]["mgmt"]["credentials"] = "v3-auth"
    return city


@pytest.fixture
def sup(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> Iterator[Supervisor]:
    port = free_udp_port()
    city = _city()
    creds: dict[str, object] = {s["id"]: {"version": "2c", "community": s["id"]} for s in city["switches"]}
    creds["v3-auth-priv"] = {"version": "3", "user": "trapper", "auth_protocol": "SHA", "auth_key": AUTH_KEY,
                             "priv_protocol": "AES", "priv_key": PRIV_KEY}
    creds["v3-auth"] = {"version": "3", "user": "notifier", "auth_protocol": "SHA-256", "auth_key": AUTH_KEY,
                        "engine_id": ENGINE_AUTH}
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"),
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"trap-{tmp_path.name[-16:]}"},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.1,
                 "spool_dir": str(tmp_path / "var" / "spool")},
        api={"enabled": False},
        snmp={"enabled": False, "credentials": creds,
              "traps": {"enabled": True, "host": "127.0.0.1", "port": port, "engine_id": OURS}})
    s = Supervisor(settings, model=city_from_dict(city))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _snmptrap(sup: Supervisor, *auth: str, inform: bool = False) -> list[str]:
    port = sup.settings.snmp.traps.port
    return ["snmptrap", *(["-Ci", "-r", "0", "-t", "3"] if inform else []), *auth, f"127.0.0.1:{port}", ""]


def _send(sup: Supervisor, *args: str, v3: bool = False, community: str = ACCESS) -> None:
    assert sup.snmp is not None
    auth = ["-v3", "-e", f"0x{ENGINE}", *PRIV] if v3 else ["-v2c", "-c", community]
    subprocess.run([*_snmptrap(sup, *auth), *args], check=True, timeout=10)


def _v3(sup: Supervisor, *auth: str, inform: bool = False) -> None:
    """A v3 linkDown of ifIndex 1 with these USM options (-e, -u, -l, -a, -A, -x, -X)."""
    subprocess.run([*_snmptrap(sup, "-v3", *auth, inform=inform), LINK_DOWN, *_link(1, 2)], check=True, timeout=10)


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
    # the evidence leaves at once; the alarm recovers at the pipeline's next check (a CI run asserted
    # in between and found it not recovering yet)
    wait(lambda: sup.alarms is not None and bool(sup.alarms.recovering(alarm.id)), 5.0, "the alarm recovering")


def test_v3_auth_priv_trap_raises_within_one_second(sup: Supervisor) -> None:
    """SHA + AES, the engine id from the city file: the same observed evidence as v2c, within the
    issue's 1 s (as the v2c test; the delays themselves are measured by ``bench traps``; the other
    tests wait longer: what they check is not the delay)."""
    t0 = time.monotonic()
    _send(sup, LINK_DOWN, *_link(1, 2), v3=True)
    wait(lambda: any(a.element == V3_UPLINK for a in sup.lifecycle.active()), 1.0, "the v3 authPriv linkDown alarm")
    print(f"v3 authPriv linkDown -> observed alarm in {time.monotonic() - t0:.3f} s")
    (alarm,) = sup.lifecycle.active()
    assert (alarm.kind, alarm.element, alarm.evidence) == ("root_cause", V3_UPLINK, "observed")
    assert "linkDown" in alarm.text
    _send(sup, LINK_UP, *_link(1, 1), v3=True)
    wait(lambda: sup.alarms is not None and V3_UPLINK not in sup.alarms.observed, 5.0, "the v3 linkUp")
    assert sup.snmp is not None and sup.snmp.traps is not None and sup.snmp.traps.refused == {}


def test_v3_auth_no_priv_trap_with_the_credentials_engine_id(sup: Supervisor) -> None:
    _v3(sup, "-e", f"0x{ENGINE_AUTH}", "-u", "notifier", "-l", "authNoPriv", "-a", "SHA-256", "-A", AUTH_KEY)
    wait(lambda: any(a.element == V3_AUTH_UPLINK for a in sup.lifecycle.active()), 5.0, "the v3 authNoPriv alarm")


@pytest.mark.parametrize("engine", [None, OURS], ids=["discovered", "given"])
def test_v3_auth_priv_inform_accepted(sup: Supervisor, engine: str | None) -> None:
    """An INFORM is authenticated against the receiver's engine id: discovered by the sender, or
    given with -e (the configured ``snmp.traps.engine_id``); snmptrap -Ci exits 0 once answered."""
    _v3(sup, *(["-e", f"0x{engine}"] if engine else []), *PRIV, inform=True)
    wait(lambda: any(a.element == V3_UPLINK for a in sup.lifecycle.active()), 5.0, "the v3 inform's alarm")
    assert sup.snmp is not None and sup.snmp.traps is not None and sup.snmp.traps.refused == {}


def test_v3_refusals_are_counted_by_reason_without_secrets(sup: Supervisor, caplog: pytest.LogCaptureFixture) -> None:
    assert sup.snmp is not None and sup.snmp.traps is not None
    traps = sup.snmp.traps
    e = ["-e", f"0x{ENGINE}"]
    cases = [
        ("wrong_digest", [*e, "-u", "trapper", "-l", "authPriv", "-a", "SHA", "-A", "wrong-auth-key", "-x", "AES",
                          "-X", PRIV_KEY]),
        ("decryption_error", [*e, "-u", "trapper", "-l", "authPriv", "-a", "SHA", "-A", AUTH_KEY, "-x", "AES",
                              "-X", "wrong-priv-key"]),
        ("unknown_user", [*e, "-u", "stranger", "-l", "authPriv", "-a", "SHA", "-A", AUTH_KEY, "-x", "AES",
                          "-X", PRIV_KEY]),
        ("unknown_engine_id", ["-e", "0x8000000009090909", *PRIV]),
        # below the credential's level: pysnmp, not authoritative for traps, would pass them unchecked
        ("wrong_security_level", [*e, "-u", "trapper", "-l", "authNoPriv", "-a", "SHA", "-A", AUTH_KEY]),
        ("wrong_security_level", [*e, "-u", "trapper", "-l", "noAuthNoPriv"]),
        # another switch's engine id (V3_AUTH's) with this switch's credentials: no such agent
        ("unknown_engine_id", ["-e", f"0x{ENGINE_AUTH}", *PRIV]),
    ]
    with caplog.at_level(logging.DEBUG, logger="supervisor.snmp"):
        for n, (reason, auth) in enumerate(cases, start=1):
            _v3(sup, *auth)
            wait(lambda r=reason, k=n: sum(traps.refused.values()) >= k and traps.refused.get(r, 0) >= 1, 5.0,
                 f"the {reason} refusal ({traps.refused})")
        time.sleep(0.3)
    assert sup.lifecycle.active() == [] and traps.accepted == 0
    assert traps.refused == {"wrong_digest": 1, "decryption_error": 1, "unknown_user": 1, "unknown_engine_id": 2,
                             "wrong_security_level": 2}, traps.refused
    assert sup.snmp.fields()["snmp_traps_refused"] == 7
    for secret in (AUTH_KEY, PRIV_KEY, "wrong-auth-key", "wrong-priv-key"):
        assert secret not in caplog.text
    assert "refused: decryption_error (user 'trapper', engine id 8000000001020304)" in caplog.text


def test_a_reload_enters_the_new_engine_ids(sup: Supervisor) -> None:
    """The engine ids follow the model: after a reload that changes V3_SWITCH's, its traps from the
    old engine are refused, from the new one accepted, without a restart."""
    assert sup.snmp is not None and sup.snmp.traps is not None
    city = copy.deepcopy(_city())
    new_engine = "80000000010203040506"
    next(s for s in city["switches"] if s["id"] == V3_SWITCH)["mgmt"]["engine_id"] = new_engine
    sup.snmp.set_model(city_from_dict(city))
    _v3(sup, "-e", f"0x{ENGINE}", *PRIV)
    wait(lambda: sup.snmp is not None and sup.snmp.traps is not None
         and sup.snmp.traps.refused.get("unknown_engine_id", 0) == 1, 5.0, "the old engine id refused")
    _v3(sup, "-e", f"0x{new_engine}", *PRIV)
    wait(lambda: any(a.element == V3_UPLINK for a in sup.lifecycle.active()), 5.0, "the new engine's alarm")


def test_authpriv_credentials_without_cryptography_stop_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysnmp without the ``cryptography`` package counts every authPriv message as a decryption
    error: the receiver says so at start instead of refusing every trap later."""
    import supervisor.snmp.traps as traps_module

    monkeypatch.setattr(traps_module, "privacy_available", lambda: False)
    cfg = SnmpConfig.model_validate({"credentials": {"v3-auth-priv": {
        "version": "3", "user": "trapper", "auth_protocol": "SHA", "auth_key": AUTH_KEY, "priv_protocol": "AES",
        "priv_key": PRIV_KEY}}, "traps": {"enabled": True, "host": "127.0.0.1", "port": free_udp_port()}})
    receiver = TrapReceiver(cfg, [], lambda trap: None)
    with pytest.raises(RuntimeError, match=r"v3-auth-priv use SNMPv3 privacy.*`cryptography`") as exc:
        receiver.start()
    assert PRIV_KEY not in str(exc.value)


def test_v2c_inform_accepted(sup: Supervisor) -> None:
    subprocess.run([*_snmptrap(sup, "-v2c", "-c", ACCESS, inform=True), LINK_DOWN, *_link(1, 2)], check=True,
                   timeout=10)
    wait(lambda: any(a.element == UPLINK for a in sup.lifecycle.active()), 5.0, "the v2c inform's alarm")


def test_unknown_agent_and_bad_credentials_refused_and_counted(sup: Supervisor) -> None:
    assert sup.snmp is not None and sup.snmp.traps is not None
    traps = sup.snmp.traps
    _send(sup, LINK_DOWN, *_link(1, 2), community="wrong-community")
    wait(lambda: traps.refused.get("bad_community", 0) >= 1, 5.0, "the bad community counted")
    # the right community, but the switch it belongs to is no longer a known agent (a model without it)
    sup.snmp.traps.set_targets([t for t in sup.snmp.poller.targets if t.switch != ACCESS])
    _send(sup, LINK_DOWN, *_link(1, 2))
    wait(lambda: traps.refused.get("unknown_agent", 0) >= 1, 5.0, "the unknown agent counted")
    time.sleep(0.3)
    assert sup.lifecycle.active() == [] and traps.accepted == 0
    _send(sup, COLD, community=V3_SWITCH)  # known, but v2c credentials of a v3 switch: not that switch
    wait(lambda: traps.refused.get("unknown_agent", 0) >= 2, 5.0, "the second unknown agent")
    assert sup.snmp.fields()["snmp_traps_refused"] >= 3


def test_a_datagram_that_is_no_snmp_message_is_counted(sup: Supervisor) -> None:
    import socket

    assert sup.snmp is not None and sup.snmp.traps is not None
    traps = sup.snmp.traps
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x30\x03not snmp at all", ("127.0.0.1", sup.settings.snmp.traps.port))
    wait(lambda: traps.refused.get("unparsable", 0) == 1, 5.0, f"the datagram counted ({traps.refused})")
    _send(sup, LINK_DOWN, *_link(1, 2))  # the receiver goes on
    wait(lambda: any(a.element == UPLINK for a in sup.lifecycle.active()), 5.0, "the next trap's alarm")


def test_a_port_in_use_stops_the_start() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        cfg = SnmpConfig.model_validate({"traps": {"enabled": True, "host": "127.0.0.1", "port": port}})
        with pytest.raises(RuntimeError, match=rf"SNMP trap receiver on 127.0.0.1:{port}: .*[Aa]ddress already in use"):
            TrapReceiver(cfg, [], lambda trap: None).start()


def test_a_stopped_receiver_leaves_no_pending_task(caplog: pytest.LogCaptureFixture) -> None:
    """pysnmp's timer task is finished before the loop closes: every stop used to log asyncio's
    "Task was destroyed but it is pending!" at ERROR (seen at the end of ``bench traps``)."""
    import gc

    cfg = SnmpConfig.model_validate({"traps": {"enabled": True, "host": "127.0.0.1", "port": free_udp_port()}})
    receiver = TrapReceiver(cfg, [], lambda trap: None)
    receiver.start()
    time.sleep(0.2)  # the dispatcher's timer task is running
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        receiver.stop()
        del receiver
        gc.collect()
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
