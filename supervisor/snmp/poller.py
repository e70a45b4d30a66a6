"""Polling the switches over SNMP: ``sysUpTime`` and, per port, IF-MIB status, octets and errors.

**Library: Net-SNMP's C library, chosen by measurement**, called through
:mod:`supervisor.snmp._netsnmp` (ctypes: ezsnmp's own ``bulk_get`` parses every value with a regex
compiled per value, 18x the CPU, measured there). Against pysnmp: the same poll (``sysUpTime``
then GETBULK of ``ifAdminStatus``, ``ifOperStatus``, ``ifInErrors``, ``ifOutErrors``,
``ifHCInOctets``, ``ifHCOutOctets``) of 50 snmpsim agents x 48 ports, 32 at a time, on the shared
2-core machine (load average 7-10): pysnmp 7.1.30 (asyncio, pure Python) 4.02 s of CPU, ezsnmp
2.5.0 1.06 s, for the same wall time (29.0 s against 28.9 s: the simulator was the bottleneck).
Net-SNMP decodes the PDUs in C; pysnmp builds a pyasn1 object per value. At 2,000 switches x 48
ports a minute, pysnmp would need more than a core. Net-SNMP's calls are synchronous: a bounded
thread pool (``snmp.concurrency``) runs the requests, Net-SNMP waits for the answers outside the
GIL. The trap receiver (:mod:`supervisor.snmp.traps`) uses pysnmp: ezsnmp cannot receive, and
traps are few.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drivers._contract import Value
from supervisor.snmp.config import SnmpConfig, SnmpV2c, SnmpV3
from supervisor.storage import schema

if TYPE_CHECKING:
    from supervisor.model import CityModel

log = logging.getLogger(__name__)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
#: (column OID, field) of what is read per port, in request order
COLUMNS = (
    ("1.3.6.1.2.1.2.2.1.7", "admin"),
    ("1.3.6.1.2.1.2.2.1.8", "oper"),
    ("1.3.6.1.2.1.2.2.1.14", "in_errors"),
    ("1.3.6.1.2.1.2.2.1.20", "out_errors"),
    ("1.3.6.1.2.1.31.1.1.1.6", "in_octets"),
    ("1.3.6.1.2.1.31.1.1.1.10", "out_octets"),
)
#: IF-MIB ifOperStatus / ifAdminStatus values
IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
#: oper states that mean the link is down (dormant and testing are not failures)
OPER_DOWN = frozenset({2, 6, 7})


class CredentialsError(ValueError):
    """A switch names credentials the configuration does not have."""


@dataclass(frozen=True, slots=True)
class Target:
    switch: str
    host: str
    port: int
    credentials: str
    ports: Mapping[int, str]  # ifIndex -> the model's port id
    zone: str | None = None


def targets_from_model(model: CityModel, cfg: SnmpConfig) -> list[Target]:
    """One target per switch with a ``mgmt`` address; :class:`CredentialsError` names every switch
    whose credentials the configuration lacks."""
    out: list[Target] = []
    missing: list[str] = []
    for sw in model.switches.values():
        if sw.mgmt is None:
            continue
        if sw.mgmt.credentials not in cfg.credentials:
            missing.append(f"{sw.id}: credentials {sw.mgmt.credentials!r}")
            continue
        ports = {model.ports[p].ifindex or i: p for i, p in enumerate(sw.ports, start=1)}
        site = model.sites.get(sw.site)
        out.append(Target(sw.id, sw.mgmt.host, sw.mgmt.port, sw.mgmt.credentials, ports,
                          site.zone if site is not None else None))
    if missing:
        raise CredentialsError("switches name SNMP credentials not in snmp.credentials: " + "; ".join(missing))
    return out


@dataclass(slots=True)
class PortSample:
    admin: int = 0
    oper: int = 0
    in_errors: int | None = None
    out_errors: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None


@dataclass(slots=True)
class PollResult:
    target: Target
    ts: float
    reachable: bool
    uptime: int | None = None  # TimeTicks (1/100 s)
    ports: dict[int, PortSample] = field(default_factory=dict)
    error: str | None = None
    varbinds: int = 0  # variables received (sysUpTime, the columns, the rows past a column's end)


def session_args(cred: SnmpV2c | SnmpV3) -> dict[str, Any]:
    """ezsnmp Session keywords for ``cred`` (secrets read here only)."""
    if isinstance(cred, SnmpV2c):
        return {"version": "2c", "community": cred.community.get_secret_value()}
    args: dict[str, Any] = {"version": "3", "security_username": cred.user, "security_level": cred.level}
    if cred.auth_protocol is not None and cred.auth_key is not None:
        args |= {"auth_protocol": cred.auth_protocol, "auth_passphrase": cred.auth_key.get_secret_value()}
    if cred.priv_protocol is not None and cred.priv_key is not None:
        args |= {"privacy_protocol": cred.priv_protocol, "privacy_passphrase": cred.priv_key.get_secret_value()}
    return args


def cli_args(target: Target, cred: SnmpV2c | SnmpV3, cfg: SnmpConfig) -> list[str]:
    """Net-SNMP's options for polling ``target`` with ``cred`` (secrets read here only, never logged)."""
    if isinstance(cred, SnmpV2c):
        args = ["-v", "2c", "-c", cred.community.get_secret_value()]
    else:
        args = ["-v", "3", "-u", cred.user, "-l", cred.level]
        if cred.auth_protocol is not None and cred.auth_key is not None:
            args += ["-a", cred.auth_protocol, "-A", cred.auth_key.get_secret_value()]
        if cred.priv_protocol is not None and cred.priv_key is not None:
            args += ["-x", cred.priv_protocol, "-X", cred.priv_key.get_secret_value()]
    peer = f"udp6:[{target.host}]:{target.port}" if ":" in target.host else f"udp:{target.host}:{target.port}"
    return [*args, "-r", str(cfg.retries), "-t", f"{cfg.timeout:g}", peer]


