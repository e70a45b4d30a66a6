"""Simulated SNMP agents: ``.snmprec`` walk files for snmpsim, generated from a city, and the
snmpsim process that serves them.

One snmpsim process serves every agent on one UDP port: SNMPv2c selects the data file by its
community (``<community>.snmprec``), so a switch's simulated agent is its community. A test or
the benchmark changes an agent at run time by rewriting its file (:meth:`AgentSpec.write`):
snmpsim re-indexes a data file whose modification time changed (whole seconds, hence the bump
of the time stamp in :func:`write_snmprec`).

What an agent answers: ``sysDescr``, ``sysObjectID``, ``sysUpTime``, ``sysName``; per port the
IF-MIB ``ifIndex``, ``ifDescr``, ``ifAdminStatus``, ``ifOperStatus``, ``ifInErrors``,
``ifOutErrors``, ``ifName``, ``ifHCInOctets``, ``ifHCOutOctets``; and the LLDP-MIB
``lldpRemTable`` (chassis id, port id, system name) of its neighbours.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYS = "1.3.6.1.2.1.1"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
LLDP_REM = "1.0.8802.1.1.2.1.4.1.1"

# snmprec type tags
_INT, _STR, _OID, _C32, _TT, _C64 = "2", "4", "6", "65", "67", "70"


@dataclass
class PortSpec:
    ifindex: int
    name: str
    admin: int = 1  # up(1) down(2)
    oper: int = 1
    in_octets: int = 0
    out_octets: int = 0
    in_errors: int = 0
    out_errors: int = 0


@dataclass
class Neighbour:
    local_ifindex: int
    sys_name: str  # the remote switch's sysName (the model's switch id)
    port_id: str  # the remote port (the model's port id)


@dataclass
class AgentSpec:
    community: str
    sys_name: str
    ports: list[PortSpec] = field(default_factory=list)
    uptime: int = 100_000  # TimeTicks (1/100 s)
    neighbours: list[Neighbour] = field(default_factory=list)

    def port(self, ifindex: int) -> PortSpec:
        return next(p for p in self.ports if p.ifindex == ifindex)

    def records(self) -> list[tuple[str, str, str]]:
        recs: list[tuple[str, str, str]] = [
            (f"{SYS}.1.0", _STR, "urban-supervisor simulated switch"),
            (f"{SYS}.2.0", _OID, "1.3.6.1.4.1.8072.3.2.10"),
            (f"{SYS}.3.0", _TT, str(self.uptime)),
            (f"{SYS}.5.0", _STR, self.sys_name),
        ]
        for p in self.ports:
            i = p.ifindex
            recs += [
                (f"{IF_ENTRY}.1.{i}", _INT, str(i)),
                (f"{IF_ENTRY}.2.{i}", _STR, p.name),
                (f"{IF_ENTRY}.7.{i}", _INT, str(p.admin)),
                (f"{IF_ENTRY}.8.{i}", _INT, str(p.oper)),
                (f"{IF_ENTRY}.14.{i}", _C32, str(p.in_errors % 2**32)),
                (f"{IF_ENTRY}.20.{i}", _C32, str(p.out_errors % 2**32)),
                (f"{IFX_ENTRY}.1.{i}", _STR, p.name),
                (f"{IFX_ENTRY}.6.{i}", _C64, str(p.in_octets % 2**64)),
                (f"{IFX_ENTRY}.10.{i}", _C64, str(p.out_octets % 2**64)),
            ]
        for n, nb in enumerate(self.neighbours, start=1):
            idx = f"0.{nb.local_ifindex}.{n}"
            recs += [
                (f"{LLDP_REM}.4.{idx}", _INT, "7"),  # chassis id subtype: local
                (f"{LLDP_REM}.5.{idx}", _STR, nb.sys_name),
                (f"{LLDP_REM}.6.{idx}", _INT, "7"),  # port id subtype: local
                (f"{LLDP_REM}.7.{idx}", _STR, nb.port_id),
                (f"{LLDP_REM}.9.{idx}", _STR, nb.sys_name),
            ]
        recs.sort(key=lambda r: tuple(int(x) for x in r[0].split(".")))
        return recs

    def write(self, data_dir: Path) -> Path:
        return write_snmprec(data_dir / f"{self.community}.snmprec", self.records())


def write_snmprec(path: Path, records: list[tuple[str, str, str]]) -> Path:
    """Write ``path`` atomically, with a modification time at least one whole second later than
    the previous one and than now (snmpsim compares whole seconds to notice a change)."""
    old = path.stat().st_mtime if path.exists() else 0.0
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in records), encoding="ascii")
    stamp = float(int(max(old, time.time())) + 2)
    os.utime(tmp, (stamp, stamp))
    tmp.replace(path)
    return path


def agents_for_city(city: dict[str, Any]) -> dict[str, AgentSpec]:
    """One agent per switch of a city file (as a dict) that has a ``mgmt`` address: its ports in
    order (``ifindex`` as the city file gives it, else the position from 1), all up, and LLDP
    neighbours as designed (each uplink seen from both ends). The community is the switch id."""
    switches = [s for s in city.get("switches", []) if s.get("mgmt")]
    agents: dict[str, AgentSpec] = {}
    ifindex: dict[str, tuple[str, int]] = {}
    for sw in city.get("switches", []):
        for n, p in enumerate(sw.get("ports", []), start=1):
            ifindex[p["id"]] = (sw["id"], int(p.get("ifindex", n)))
    for sw in switches:
        ports = [PortSpec(ifindex[p["id"]][1], p["id"]) for p in sw.get("ports", [])]
        agents[sw["id"]] = AgentSpec(sw["id"], sw["id"], ports)
    for sw in city.get("switches", []):
        up = sw.get("uplink")
        if not up:
            continue
        here, there = ifindex[up["port"]], ifindex[up["to"]]
        if sw["id"] in agents:
            agents[sw["id"]].neighbours.append(Neighbour(here[1], there[0], up["to"]))
        if there[0] in agents:
            agents[there[0]].neighbours.append(Neighbour(there[1], sw["id"], up["port"]))
    return agents


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snmpsim_exe() -> str:
    exe = Path(sys.executable).with_name("snmpsim-command-responder")
    found = str(exe) if exe.exists() else shutil.which("snmpsim-command-responder")
    if not found:
        raise RuntimeError("snmpsim-command-responder not found: pip install snmpsim (a test dependency)")
    return found


class SnmpSim:
    """An snmpsim process serving ``data_dir`` on 127.0.0.1:``port`` (UDP), SNMPv2c and an SNMPv3
    user (``v3_user``, SHA/AES, for the v3 tests). Use as a context manager."""

    def __init__(self, data_dir: Path, port: int | None = None, *, v3_user: tuple[str, str, str] | None = None,
                 log_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_udp_port()
        self.v3_user = v3_user
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SnmpSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, probe: str | None = None, timeout: float = 60.0) -> None:
        cache = self.data_dir.parent / f"{self.data_dir.name}-cache"
        cache.mkdir(exist_ok=True)
        args = [_snmpsim_exe(), f"--data-dir={self.data_dir}", f"--cache-dir={cache}",
                f"--agent-udpv4-endpoint=127.0.0.1:{self.port}"]
        if self.log_file is None:
            args.append("--logging-method=null")  # its per-request log costs more than the answer
        if self.v3_user is not None:
            user, auth, priv = self.v3_user
            args += [f"--v3-user={user}", f"--v3-auth-key={auth}", "--v3-auth-proto=SHA",
                     f"--v3-priv-key={priv}", "--v3-priv-proto=AES"]
        out = open(self.log_file, "wb") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}  # CI containers run as root; snmpsim refuses otherwise
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        if probe is not None:
            self.wait(probe, timeout)

    def wait(self, community: str, timeout: float = 60.0) -> None:
        """Until the agent ``community`` answers a GET (snmpsim indexes every file first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"snmpsim exited with {self.proc.returncode}")
            if _answers(self.port, community):
                return
            time.sleep(0.2)
        raise TimeoutError(f"snmpsim on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _answers(port: int, community: str) -> bool:
    """A raw SNMPv2c GET of sysUpTime.0 (hand-encoded: no SNMP library needed to probe)."""
    oid = bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])
    vb = _tlv(0x30, _tlv(0x06, oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _tlv(0x02, b"\x01") + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + _tlv(0x30, vb))
    msg = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(msg, ("127.0.0.1", port))
            data = s.recv(65535)
        except OSError:
            return False
    return len(data) > 0


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


def iter_city_agents(n_switches: int, n_ports: int) -> Iterator[AgentSpec]:
    """Agents for the benchmark: ``n_switches`` switches of ``n_ports`` ports with traffic."""
    for s in range(n_switches):
        name = f"bsw-{s:05d}"
        ports = [PortSpec(i, f"{name}:p{i}", in_octets=10**9 * i, out_octets=10**8 * i) for i in range(1, n_ports + 1)]
        yield AgentSpec(name, name, ports)
