"""The SNMP trap receiver: ``linkDown``, ``linkUp``, ``coldStart``/``warmStart`` (v2c and v3 USM).

pysnmp (asyncio) in a thread of its own: ezsnmp, the poller's library, cannot receive. Every
credential of ``snmp.credentials`` is accepted: a v2c community under its credentials name, a v3
user with its keys (a v3 trap is authenticated against the sending engine's id: the credential's
``engine_id``, hex, is required for traps). A trap is then attributed to a switch by its source
address (a ``mgmt.host`` of the city file) and the credentials it used (the switch's); anything
else is refused and counted by reason: ``unknown_agent`` (no switch at that address with those
credentials), ``ambiguous`` (several), ``bad_credentials`` (a wrong community, an unknown user, a
wrong digest: pysnmp drops those before us; counted from its SNMPv2-MIB/USM statistics),
``not_a_link_trap`` (another trap type; the switch is known, the trap is not acted on).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.snmp.config import SnmpConfig, SnmpV2c, SnmpV3

if TYPE_CHECKING:
    from supervisor.snmp.poller import Target

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
TRAPS = {"1.3.6.1.6.3.1.1.5.1": "coldStart", "1.3.6.1.6.3.1.1.5.2": "warmStart",
         "1.3.6.1.6.3.1.1.5.3": "linkDown", "1.3.6.1.6.3.1.1.5.4": "linkUp"}
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7."
IF_OPER = "1.3.6.1.2.1.2.2.1.8."
#: pysnmp's own counters of what it refused before any callback (wrong community, USM failures)
_BAD = (("__SNMPv2-MIB", "snmpInBadCommunityNames"),
        ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
        ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
        ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),
        ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"))


@dataclass(frozen=True, slots=True)
class Trap:
    switch: str
    kind: str  # linkDown | linkUp | coldStart | warmStart
    ifindex: int | None = None
    admin: int | None = None
    oper: int | None = None


_AUTH = {"MD5": "USM_AUTH_HMAC96_MD5", "SHA": "USM_AUTH_HMAC96_SHA", "SHA-224": "USM_AUTH_HMAC128_SHA224",
         "SHA-256": "USM_AUTH_HMAC192_SHA256", "SHA-384": "USM_AUTH_HMAC256_SHA384",
         "SHA-512": "USM_AUTH_HMAC384_SHA512"}
_PRIV = {"DES": "USM_PRIV_CBC56_DES", "AES": "USM_PRIV_CFB128_AES", "AES-192": "USM_PRIV_CFB192_AES",
         "AES-256": "USM_PRIV_CFB256_AES"}


class TrapReceiver:
    """Receives on ``cfg.traps.host:port``; hands each accepted trap to ``on_trap`` (its thread)."""

    def __init__(self, cfg: SnmpConfig, targets: list[Target], on_trap: Callable[[Trap], None]) -> None:
        self.cfg = cfg
        self.on_trap = on_trap
        self.received = 0
        self.accepted = 0
        self._refused: Counter[str] = Counter()
        self._by_addr: dict[tuple[str, str], list[str]] = {}
        self._user_creds: dict[str, list[str]] = {}
        self.set_targets(targets)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def set_targets(self, targets: list[Target]) -> None:
        """The switches traps are accepted from (for a model reload)."""
        by_addr: dict[tuple[str, str], list[str]] = {}
        for t in targets:
            by_addr.setdefault((t.host, t.credentials), []).append(t.switch)
        self._by_addr = by_addr

    @property
    def refused(self) -> dict[str, int]:
        out = dict(self._refused)
        bad = self._bad_credentials()
        if bad:
            out["bad_credentials"] = bad
        return out

    def _bad_credentials(self) -> int:
        if self._engine is None:
            return 0
        builder = self._engine.get_mib_builder()
        total = 0
        for module, name in _BAD:
            try:
                (sym,) = builder.import_symbols(module, name)
                total += int(sym.syntax)
                if int(sym.syntax):
                    log.debug("SNMP traps refused by pysnmp: %s %d", name, int(sym.syntax))
            except Exception:  # noqa: S112 (a counter this pysnmp does not have)
                continue
        return total

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="snmp-traps", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the SNMP trap receiver did not start")
        if self._error is not None:
            raise RuntimeError(f"SNMP trap receiver on {self.cfg.traps.host}:{self.cfg.traps.port}: "
                               f"{self._error}") from self._error

    def stop(self, timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._engine = self._build()
        except BaseException as exc:  # a port in use, a bad key: said by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                self._engine.close_dispatcher()
            finally:
                loop.close()

    def _build(self) -> Any:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import ntfrcv

        eng = engine.SnmpEngine()
        tc = self.cfg.traps
        config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode((tc.host, tc.port)))
        users: dict[str, list[str]] = {}
        for name, cred in self.cfg.credentials.items():
            if isinstance(cred, SnmpV2c):
                config.add_v1_system(eng, name, cred.community.get_secret_value())
            elif isinstance(cred, SnmpV3):
                if cred.engine_id is None:
                    log.warning("snmp.credentials.%s: no engine_id, so no v3 trap is accepted with it", name)
                    continue
                auth = getattr(config, _AUTH[cred.auth_protocol]) if cred.auth_protocol else config.USM_AUTH_NONE
                priv = getattr(config, _PRIV[cred.priv_protocol]) if cred.priv_protocol else config.USM_PRIV_NONE
                from pysnmp.proto.rfc1902 import OctetString

                config.add_v3_user(
                    eng, cred.user, auth, cred.auth_key.get_secret_value() if cred.auth_key else None, priv,
                    cred.priv_key.get_secret_value() if cred.priv_key else None,
                    securityEngineId=OctetString(hexValue=cred.engine_id))
                users.setdefault(cred.user, []).append(name)
        self._user_creds = users
        ntfrcv.NotificationReceiver(eng, self._on_notification)
        eng.transport_dispatcher.job_started(1)
        return eng

    # -- one notification --------------------------------------------------------------------------
    def _on_notification(self, eng: Any, state_ref: Any, ctx_engine: Any, ctx_name: Any,  # noqa: PLR0917 (pysnmp calls it so)
                         var_binds: Any, cb_ctx: Any) -> None:
        self.received += 1
        try:
            exec_ctx = eng.observer.get_execution_context("rfc3412.receiveMessage:request")
            host = str(exec_ctx["transportAddress"][0])
            security_name = str(exec_ctx["securityName"])
            binds = {str(oid): val for oid, val in var_binds}
            trap = self._parse(host, security_name, int(exec_ctx["securityModel"]), binds)
        except Exception:
            log.exception("SNMP trap not understood")
            self._refused["malformed"] += 1
            return
        if trap is None:
            return
        self.accepted += 1
        self.on_trap(trap)

    def _parse(self, host: str, security_name: str, model: int, binds: Mapping[str, Any]) -> Trap | None:
        creds = self._user_creds.get(security_name, []) if model == 3 else [security_name]
        switches = [s for c in creds for s in self._by_addr.get((host, c), [])]
        if not switches:
            self._refused["unknown_agent"] += 1
            log.warning("SNMP trap from %s refused: no switch of the city has that management address and "
                        "those credentials", host)
            return None
        if len(switches) > 1:
            self._refused["ambiguous"] += 1
            log.warning("SNMP trap from %s refused: switches %s share that address and credentials", host,
                        ", ".join(sorted(switches)))
            return None
        kind = TRAPS.get(str(binds.get(SNMP_TRAP_OID, "")))
        if kind is None:
            self._refused["not_a_link_trap"] += 1
            return None
        ifindex = admin = oper = None
        for oid, val in binds.items():
            if oid.startswith(IF_INDEX):
                ifindex = int(val)
            elif oid.startswith(IF_ADMIN):
                admin, ifindex = int(val), ifindex or int(oid.rsplit(".", 1)[1])
            elif oid.startswith(IF_OPER):
                oper, ifindex = int(val), ifindex or int(oid.rsplit(".", 1)[1])
        if kind in ("linkDown", "linkUp") and ifindex is None:
            self._refused["malformed"] += 1
            return None
        return Trap(switches[0], kind, ifindex, admin, oper)
