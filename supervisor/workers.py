"""Scale-out: N worker processes, each owning a disjoint set of zones, under one process manager.

``urban-supervisor run --workers N`` plans the partition, writes one configuration per worker and
runs each worker as its own ``urban-supervisor run`` process, restarting any that dies.

Partitioning
    The zones of the city model (``settings.city``) are split into N disjoint sets, balanced by
    device count (largest zone first onto the least loaded worker; deterministic). Worker *i*
    subscribes to ``$share/<group>-p<i>/city/<zone>/#`` for each of its zones, so every message of
    a zone reaches exactly one session and the rules coupling devices of a zone (a road sensor
    dimming the lamps of its street, a camera lighting its surroundings) run on one rule engine.
    Each worker loads a copy of the city file holding only the devices of its zones (the
    infrastructure is kept whole), so its state registry, staleness, fleet points and rules cover
    only what it receives. Subscriptions outside ``city/`` (drivers with other topic roots, which
    carry no zone) go to worker 0 alone.

    MQTT filters cannot hash a topic level, so without a city model the zone list must be given
    (``--zones z01,z02,...``); the manager refuses N > 1 otherwise.

Identity
    Worker *i* has client id ``<client_id>-w<i>``, data directory ``<data_dir>/w<i>`` (spool, rule
    state, its configuration and last summary), API port ``api.port + i`` (or none with
    ``--no-api``; port 0 stays ephemeral). The persistent session of a worker outlives its process:
    while the manager restarts a dead worker, the broker queues the partition's messages for that
    session, and the restarted worker (same client id) drains them and acknowledges after storage.

Failover
    A second member in the same ``$share`` group is *not* a passive standby on Mosquitto: the broker
    deals messages round-robin to every member, offline persistent sessions included (messages
    dealt to a dead member wait in its queue). A standby would split a zone's readings between
    two rule engines, so none is started; recovery is the restart with the same session. See
    docs/scaling.md for clustered brokers.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

_log = logging.getLogger(__name__)

ZONED_PREFIX = "city/"
# settings that the manager sets per worker: the same keys in the environment would override them
_PER_WORKER_ENV = ("DATA_DIR", "CITY", "STATE_FILE", "MQTT__CLIENT_ID", "MQTT__SHARE_GROUP",
                   "MQTT__SUBSCRIPTIONS", "API__PORT", "STORAGE__SPOOL_DIR")
RESTART_MIN_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # s of uptime after which a worker's restart back-off starts again from the minimum
EARLY_EXIT = 5.0  # a worker exiting with EXIT_INVALID this soon after start is a configuration error


class WorkersError(Exception):
    """The worker plan cannot be made (message says why)."""


# -- partition ---------------------------------------------------------------------------------------
def zone_weights(city: Mapping[str, Any]) -> dict[str, int]:
    """Devices per zone of a city file's data, every zone listed (file order), zoneless ones omitted."""
    weights: dict[str, int] = {}
    for z in city.get("zones") or []:
        if isinstance(z, Mapping) and isinstance(z.get("id"), str):
            weights[z["id"]] = 0
    for d in city.get("devices") or []:
        zone = d.get("zone") if isinstance(d, Mapping) else None
        if isinstance(zone, str):
            weights[zone] = weights.get(zone, 0) + 1
    return weights


def partition(weights: Mapping[str, int], n: int) -> list[list[str]]:
    """``n`` disjoint zone lists covering every zone, balanced by weight (deterministic).

    Longest-processing-time greedy: heaviest zone first onto the lightest worker (ties: lowest
    index); each list keeps the zones in their original order.
    """
    if n < 1:
        raise WorkersError(f"workers must be >= 1, got {n}")
    if len(weights) < n:
        raise WorkersError(f"{n} workers need at least {n} zones, the city has {len(weights)}")
    order = {z: i for i, z in enumerate(weights)}
    load = [0] * n
    parts: list[list[str]] = [[] for _ in range(n)]
    for zone in sorted(weights, key=lambda z: (-weights[z], order[z])):
        i = min(range(n), key=lambda k: (load[k], len(parts[k]), k))
        parts[i].append(zone)
        load[i] += max(1, weights[zone])
    return [sorted(p, key=order.__getitem__) for p in parts]


def zone_filters(zones: Sequence[str]) -> list[str]:
    return [f"{ZONED_PREFIX}{z}/#" for z in zones]


