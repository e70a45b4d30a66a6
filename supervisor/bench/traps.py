"""``bench traps``: the SNMP trap receiver with many SNMPv3 switches, each with its own engine id.

The receiver (:class:`supervisor.snmp.traps.TrapReceiver`) is started with ``--traps-switches``
v3 switches (one ``authPriv`` SHA + AES credential, one engine id per switch: one USM entry each,
plus one for the receiver's own engine, for informs). Figures:

- ``start_s``: until ``start()`` returns (the UDP port is open);
- ``usm_ready_s``, ``usm_cpu_s``: until every USM entry is made, and this process's CPU for it;
  ``usm_entry_ms``: per entry (pysnmp's MIB writes); ``passphrase_hash_ms``: hashing one
  credential's two pass phrases (1 MB each, RFC 3414 A.2), what every entry would add if the
  master keys were not hashed once per credential;
- ``--traps-count`` linkDown traps sent by Net-SNMP's ``snmptrap`` (one process each, from
  switches taken in turn, each with its engine id) in ``authPriv``, then as many in v2c: the
  delay from starting ``snmptrap`` to the trap handed over (``*_ms_p50``/``_max``; it includes
  starting the ``snmptrap`` process, measured alone as ``snmptrap_process_ms_p50``) and the
  counts accepted and refused.

Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import threading
import time
from typing import Any

NAME = "traps"
HELP = "SNMP trap receiver: start with N v3 switches (one engine id each), authPriv and v2c trap delays"
AUTH_KEY, PRIV_KEY = "bench-auth-key", "bench-priv-key"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("traps")
    g.add_argument("--traps-switches", type=int, default=None, help="v3 switches (default 2000; quick 100)")
    g.add_argument("--traps-count", type=int, default=None, help="traps sent per version (default 100; quick 10)")


def _engine(i: int) -> str:
    return f"80000000010b{i:08x}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pysnmp.entity import config as pysnmp_config

    from simulators.snmp import free_udp_port
    from supervisor.snmp.config import SnmpConfig
    from supervisor.snmp.poller import Target
    from supervisor.snmp.traps import Trap, TrapReceiver

    if shutil.which("snmptrap") is None:
        return {"skipped": "Net-SNMP's snmptrap is missing (Debian package snmp)"}
    n = args.traps_switches or (100 if args.quick else 2000)
    count = min(args.traps_count or (10 if args.quick else 100), n)
    port = free_udp_port()
    cfg = SnmpConfig.model_validate({
        "credentials": {
            "v3": {"version": "3", "user": "bench", "auth_protocol": "SHA", "auth_key": AUTH_KEY,
                   "priv_protocol": "AES", "priv_key": PRIV_KEY},
            "v2c": {"version": "2c", "community": "bench-community"}},
        "traps": {"enabled": True, "host": "127.0.0.1", "port": port, "engine_id": "80001f8880be4c4b00"}})
    targets = [Target(f"sw{i}", "127.0.0.1", 161, "v3", {1: f"sw{i}:p1"}) for i in range(n)]
    targets.append(Target("sw-v2c", "127.0.0.1", 161, "v2c", {1: "sw-v2c:p1"}))
    engines = {f"sw{i}": _engine(i) for i in range(n)}
    arrived: dict[str, float] = {}
    got = threading.Condition()

    def on_trap(trap: Trap) -> None:
        with got:
            arrived[trap.switch] = time.monotonic()
            got.notify_all()

    c0, t0 = time.process_time(), time.monotonic()
    receiver = TrapReceiver(cfg, targets, on_trap, engines)
    receiver.start(timeout=60)
    start_s = time.monotonic() - t0
    deadline = time.monotonic() + 600
    while not receiver.usm_ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    usm_ready_s, usm_cpu_s = time.monotonic() - t0, time.process_time() - c0
    entries = receiver.usm_entries()
    h0 = time.process_time()
    for _ in range(5):
        auth = pysnmp_config.AUTH_SERVICES[pysnmp_config.USM_AUTH_HMAC96_SHA]
        auth.hash_passphrase(AUTH_KEY)
        pysnmp_config.PRIV_SERVICES[pysnmp_config.USM_PRIV_CFB128_AES].hash_passphrase(
            pysnmp_config.USM_AUTH_HMAC96_SHA, PRIV_KEY)
    passphrase_ms = (time.process_time() - h0) / 5 * 1000.0

    def send(switch: str, auth: list[str]) -> float | None:
        t = time.monotonic()
        subprocess.run(["snmptrap", *auth, f"127.0.0.1:{port}", "", "1.3.6.1.6.3.1.1.5.3",
                        "1.3.6.1.2.1.2.2.1.1.1", "i", "1"], check=True, timeout=10, capture_output=True)
        with got:
            got.wait_for(lambda: switch in arrived, timeout=5)
            at = arrived.pop(switch, None)
        return None if at is None else (at - t) * 1000.0

    step = max(1, n // count)
    v3 = [send(f"sw{i}", ["-v3", "-e", f"0x{_engine(i)}", "-u", "bench", "-l", "authPriv", "-a", "SHA", "-A",
                          AUTH_KEY, "-x", "AES", "-X", PRIV_KEY]) for i in range(0, step * count, step)]
    v2c = [send("sw-v2c", ["-v2c", "-c", "bench-community"]) for _ in range(count)]
    proc = []
    for _ in range(min(count, 20)):
        t = time.monotonic()
        subprocess.run(["snmptrap", "-V"], capture_output=True, timeout=10, check=False)
        proc.append((time.monotonic() - t) * 1000.0)
    receiver.stop()
    ok3, ok2 = [x for x in v3 if x is not None], [x for x in v2c if x is not None]
    return {
        "v3_switches": n, "usm_entries": entries,
        "start_s": round(start_s, 2), "usm_ready_s": round(usm_ready_s, 2), "usm_cpu_s": round(usm_cpu_s, 2),
        "usm_entry_ms": round(usm_cpu_s / max(entries, 1) * 1000.0, 2),
        "passphrase_hash_ms": round(passphrase_ms, 1),
        "v3_authpriv_sent": count, "v3_authpriv_accepted": len(ok3),
        "v3_authpriv_ms_p50": round(statistics.median(ok3), 1) if ok3 else None,
        "v3_authpriv_ms_max": round(max(ok3), 1) if ok3 else None,
        "v2c_sent": count, "v2c_accepted": len(ok2),
        "v2c_ms_p50": round(statistics.median(ok2), 1) if ok2 else None,
        "v2c_ms_max": round(max(ok2), 1) if ok2 else None,
        "snmptrap_process_ms_p50": round(statistics.median(proc), 1) if proc else None,
        "refused": receiver.refused,
    }
