"""Simulated SNMP agents: ``.snmprec`` walk files for snmpsim, generated from a city, and the
snmpsim process that serves them; and :class:`FastAgents`, the benchmark's agents serving the same
files at a small part of snmpsim's CPU (SNMPv2c GET/GETNEXT/GETBULK only; the tests use snmpsim).

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

import bisect
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


# -- a fast SNMPv2c agent for the benchmark -------------------------------------------------------
# Why hand-written (measured): 2 snmpsim processes answering 2,000 switches x 48 ports spent 180 s of
# CPU per 60-s round (docs/network-observed.md): snmpsim decodes and encodes every PDU with pyasn1
# objects; ``bench snmp`` with 200 switches, same load: snmpsim 13.3 s of CPU a round, this 0.06 s.
# This agent serves the same walk files (``<community>.snmprec``), but every variable binding is
# BER-encoded once at load time and an answer is a join of ready bytes found by ``bisect``. It answers
# only what the poller and the probes send (SNMPv2c GET, GETNEXT, GETBULK, read-only); the integration
# tests keep using real snmpsim (issue 14 requires it), this serves ``bench snmp`` only.

_BER_TAG = {"2": 0x02, "4": 0x04, "6": 0x06, "64": 0x40, "65": 0x41, "66": 0x42, "67": 0x43, "70": 0x46}
_GET, _GETNEXT, _GETBULK, _RESPONSE = 0xA0, 0xA1, 0xA5, 0xA2
_NO_SUCH_INSTANCE, _END_OF_MIB = b"\x81\x00", b"\x82\x00"
_MAX_ANSWER = 60_000  # bytes: a GETBULK answer stops at the last whole repetition under this (UDP)


def _oid_key(subids: list[int]) -> bytes:
    """A key whose byte order is the OIDs' order (4 bytes per sub-identifier): ``bisect`` on bytes."""
    return b"".join(s.to_bytes(4, "big") for s in subids)