def poll_one(target: Target, cfg: SnmpConfig, sessions: dict[str, Any]) -> PollResult:
    """Poll one switch (blocking: run in the pool). Never raises: a failure is ``reachable=False``
    with the error (no secret in it: Net-SNMP's message names the host, not the community)."""
    from supervisor.snmp._netsnmp import NetSnmpError, Session, SnmpTimeout

    ts = time.time()
    try:
        session = sessions.get(target.switch)
        if session is None:
            session = sessions[target.switch] = Session(cli_args(target, cfg.credentials[target.credentials], cfg))
        result = PollResult(target, ts, True)
        _read(session, result, cfg.max_repetitions)
        return result
    except SnmpTimeout:
        return PollResult(target, ts, False, error=f"no answer after {cfg.retries + 1} tries of {cfg.timeout:g} s")
    except (NetSnmpError, ValueError) as exc:  # authentication, an error-status, a malformed answer...
        old = sessions.pop(target.switch, None)
        if old is not None:
            old.close()
        return PollResult(target, ts, False, error=f"{type(exc).__name__}: {exc}")


_UPTIME_SUBIDS = [int(x) for x in SYS_UPTIME.split(".")]
_COLUMN_SUBIDS = [[int(x) for x in oid.split(".")] for oid, _ in COLUMNS]


