"""``bench radio``: what watching the LoRaWAN radio gateways adds to the pipeline's hot path.

In process, no broker: ``Pipeline.process`` of batches of native lamp telemetry (5,000 messages)
without the radio watch and with it, interleaved in the same run; then the watch alone over
batches of other families' readings and of gateway readings, the cost of one link-quality figure
(medians over ``lorawan.window``), one evaluation of every gateway, and the check for changed
figures to store. The city: a generated one with ``--radio-gateways`` radio gateways more, each
with its gateway device. Figures are medians of ``--radio-runs`` runs; ratios are within this run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

NAME = "radio"
HELP = "LoRaWAN radio gateways observed: the hot-path cost of the watch, link figures, evaluation"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("radio")
    g.add_argument("--radio-gateways", type=int, default=None, help="radio gateways (default 200; quick 10)")
    g.add_argument("--radio-runs", type=int, default=None, help="runs per figure (default 15; quick 3)")


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class _Sink:
    def submit(self, lines: list[bytes], on_durable: Callable[[], None] | None = None, *, block: bool = True) -> None:
        if on_durable is not None:
            on_durable()

    def has_room(self, n: int) -> bool:
        return True


def _city(gateways: int) -> dict[str, Any]:
    """A generated city whose first radio gateway is copied ``gateways`` times (same port and power),
    each copy with one water meter and its gateway device: a generated city has one radio gateway per
    500 meters, too few to weigh the watch."""
    import copy

    from simulators.city import generate_city

    city = generate_city(seed=5, devices=400)
    site = next(s for s in city["sites"] if s["kind"] == "radio_gateway")
    meter = next(d for d in city["devices"] if d.get("gateway") == site["id"])
    for i in range(gateways):
        rg = dict(copy.deepcopy(site), id=f"rg-bench-{i:05d}")
        city["sites"].append(rg)
        city["devices"].append(dict(copy.deepcopy(meter), id=f"wm-bench-{i:05d}", gateway=rg["id"]))
        city["devices"].append({"id": f"lgw-{i:05d}", "family": "lorawan", "kind": "lorawan_gateway",
                                "driver": "chirpstack", "service": meter["service"], "zone": meter["zone"],
                                "geometry": meter["geometry"], "gateway": rg["id"], "interval": 30.0})
    return city


def run(args: argparse.Namespace) -> dict[str, Any]:
    from drivers import Reading
    from supervisor.config import LorawanConfig, load_settings
    from supervisor.ingest.pipeline import Pipeline
    from supervisor.ingest.router import Router
    from supervisor.model import city_from_dict
    from supervisor.service.wiring import build_drivers
    from supervisor.state.radio import RadioGateways
    from supervisor.state.registry import StateRegistry

    quick = bool(getattr(args, "quick", False))
    n_gw = getattr(args, "radio_gateways", None) or (10 if quick else 200)
    runs = getattr(args, "radio_runs", None) or (3 if quick else 15)
    out: dict[str, Any] = {}
    with open("/proc/loadavg", encoding="ascii") as f:
        out["loadavg_before"] = f.read().split()[:3]
    model = city_from_dict(_city(int(n_gw)))
    cfg = LorawanConfig()
    radio = RadioGateways(cfg, model, 0.0)
    gw_ids = [d.id for d in model.devices.of_kind("lorawan_gateway")]
    out["gateways"] = len(gw_ids)

    router = Router(list(build_drivers(load_settings(None, mode="test")).values()))
    pipe = Pipeline(router, StateRegistry({"lighting": 300.0}), _Sink(), lambda acks: None)
    now = time.time()
    batch = [(f"city/z01/lighting/lamp-{i:06d}/telemetry", orjson.dumps({"on": True, "level": 70.0, "power": 45.2}),
              0, 0, now) for i in range(5000)]
    pipe.process(batch)  # warm: every device registered in the state
    timed: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):  # interleaved, so that the machine's load drifts over both alike
        for on in (False, True):
            pipe.radio = radio.on_readings if on else None
            t0 = time.perf_counter()
            pipe.process(batch)
            timed[on].append(time.perf_counter() - t0)
    pipe.radio = None
    without, with_radio = statistics.median(timed[False]), statistics.median(timed[True])
    out["pipeline_ns_per_msg"] = {"without": round(without / len(batch) * 1e9),
                                  "with_radio": round(with_radio / len(batch) * 1e9)}
    out["ratio_with_vs_without"] = round(with_radio / without, 3)

    others = [Reading(f"lamp-{i:06d}", "lighting", {"level": 70.0}) for i in range(5000)]
    heard = [Reading(gw_ids[i % len(gw_ids)], "lorawan", {"rssi": -90.0 - i % 7, "snr": 5.0}) for i in range(5000)]
    out["watch_ns_per_reading"] = {
        "other_families": round(_median(lambda: radio.on_readings(others, 1.0), runs) / len(others) * 1e9),
        "gateway_readings": round(_median(lambda: radio.on_readings(heard, 1.0), runs) / len(heard) * 1e9),
    }
    out["link_figure_us"] = round(_median(lambda: radio.link(gw_ids[0]), runs * 20) * 1e6, 1)
    out["evaluate_all_ms"] = round(_median(lambda: radio.evaluate(2.0), runs) * 1e3, 3)
    radio.lines(1e9)  # every figure stored once: what follows is the check of unchanged figures
    out["store_check_all_ms"] = round(_median(lambda: radio.lines(2e9), runs) * 1e3, 3)
    with open("/proc/loadavg", encoding="ascii") as f:
        out["loadavg_after"] = f.read().split()[:3]
    return out
