"""``bench snmp``: poll N switches x P ports (snmpsim agents) every interval; the poller's CPU and rounds.

The agents are snmpsim processes (``--snmp-sims`` of them, each serving a share of the switches, one
community per switch), started here on free UDP ports; the poller runs in this process, as in the
supervisor (:class:`supervisor.snmp.poller.Poller`: ezsnmp, ``snmp.concurrency`` threads). Reported
per round: its duration, and the poller's CPU time (this process only: the simulators' CPU is
reported apart, it is not the supervisor's). CPU share of one core = CPU per round / interval.

snmpsim answers in pure Python and is the slower side: on a loaded machine a round's duration is
the simulator's, not the poller's; ``sim_cpu_s`` shows it. Read the figures with the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "snmp"
HELP = "SNMP polling of N switches x P ports (snmpsim agents): CPU share and poll-round duration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("snmp")
    g.add_argument("--snmp-switches", type=int, default=None, help="switches (default 2000; quick 20)")
    g.add_argument("--snmp-ports", type=int, default=48, help="ports per switch (default 48)")
    g.add_argument("--snmp-interval", type=float, default=60.0, help="seconds between round starts (default 60)")
    g.add_argument("--snmp-rounds", type=int, default=None, help="poll rounds (default 3; quick 2)")
    g.add_argument("--snmp-sims", type=int, default=2, help="snmpsim processes serving the agents (default 2)")
    g.add_argument("--snmp-concurrency", type=int, default=64, help="switches polled at once (default 64)")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.snmp import SnmpSim, free_udp_port, iter_city_agents
    from supervisor.snmp.config import SnmpConfig
    from supervisor.snmp.poller import Poller, Target, evidence, network_lines

    n = args.snmp_switches or (20 if args.quick else 2000)
    ports = args.snmp_ports
    rounds = args.snmp_rounds or (2 if args.quick else 3)
    interval = args.snmp_interval
    sims = max(1, min(args.snmp_sims, n))
    out: dict[str, Any] = {"switches": n, "ports": ports, "interval_s": interval, "rounds": rounds,
                           "simulators": sims, "loadavg_start": Path("/proc/loadavg").read_text().split()[:3]}
    with tempfile.TemporaryDirectory(prefix="urban-bench-snmp-") as tmp:
        dirs = [Path(tmp) / f"sim{i}" for i in range(sims)]
        for d in dirs:
            d.mkdir()
        agents = list(iter_city_agents(n, ports))
        t0 = time.perf_counter()
        for i, a in enumerate(agents):
            a.write(dirs[i % sims])
        out["walk_files_s"] = round(time.perf_counter() - t0, 1)
        procs = [SnmpSim(d, free_udp_port()) for d in dirs]
        try:
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            for i, p in enumerate(procs):
                p.wait(agents[i].community, timeout=1800)
            out["simulators_ready_s"] = round(time.perf_counter() - t0, 1)
            creds = {a.community: {"version": "2c", "community": a.community} for a in agents}
            cfg = SnmpConfig(enabled=True, interval=interval, timeout=10.0, retries=1,
                             concurrency=args.snmp_concurrency, credentials=creds)
            targets = [Target(a.community, "127.0.0.1", procs[i % sims].port, a.community,
                              {p.ifindex: p.name for p in a.ports}) for i, a in enumerate(agents)]
            poller = Poller(cfg, targets)
            per_round: list[dict[str, Any]] = []
            try:
                next_at = time.monotonic()
                for _ in range(rounds):
                    sim0 = sum(_proc_cpu(p.proc.pid) for p in procs if p.proc is not None)
                    c0, w0 = time.process_time(), time.perf_counter()
                    results = poller.round_sync()
                    lines = network_lines(results, poller.rates)
                    seen = evidence(results)
                    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                    sim = sum(_proc_cpu(p.proc.pid) for p in procs if p.proc is not None) - sim0
                    per_round.append({"round_s": round(wall, 2), "poller_cpu_s": round(cpu, 2),
                                      "cpu_share_of_one_core": round(cpu / interval, 3),
                                      "within_interval": wall <= interval, "sim_cpu_s": round(sim, 1),
                                      "unreachable": sum(1 for r in results if not r.reachable),
                                      "ports_read": sum(len(r.ports) for r in results), "points": len(lines),
                                      "evidence": len(seen)})
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
            finally:
                poller.close()
        finally:
            for p in procs:
                p.stop()
    out["per_round"] = per_round
    out["max_round_s"] = max(r["round_s"] for r in per_round)
    out["max_cpu_share_of_one_core"] = max(r["cpu_share_of_one_core"] for r in per_round)
    out["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return out
