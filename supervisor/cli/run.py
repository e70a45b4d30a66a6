"""``urban-supervisor run``: the supervisor against a real broker and InfluxDB."""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from supervisor.cli import EXIT_INVALID, EXIT_OK
from supervisor.cli._signals import route_signals

STOP_DUMP_S = 30.0  # s: a stop slower than this dumps the threads' stacks (_shutdown)

if TYPE_CHECKING:
    from supervisor.config import Settings

_log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the supervisor (MQTT → drivers → state → InfluxDB, rules, API)")
    p.add_argument("--config", "-c", metavar="FILE", help="YAML configuration (URBAN_* env vars override it)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--no-api", action="store_true", help="do not start the HTTP API")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N worker processes, each owning a disjoint set of zones (MQTT 5 shared "
                        "subscriptions), restarted when they die; see docs/scaling.md")
    p.add_argument("--zones", metavar="Z1,Z2,...", default=None,
                   help="with --workers: the zones to partition (default: every zone of the city model)")
    # set by the worker manager on a restarted worker, which raises the "worker restarted" alarm
    p.add_argument("--restart", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--last-exit", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--last-uptime", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=main)


def _worker_restarted_alarm(sup: Any, args: argparse.Namespace) -> None:
    """This worker replaces one that died: say so in the alarm list (cleared when acknowledged)."""
    how = f"exit code {args.last_exit}" if args.last_exit is not None and args.last_exit >= 0 else (
        f"signal {-args.last_exit}" if args.last_exit is not None else "an unknown exit")
    after = f" after {args.last_uptime:.0f} s" if args.last_uptime is not None else ""
    text = f"worker {sup.instance} restarted (restart {args.restart}): its predecessor ended by {how}{after}"
    sup.lifecycle.supervisor_alarm("worker", "major", "raised", text, time.time())


def load_model(settings: Any) -> Any:
    """The city model named by the settings, or None."""
    if settings.city is None:
        return None
    from supervisor.model import load_city

    return load_city(settings.city)


def load_safe_settings(config: str | None, *, api: bool = True) -> Settings:
    """The settings of ``config``, refused when production would be unsafe (``ConfigFileError``).

    ``api=False`` (``--no-api``): the API does not listen, so its exposure is not checked.
    """
    from supervisor.config import enforce_production_safety, load_settings

    settings = load_settings(config)
    if not api:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"enabled": False})})
    enforce_production_safety(settings, source=config or "defaults")
    return settings


def _freeze_heap() -> None:
    """Take what start-up built (city model, device state, rules, modules) out of the collector's passes.

    These objects live as long as the process, yet every full collection walked them all: with a
    2,000-device city a gen-2 pass stalled the pipeline thread for ~55 ms (measured with a
    ``gc.callbacks`` probe during ``bench rules``), a visible share of the reaction-time p99.
    Only the process owner may freeze, hence here and not in :class:`Supervisor`.
    """
    gc.collect()
    gc.freeze()


class _Refreeze:
    """Freeze the survivors of a slow full collection (``gc_refreeze_ms``), at most once per
    ``gc_refreeze_min_interval`` seconds.

    What a running supervisor builds and keeps (device states as devices first report, the lane's
    learned topics, the rules' per-device state) is long-lived like the start-up heap, yet every
    gen-2 pass walked it again: during ``bench storm`` (100,000 devices, 3M messages) gen-2 passes
    took up to 180 ms every ~6 s, and the ten pipeline iterations over 90 ms (the storm probes'
    p99) were those passes. Frozen, the next passes walk only what was made since. The price: a reference
    cycle among frozen objects that later becomes garbage stays in memory until the next model
    reload (which unfreezes and collects everything) or restart; the refreezes are counted
    (``loop.gc_refreezes`` in the summary).
    """

    def __init__(self, watch: Any, threshold_ms: float, min_interval_s: float) -> None:
        self.watch, self.threshold_s, self.min_interval_s = watch, threshold_ms / 1000.0, min_interval_s
        self._t0 = 0.0
        self._last = -float("inf")

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        now = time.perf_counter()
        if phase == "start":
            self._t0 = now
        elif now - self._t0 >= self.threshold_s and now - self._last >= self.min_interval_s:
            gc.freeze()  # the collection is over: its survivors leave the collector's passes
            self._last = now
            self.watch.gc_refreezes += 1


