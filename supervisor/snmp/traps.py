"""The SNMP trap receiver: ``linkDown``, ``linkUp``, ``coldStart``/``warmStart`` (v2c and v3 USM).

pysnmp (asyncio) in a thread of its own: ezsnmp, the poller's library, cannot receive. Every
credential of ``snmp.credentials`` that a switch names is accepted: a v2c community under its
credentials name; a v3 user with its keys, once per **engine id**. A v3 TRAP is authenticated
against the *sender's* engine (RFC 3414 3.2.4: the USM entry is looked up by the message's
authoritative engine id and user name, the keys localized to that engine): the receiver must know
each agent's ``snmpEngineID``, from the city file (``mgmt.engine_id``, per switch) or else the
credential's ``engine_id``. A v3 INFORM is authenticated against *our* engine (the sender discovers
it): each v3 user is also entered for the receiver's own engine id (``snmp.traps.engine_id``).

A trap is then attributed to a switch by its source address (a ``mgmt.host`` of the city file),
the credentials it used and, for v3, the sending engine (the switch's); anything else is refused
and counted by reason: ``unknown_agent`` (no switch at that address with those credentials and
that engine id), ``ambiguous`` (several), ``not_a_link_trap`` (another trap type; the switch is
known, the trap is not acted on), ``malformed``, ``wrong_security_level`` (a v3 message below its
credential's level: pysnmp checks the level only as the authoritative engine, so a noAuthNoPriv
trap naming an authPriv user would pass it unauthenticated). What pysnmp refuses before any
callback is counted from its ``sm-failure`` execution points, by reason: ``bad_community``,
``unknown_user``, ``unknown_engine_id`` (a user we know, from an engine we do not), ``wrong_digest``
(a wrong auth key), ``decryption_error`` (a wrong priv key), ``not_in_time_window``; a datagram
that is no SNMP message from pysnmp's own counters: ``unparsable``.

SNMPv3 privacy needs the ``cryptography`` package: without it pysnmp 7 silently treats every
authPriv message as a decryption error (``pysnmp/proto/secmod/rfc3826/priv/aes.py``:
``PysnmpCryptoError``), so the receiver refuses to start with authPriv credentials instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.snmp.config import SnmpConfig, SnmpV2c, SnmpV3

if TYPE_CHECKING:
    from supervisor.model import CityModel
    from supervisor.snmp.poller import Target

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
TRAPS = {"1.3.6.1.6.3.1.1.5.1": "coldStart", "1.3.6.1.6.3.1.1.5.2": "warmStart",
         "1.3.6.1.6.3.1.1.5.3": "linkDown", "1.3.6.1.6.3.1.1.5.4": "linkUp"}
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7."
IF_OPER = "1.3.6.1.2.1.2.2.1.8."
#: what pysnmp refused before any callback (its errorIndication's class) -> our reason
_SM_REASONS = {"UnknownCommunityName": "bad_community", "UnknownSecurityName": "unknown_user",
               "UnknownUserName": "unknown_user", "WrongDigest": "wrong_digest",
               "AuthenticationFailure": "wrong_digest", "DecryptionError": "decryption_error",
               "NotInTimeWindow": "not_in_time_window", "UnknownEngineID": "unknown_engine_id",
               "UnsupportedSecurityLevel": "wrong_security_level"}
_LEVELS = {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}
#: pysnmp's counters of datagrams it could not read as an SNMP message
_UNPARSABLE = (("__SNMPv2-MIB", "snmpInASNParseErrs"), ("__SNMPv2-MIB", "snmpInBadVersions"),
               ("__SNMP-MPD-MIB", "snmpInvalidMsgs"), ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"))


@dataclass(frozen=True, slots=True)
class Trap:
    switch: str
    kind: str  # linkDown | linkUp | coldStart | warmStart
    ifindex: int | None = None
    admin: int | None = None
    oper: int | None = None


#: our names (Net-SNMP's, as the poller's ezsnmp takes them) -> pysnmp's. Net-SNMP's AES-192 and
#: AES-256 extend a short localized key as Blumenthal's draft does: measured, with SHA (20-byte key)
#: pysnmp's USM_PRIV_CFB192_AES / CFB256_AES (Reeder's extension) fail to decrypt snmptrap's traps,
#: the _BLUMENTHAL ones succeed (with SHA-256 both do: no extension needed).
_AUTH = {"MD5": "USM_AUTH_HMAC96_MD5", "SHA": "USM_AUTH_HMAC96_SHA", "SHA-224": "USM_AUTH_HMAC128_SHA224",
         "SHA-256": "USM_AUTH_HMAC192_SHA256", "SHA-384": "USM_AUTH_HMAC256_SHA384",
         "SHA-512": "USM_AUTH_HMAC384_SHA512"}
_PRIV = {"DES": "USM_PRIV_CBC56_DES", "AES": "USM_PRIV_CFB128_AES", "AES-192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
         "AES-256": "USM_PRIV_CFB256_AES_BLUMENTHAL"}


def engine_ids(model: CityModel) -> dict[str, str]:
    """Switch -> its snmpEngineID (hex) as the city file gives it (``mgmt.engine_id``)."""
    return {sw.id: sw.mgmt.engine_id for sw in model.switches.values()
            if sw.mgmt is not None and sw.mgmt.engine_id is not None}


def privacy_available() -> bool:
    """Whether this pysnmp can decrypt SNMPv3 privacy (it needs the ``cryptography`` package)."""
    from pysnmp.proto.secmod.rfc3414.priv import des
    from pysnmp.proto.secmod.rfc3826.priv import aes

    return not (getattr(aes, "PysnmpCryptoError", False) or getattr(des, "PysnmpCryptoError", False))


class TrapReceiver:
    """Receives on ``cfg.traps.host:port``; hands each accepted trap to ``on_trap`` (its thread)."""

    def __init__(self, cfg: SnmpConfig, targets: list[Target], on_trap: Callable[[Trap], None],
                 engines: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.on_trap = on_trap
        self.received = 0
        self.accepted = 0
        self._refused: Counter[str] = Counter()
        self._by_addr: dict[tuple[str, str], list[str]] = {}
        self._engine_of: dict[str, str | None] = {}  # switch -> the engine id its v3 traps come from
        self._usm: dict[tuple[str, str], str] = {}  # (engine id hex, user) -> credentials name
        self._applied: dict[tuple[str, str], str] = {}  # what the pysnmp engine holds
        self._users: set[str] = set()
        self._last_engine = ""  # the engine id of the v3 message being processed (pysnmp's observer)
        self.local_engine = cfg.traps.engine_id or ""  # ours, for INFORMs (pysnmp's own when not set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Any = None
        self._master: dict[str, tuple[Any, Any]] = {}  # credentials name -> master keys (hashed once)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._given: tuple[list[Target], dict[str, str]] = ([], {})
        self.set_targets(targets, engines)

    def set_targets(self, targets: list[Target], engines: Mapping[str, str] | None = None) -> None:
        """The switches traps are accepted from, and their engine ids (switch -> hex; a model reload)."""
        self._given = (list(targets), dict(engines or {}))
        by_addr: dict[tuple[str, str], list[str]] = {}
        engine_of: dict[str, str | None] = {}
        usm: dict[tuple[str, str], str] = {}
        clashes: set[tuple[str, str, str, str]] = set()
        for t in targets:
            by_addr.setdefault((t.host, t.credentials), []).append(t.switch)
            cred = self.cfg.credentials.get(t.credentials)
            if not isinstance(cred, SnmpV3):
                continue
            engine = (engines or {}).get(t.switch) or cred.engine_id
            engine_of[t.switch] = engine
            for e in (engine, self.local_engine or None):
                if e is not None and usm.setdefault((e, cred.user), t.credentials) != t.credentials:
                    clashes.add((cred.user, e, usm[(e, cred.user)], t.credentials))
        blind = sorted(sw for sw, e in engine_of.items() if e is None)
        if blind and (by_addr, engine_of) != (self._by_addr, self._engine_of):  # said once, not at each reload
            log.warning("SNMP: %d v3 switch(es) without an engine id (city file mgmt.engine_id, or their "
                        "credentials' engine_id): their traps are refused (unknown_engine_id), their informs "
                        "accepted: %s", len(blind), ", ".join(blind[:20]) + (" ..." if len(blind) > 20 else ""))
        for user, e, first, other in sorted(clashes):
            log.warning("SNMP: user %r of engine %s is in both snmp.credentials.%s and .%s: %s is used", user, e,
                        first, other, first)
        self._by_addr, self._engine_of = by_addr, engine_of
        self._users = {user for _, user in usm}
        self._usm = usm
        loop = self._loop
        if self._engine is not None and loop is not None and loop.is_running():
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def apply() -> None:
                try:
                    self._apply_usm()
                    done.set_result(None)
                except BaseException as exc:
                    done.set_exception(exc)

            loop.call_soon_threadsafe(apply)
            done.result(60.0)  # the new switches' traps are accepted once set_targets returns

    @property
    def refused(self) -> dict[str, int]:
        out = dict(self._refused)
        garbage = self._unparsable()
        if garbage:
            out["unparsable"] = garbage
        return out

    def _unparsable(self) -> int:
        """Datagrams that are no SNMP message (pysnmp counts them, no execution point tells)."""
        if self._engine is None:
            return 0
        total = 0
        for module, name in _UNPARSABLE:
            try:
                (sym,) = self._engine.get_mib_builder().import_symbols(module, name)
                total += int(sym.syntax)
            except Exception:  # noqa: S112 (a counter this pysnmp does not have)
                continue
        return total

    def usm_entries(self) -> int:
        """The SNMPv3 USM entries wanted: one per (engine id, user)."""
        return len(self._usm)

    def usm_ready(self) -> bool:
        """Whether pysnmp holds every USM entry wanted (made in the receiver's thread after start)."""
        return self._applied == self._usm

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
        # the USM entries (about 6 ms each, pysnmp's MIB writes: 2,000 switches take seconds) are made
        # once the loop runs, start() need not wait for them: a trap arriving meanwhile waits in the
        # socket's buffer and is read once they are all there
        loop.call_soon(self._apply_usm_logged)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                self._engine.close_dispatcher()
                # close_dispatcher() cancels pysnmp's timer task but cannot run the loop to finish it:
                # closing the loop then logged "Task was destroyed but it is pending!" at every stop
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

    def _build(self) -> Any:
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto.rfc1902 import OctetString

        private = sorted(n for n, c in self.cfg.credentials.items() if isinstance(c, SnmpV3) and c.priv_protocol)
        if private and not privacy_available():
            raise RuntimeError(f"snmp.credentials {', '.join(private)} use SNMPv3 privacy, which pysnmp cannot "
                               "decrypt without the `cryptography` package (pip install cryptography)")
        eng = (engine.SnmpEngine(OctetString(hexValue=self.local_engine)) if self.local_engine
               else engine.SnmpEngine())
        if not self.local_engine:
            self.local_engine = bytes(eng.snmpEngineID).hex()
            self.set_targets(*self._given)  # again, with our engine id for the informs
        tc = self.cfg.traps
        # bound here, not by pysnmp: its open_server_mode((host, port)) binds in a task of the loop, after
        # start() has returned (a trap sent at once was lost, a port in use went unsaid). From the bind
        # on, the kernel keeps the datagrams until the loop reads them.
        family, _, _, _, addr = socket.getaddrinfo(tc.host, tc.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        transport = (udp6.Udp6Transport() if family == socket.AF_INET6 else udp.UdpTransport())
        config.add_transport(eng, udp6.DOMAIN_NAME if family == socket.AF_INET6 else udp.DOMAIN_NAME,
                             transport.open_server_mode(sock=sock))
        for name, cred in self.cfg.credentials.items():
            if isinstance(cred, SnmpV2c):
                config.add_v1_system(eng, name, cred.community.get_secret_value())
        self._engine = eng
        eng.observer.register_observer(self._on_usm, "rfc3414.processIncomingMsg")
        eng.observer.register_observer(self._on_sm_failure, "rfc3412.prepareDataElements:sm-failure",
                                       "rfc2576.prepareDataElements:sm-failure")
        ntfrcv.NotificationReceiver(eng, self._on_notification)
        eng.transport_dispatcher.job_started(1)
        return eng

    def _apply_usm_logged(self) -> None:
        try:
            self._apply_usm()
        except Exception:  # the v2c part and the informs' discovery still work
            log.exception("SNMP trap receiver: the SNMPv3 users could not be entered")

    def _apply_usm(self) -> None:
        """Bring pysnmp's USM table to ``self._usm`` (the engine's thread): one entry per (engine id,
        user), its keys localized to that engine from master keys hashed once per credential."""
        from pysnmp.entity import config
        from pysnmp.proto.rfc1902 import OctetString

        eng, want = self._engine, dict(self._usm)
        for (engine, user), name in self._applied.items():
            if want.get((engine, user)) != name:
                config.delete_v3_user(eng, user, securityEngineId=OctetString(hexValue=engine))
        for (engine, user), name in want.items():
            if self._applied.get((engine, user)) == name:
                continue
            cred = self.cfg.credentials[name]
            assert isinstance(cred, SnmpV3)
            auth = getattr(config, _AUTH[cred.auth_protocol]) if cred.auth_protocol else config.USM_AUTH_NONE
            priv = getattr(config, _PRIV[cred.priv_protocol]) if cred.priv_protocol else config.USM_PRIV_NONE
            if name not in self._master:
                self._master[name] = (
                    config.AUTH_SERVICES[auth].hash_passphrase(cred.auth_key.get_secret_value())
                    if cred.auth_key else None,
                    config.PRIV_SERVICES[priv].hash_passphrase(auth, cred.priv_key.get_secret_value())
                    if cred.priv_key else None)
            auth_key, priv_key = self._master[name]
            config.add_v3_user(eng, user, auth, auth_key, priv, priv_key, securityEngineId=OctetString(hexValue=engine),
                               authKeyType=config.USM_KEY_TYPE_MASTER, privKeyType=config.USM_KEY_TYPE_MASTER)
        self._applied = want

    # -- pysnmp's execution points (the engine's thread) -------------------------------------------
    def _on_usm(self, eng: Any, point: str, variables: Mapping[str, Any], ctx: Any) -> None:
        self._last_engine = bytes(variables["securityEngineId"]).hex()

    def _on_sm_failure(self, eng: Any, point: str, variables: Mapping[str, Any], ctx: Any) -> None:
        """A message pysnmp refused before any callback: counted by reason, logged without secrets."""
        status = variables.get("statusInformation")
        indication = status.get("errorIndication") if status is not None else None
        reason = _SM_REASONS.get(type(indication).__name__, "refused_by_snmp_engine")
        host = str(variables["transportAddress"][0])
        engine = user = ""
        if point.startswith("rfc3412"):
            engine, user, boots, clock = self._usm_identity(variables.get("securityParameters"))
            if (reason == "unknown_engine_id" and not engine and not user) or (
                    reason == "not_in_time_window" and engine == self.local_engine and boots == clock == 0):
                log.debug("SNMP: engine id or time discovery from %s (an INFORM's sender)", host)
                return  # RFC 3414 4: the first steps of an inform, answered by a report, not a refusal
            if reason == "unknown_user" and user in self._users:
                reason = "unknown_engine_id"  # a user we know, keyed to engines we know: not this one
        self.received += 1
        self._refused[reason] += 1
        log.warning("SNMP trap from %s refused: %s%s (%s)", host, reason,
                    f" (user {user!r}, engine id {engine or '-'})" if point.startswith("rfc3412") else "",
                    indication)

    @staticmethod
    def _usm_identity(params: Any) -> tuple[str, str, int, int]:
        """The engine id (hex), user name, engine boots and time a v3 message claims (nothing secret)."""
        try:
            from pyasn1.codec.ber import decoder
            from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

            decoded, _ = decoder.decode(bytes(params), asn1Spec=UsmSecurityParameters())
            return bytes(decoded[0]).hex(), bytes(decoded[3]).decode(errors="replace"), int(decoded[1]), int(decoded[2])
        except Exception:
            return "", "", -1, -1

    # -- one notification --------------------------------------------------------------------------
    def _on_notification(self, eng: Any, state_ref: Any, ctx_engine: Any, ctx_name: Any,  # noqa: PLR0917 (pysnmp calls it so)
                         var_binds: Any, cb_ctx: Any) -> None:
        self.received += 1
        try:
            exec_ctx = eng.observer.get_execution_context("rfc3412.receiveMessage:request")
            host = str(exec_ctx["transportAddress"][0])
            security_name = str(exec_ctx["securityName"])
            binds = {str(oid): val for oid, val in var_binds}
            model, level = int(exec_ctx["securityModel"]), int(exec_ctx["securityLevel"])
            trap = self._parse(host, security_name, model, binds, level=level,
                               engine=self._last_engine if model == 3 else "")
        except Exception:
            log.exception("SNMP trap not understood")
            self._refused["malformed"] += 1
            return
        if trap is None:
            return
        self.accepted += 1
        self.on_trap(trap)

    def _credentials(self, host: str, security_name: str, model: int, level: int, engine: str) -> list[str] | None:
        """The credentials names the message may have used; None: refused (counted here)."""
        if model != 3:
            return [security_name]
        name = self._usm.get((engine, security_name))
        cred = self.cfg.credentials.get(name) if name is not None else None
        if name is None or not isinstance(cred, SnmpV3):
            self._refused["unknown_user"] += 1
            return None
        if level < _LEVELS[cred.level]:
            self._refused["wrong_security_level"] += 1
            log.warning("SNMP trap from %s refused: wrong_security_level (user %r sent level %d, its credentials "
                        "snmp.credentials.%s are %s)", host, security_name, level, name, cred.level)
            return None
        return [name]

    def _parse(self, host: str, security_name: str, model: int, binds: Mapping[str, Any], *,
               level: int = 1, engine: str = "") -> Trap | None:
        creds = self._credentials(host, security_name, model, level, engine)
        if creds is None:
            return None
        switches = [s for c in creds for s in self._by_addr.get((host, c), [])]
        if model == 3 and engine != self.local_engine:  # a TRAP: from the switch's own engine
            switches = [s for s in switches if self._engine_of.get(s) == engine]
        if not switches:
            self._refused["unknown_agent"] += 1
            log.warning("SNMP trap from %s refused: no switch of the city has that management address and "
                        "those credentials%s", host, f" and engine id {engine}" if model == 3 else "")
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