def _read(session: Any, result: PollResult, max_repetitions: int) -> None:
    """One GETBULK: ``sysUpTime`` (a non-repeater) and the six columns side by side, as many rows as
    the model has ports, up to ``max_repetitions``; a column is done at its end or past the model's
    highest ifIndex. More GETBULKs only when an agent has rows the model does not (VLAN interfaces
    between the ports...) or truncates its answer.

    Measured (200 switches x 48 ports, bench snmp's agents, same run): 10, 25 or 64 rows per request
    cost the same CPU (0.40-0.43 s a round): the cost is per value, not per request; one request per
    switch is fewer round trips. The values are kept in one list per port (a :class:`PortSample` is
    made once per port at the end, not a ``setattr`` per value)."""
    ports = result.target.ports
    highest = max(ports, default=0)
    reps = max(1, min(max_repetitions, len(ports)))
    ncol = len(COLUMNS)
    rows: dict[int, list[int | None]] = {}
    cursor: list[str | None] = [oid for oid, _ in COLUMNS]  # the last OID read per column (None: done)
    vbs = session.bulk([SYS_UPTIME[:-2], *cursor], 1, reps)
    result.varbinds = len(vbs)
    if vbs and vbs[0][0] == _UPTIME_SUBIDS and vbs[0][2] is not None:
        result.uptime = vbs[0][2]
    vbs = vbs[1:]
    live = list(range(ncol))
    for _ in range(highest + 2 if highest else 64):  # bounded: a broken agent cannot loop us
        n = len(live)
        progressed = False
        for i, (name, _t, value) in enumerate(vbs):
            c = live[i % n]
            if cursor[c] is None:
                continue
            col = _COLUMN_SUBIDS[c]
            k = len(col)
            if value is None or len(name) != k + 1 or name[:k] != col:
                cursor[c] = None  # left the column, or endOfMibView / noSuchObject
                continue
            ifindex = name[k]
            row = rows.get(ifindex)
            if row is None:
                row = rows[ifindex] = [None] * ncol
            row[c] = value
            if ifindex >= highest:
                cursor[c] = None  # past the model's last port: the rest is not stored
            else:
                cursor[c] = f"{COLUMNS[c][0]}.{ifindex}"
            progressed = True
        live = [c for c in range(ncol) if cursor[c] is not None]
        if not live or not progressed:
            break
        vbs = session.bulk([cursor[c] for c in live], 0, reps)
        result.varbinds += len(vbs)
        if not vbs:
            break
    result.ports = {i: PortSample(r[0] or 0, r[1] or 0, r[2], r[3], r[4], r[5]) for i, r in rows.items()}


# -- rates ----------------------------------------------------------------------------------------
_C64, _C32 = 2**64, 2**32


def counter_delta(prev: int, cur: int, bits: int) -> int | None:
    """``cur - prev`` of a counter of ``bits`` bits; a wrap is taken when the previous value was in the
    top half of the range (a counter about to wrap), anything else going backwards is a reset
    (cleared counters, a replaced line card): ``None``, never a negative delta."""
    d: int = int(cur) - int(prev)
    if d >= 0:
        return d
    modulo: int = 1 << bits
    if prev >= modulo // 2 and cur < modulo // 2:
        return d + modulo
    return None


class Rates:
    """The previous sample of every port, to turn counters into rates."""

    def __init__(self) -> None:
        self._prev: dict[tuple[str, int], tuple[float, int, PortSample]] = {}

    def forget(self, switches: set[str]) -> None:
        self._prev = {k: v for k, v in self._prev.items() if k[0] not in switches}

    def fields(self, r: PollResult, ifindex: int, s: PortSample) -> dict[str, Value]:
        key = (r.target.switch, ifindex)
        out: dict[str, Value] = {}
        prev = self._prev.get(key)
        self._prev[key] = (r.ts, r.uptime or 0, s)
        if prev is None or r.uptime is None:
            return out
        pts, pup, ps = prev
        dt = r.ts - pts
        if dt <= 0 or r.uptime < pup:  # the agent rebooted (sysUpTime went backwards): no rate
            return out
        for name, bits, scale in (("in_octets", 64, 8.0), ("out_octets", 64, 8.0), ("in_errors", 32, 1.0),
                                  ("out_errors", 32, 1.0)):
            a, b = getattr(ps, name), getattr(s, name)
            if a is None or b is None:
                continue
            d = counter_delta(a, b, bits)
            if d is not None:
                out[_RATE_NAME[name]] = d * scale / dt
        return out


