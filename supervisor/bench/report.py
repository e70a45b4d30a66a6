"""Shared helpers of the bench scenarios: process memory, timing, percentiles, the table."""

from __future__ import annotations

import json
import os
import resource
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MiB of ``pid`` (default: this process), from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds used so far by ``pid`` and its threads (0.0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of ``pid`` and of its living descendants (a worker set: manager and workers)."""
    if not pid:
        return 0.0
    total = cpu_seconds(pid)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return total
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            continue
        total += sum(tree_cpu_seconds(k) for k in kids)
    return total


class CpuMeter:
    """CPU used by named processes over a phase, in cores (CPU seconds / elapsed seconds).

    On a shared 2-core machine it tells what bounds a rate: when the sum is near the core count,
    the machine is saturated and the shares say who has the cores.
    """

    def __init__(self, pids: Mapping[str, int | None], trees: Sequence[str] = ()) -> None:
        import time

        self._time = time.monotonic
        self.pids = dict(pids)
        self.trees = set(trees)  # names whose descendants count too
        self.restart()

    def restart(self) -> None:
        """Start the phase now (also called when the first message is seen, leaving start-up out)."""
        self.t0: float = self._time()
        self.start: dict[str, float] = {name: self._read(name, pid) for name, pid in self.pids.items()}
        self.last = dict(self.start)

    def _read(self, name: str, pid: int | None) -> float:
        return tree_cpu_seconds(pid) if name in self.trees else cpu_seconds(pid)

    def sample(self) -> None:
        """Read the counters now (a process that exits keeps its last reading)."""
        for name, pid in self.pids.items():
            v = self._read(name, pid)
            if v:
                self.last[name] = v

    def cores(self, extra: Mapping[str, float] | None = None) -> dict[str, float]:
        """Cores used per process since the meter started; ``extra`` adds CPU seconds measured elsewhere."""
        self.sample()
        dt = max(self._time() - self.t0, 1e-6)
        out = {name: round((self.last[name] - self.start[name]) / dt, 2) for name in self.pids}
        for name, secs in (extra or {}).items():
            out[name] = round(secs / dt, 2)
        out["total"] = round(sum(out.values()), 2)
        return out


def influxd_pid() -> int | None:
    """The pid of a local ``influxd`` (the bench's InfluxDB), if one runs."""
    import subprocess

    try:
        out = subprocess.run(["pgrep", "-x", "influxd"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    pids = [int(x) for x in out.stdout.split()]
    return pids[0] if len(pids) == 1 else None


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def table(title: str, rows: Mapping[str, Any]) -> str:
    """A readable two-column table of a flat mapping (nested mappings are flattened with dots)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping):
            for k, sub in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), sub)
        else:
            flat[prefix] = v

    walk("", rows)
    width = max((len(k) for k in flat), default=10)
    out = [title, "-" * len(title)]
    for k, v in flat.items():
        shown = (f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}") if isinstance(v, float) else v
        out.append(f"{k.ljust(width)}  {shown}")
    return "\n".join(out)


# a field present in every point of each measurement, to count points
COUNT_FIELD = {"traffic": "flow", "lighting": "power", "cctv": "online", "water": "index", "events": "value"}


def bench_db(name: str) -> str:
    """A database name of its own for one bench phase: the time alone let two benches started in the same
    second (two checkouts sharing one InfluxDB) write into, and drop, each other's database."""
    return f"urban_bench_{name}_{int(time.time())}_{os.getpid()}_{secrets.token_hex(3)}"


def influx(url: str, q: str, db: str | None = None, timeout: float = 120.0) -> Any:
    """Run an InfluxQL statement on InfluxDB 1.x's HTTP API and return the decoded answer."""
    params = {"q": q}
    if db:
        params["db"] = db
    with urllib.request.urlopen(url + "/query", data=urllib.parse.urlencode(params).encode(), timeout=timeout) as r:
        return json.loads(r.read())


def count_points(url: str, db: str, measurements: list[str]) -> dict[str, int]:
    """Points per measurement (one ``count`` each: costly, so only once at the end of a scenario);
    household water is read from its own retention policy, where the supervisor writes it."""
    from supervisor.storage.retention import raw_sources

    rps = [row[0] for s in influx(url, f'SHOW RETENTION POLICIES ON "{db}"')["results"][0].get("series", [])
           for row in s["values"]]
    out = {}
    for m in measurements:
        out[m] = 0
        for source in raw_sources(m, rps):
            res = influx(url, f'SELECT count("{COUNT_FIELD[m]}") FROM {source}', db)["results"][0]
            series = res.get("series")
            out[m] += int(series[0]["values"][0][1]) if series else 0
    return out


def influx_points_ok(url: str) -> int:
    """InfluxDB's cumulative count of points accepted over HTTP (all databases; cheap to read)."""
    with urllib.request.urlopen(url + "/debug/vars", timeout=5) as r:
        stats = json.loads(r.read())
    return sum(int(v.get("values", {}).get("pointsWrittenOK", 0)) for k, v in stats.items()
               if isinstance(v, dict) and k.startswith("httpd"))