def filter_city(city: Mapping[str, Any], zones: Sequence[str]) -> dict[str, Any]:
    """A copy of the city data whose devices are only those of ``zones`` (infrastructure kept)."""
    keep = set(zones)
    out = dict(city)
    out["devices"] = [d for d in city.get("devices") or [] if d.get("zone") in keep]
    return out


def split_subscriptions(roots: Sequence[str]) -> tuple[bool, list[str]]:
    """(whether the native ``city/`` space is subscribed, the other filters), from subscription roots."""
    zoned = False
    other: list[str] = []
    for r in roots:
        if r in ("#", "+/#") or r.startswith("+/"):
            raise WorkersError(f"subscription {r!r} spans every zone: list the topic roots instead")
        if r == "city/#" or r.startswith(ZONED_PREFIX):
            zoned = True
        else:
            other.append(r)
    return zoned, other


# -- plan ------------------------------------------------------------------------------------------
@dataclass
class WorkerSpec:
    index: int
    zones: list[str]
    client_id: str
    share_group: str
    subscriptions: list[str]
    data_dir: Path
    api_port: int | None
    config_path: Path
    city_path: Path | None


def _raw_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _zone_weights(city: dict[str, Any] | None, zones: Sequence[str] | None,
                  city_path: Path | None) -> dict[str, int]:
    """The zones to partition and their weights: ``zones`` (checked against the city), else the city's."""
    if zones:
        if city is None:
            return dict.fromkeys(zones, 1)
        known = zone_weights(city)
        unknown = [z for z in zones if z not in known]
        if unknown:
            raise WorkersError(f"--zones: not in {city_path}: {', '.join(unknown)}")
        return {z: known[z] for z in zones}
    if city is not None:
        return zone_weights(city)
    raise WorkersError("--workers N > 1 partitions by zone: set `city` (the city model) or give --zones; "
                       "MQTT filters cannot hash a topic level")


def plan_workers(config: str | os.PathLike[str] | None, n: int, *, zones: Sequence[str] | None = None,
                 api: bool = True) -> list[WorkerSpec]:
    """Validate the configuration, partition the zones, write each worker's configuration.

    The files are written under ``<data_dir>/w<i>/``: ``worker.yaml`` (the configuration file with
    the per-worker keys set; secrets given in the environment stay there) and ``city.json`` (the
    city restricted to the worker's zones).
    """
    from supervisor.config import _deep_merge, load_settings
    from supervisor.ingest.router import Router
    from supervisor.runtime import build_drivers, subscription_roots

    settings = load_settings(config)  # raises ConfigFileError with precise messages
    if settings.storage.backend == "sqlite":
        raise WorkersError("--workers needs an InfluxDB backend: the embedded SQLite store is single-process")
    city: dict[str, Any] | None = None
    if settings.city is not None:
        from supervisor.model._load import read_city_file

        city, _ = read_city_file(settings.city)
    parts = partition(_zone_weights(city, zones, settings.city), n)
    roots = settings.mqtt.subscriptions or subscription_roots(
        [flt for flt, _ in Router(list(build_drivers(settings).values())).filters])
    zoned, other = split_subscriptions(roots)
    if not zoned:
        raise WorkersError(f"--workers: no subscription covers {ZONED_PREFIX}<zone>/...: {roots}")
    raw = _raw_config(config)
    group = settings.mqtt.share_group or settings.mqtt.client_id
    specs: list[WorkerSpec] = []
    for i, zs in enumerate(parts):
        data_dir = (settings.data_dir / f"w{i}").absolute()
        data_dir.mkdir(parents=True, exist_ok=True)
        subs = zone_filters(zs) + (other if i == 0 else [])
        over: dict[str, Any] = {
            "data_dir": str(data_dir),
            "mqtt": {"client_id": f"{settings.mqtt.client_id}-w{i}", "share_group": f"{group}-p{i}",
                     "subscriptions": subs,
                     # one watcher of the broker's drop counter is enough: worker 0
                     **({} if i == 0 else {"broker_drop_counter": None})},
        }
        # the daily open-data export runs once, in the manager, over the whole city (main_workers);
        # every worker's API serves the one export directory
        over["opendata"] = {"enabled": False,
                            "out_dir": str(settings.opendata.out_path(settings.data_dir).absolute())}
        port: int | None = None
        if api and settings.api.enabled:
            port = settings.api.port + i if settings.api.port else 0
            over["api"] = {"port": port}
        if settings.storage.spool_dir.is_absolute():
            over["storage"] = {"spool_dir": str(settings.storage.spool_dir / f"w{i}")}
        if settings.state_file.is_absolute():
            over["state_file"] = str(settings.state_file.with_name(f"w{i}-{settings.state_file.name}"))
        city_path = None
        if city is not None:
            city_path = data_dir / "city.json"
            city_path.write_bytes(orjson.dumps(filter_city(city, zs)))
            over["city"] = str(city_path)
        cfg_path = data_dir / "worker.yaml"
        cfg_path.write_text(json.dumps(_deep_merge(raw, over), indent=1, default=str), encoding="utf-8")
        specs.append(WorkerSpec(i, zs, over["mqtt"]["client_id"], over["mqtt"]["share_group"], subs, data_dir,
                                port, cfg_path, city_path))
    return specs