_RATE_NAME = {"in_octets": "in_bps", "out_octets": "out_bps", "in_errors": "in_errors_ps",
              "out_errors": "out_errors_ps"}


@lru_cache(maxsize=1 << 18)
def _series(switch: str, port: str, zone: str | None) -> str:
    """A port's ``network`` series (tags escaped and checked once, not at every round)."""
    return schema.NETWORK.series({"switch": switch, "port": port, "zone": zone})


def network_lines(results: list[PollResult], rates: Rates) -> list[bytes]:
    """The ``network`` points of one round: a switch point (port ``-``) and one per known port."""
    lines: list[bytes] = []
    line = schema.NETWORK.series_line
    status = IF_STATUS
    for r in results:
        t = r.target
        sw_fields: dict[str, Value] = {"reachable": r.reachable}
        if r.uptime is not None:
            sw_fields["uptime_s"] = r.uptime / 100.0
        lines.append(line(_series(t.switch, "-", t.zone), sw_fields, r.ts))
        for ifindex, s in sorted(r.ports.items()):
            port = t.ports.get(ifindex)
            if port is None:
                continue  # an interface the model does not have (VLAN, loopback...)
            f: dict[str, Value] = {"status": status.get(s.oper) or str(s.oper),
                                   "admin": status.get(s.admin) or str(s.admin)}
            if s.in_octets is not None:
                f["in_octets"] = float(s.in_octets)
            if s.out_octets is not None:
                f["out_octets"] = float(s.out_octets)
            if s.in_errors is not None:
                f["in_errors"] = s.in_errors
            if s.out_errors is not None:
                f["out_errors"] = s.out_errors
            f.update(rates.fields(r, ifindex, s))
            lines.append(line(_series(t.switch, port, t.zone), f, r.ts))
    return lines


def evidence(results: list[PollResult]) -> dict[str, str]:
    """Elements observed down: unreachable switches, and ports oper-down while admin-up."""
    out: dict[str, str] = {}
    for r in results:
        if not r.reachable:
            out[r.target.switch] = f"SNMP: {r.error or 'no answer'}"
            continue
        for ifindex, s in r.ports.items():
            port = r.target.ports.get(ifindex)
            if port is not None and s.admin == 1 and s.oper in OPER_DOWN:
                out[port] = f"SNMP: ifOperStatus {IF_STATUS[s.oper]}, ifAdminStatus up"
    return out


class Poller:
    """Polls every target once per :meth:`poll_round`, ``cfg.concurrency`` at a time."""

    def __init__(self, cfg: SnmpConfig, targets: list[Target]) -> None:
        self.cfg = cfg
        self.targets = targets
        self.rates = Rates()
        self._sessions: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="snmp-poll")

    def set_targets(self, targets: list[Target]) -> None:
        """Replace the targets (a model reload): removed or changed switches lose their session and
        their previous counters (no rate across a change of address)."""
        old = {t.switch: t for t in self.targets}
        gone = {s for s, t in old.items() if s not in {n.switch for n in targets}}
        gone |= {t.switch for t in targets if t.switch in old and old[t.switch] != t}
        for s in gone:
            self._sessions.pop(s, None)
        self.rates.forget(gone)
        self.targets = list(targets)

    async def poll_round(self) -> list[PollResult]:
        loop = asyncio.get_running_loop()
        cfg, sessions = self.cfg, self._sessions
        return list(await asyncio.gather(*(loop.run_in_executor(self._pool, poll_one, t, cfg, sessions)
                                           for t in self.targets)))

    def round_sync(self) -> list[PollResult]:
        return list(self._pool.map(lambda t: poll_one(t, self.cfg, self._sessions), self.targets))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


Observer = Callable[[dict[str, str]], None]
