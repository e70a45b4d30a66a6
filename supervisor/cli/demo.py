"""``urban-supervisor demo``: the supervisor with a simulated city, on embedded defaults.

Nothing to install besides Python: an embedded MQTT broker (amqtt, MQTT 3.1.1) and an embedded
time-series store (SQLite). A generated city publishes its telemetry on a virtual clock that runs
faster than real time (dusk to night in minutes); the example rules dim the lights with traffic,
a switch fails and comes back, and lamps fail, so that every part has something to show.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from supervisor.cli import EXIT_FAILURE, EXIT_INVALID, EXIT_OK
from supervisor.cli._signals import route_signals


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="the supervisor with a simulated city, on embedded defaults (nothing to install)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--devices", type=int, default=300, help="devices of the generated city (default 300)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=60.0, help="virtual seconds per real second (default 60)")
    p.add_argument("--data-dir", default="var/demo", help="where the city file and SQLite store go")
    p.add_argument("--api-port", type=int, default=8080, help="API port (0: any free port)")
    p.add_argument("--no-faults", action="store_true", help="do not inject the switch failure and lamp failures")
    p.set_defaults(func=main)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


LIGHTS_ON_LEAD_S = 120.0  # virtual seconds between the demo's start and the lights coming on (2 s at x60)


def _lights_on_offset_s(rules_dir: Path) -> float:
    """When the rule set's schedule switches the lights on, in seconds after sunset (0 without a schedule)."""
    import yaml

    for path in sorted(rules_dir.glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for rule in doc.get("rules", []):
            if isinstance(rule, dict) and rule.get("kind") == "schedule":
                return float(rule.get("on_offset_min", 0.0)) * 60.0
    return 0.0


def _midsummer(lat: float) -> date:
    """The last midsummer day before today at the city (21 June north of the equator, 21 December south)."""
    today = datetime.now(UTC).date()
    month = 6 if lat >= 0 else 12
    day = date(today.year, month, 21)
    return day if day < today else date(today.year - 1, month, 21)


def _dusk(lat: float, lon: float, rules_dir: Path) -> float:
    """Dusk at the city on midsummer's day: just before the rule set's schedule switches the lights on.

    Midsummer, because its dusk is late in the evening: the rush hour is over, so that a short demo shows
    the lights coming on, then dimmed by the thinning traffic, raised by a camera alarm (a winter dusk
    falls in the evening rush, when every street needs full light)."""
    from rules.sun import sun_times

    day = _midsummer(lat)
    sunset = sun_times(day, lat, lon).sunset
    if sunset is None:  # polar day or night: evening by the clock
        return datetime(day.year, day.month, day.day, 18, tzinfo=UTC).timestamp()
    return sunset + _lights_on_offset_s(rules_dir) - LIGHTS_ON_LEAD_S


def main(args: argparse.Namespace) -> int:
    import rules
    from simulators.city import DEFAULT_AIR_PER_ZONE, write_city
    from simulators.runner import SimulatedCity
    from supervisor.config import ConfigFileError, load_settings
    from supervisor.embedded import EmbeddedBroker
    from supervisor.model import load_city
    from supervisor.runtime import Supervisor, SupervisorError

    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    city_path = data / "city.json"
    db_path = data / "urban.sqlite3"
    for stale in (db_path, data / "rules-state.json"):
        stale.unlink(missing_ok=True)
    write_city(city_path, seed=args.seed, devices=args.devices, air_per_zone=DEFAULT_AIR_PER_ZONE)
    model = load_city(city_path)
    rules_dir = Path(rules.__file__).parent / "examples"
    broker = EmbeddedBroker().start()
    token = secrets.token_urlsafe(24)
    try:
        settings = load_settings(
            None, mode="demo", data_dir=str(data), city=str(city_path), rules_dir=str(rules_dir),
            mqtt={"host": broker.host, "port": broker.port, "protocol": "3.1.1", "client_id": "urban-supervisor-demo"},
            storage={"backend": "sqlite", "sqlite_path": str(db_path), "flush_interval": 0.5},
            api={"host": "127.0.0.1", "port": args.api_port, "operator_tokens": [token]},
            state={"check_interval": 30.0},
        )
    except ConfigFileError as exc:
        _say(f"urban-supervisor demo: {exc}")
        broker.stop()
        return EXIT_INVALID
    lon, lat = model.center
    start = _dusk(lat, lon, rules_dir)
    sim = SimulatedCity(str(city_path), host=broker.host, port=broker.port, protocol="3.1.1", start=start,
                        speed=args.speed, resolver=model.dependents, seed=args.seed)
    try:
        sup = Supervisor(settings, clock=sim.clock.now, model=model)
    except SupervisorError as exc:
        _say(f"urban-supervisor demo: {exc}")
        broker.stop()
        return EXIT_INVALID
    # the lamps' responders listen before the supervisor's first tick commands them (else its first
    # commands go unanswered and fail); the virtual clock stands still until the city runs
    sim.open()
    sup.start()
    api = _start_api(sup, settings)
    stop = threading.Event()
    route_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set})
    api_url = f"http://127.0.0.1:{api.port}" if api else "(disabled)"
    _say(_banner(args, model, city_path, db_path, rules_dir, f"{broker.host}:{broker.port}", api_url, token))
    sim_thread = threading.Thread(target=lambda: sim.run(duration=10 * 365 * 86400.0, timeout=10 * 86400.0),
                                  name="simulator", daemon=True)
    sim_thread.start()
    _drive(args, sim, sup, model, stop)
    _shutdown(sim, sim_thread, api, sup, broker)
    summary = sup.summary()
    report = _report(summary, db_path)
    print(json.dumps(report, indent=2))
    ok = summary["ingest"]["received"] > 0 and sum(report["points_stored"].values()) > 0
    return EXIT_OK if ok else EXIT_FAILURE