def worker_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the workers: the manager's, without the keys set per worker."""
    env = dict(os.environ if base is None else base)
    drop = {f"URBAN_{k}" for k in _PER_WORKER_ENV}
    return {k: v for k, v in env.items() if k.upper() not in drop}


# -- process manager -----------------------------------------------------------------------------
def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM when the manager dies, even by SIGKILL (no orphans).

    The kernel's "parent" here is the *thread* that spawned the worker: a worker restarted by
    :meth:`WorkerManager.run` on a thread of its own (the tests) gets SIGTERM when that thread
    ends, and then the manager's own, milliseconds apart (``supervisor/cli/_signals.py`` makes
    that harmless)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes] | None = None
    out: IO[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    exits: list[int] = field(default_factory=list)
    next_start: float = 0.0
    delay: float = RESTART_MIN_DELAY
    last_uptime: float = 0.0

    def restart_args(self) -> list[str]:
        """What a restarted worker is told of its predecessor: it raises the "worker restarted" alarm
        in its own alarm list (the manager has none)."""
        if not self.restarts or not self.exits:
            return []
        return ["--restart", str(self.restarts), "--last-exit", str(self.exits[-1]),
                "--last-uptime", f"{self.last_uptime:.1f}"]


class WorkerManager:
    """Runs one process per worker spec and restarts any that dies (back-off 0.5 s → 30 s)."""

    def __init__(self, specs: Sequence[WorkerSpec], *, no_api: bool = False,
                 env: Mapping[str, str] | None = None, python: str | None = None) -> None:
        self.workers = [_Worker(s) for s in specs]
        self._no_api = no_api
        self._env = worker_env(env)
        self._python = python or sys.executable
        self._stopping = False
        self.fatal: str | None = None

    def command(self, spec: WorkerSpec, extra: Sequence[str] = ()) -> list[str]:
        cmd = [self._python, "-m", "supervisor", "run", "--config", str(spec.config_path), *extra]
        return cmd + (["--no-api"] if self._no_api or spec.api_port is None else [])

    def _spawn(self, w: _Worker) -> None:
        if w.out is not None:
            w.out.close()
        w.out = open(w.spec.data_dir / "summary.json", "wb")  # noqa: SIM115 - held while the worker lives
        kwargs: dict[str, Any] = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent
        w.proc = subprocess.Popen(self.command(w.spec, w.restart_args()), stdout=w.out, stderr=None, env=self._env,
                                  **kwargs)
        w.started = time.monotonic()
        _log.info("worker %d started (pid %d, zones %s)", w.spec.index, w.proc.pid, ",".join(w.spec.zones))

    def start(self) -> WorkerManager:
        for w in self.workers:
            self._spawn(w)
        return self

    def pids(self) -> list[int | None]:
        return [w.proc.pid if w.proc is not None and w.proc.poll() is None else None for w in self.workers]

    def poll(self) -> None:
        """Restart dead workers (after their back-off); called periodically by :meth:`run`."""
        from supervisor.cli import EXIT_INVALID

        now = time.monotonic()
        for w in self.workers:
            if self._stopping or self.fatal is not None:
                return
            if w.proc is not None:
                rc = w.proc.poll()
                if rc is None:
                    continue
                uptime = w.last_uptime = now - w.started
                w.exits.append(rc)
                w.proc = None
                if rc == EXIT_INVALID and uptime < EARLY_EXIT:
                    self.fatal = f"worker {w.spec.index} refused its configuration {w.spec.config_path} (exit {rc})"
                    _log.error("%s", self.fatal)
                    return
                if uptime >= STABLE_AFTER:
                    w.delay = RESTART_MIN_DELAY
                w.next_start = now + w.delay
                _log.warning("worker %d exited (code %s) after %.1f s; restarting in %.1f s", w.spec.index, rc,
                             uptime, w.delay)
                w.delay = min(w.delay * 2, RESTART_MAX_DELAY)
            if w.proc is None and now >= w.next_start:
                w.restarts += 1
                self._spawn(w)

    def run(self, stop: threading.Event, duration: float | None = None, period: float = 0.2, *,
            reload: threading.Event | None = None, city: Path | None = None) -> None:
        """Supervise until ``stop`` is set, ``duration`` elapsed or a worker's configuration is refused;
        when ``reload`` is set (SIGHUP), reload ``city`` into every worker (:meth:`reload_city`)."""
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.wait(period):
            if reload is not None and reload.is_set():
                reload.clear()
                if city is None:
                    _log.error("model reload refused: no city file is configured")
                else:
                    self.reload_city(city)
            self.poll()
            if self.fatal is not None or (deadline is not None and time.monotonic() >= deadline):
                return

    def reload_city(self, city_path: Path) -> bool:
        """Reload the city file into every worker: validate it whole (as ``model check`` does), check its
        zones are the partition's, rewrite each worker's copy (restricted to its zones, replaced
        atomically), then send SIGHUP to every running worker (each reloads its copy; a worker that
        is restarting reads the new copy when it starts). Refused (logged at ERROR, nothing
        rewritten): a file the loader refuses, or zones that differ from the partition (a restart
        re-partitions)."""
        from supervisor.model import CityFileError
        from supervisor.model._load import read_city_file, validate

        try:
            city, source = read_city_file(city_path)
            validate(city, source)
        except CityFileError as exc:
            _log.error("model reload refused, the workers keep their model: %s", exc)
            return False
        zones = set(zone_weights(city))
        planned = {z for w in self.workers for z in w.spec.zones}
        if zones != planned:
            added, gone = sorted(zones - planned), sorted(planned - zones)
            _log.error("model reload refused, the workers keep their model: the zones differ from the workers' "
                       "partition (added %s, removed %s): restart to partition again", added or "none", gone or "none")
            return False
        for w in self.workers:
            if w.spec.city_path is None:
                continue
            tmp = w.spec.city_path.with_name(w.spec.city_path.name + ".tmp")
            tmp.write_bytes(orjson.dumps(filter_city(city, w.spec.zones)))
            os.replace(tmp, w.spec.city_path)
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGHUP)
        _log.info("model reload: %s written for %d workers, each told (SIGHUP)", city_path, len(self.workers))
        return True

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM every worker (each drains its inbox and flushes), then wait; SIGKILL stragglers."""
        self._stopping = True
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.terminate()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error("worker %d did not stop in %.0f s: killed", w.spec.index, timeout)
                w.proc.kill()
                w.proc.wait()
            w.exits.append(w.proc.returncode)
        for w in self.workers:
            if w.out is not None:
                w.out.close()
                w.out = None

    def kill(self, index: int, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to worker ``index`` (fault injection in tests and benchmarks); returns its pid."""
        proc = self.workers[index].proc
        if proc is None:
            raise WorkersError(f"worker {index} is not running")
        proc.send_signal(sig)
        return proc.pid

    def summary(self) -> dict[str, Any]:
        out = []
        for w in self.workers:
            last: Any = None
            with contextlib.suppress(OSError, ValueError):
                text = (w.spec.data_dir / "summary.json").read_text(encoding="utf-8").strip()
                last = json.loads(text) if text else None
            out.append({"index": w.spec.index, "client_id": w.spec.client_id, "share_group": w.spec.share_group,
                        "zones": w.spec.zones, "restarts": w.restarts, "exit_codes": w.exits,
                        "api_port": w.spec.api_port, "summary": last})
        return {"workers": len(self.workers), "restarts": sum(w.restarts for w in self.workers),
                "fatal": self.fatal, "per_worker": out}
