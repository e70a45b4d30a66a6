"""Shared helpers of the bench scenarios: process memory, timing, percentiles, the table."""

from __future__ import annotations

import json
import os
import resource
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


def influx(url: str, q: str, db: str | None = None, timeout: float = 120.0) -> Any:
    """Run an InfluxQL statement on InfluxDB 1.x's HTTP API and return the decoded answer."""
    params = {"q": q}
    if db:
        params["db"] = db
    with urllib.request.urlopen(url + "/query", data=urllib.parse.urlencode(params).encode(), timeout=timeout) as r:
        return json.loads(r.read())


def count_points(url: str, db: str, measurements: list[str]) -> dict[str, int]:
    """Points per measurement (one ``count`` each: costly, so only once at the end of a scenario)."""
    out = {}
    for m in measurements:
        res = influx(url, f'SELECT count("{COUNT_FIELD[m]}") FROM "{m}"', db)["results"][0]
        series = res.get("series")
        out[m] = int(series[0]["values"][0][1]) if series else 0
    return out
