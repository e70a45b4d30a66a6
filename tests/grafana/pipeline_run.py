"""A simulated city through the whole pipeline into the real InfluxDB, for the dashboard tests.

Private Mosquitto → supervisor (drivers, state, network model, example rules, alarms) → InfluxDB,
on a stepped virtual clock covering an evening and a night. On the way: 1 % malformed messages,
lamps failed in one cabinet, a zone switch failed (one root-cause alarm), a camera tampered and
one that lost its stream; the
lights answer the rules' commands over MQTT. The facts returned are read from what the
simulation fixed (failed lamps, devices per family) and from the supervisor's own final state.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from simulators.city import generate_city
from simulators.runner import SimulatedCity
from supervisor.bench.procs import mosquitto
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.support.services import Influx

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
FAILED_LAMPS = 3
AIR_PER_ZONE = 2
HOTSPOT_POLLUTION = 12.0  # times a typical urban station's emissions


def _evening_start(lat: float, lon: float) -> float:
    from datetime import UTC, datetime, timedelta

    from rules.sun import sun_times

    day = (datetime.now(UTC) - timedelta(days=1)).date()
    sunset = sun_times(day, lat, lon).sunset
    assert sunset is not None
    return sunset - 1800.0


def _wait(pred: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.05)


def pipeline_run(influx: Influx, db: str, workdir: Path) -> tuple[int, int, dict[str, Any]]:
    """Run the city; return (start_ms, end_ms, facts)."""
    city = generate_city(seed=5, devices=150, air_per_zone=AIR_PER_ZONE)
    # one station next to a smoking chimney: its air is poor or worse at any hour (feeds "poor" panels)
    next(d for d in city["devices"] if d["kind"] == "air_station")["pollution"] = HOTSPOT_POLLUTION
    model = city_from_dict(city)
    lon, lat = model.center
    start = _evening_start(lat, lon)
    switch = next(s.id for s in model.switches.values() if not s.core and s.uplink is not None)
    cabinet = next(d.id for d in model.devices.values() if d.kind == "lighting_cabinet"
                   and switch not in model.dependencies(d.id))
    tampered, offline = [d.id for d in model.devices.values() if d.kind == "camera"
                         and switch not in model.dependencies(d.id)][:2]
    with mosquitto(workdir / "mosquitto") as broker:
        settings = load_settings(
            None, mode="test", data_dir=str(workdir / "data"), rules_dir=str(EXAMPLES),
            mqtt={"host": broker.host, "port": broker.port, "client_id": "grafana-run"},
            storage={"backend": "influx-v1", "url": influx.url, "database": db, "flush_interval": 0.2},
            state={"check_interval": 30.0}, api={"enabled": False},
        )
        sim = SimulatedCity(city, host=broker.host, port=broker.port, seed=5, start=start, speed=None,
                            resolver=model.dependents, bad_ratio=0.01)
        sup = Supervisor(settings, clock=sim.clock.now, model=model)
        sup.start()
        try:
            assert sup.mqtt.wait_connected(10)
            time.sleep(0.3)
            with sim:
                sim.run(duration=2 * 3600.0)  # dusk into the evening: lights on, traffic, commands
                _wait(lambda: len(sup.inbox) == 0, 30)
                sup.write_health()  # error counters are cumulative: the boards show their increase
                sim.faults.fail_lamps(cabinet, FAILED_LAMPS)
                sim.faults.fail(switch)
                sim.telemetry.set_camera_fault(tampered, "tamper")
                sim.telemetry.set_camera_fault(offline, "offline")
                sim.run(duration=2 * 3600.0)  # into the night, with the faults
                if sim.responder is not None:
                    sim.responder.wait_idle()
            _wait(lambda: len(sup.inbox) == 0, 30)
            time.sleep(0.5)
            sup.write_health()
            assert sup.writer.flush(60)
        finally:
            sup.stop()
    end = sim.clock.now()
    fleet: dict[str, Counter[str]] = {}
    for st in sup.state:
        fleet.setdefault(st.family, Counter())[st.status] += 1
    roots = sorted(a.element for a in sup.alarms.active() if a.kind == "root_cause")
    facts: dict[str, Any] = {
        "zones": sorted({d.zone for d in model.devices.values()}),
        # the map: device -> (lat, lon, status), from the model's positions and the final state
        "device_map": {d.id: (d.lat, d.lon, sup.state.status(d.id)) for d in model.devices.values()},
        "devices_per_family": dict(Counter(d.family for d in model.devices.values())),
        "fleet_status": {f: {s: c.get(s, 0) for s in ("ok", "stale", "fault")} for f, c in fleet.items()},
        "failed_lamps": FAILED_LAMPS,
        "active_root_causes": roots,
        "cameras": sum(1 for d in model.devices.values() if d.family == "cctv"),
        "cameras_tampered": 1,
        "cameras_offline": [offline],
        "air_stations": sum(1 for d in model.devices.values() if d.family == "air"),
    }
    return int(start * 1000) - 7 * 60_000, int(end * 1000) + 7 * 60_000, facts
