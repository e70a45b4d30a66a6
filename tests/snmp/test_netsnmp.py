"""The poller's Net-SNMP binding (supervisor/snmp/_netsnmp.py) on real snmpsim agents: the columns are
read whole whatever the agent adds (interfaces the model lacks, more rows than one GETBULK), a
failure is a clear error without the secrets, and every SNMPv3 protocol the configuration admits is
one Net-SNMP accepts; SNMPv3 authPriv works end to end."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.snmp import AgentSpec, PortSpec, SnmpSim, free_udp_port
from supervisor.snmp.config import AuthProtocol, PrivProtocol, SnmpConfig
from supervisor.snmp.poller import Poller, Rates, Target, evidence, network_lines, poll_one

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SnmpSim, AgentSpec]]:
    data = tmp_path_factory.mktemp("netsnmp") / "data"
    data.mkdir()
    # 62 interfaces (more than one GETBULK of 25 rows), of which the model lacks 30 and 31, and VLAN
    # interfaces 1001-1003 after them: the walk reads through the gap and stops after the model's last
    ports = [PortSpec(i, f"sw:p{i}", admin=1, oper=2 if i == 7 else 1, in_octets=2**63 + i, out_octets=i * 1000,
                      in_errors=i, out_errors=2**32 - 1 - i) for i in range(1, 63)]
    ports += [PortSpec(i, f"vlan{i}") for i in (1001, 1002, 1003)]
    agent = AgentSpec("sw-long", "sw-long", ports, uptime=4_242_424)
    agent.write(data)
    with SnmpSim(data, free_udp_port()) as s:
        s.wait("sw-long", 60)
        yield s, agent


def _cfg(**kw: object) -> SnmpConfig:
    return SnmpConfig(credentials={"c": {"version": "2c", "community": "sw-long"}}, **kw)


def test_columns_are_read_whole_across_requests(sim: tuple[SnmpSim, AgentSpec]) -> None:
    s, agent = sim
    model_ports = {i: f"sw:p{i}" for i in range(1, 63) if i not in (30, 31)}
    for reps in (7, 25, 64):  # several GETBULKs, or one
        r = poll_one(Target("sw-long", "127.0.0.1", s.port, "c", model_ports), _cfg(max_repetitions=reps), {})
        assert r.reachable, r.error
        assert r.uptime == 4_242_424
        assert sorted(r.ports) == list(range(1, 63))  # every row up to the model's last port, no VLAN
        for i in model_ports:
            p, want = r.ports[i], agent.port(i)
            assert (p.admin, p.oper, p.in_octets, p.out_octets, p.in_errors, p.out_errors) == (
                want.admin, want.oper, want.in_octets, want.out_octets, want.in_errors, want.out_errors), (reps, i)
        assert evidence([r]) == {"sw:p7": "SNMP: ifOperStatus down, ifAdminStatus up"}
        lines = network_lines([r], Rates())
        assert len(lines) == 1 + 60 and not any(b"port=sw:p30," in x or b"vlan" in x for x in lines)


def test_wrong_community_is_a_timeout_without_the_secret(sim: tuple[SnmpSim, AgentSpec]) -> None:
    s, _ = sim
    cfg = SnmpConfig(timeout=0.3, retries=0,
                     credentials={"c": {"version": "2c", "community": "not-a-community-s3cret"}})
    poller = Poller(cfg, [Target("sw-long", "127.0.0.1", s.port, "c", {1: "sw:p1"})])
    try:
        (r,) = poller.round_sync()
    finally:
        poller.close()
    assert not r.reachable and r.error == "no answer after 1 tries of 0.3 s"
    r = poll_one(Target("sw-x", "no-such-host.invalid", 161, "c", {1: "sw:p1"}), cfg, {})
    assert not r.reachable and r.error is not None and "Invalid address" in r.error and "s3cret" not in r.error


def test_v3_options_of_the_configuration_are_accepted_by_net_snmp() -> None:
    from supervisor.snmp._netsnmp import NetSnmpError, Session

    port = free_udp_port()  # nothing answers: opening a session sends nothing, a request times out
    for auth in typing.get_args(AuthProtocol):
        for priv in typing.get_args(PrivProtocol):
            cfg = SnmpConfig(timeout=0.2, retries=0, credentials={"v3": {
                "version": "3", "user": "u", "auth_protocol": auth, "auth_key": "auth-s3cret-key",
                "priv_protocol": priv, "priv_key": "priv-s3cret-key"}})
            r = poll_one(Target("sw", "127.0.0.1", port, "v3", {1: "sw:p1"}), cfg, {})
            assert not r.reachable and r.error is not None, (auth, priv)
            assert "s3cret" not in r.error and "refused" not in r.error, (auth, priv, r.error)
    with pytest.raises(NetSnmpError, match="refused the session options"):
        Session(["-v", "3", "-u", "u", "-l", "authNoPriv", "-a", "NOT-A-HASH", "-A", "auth-key-123",
                 f"udp:127.0.0.1:{port}"])


def test_bench_agents_answer_like_snmpsim(sim: tuple[SnmpSim, AgentSpec], tmp_path: Path) -> None:
    """``bench snmp``'s fast agents serve the same walk file with the same values as snmpsim."""
    from simulators.snmp import FastAgents

    s, agent = sim
    agent.write(tmp_path)
    model_ports = {i: f"sw:p{i}" for i in range(1, 61)}
    with FastAgents(tmp_path, free_udp_port()) as fast:
        fast.wait("sw-long", 30)
        a = poll_one(Target("sw-long", "127.0.0.1", s.port, "c", model_ports), _cfg(max_repetitions=25), {})
        b = poll_one(Target("sw-long", "127.0.0.1", fast.port, "c", model_ports), _cfg(max_repetitions=25), {})
    assert a.reachable and b.reachable and (a.uptime, a.ports) == (b.uptime, b.ports)


