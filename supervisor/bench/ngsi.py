"""``bench ngsi``: latency of ``GET /ngsi-ld/v1/entities?type=Streetlight&limit=1000`` on a large city.

A city of 100,000 devices (10,000 with ``--quick``) is generated and loaded, every lamp has a
reading in the device state (so that each entity carries live values), and the supervisor's API
is served over HTTP by the real :class:`~supervisor.api.ApiServer`. The first request (it indexes
the model) is timed apart; then pages at spread offsets are requested one after the other, and the
same with a ``q`` filter (tested on each lamp's lazy keyValues, supervisor/ngsi/view.py; only the
page is built). Figures: p50, p99, max, and the process's CPU time per request (server and client:
what a request costs without the wait for a CPU on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

NAME = "ngsi"
HELP = "NGSI-LD read API: latency of a 1000-entity page of Streetlights on a large city"
TOKEN = secrets.token_hex(16)  # a viewer token of this run only


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ngsi")
    g.add_argument("--ngsi-devices", type=int, default=None, help="city size (default 100000; quick 10000)")
    g.add_argument("--ngsi-requests", type=int, default=None, help="timed requests per query (default 100; quick 20)")


def _get(url: str) -> tuple[float, int, int]:
    """(seconds, status, entities in the body) of one GET with the viewer token."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
        took = time.perf_counter() - t0
        return took, resp.status, len(json.loads(body))


def _figures(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 1), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1), "requests": len(ms)}


def _city(devices: int, tmp: Path) -> Any:
    """A supervisor (not started) with the model and one reading of every lamp in its device state.

    The readings go to the state registry directly (the pipeline would also queue line protocol
    for a writer that is not running here): what is measured is the read API, not ingestion."""
    from drivers import Reading, Value
    from simulators.city import generate_city
    from supervisor.config import load_settings
    from supervisor.model import city_from_dict
    from supervisor.runtime import Supervisor

    model = city_from_dict(generate_city(devices=devices, seed=1))
    settings = load_settings(None, mode="test", storage={"backend": "sqlite", "sqlite_path": str(tmp / "b.sqlite3"),
                                                         "spool_dir": str(tmp / "spool")})
    sup = Supervisor(settings, model=model)
    now = time.time()
    lamps = 0
    for d in model.devices.values():
        sup.state.register(d.id, d.family, d.zone, d.interval, now)
        if d.kind == "lamp":
            values: dict[str, Value] = {"on": True, "level": float(lamps % 5 * 25), "power": 45.2}
            sup.state.update(Reading(d.id, d.family, values, now, d.zone), now, now)
            lamps += 1
    return sup, lamps


def run(args: argparse.Namespace) -> dict[str, Any]:
    from supervisor.api import ApiServer
    from supervisor.config import ApiConfig

    devices = args.ngsi_devices or (10_000 if args.quick else 100_000)
    requests = args.ngsi_requests or (20 if args.quick else 100)
    with tempfile.TemporaryDirectory(prefix="urban-bench-ngsi-") as tmp:
        t0 = time.perf_counter()
        sup, lamps = _city(devices, Path(tmp))
        setup_s = time.perf_counter() - t0
        cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[TOKEN])
        server = ApiServer(sup, cfg).start()
        try:
            base = f"http://127.0.0.1:{server.port}/ngsi-ld/v1/entities?type=Streetlight&limit=1000"
            first, _, _ = _get(base)
            pages = max(1, lamps // 1000)
            cpu0 = time.process_time()
            plain = [_get(f"{base}&offset={i * 7919 % pages * 1000}") for i in range(requests)]
            cpu1 = time.process_time()
            filtered = [_get(f"{base}&q=illuminanceLevel%3E0.5&offset=0") for _ in range(max(3, requests // 10))]
            cpu2 = time.process_time()
        finally:
            server.stop()
    bad = [s for _, s, _ in plain + filtered if s != 200]
    return {"devices": devices, "lamps": lamps, "setup_s": round(setup_s, 1),
            "first_request_ms": round(first * 1000, 1),
            "page_1000": _figures([t for t, _, _ in plain]), "entities_per_page": plain[0][2],
            "page_1000_with_q": _figures([t for t, _, _ in filtered]), "non_200": len(bad),
            # CPU of this process (server and client) per request: what the wall-clock figures cost
            # without the wait for a CPU on a shared machine
            "cpu_ms_per_request": {"page_1000": round((cpu1 - cpu0) * 1000 / len(plain), 1),
                                   "page_1000_with_q": round((cpu2 - cpu1) * 1000 / len(filtered), 1)}}
