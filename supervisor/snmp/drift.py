"""As built against as designed: the LLDP neighbours the switches report, against the model's uplinks.

Each polled switch's LLDP-MIB ``lldpRemTable`` (``lldpRemSysName``, ``lldpRemChassisId``,
``lldpRemPortId``, indexed by ``lldpRemLocalPortNum``) says who is at the other end of each of
its ports. The local port number is taken as the port's ``ifIndex`` (what most switches do; the
city file's ``ifindex`` says it otherwise). The remote system is recognised by its ``sysName``
(else its chassis id) being a switch id of the model, and its port by ``lldpRemPortId`` being a
port id of that switch, or the port's local part after ``:``.

Per designed uplink, seen from both ends (only the ends that are polled):

- ``missing``: no neighbour on the port;
- ``miscabled``: a neighbour, but another switch or port than designed;
- ``unexpected``: a switch of the model seen on a port where no uplink is designed.

A neighbour that is not a switch of the model (a camera, a server announcing LLDP) is not drift.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.snmp.config import SnmpConfig
from supervisor.snmp.poller import Target, session_args

if TYPE_CHECKING:
    from supervisor.model import CityModel

log = logging.getLogger(__name__)

LLDP_REM = "1.0.8802.1.1.2.1.4.1.1"
_CHASSIS, _PORT_ID, _SYS_NAME = f"{LLDP_REM}.5", f"{LLDP_REM}.7", f"{LLDP_REM}.9"


@dataclass(frozen=True, slots=True)
class Neighbour:
    local_ifindex: int
    sys_name: str
    chassis: str
    port_id: str


@dataclass(frozen=True, slots=True)
class Drift:
    switch: str
    port: str  # the local port (the model's id)
    kind: str  # missing | miscabled | unexpected
    expected: str | None  # the designed remote port
    seen: str | None  # what LLDP reports (remote switch:port as the model names them when it can)
    link: str | None  # the designed link (fibre/copper) of the uplink

    def as_dict(self) -> dict[str, Any]:
        return {"switch": self.switch, "port": self.port, "kind": self.kind, "expected": self.expected,
                "seen": self.seen, "link": self.link}

    @property
    def text(self) -> str:
        if self.kind == "missing":
            return f"port {self.port}: no LLDP neighbour, designed {self.expected} ({self.link})"
        if self.kind == "miscabled":
            return f"port {self.port}: LLDP sees {self.seen}, designed {self.expected} ({self.link})"
        return f"port {self.port}: LLDP sees {self.seen}, no link designed there"


def read_lldp(target: Target, cfg: SnmpConfig) -> list[Neighbour] | None:
    """The switch's LLDP neighbours; ``None`` when it does not answer."""
    from ezsnmp import Session

    try:
        s = Session(hostname=target.host, port_number=target.port, timeout=cfg.timeout, retries=cfg.retries,
                    print_oids_numerically=True, set_max_repeaters_to_num=cfg.max_repetitions,
                    **session_args(cfg.credentials[target.credentials]))
        cols: dict[str, dict[tuple[int, int], str]] = {}
        for col in (_CHASSIS, _PORT_ID, _SYS_NAME):
            rows = cols[col] = {}
            for r in s.bulk_walk(col):
                full = f"{r.oid.lstrip('.')}.{r.index}"  # Net-SNMP splits the OID at its last sub-id
                if not full.startswith(col + "."):
                    continue
                parts = full[len(col) + 1:].split(".")  # timeMark.localPortNum.remIndex
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    rows[(int(parts[1]), int(parts[2]))] = str(r.value)
    except Exception as exc:
        log.warning("LLDP of %s not read: %s: %s", target.switch, type(exc).__name__, exc)
        return None
    keys = sorted(set(cols[_CHASSIS]) | set(cols[_SYS_NAME]))
    return [Neighbour(k[0], cols[_SYS_NAME].get(k, ""), cols[_CHASSIS].get(k, ""), cols[_PORT_ID].get(k, ""))
            for k in keys]


def _remote(model: CityModel, nb: Neighbour) -> tuple[str | None, str]:
    """(the model's switch id or None, remote as 'switch:port' in the model's names when it can)."""
    sw = nb.sys_name if nb.sys_name in model.switches else nb.chassis if nb.chassis in model.switches else None
    if sw is None:
        return None, f"{nb.sys_name or nb.chassis} {nb.port_id}".strip()
    ports = model.switches[sw].ports
    if nb.port_id in ports:
        return sw, nb.port_id
    local = [p for p in ports if p.split(":", 1)[-1] == nb.port_id]
    return sw, local[0] if len(local) == 1 else f"{sw} {nb.port_id}"


def designed(model: CityModel) -> dict[str, tuple[str, str]]:
    """Every uplink end: local port -> (remote port, link)."""
    out: dict[str, tuple[str, str]] = {}
    for sw in model.switches.values():
        if sw.uplink is not None:
            out[sw.uplink.port] = (sw.uplink.to, sw.uplink.link)
            out[sw.uplink.to] = (sw.uplink.port, sw.uplink.link)
    return out


def compare(model: CityModel, seen: dict[str, list[Neighbour]]) -> list[Drift]:
    """Drift of the switches in ``seen`` (switch -> its LLDP neighbours) against the model."""
    want = designed(model)
    out: list[Drift] = []
    for switch, neighbours in sorted(seen.items()):
        sw = model.switches[switch]
        by_ifindex = {model.ports[p].ifindex or i: p for i, p in enumerate(sw.ports, start=1)}
        at: dict[str, list[tuple[str | None, str]]] = {}
        for nb in neighbours:
            port = by_ifindex.get(nb.local_ifindex)
            if port is not None:
                at.setdefault(port, []).append(_remote(model, nb))
        for port in sw.ports:
            exp = want.get(port)
            got = at.get(port, [])
            in_model = [r for s, r in got if s is not None]
            if exp is not None:
                if not got:
                    out.append(Drift(switch, port, "missing", exp[0], None, exp[1]))
                elif exp[0] not in [r for _, r in got]:
                    out.append(Drift(switch, port, "miscabled", exp[0], ", ".join(r for _, r in got), exp[1]))
            elif in_model:
                out.append(Drift(switch, port, "unexpected", None, ", ".join(in_model), None))
    return out


def drift(model: CityModel, targets: list[Target], cfg: SnmpConfig) -> tuple[list[Drift], list[str]]:
    """Read every target's LLDP (``cfg.concurrency`` at a time) and compare; also the switches
    that did not answer (their links are not judged)."""
    with ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="snmp-lldp") as pool:
        got = dict(zip([t.switch for t in targets], pool.map(lambda t: read_lldp(t, cfg), targets), strict=True))
    seen = {s: nbs for s, nbs in got.items() if nbs is not None}
    return compare(model, seen), sorted(s for s, nbs in got.items() if nbs is None)
