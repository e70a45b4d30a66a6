"""Shared helpers of the bench scenarios: process memory, timing, percentiles, the table."""

from __future__ import annotations

import os
import resource
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