def _start_api(sup: Any, settings: Any) -> Any:
    """The API server, on the configured port or, when that one is taken, on any free port."""
    if not settings.api.enabled:
        return None
    from supervisor.api.server import ApiServer, ApiServerError

    try:
        return ApiServer(sup, settings.api).start()
    except ApiServerError:
        return ApiServer(sup, settings.api.model_copy(update={"port": 0})).start()


def _shutdown(sim: Any, sim_thread: threading.Thread, api: Any, sup: Any, broker: Any) -> None:
    """Stop in dependency order: the city first, then the API, the supervisor and the broker."""
    sim.stop()
    sim_thread.join(30)
    sim.close()
    if api is not None:
        api.stop()
    sup.stop()
    broker.stop()


def _banner(args: argparse.Namespace, model: Any, city_path: Path, db_path: Path, rules_dir: Path,  # noqa: PLR0917
            broker: str, api_url: str, token: str) -> str:
    """What the demo runs and where to look, printed once at the start."""
    from drivers import catalogue

    counts = {f: sum(1 for d in model.devices.values() if d.family == f) for f in catalogue.families()}
    sql = "select measurement, count(distinct series || ts) from points group by 1"
    lamp = next((d.id for d in model.devices.values() if d.kind == "lamp"), "<lamp-id>")
    auth = f'-H "Authorization: Bearer {token}"'
    py = sys.executable
    start_day = _midsummer(model.center[1]).isoformat()
    query = f"""{py} -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall())' \\
    {db_path} '{sql}'"""
    return f"""urban-supervisor demo
  city          {model.name}: {len(model.devices)} devices {counts}, file {city_path}
  MQTT broker   embedded (amqtt, MQTT 3.1.1) at {broker}
  store         embedded SQLite at {db_path}
  rules         {rules_dir}
  clock         virtual, x{args.speed:g}, starting at dusk on {start_day} ({LIGHTS_ON_LEAD_S / args.speed:g} s before
                the lights come on)
  console       {api_url}/console   (log in with the operator token {token})
  API           {api_url}/api/v1/summary   (docs: {api_url}/api/v1/docs; operator token for writes: {token})
  metrics       {api_url}/metrics
Look:
  curl {auth} {api_url}/api/v1/alarms
  curl {auth} {api_url}/api/v1/why/{lamp}
  {query}
Grafana: run the compose stack (docker compose up, see docs/deploy.md), then publish the same simulated city to it
  with `urban-supervisor simulate --host localhost --port 1883 --devices {args.devices} --username simulator` and open
  http://localhost:3000
  (boards: City overview, Lighting, Traffic, CCTV, Water, Air quality, Network layers, Supervisor health).
Stop with Ctrl-C{'' if args.duration is None else f' (or after {args.duration:g} s)'}."""


def _drive(args: argparse.Namespace, sim: Any, sup: Any, model: Any, stop: threading.Event) -> None:
    """Until the duration or a signal: inject the planned faults and print a status every 10 s."""
    t0 = time.monotonic()
    switch = next((s for s in model.switches.values() if not s.core and s.uplink is not None), None)
    cabinet = next((d.id for d in model.devices.values() if d.kind == "lighting_cabinet"), None)
    plan = [] if args.no_faults else [(0.25, "fail"), (0.6, "restore")]
    duration = args.duration
    next_status = 10.0
    while not stop.wait(0.5):
        elapsed = time.monotonic() - t0
        span = duration if duration is not None else 120.0
        while plan and elapsed >= plan[0][0] * span:
            _, action = plan.pop(0)
            if action == "fail" and switch is not None:
                silenced = sim.faults.fail(switch.id)
                if cabinet is not None:
                    sim.faults.fail_lamps(cabinet, 2)
                _say(f"[demo] switch {switch.id} failed: {len(silenced)} devices go silent "
                     f"(expect one root-cause alarm); 2 lamps of {cabinet} failed")
            elif action == "restore" and switch is not None:
                sim.faults.restore(switch.id)
                _say(f"[demo] switch {switch.id} restored")
        if elapsed >= next_status:
            next_status += 10.0
            s = sup.summary()
            _say(f"[demo] t={elapsed:5.0f}s virtual={time.strftime('%d %H:%M', time.gmtime(sim.clock.now()))}Z "
                 f"received={s['ingest']['received']} stored={s['storage']['points_written']} "
                 f"errors={s['ingest']['errors']} alarms={s['alarms']}")
        if duration is not None and elapsed >= duration:
            break


def _report(summary: dict[str, Any], db_path: Path) -> dict[str, Any]:
    """The closing JSON: messages, points stored and errors, per family of the catalogue."""
    from drivers import catalogue
    from supervisor.storage import SqliteSink

    stored = SqliteSink(db_path).query_counts()
    errors_by_driver = summary["ingest"]["errors_by_driver"]
    return {
        "messages_received": summary["ingest"]["received"],
        "points_stored": stored,
        "errors": summary["ingest"]["errors_by_reason"],
        "per_family": {
            name: {"messages": summary["ingest"]["per_family"].get(name, 0), "points": stored.get(name, 0),
                   "errors": sum(n for k, n in errors_by_driver.items() if k.startswith(fam.driver))}
            for name, fam in catalogue.families().items()
        },
        "alarms_active": summary["alarms"],
        "store": str(db_path),
    }
