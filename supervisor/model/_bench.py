"""``model_benchmark``: generate, write, load and query a city of a given size."""

from __future__ import annotations

import gc
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - non-Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _peak_rss_mb() -> float | None:
    """The process's peak resident set size in MiB (``VmHWM``), None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    return None


def model_benchmark(devices: int, seed: int = 1, workdir: str | Path | None = None,
                    path: str | Path | None = None) -> dict[str, Any]:
    """Time the model at ``devices`` devices: generation, write, load, impact and root cause.

    Returns seconds and MiB figures; ``rss_model_mb`` is the resident memory held by the loaded
    model (RSS after load minus RSS before, the generated dict freed). With ``path`` (a city file
    written by another process) nothing is generated, so ``peak_rss_mb`` is the load's own peak
    (parse, validation and build) in a process that did nothing else.
    """
    from simulators.city import write_city
    from supervisor.model import load_city

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t_gen = None
        if path is None:
            path = Path(tmp) / "city.json"
            t0 = time.perf_counter()
            write_city(path, seed=seed, devices=devices)
            t_gen = time.perf_counter() - t0
        size_mb = Path(path).stat().st_size / 2**20
        gc.collect()
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        model = load_city(path)
        t_load = time.perf_counter() - t0
    gc.collect()
    rss1 = _rss_mb()
    peak = _peak_rss_mb()
    zone_switch = next(s for s in model.switches.values() if not s.core and s.uplink is not None)
    t0 = time.perf_counter()
    impact = model.impact(zone_switch.id)
    t_impact = time.perf_counter() - t0
    silent = set(impact.as_dict()["services"].get("lighting", {}).get("devices", []))
    t0 = time.perf_counter()
    rc = model.root_causes(silent)
    t_rc = time.perf_counter() - t0
    first = next(iter(model.devices))
    t0 = time.perf_counter()
    model.devices_within(model.devices[first].lon, model.devices[first].lat, 100.0)
    t_geo_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(100):
        model.devices_within(model.devices[first].lon, model.devices[first].lat, 100.0)
    t_geo = (time.perf_counter() - t0) / 100
    return {
        "devices": len(model.devices),
        "elements": len(model.elements),
        "file_mb": round(size_mb, 1),
        **({"generate_write_s": round(t_gen, 3)} if t_gen is not None else {}),
        "load_s": round(t_load, 3),
        "rss_before_load_mb": round(rss0, 1),
        "rss_after_load_mb": round(rss1, 1),
        "rss_model_mb": round(rss1 - rss0, 1),
        "peak_rss_mb": round(peak, 1) if peak is not None else None,
        "impact_element": zone_switch.id,
        "impact_devices": impact.total,
        "impact_s": round(t_impact, 4),
        "root_cause_silent": len(silent),
        "root_cause_causes": len(rc.causes),
        "root_cause_s": round(t_rc, 4),
        "geo_index_first_query_s": round(t_geo_first, 3),
        "geo_query_s": round(t_geo, 5),
    }