def _ber_oid(subids: list[int]) -> bytes:
    body = bytearray([subids[0] * 40 + subids[1]])
    for sub in subids[2:]:
        chunk = [sub & 0x7F]
        rest = sub >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _ber_value(tag: str, value: str) -> bytes:
    t = _BER_TAG[tag.rstrip("x")]
    if tag.endswith("x"):
        return _tlv(t, bytes.fromhex(value))
    if t == 0x04:
        return _tlv(t, value.encode())
    if t == 0x06:
        return _ber_oid([int(x) for x in value.split(".")])
    if t == 0x40:
        return _tlv(t, bytes(int(x) for x in value.split(".")))
    n = int(value)
    if t == 0x02:  # signed INTEGER
        return _tlv(t, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))
    return _tlv(t, n.to_bytes(n.bit_length() // 8 + 1, "big"))  # unsigned: a leading 0 when the top bit is set


def _read_len(buf: bytes, i: int) -> tuple[int, int]:
    n = buf[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(buf[i + 1:i + 1 + k], "big"), i + 1 + k


def _decode_oid(body: bytes) -> list[int]:
    first = body[0]
    out = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    s = 0
    for b in body[1:]:
        s = (s << 7) | (b & 0x7F)
        if not b & 0x80:
            out.append(s)
            s = 0
    return out


class _Table:
    """One agent's walk: sorted keys and the ready varbinds (``SEQUENCE {oid, value}``)."""

    __slots__ = ("end", "keys", "vbs")

    def __init__(self, path: Path) -> None:
        rows: list[tuple[bytes, bytes]] = []
        for line in path.read_text(encoding="ascii").splitlines():
            if not line or line.startswith("#"):
                continue
            oid, tag, value = line.split("|", 2)
            subids = [int(x) for x in oid.split(".")]
            rows.append((_oid_key(subids), _tlv(0x30, _ber_oid(subids) + _ber_value(tag, value))))
        rows.sort()
        self.keys = [k for k, _ in rows]
        self.vbs = [v for _, v in rows]
        #: the OID (TLV) of the last variable: the name of an endOfMibView after it
        self.end = b""
        if rows:
            last = rows[-1][1]
            _, i = _read_len(last, 1)
            n, j = _read_len(last, i + 1)
            self.end = last[i:j + n]


def _answer(tables: dict[bytes, _Table], msg: bytes) -> bytes | None:
    """The response to one request, or None (not SNMPv2c, unknown community, not a read)."""
    if msg[0] != 0x30:
        return None
    _, i = _read_len(msg, 1)
    if msg[i:i + 3] != b"\x02\x01\x01":  # version 1 = SNMPv2c
        return None
    i += 3
    if msg[i] != 0x04:
        return None
    n, i = _read_len(msg, i + 1)
    community = msg[i:i + n]
    table = tables.get(community)
    pdu_type = msg[i + n]
    if table is None or pdu_type not in (_GET, _GETNEXT, _GETBULK):
        return None
    _, i = _read_len(msg, i + n + 1)
    n, j = _read_len(msg, i + 1)
    reqid = msg[i:j + n]  # echoed as sent
    i = j + n
    ints: list[int] = []
    for _ in range(2):  # error-status / non-repeaters, error-index / max-repetitions
        n, j = _read_len(msg, i + 1)
        ints.append(int.from_bytes(msg[j:j + n], "big", signed=True))
        i = j + n
    _, i = _read_len(msg, i + 1)  # the varbind list
    reqs: list[tuple[bytes, bytes]] = []  # (key, the OID as sent)
    while i < len(msg):
        _, i = _read_len(msg, i + 1)  # SEQUENCE
        n, j = _read_len(msg, i + 1)
        raw = msg[i:j + n]
        reqs.append((_oid_key(_decode_oid(msg[j:j + n])), raw))
        vn, vj = _read_len(msg, j + n + 1)  # the value (NULL)
        i = vj + vn
    keys, vbs, out = table.keys, table.vbs, []
    if pdu_type == _GET:
        for key, raw in reqs:
            k = bisect.bisect_left(keys, key)
            out.append(vbs[k] if k < len(keys) and keys[k] == key else _tlv(0x30, raw + _NO_SUCH_INSTANCE))
    else:
        nonrep, reps = (ints[0], ints[1]) if pdu_type == _GETBULK else (len(reqs), 0)
        nonrep = max(0, min(nonrep, len(reqs)))
        for key, raw in reqs[:nonrep]:
            k = bisect.bisect_right(keys, key)
            out.append(vbs[k] if k < len(keys) else _tlv(0x30, raw + _END_OF_MIB))
        cursors = [bisect.bisect_right(keys, key) for key, _ in reqs[nonrep:]]
        last = len(keys)
        # endOfMibView names the previous variable: the last one, or the request's when it was past it
        ends = [_tlv(0x30, (raw if k >= last else table.end) + _END_OF_MIB) for k, (_, raw) in
                zip(cursors, reqs[nonrep:], strict=True)]
        size = sum(len(v) for v in out)
        for _ in range(max(0, reps) if cursors else 0):
            row = [vbs[k] if k < last else ends[c] for c, k in enumerate(cursors)]
            size += sum(len(v) for v in row)
            if size > _MAX_ANSWER and len(out) > nonrep:
                break
            out += row
            cursors = [k + 1 for k in cursors]
            if min(cursors) > last:
                break  # every column is at endOfMibView: nothing more to say
    body = reqid + b"\x02\x01\x00\x02\x01\x00" + _tlv(0x30, b"".join(out))
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, community) + _tlv(_RESPONSE, body))


def serve(data_dir: Path, port: int) -> None:
    """Answer the agents of ``data_dir`` on 127.0.0.1:``port`` until killed (``python -m simulators.snmp``)."""
    tables = {p.stem.encode(): _Table(p) for p in sorted(data_dir.glob("*.snmprec"))}
    dropped = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # a burst of concurrent requests waits here
        s.bind(("127.0.0.1", port))
        print(f"serving {len(tables)} agents on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        while True:
            msg, addr = s.recvfrom(65535)
            try:
                answer = _answer(tables, msg)
            except (IndexError, ValueError):
                answer = None
            if answer is None:
                dropped += 1  # not ours or malformed: a real agent drops it too
                if dropped & (dropped - 1) == 0:
                    print(f"dropped {dropped} requests (malformed, unknown community or not a read)",
                          file=sys.stderr, flush=True)
                continue
            s.sendto(answer, addr)


class FastAgents(SnmpSim):
    """:class:`SnmpSim`'s interface over :func:`serve` (a ``python -m simulators.snmp`` process):
    SNMPv2c only, the walk files read once at start (rewriting a file later changes nothing)."""

    def start(self, probe: str | None = None, timeout: float = 60.0) -> None:
        if self.v3_user is not None:
            raise ValueError("FastAgents answers SNMPv2c only: use SnmpSim for SNMPv3")
        out = open(self.log_file, "wb") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "simulators.snmp", str(self.data_dir), str(self.port)],
                                     stdout=out, stderr=subprocess.STDOUT)
        if probe is not None:
            self.wait(probe, timeout)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