def _own_process(sup: Any, settings: Settings) -> None:
    """What only the process owner may set: the GIL switch interval (``switch_interval_ms``), the
    frozen start-up heap and its refreezes (``gc_refreeze_ms``), the collector's pauses in the
    stall diagnostics."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
    _freeze_heap()
    sup.loop_watch.watch_gc()
    if settings.gc_refreeze_ms > 0:
        gc.callbacks.append(_Refreeze(sup.loop_watch, settings.gc_refreeze_ms, settings.gc_refreeze_min_interval))


def _refreeze_heap(_model: object) -> None:
    """After a model reload: the replaced model was frozen with the start-up heap, where the collector
    never looks; its reference cycles would stay in memory for good. Unfreeze, collect it, freeze
    the new model (one full collection per reload, in the reloading thread)."""
    gc.unfreeze()
    _freeze_heap()


def _follow_reloads(sup: Any, opendata: Any) -> None:
    """What follows a model reload in this process: the open-data export's model (the next export's
    inventory and districts), the frozen heap."""
    if opendata is not None:
        sup.on_model.append(lambda model: setattr(opendata.export, "model", model))
    sup.on_model.append(_refreeze_heap)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "workers", 1) != 1:
        return main_workers(args)
    from supervisor.config import ConfigFileError
    from supervisor.runtime import Supervisor, SupervisorError

    try:
        settings = load_safe_settings(args.config, api=not args.no_api)
        clock = time.time
        if settings.clock_start is not None:
            from rules import VirtualClock

            clock = VirtualClock(settings.clock_start, settings.clock_speed).now
        sup = Supervisor(settings, model=load_model(settings), clock=clock)
    except (ConfigFileError, SupervisorError) as exc:
        print(f"urban-supervisor: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # city or rule file errors carry their own precise messages
        print(f"urban-supervisor: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    logging.getLogger().setLevel(settings.log_level)
    if settings.ngsi.push.enabled and sup.model is None:
        print("urban-supervisor: ngsi.push needs the network model: set `city`", file=sys.stderr)
        return EXIT_INVALID
    if settings.opendata.enabled and (sup.model is None or settings.storage.backend != "influx-v1"):
        print("urban-supervisor: opendata.enabled needs the network model (`city`) and storage.backend influx-v1",
              file=sys.stderr)
        return EXIT_INVALID
    stop = threading.Event()
    from supervisor.service.reload import ReloadTriggers

    reloads = ReloadTriggers(sup, settings.city_watch)
    # SIGHUP reloads the city file (docs/city-file.md); no handler takes a lock (_signals)
    route_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set, signal.SIGHUP: reloads.request})
    sup.start()
    reloads.start()
    if args.restart:
        _worker_restarted_alarm(sup, args)
    api = None
    if settings.api.enabled and not args.no_api:
        from supervisor.api.server import ApiServer

        api = ApiServer(sup, settings.api).start()
    push = _ngsi_push(sup, settings)
    opendata = _opendata(sup.model, settings)
    _own_process(sup, settings)
    _follow_reloads(sup, opendata)
    where = settings.storage.sqlite_path if settings.storage.backend == "sqlite" else settings.storage.url
    print(f"urban-supervisor: running; MQTT {settings.mqtt.host}:{settings.mqtt.port}, storage "
          f"{settings.storage.backend} {where}" + (f", API http://{settings.api.host}:{api.port}" if api else ""),
          file=sys.stderr)
    stop.wait(args.duration)
    _shutdown(sup, reloads, push, opendata, api)
    print(json.dumps(sup.summary(), indent=2))
    return EXIT_OK


def _shutdown(sup: Any, *parts: Any) -> None:
    """Stop ``parts`` (each None or with ``stop()``), then the supervisor.

    A stop that takes longer than ``STOP_DUMP_S`` dumps every thread's stack to stderr (and goes
    on): a process manager kills what does not stop in time (``--workers`` after 40 s), and then
    only this says where it was held. (A restarted worker that was killed so in CI never got
    here: its SIGTERM handler waited for a lock its own thread held; see ``_signals``.)"""
    faulthandler.dump_traceback_later(STOP_DUMP_S, exit=False)
    for part in parts:
        if part is not None:
            part.stop()
    sup.stop()
    faulthandler.cancel_dump_traceback_later()


def _ngsi_push(sup: Any, settings: Any) -> Any:
    """The NGSI-LD push-mode syncer, started, when ``ngsi.push.enabled`` (docs/ngsi-ld.md)."""
    if not settings.ngsi.push.enabled:
        return None
    from supervisor.service.facade import Service

    return Service(sup).ngsi_pusher(settings.ngsi.push, settings.data_dir).start()


def _opendata(model: Any, settings: Any) -> Any:
    """The daily open-data export, started on its own thread, when ``opendata.enabled`` (docs/open-data.md);
    with ``--workers N`` the manager runs it over the whole city, the workers do not."""
    if not settings.opendata.enabled:
        return None
    from supervisor.opendata import OpenDataScheduler
    from supervisor.opendata.source import InfluxReader

    cfg = settings.opendata
    return OpenDataScheduler(cfg, cfg.out_path(settings.data_dir), model,
                             lambda: InfluxReader(settings.storage)).start()


def main_workers(args: argparse.Namespace) -> int:
    """``--workers N``: plan the zone partition, run one process per worker, restart the dead ones."""
    from supervisor.config import ConfigFileError
    from supervisor.workers import WorkerManager, WorkersError, plan_workers

    zones = [z.strip() for z in args.zones.split(",") if z.strip()] if args.zones else None
    try:
        if args.workers < 1:
            raise WorkersError(f"--workers must be >= 1, got {args.workers}")
        settings = load_safe_settings(args.config, api=not args.no_api)  # refused here rather than by every worker
        specs = plan_workers(args.config, args.workers, zones=zones, api=not args.no_api)
        if settings.opendata.enabled and (settings.city is None or settings.storage.backend != "influx-v1"):
            raise WorkersError("opendata.enabled needs the network model (`city`) and storage.backend influx-v1")
        od_model = load_model(settings) if settings.opendata.enabled else None
    except (ConfigFileError, WorkersError) as exc:
        print(f"urban-supervisor: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # city file errors carry their own precise messages
        print(f"urban-supervisor: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    reload = threading.Event()  # SIGHUP: the city file into every worker
    route_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set, signal.SIGHUP: reload.set})
    opendata = _opendata(od_model, settings)
    manager = WorkerManager(specs, no_api=args.no_api).start()
    for s in specs:
        api = f", API port {s.api_port}" if s.api_port is not None else ""
        print(f"urban-supervisor: worker {s.index} ({s.client_id}, $share/{s.share_group}) zones "
              f"{','.join(s.zones)}{api}", file=sys.stderr)
    try:
        manager.run(stop, args.duration, reload=reload, city=settings.city)
    finally:
        manager.stop()
        if opendata is not None:
            opendata.stop()
    print(json.dumps(manager.summary(), indent=2))
    return EXIT_INVALID if manager.fatal else EXIT_OK
