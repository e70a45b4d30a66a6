"""``bench snmp``: poll N switches x P ports every interval; the poller's CPU and the rounds' durations.

The poller runs in this process, as in the supervisor (:class:`supervisor.snmp.poller.Poller`:
Net-SNMP, ``snmp.concurrency`` threads); its CPU is this process's CPU during a round (the pool's
threads, the decoding, the ``network`` lines and the rates: everything the supervisor would do per
round but the HTTP write, measured by ``bench ingest``). The agents are other processes
(``--snmp-sims`` of them, each serving a share of the switches on one UDP port, one community per
switch), their CPU reported apart: ``agents_cpu_s``. CPU share of one core = poller CPU / interval.

Agents (``--snmp-agents``): ``fast`` (default), :class:`simulators.snmp.FastAgents`, pre-encoded
answers from the same walk files; ``snmpsim``, the real snmpsim the tests use, which needs about 3
cores for 2,000 switches a minute (measured: 180 s of CPU per round) and so cannot drive the full
size on this machine. Read the figures with the load average (reported at start and end).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.bench.report import cpu_seconds

NAME = "snmp"
HELP = "SNMP polling of N switches x P ports (simulated agents): CPU share and poll-round duration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("snmp")
    g.add_argument("--snmp-switches", type=int, default=None, help="switches (default 2000; quick 20)")
    g.add_argument("--snmp-ports", type=int, default=48, help="ports per switch (default 48)")
    g.add_argument("--snmp-interval", type=float, default=60.0, help="seconds between round starts (default 60)")
    g.add_argument("--snmp-rounds", type=int, default=None, help="poll rounds (default 3; quick 2)")
    g.add_argument("--snmp-agents", choices=("fast", "snmpsim"), default="fast",
                   help="agent simulator: fast (pre-encoded, default) or snmpsim (the tests' agents)")
    g.add_argument("--snmp-sims", type=int, default=2, help="agent processes serving the switches (default 2)")
    g.add_argument("--snmp-concurrency", type=int, default=64, help="switches polled at once (default 64)")
    g.add_argument("--snmp-max-repetitions", type=int, default=None,
                   help="GETBULK rows per request (default: the configuration's)")


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def _round(poller: Any, agents_cpu: Callable[[], float], interval: float) -> dict[str, Any]:
    """One poll round as the supervisor's SNMP service does it: poll, format the points, the evidence."""
    from supervisor.snmp.poller import evidence, network_lines

    a0 = agents_cpu()
    c0, w0 = time.process_time(), time.perf_counter()
    results = poller.round_sync()
    lines = network_lines(results, poller.rates)
    seen = evidence(results)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    errors = [r.error or "" for r in results if not r.reachable]
    varbinds = sum(r.varbinds for r in results)
    return {"round_s": round(wall, 2), "within_interval": wall <= interval,
            "poller_cpu_s": round(cpu, 3), "cpu_share_of_one_core": round(cpu / interval, 4),
            "agents_cpu_s": round(agents_cpu() - a0, 2), "varbinds": varbinds,
            "varbinds_per_s": round(varbinds / wall) if wall > 0 else 0,
            "points": len(lines), "ports_read": sum(len(r.ports) for r in results),
            "unreachable": len(errors), "timeouts": sum(1 for e in errors if e.startswith("no answer")),
            "evidence": len(seen), "loadavg": _loadavg()}


def _summary(per_round: list[dict[str, Any]], interval: float) -> dict[str, Any]:
    durations = [r["round_s"] for r in per_round]
    cpu_total = sum(r["poller_cpu_s"] for r in per_round)
    return {
        "per_round": per_round,
        "round_s": {"max": max(durations), "median": round(statistics.median(durations), 2)},
        "all_within_interval": all(r["within_interval"] for r in per_round),
        "poller_cpu_s_per_round": round(cpu_total / len(per_round), 3),
        "poller_cpu_share_of_one_core": round(cpu_total / (len(per_round) * interval), 4),
        "max_cpu_share_of_one_core": max(r["cpu_share_of_one_core"] for r in per_round),
        "agents_cpu_s_per_round": round(sum(r["agents_cpu_s"] for r in per_round) / len(per_round), 2),
        "varbinds_per_s": round(sum(r["varbinds"] for r in per_round) / sum(durations)) if sum(durations) else 0,
        "points_per_round": per_round[-1]["points"],
        "unreachable_total": sum(r["unreachable"] for r in per_round),
        "timeouts_total": sum(r["timeouts"] for r in per_round)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.snmp import FastAgents, SnmpSim, free_udp_port, iter_city_agents
    from supervisor.snmp.config import SnmpConfig
    from supervisor.snmp.poller import Poller, Target

    n = args.snmp_switches or (20 if args.quick else 2000)
    ports = args.snmp_ports
    rounds = args.snmp_rounds or (2 if args.quick else 3)
    interval = args.snmp_interval
    sims = max(1, min(args.snmp_sims, n))
    kind = FastAgents if args.snmp_agents == "fast" else SnmpSim
    out: dict[str, Any] = {"switches": n, "ports": ports, "interval_s": interval, "rounds": rounds,
                           "agents": args.snmp_agents, "agent_processes": sims, "concurrency": args.snmp_concurrency,
                           "loadavg_start": _loadavg()}
    per_round: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="urban-bench-snmp-") as tmp:
        dirs = [Path(tmp) / f"sim{i}" for i in range(sims)]
        for d in dirs:
            d.mkdir()
        agents = list(iter_city_agents(n, ports))
        t0 = time.perf_counter()
        for i, a in enumerate(agents):
            a.write(dirs[i % sims])
        out["walk_files_s"] = round(time.perf_counter() - t0, 1)
        procs = [kind(d, free_udp_port()) for d in dirs]
        try:
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            for i, p in enumerate(procs):
                p.wait(agents[i].community, timeout=1800)
            out["agents_ready_s"] = round(time.perf_counter() - t0, 1)
            creds = {a.community: {"version": "2c", "community": a.community} for a in agents}
            extra = {} if args.snmp_max_repetitions is None else {"max_repetitions": args.snmp_max_repetitions}
            cfg = SnmpConfig(enabled=True, interval=interval, timeout=10.0, retries=1,
                             concurrency=args.snmp_concurrency, credentials=creds, **extra)
            out["max_repetitions"] = cfg.max_repetitions
            targets = [Target(a.community, "127.0.0.1", procs[i % sims].port, a.community,
                              {p.ifindex: p.name for p in a.ports}) for i, a in enumerate(agents)]
            poller = Poller(cfg, targets)

            def agents_cpu() -> float:
                return sum(cpu_seconds(p.proc.pid) for p in procs if p.proc is not None)

            try:
                next_at = time.monotonic()
                for k in range(rounds):
                    per_round.append(_round(poller, agents_cpu, interval))
                    next_at += interval
                    if k + 1 < rounds:
                        time.sleep(max(0.0, next_at - time.monotonic()))
            finally:
                poller.close()
        finally:
            for p in procs:
                p.stop()
    out.update(_summary(per_round, interval))
    out["loadavg_end"] = _loadavg()
    return out
