"""``bench reload``: how long a city model reload takes, and how long it holds the pipeline.

For each city size (default 10,000 and 100,000 devices; 2,000 with ``--quick``): a generated city
with the example rules, every device registered, then a new file with 1 % of the devices removed,
1 % added and 1 % moved (position and interval), reloaded ``--reload-runs`` times (the original
file and the new one in turn). ``prepare_ms`` (read, validate, rules, diff: off the pipeline) and
``swap_ms`` (under the supervisor's lock: the time batches wait) are reported as median and max.
In process, on the embedded SQLite store; no broker needed.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "reload"
HELP = "city model reload: preparation time and the time the swap holds the pipeline"
EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reload")
    g.add_argument("--reload-devices", type=int, nargs="*", default=None,
                   help="city sizes (default 10000 100000; quick 2000)")
    g.add_argument("--reload-runs", type=int, default=None, help="reloads per size (default 6; quick 2)")


def _changed(city: dict[str, Any]) -> dict[str, Any]:
    """``city`` with 1 % of its devices removed, 1 % added (copies) and 1 % moved with a new interval."""
    new = copy.deepcopy(city)
    devices = new["devices"]
    step = 100
    kept = [d for i, d in enumerate(devices) if i % step != 1 or d["kind"] == "lighting_cabinet"]  # lamps need theirs
    for i, d in enumerate(kept):
        if i % step == 2:
            d["geometry"]["coordinates"][1] += 1e-6
            d["interval"] = float(d.get("interval") or 300.0) + 1.0
    added = [copy.deepcopy(d) | {"id": f"{d['id']}-new"} for i, d in enumerate(kept)
             if i % step == 3 and d["kind"] != "lighting_cabinet"]
    new["devices"] = kept + added
    return new


def _one(n: int, runs: int, tmp: Path) -> dict[str, Any]:
    from simulators.city import generate_city
    from supervisor.config import load_settings
    from supervisor.model import load_city
    from supervisor.runtime import Supervisor

    city = generate_city(seed=1, devices=n)
    files = [tmp / f"city-{n}-a.json", tmp / f"city-{n}-b.json"]
    files[0].write_text(json.dumps(city))
    files[1].write_text(json.dumps(_changed(city)))
    live = tmp / f"city-{n}.json"
    live.write_bytes(files[0].read_bytes())
    settings = load_settings(None, mode="test", data_dir=str(tmp / f"var-{n}"), city=str(live),
                             rules_dir=str(EXAMPLES),
                             storage={"backend": "sqlite", "sqlite_path": str(tmp / f"s-{n}.sqlite3")})
    sup = Supervisor(settings, model=load_city(live))
    now = time.time()
    assert sup.model is not None
    for dev in sup.model.devices.values():
        sup.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
        sup.device_driver[dev.id] = dev.driver
    prepare: list[float] = []
    swap: list[float] = []
    counts: dict[str, Any] = {}
    try:
        for i in range(runs):
            live.write_bytes(files[(i + 1) % 2].read_bytes())
            out = sup.reload_model("api")
            if not out.ok:
                return {"error": out.detail()}
            prepare.append(out.prepare_ms)
            swap.append(out.swap_ms)
            if i == 0 and out.diff is not None:
                counts = out.diff.counts()
    finally:
        sup.lifecycle.store.close()
    return {"devices": n, "runs": runs, "prepare_ms_median": round(statistics.median(prepare), 1),
            "prepare_ms_max": round(max(prepare), 1), "swap_ms_median": round(statistics.median(swap), 2),
            "swap_ms_max": round(max(swap), 2), "diff": counts}


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    sizes = getattr(args, "reload_devices", None) or ([2000] if quick else [10_000, 100_000])
    runs = getattr(args, "reload_runs", None) or (2 if quick else 6)
    out: dict[str, Any] = {}
    with open("/proc/loadavg", encoding="ascii") as f:
        out["loadavg_before"] = f.read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="urban-bench-reload-") as tmp:
        for n in sizes:
            out[str(n)] = _one(int(n), int(runs), Path(tmp))
    return out