def test_bench_agents_drop_bad_requests_and_keep_answering(tmp_path: Path) -> None:
    """Garbage, a truncated request, an unknown community, SNMPv1, a SET: dropped and counted (as a
    real agent drops them), never the end of the agent."""
    import socket
    import time

    from simulators.snmp import FastAgents, _answers, _tlv

    data = tmp_path / "data"
    data.mkdir()
    AgentSpec("sw-a", "sw-a", [PortSpec(1, "sw-a:p1")]).write(data)
    log = tmp_path / "agent.log"
    with FastAgents(data, free_udp_port(), log_file=log) as fast:
        fast.wait("sw-a", 30)
        def request(version: int, community: bytes, pdu_type: int) -> bytes:  # a GET of sysUpTime.0
            vb = _tlv(0x30, _tlv(0x06, bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])) + b"\x05\x00")
            pdu = _tlv(pdu_type, _tlv(0x02, b"\x07") + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + _tlv(0x30, vb))
            return _tlv(0x30, _tlv(0x02, bytes([version])) + _tlv(0x04, community) + pdu)

        get = request(1, b"sw-a", 0xA0)
        bad = [b"", b"\x30", b"garbage" * 10, get[:20], request(1, b"sw-b", 0xA0), request(0, b"sw-a", 0xA0),
               request(1, b"sw-a", 0xA3)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            for msg in bad:
                s.sendto(msg, ("127.0.0.1", fast.port))
                with pytest.raises(TimeoutError):
                    s.recv(65535)
            s.sendto(get, ("127.0.0.1", fast.port))
            answer = s.recv(65535)
        assert answer[0] == 0x30 and b"sw-a" in answer and b"\xa2" in answer  # a GetResponse
        assert _answers(fast.port, "sw-a")
        time.sleep(0.2)
    assert "dropped 4 requests" in log.read_text()  # counted (logged at each power of two)


def test_v3_auth_priv_session_reads_snmpsim(tmp_path: Path) -> None:
    """The binding's SNMPv3 path (USM keys derived by Net-SNMP from the pass phrases, SHA + AES,
    encrypted both ways) against snmpsim's v3 user. snmpsim serves a data file under the context
    named as its community (``-n public``), not under the empty context a switch uses."""
    pytest.importorskip("cryptography", reason="snmpsim's pysnmp encrypts with it (a dependency on main)")
    from supervisor.snmp._netsnmp import NetSnmpError, Session

    data = tmp_path / "data"
    data.mkdir()
    AgentSpec("public", "sw-v3", [PortSpec(i, f"sw-v3:p{i}", oper=2 if i == 3 else 1) for i in (1, 2, 3)],
              uptime=777).write(data)
    with SnmpSim(data, free_udp_port(), v3_user=("supervisor", "auth-key-123", "priv-key-123")) as sim:
        sim.wait("public", 60)
        base = ["-v", "3", "-u", "supervisor", "-l", "authPriv", "-a", "SHA", "-A", "auth-key-123", "-x", "AES",
                "-n", "public", "-r", "1", "-t", "5"]
        s = Session([*base, "-X", "priv-key-123", f"udp:127.0.0.1:{sim.port}"])
        vbs = s.bulk(["1.3.6.1.2.1.1.3", "1.3.6.1.2.1.2.2.1.8"], 1, 3)
        assert [(v[0][-1], v[2]) for v in vbs] == [(0, 777), (1, 1), (2, 1), (3, 2)]
    # a wrong privacy key, to another agent (Net-SNMP keeps one USM user per engine id and user name in
    # a process: the same user of the same engine would get the keys it already has)
    with SnmpSim(data, free_udp_port(), v3_user=("supervisor", "auth-key-123", "priv-key-123")) as other:
        other.wait("public", 60)
        wrong = Session([*base, "-X", "not-the-priv-key", f"udp:127.0.0.1:{other.port}"])
        with pytest.raises(NetSnmpError) as err:  # the agent cannot decrypt: no answer, or a report
            wrong.get(["1.3.6.1.2.1.1.3.0"])
        assert "Decryption error" in str(err.value) and "priv-key" not in str(err.value)
