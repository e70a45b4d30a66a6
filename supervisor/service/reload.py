"""The city model reloaded without a restart: read, validated, compared, then swapped in one step.

Triggers: ``POST /api/v1/model/reload`` (the facade), SIGHUP to ``urban-supervisor run``, and the
optional file watch (``city_watch``). Every trigger ends in :meth:`ModelReloader.reload`:

1. **Prepare** (the caller's thread, no lock; the pipeline keeps running): the city file is read
   and validated by the loader used at start (:func:`supervisor.model.load_city`); the rules are
   validated against it (``rules_dir`` read again when configured, so that a city change and the
   rule change it needs land together; otherwise the running rules); the diff with the running
   model is computed; with SNMP on, every switch's credentials must be in ``snmp.credentials``. Any
   refusal stops here: nothing has changed, the error is returned, logged
   at ERROR, counted (``model_reloads_refused``) and stored (``model_reload`` point).
2. **Swap** (under the supervisor's lock): the pipeline thread holds that lock for each whole
   batch, so a batch is processed with the old model or the new one, never a mix; messages
   arriving meanwhile wait in the inbox (nothing is refused or lost, and acknowledgement still
   follows storage). This is the one place that knows every holder of the model: the supervisor
   (``Supervisor.model``, read by the facade, the API, the zone lookups), both pipelines' identity
   maps, the command sender, the positions of the status points, the device state (removed
   devices leave it, added ones are registered with their interval and stale deadline, changed
   ones updated), the device -> driver
   table, the alarm manager (correlation) and the alarm list (alarms about removed elements and
   devices cleared, saying so), the rule engine (selectors re-resolved, control-lane plan
   recomputed). The status check and the alarm correlation run again at the next period.
3. **After**: the ``on_model`` callbacks of the supervisor (the NGSI-LD pusher's view, the SNMP
   poller's targets...) are called with the new model, outside the lock, in the reloading thread.

With ``--workers N`` each worker is its own process with its own copy of the city (restricted to
its zones): see ``docs/city-file.md`` (Reload) for how a reload reaches them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.storage import schema

if TYPE_CHECKING:
    from rules import Rebinding, ReloadResult
    from supervisor.model import CityModel, DeviceInfo, ModelDiff
    from supervisor.service.supervisor import Supervisor

_log = logging.getLogger(__name__)

TRIGGERS = ("api", "sighup", "watch")
#: problems listed in a refusal (the loader caps its own list at 1000)
MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload did: swapped in (``ok``, with the diff) or refused (``error``, ``problems``)."""

    ok: bool
    trigger: str
    source: str
    at: float
    diff: ModelDiff | None = None
    error: str = ""
    problems: tuple[str, ...] = ()
    rules: dict[str, list[str]] = field(default_factory=dict)  # added, removed, rebuilt
    alarms_cleared: int = 0
    prepare_ms: float = 0.0
    swap_ms: float = 0.0
    configured: bool = True  # False: no model to reload (the supervisor started without a city)

    def as_dict(self, limit: int = 1000) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "trigger": self.trigger, "source": self.source, "at": self.at,
                               "prepare_ms": round(self.prepare_ms, 1)}
        if self.ok:
            assert self.diff is not None
            out |= {"swap_ms": round(self.swap_ms, 3), "diff": self.diff.as_dict(limit), "rules": self.rules,
                    "alarms_cleared": self.alarms_cleared}
        else:
            out |= {"error": self.error, "problems": list(self.problems)}
        return out

    def detail(self) -> str:
        """One line: the diff's summary, or the refusal with its first problems."""
        if self.ok:
            assert self.diff is not None
            return self.diff.summary()
        return self.error + ("".join(f"; {p}" for p in self.problems[:10]))


class ModelReloader:
    """Reloads the city model of one supervisor (one reload at a time; see the module docstring)."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._serial = threading.Lock()
        self.ok = 0
        self.refused = 0
        self.last: ReloadOutcome | None = None
        #: called with the new model after each reload, outside the lock (the NGSI-LD pusher's view, the
        #: SNMP poller's targets...): quick, thread-safe; one that raises is logged, the others still run
        self.on_model: list[Callable[[CityModel], None]] = []

    def fields(self) -> dict[str, int]:
        """The counters of the ``supervisor`` health point."""
        return {"model_reloads": self.ok, "model_reloads_refused": self.refused}

    def reload(self, trigger: str, path: str | Path | None = None) -> ReloadOutcome:
        """Reload the city file (``path``, default the configured ``city``); never raises for a bad file."""
        if trigger not in TRIGGERS:
            raise ValueError(f"reload trigger must be one of {TRIGGERS}, got {trigger!r}")
        with self._serial:
            outcome = self._reload(trigger, path)
            self._record(outcome)
        return outcome

    def _refused(self, trigger: str, source: str, t0: float, error: str, problems: list[str] | tuple[str, ...] = (),
                 *, configured: bool = True) -> ReloadOutcome:
        more = [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
        return ReloadOutcome(False, trigger, source, self._sup.clock(), error=error,
                             problems=(*problems[:MAX_PROBLEMS], *more), configured=configured,
                             prepare_ms=(time.perf_counter() - t0) * 1000.0)

    def _reload(self, trigger: str, path: str | Path | None) -> ReloadOutcome:
        sup = self._sup
        t0 = time.perf_counter()
        where = path if path is not None else sup.settings.city
        source = str(where) if where is not None else ""
        old = sup.model
        if old is None or where is None:
            return self._refused(trigger, source, t0, "no city model is loaded: the supervisor started without "
                                 "`city`; a model is added by a restart, not a reload", configured=False)
        from rules import RuleFileError
        from supervisor.model import CityFileError, diff_models, load_city

        try:
            new = load_city(where)
        except CityFileError as exc:
            problems = [str(p) for p in exc.problems] + ([f"... and {exc.more} more"] if exc.more else [])
            n = len(exc.problems) + exc.more
            return self._refused(trigger, source, t0, f"city file {source} refused, the running model is kept: "
                                 f"{n} problem(s)", problems)
        except Exception as exc:  # the loader's other failures (a CRS pyproj refuses...) carry their message
            return self._refused(trigger, source, t0,
                                 f"city file {source} refused, the running model is kept: {type(exc).__name__}: {exc}")
        snmp_refusal = self._snmp_credentials(new)
        if snmp_refusal is not None:
            return self._refused(trigger, source, t0, f"city file {source} refused, the running model is kept: "
                                 "its switches must name SNMP credentials of the configuration", snmp_refusal)
        diff = diff_models(old, new)
        rebinding: Rebinding | None = None
        if sup.rules is not None:
            geography = ("zones", "streets", "city")
            try:
                rebinding = sup.rules.prepare_rebind(
                    new, sup.settings.rules_dir, touched=diff.changed.get("devices", {}).keys(),
                    rebuild_all=any(t in part for t in geography for part in (diff.added, diff.removed, diff.changed)))
            except RuleFileError as exc:
                return self._refused(trigger, source, t0, "the rules do not fit the new city file, the running "
                                     f"model is kept: {len(exc.issues)} problem(s)", [str(i) for i in exc.issues])
            except Exception as exc:  # a rule kind that cannot be built on the new city: refused, not raised
                return self._refused(trigger, source, t0, "the rules cannot run on the new city file, the running "
                                     f"model is kept: {type(exc).__name__}: {exc}")
        # the device records the state needs, read from the model before the lock (built on access)
        placed = [new.devices[d] for d in (*diff.added.get("devices", ()), *diff.changed.get("devices", {}))]
        prepare_ms = (time.perf_counter() - t0) * 1000.0
        with sup.lock:
            t1 = time.perf_counter()
            cleared, rules = self._swap(new, diff, rebinding, placed)
            swap_ms = (time.perf_counter() - t1) * 1000.0
        self._call_hooks(new)
        return ReloadOutcome(True, trigger, source, sup.clock(), diff, rules=rules, alarms_cleared=cleared,
                             prepare_ms=prepare_ms, swap_ms=swap_ms)

    def _snmp_credentials(self, new: CityModel) -> list[str] | None:
        """With SNMP on (polling or traps), every switch's ``mgmt.credentials`` must name an entry of
        ``snmp.credentials``, as at start (the same check: the poller's targets): the problem naming
        each such switch and its credentials, or None. The SNMP part follows the model only after the
        swap, where it could only log."""
        cfg = self._sup.settings.snmp
        if not (cfg.enabled or cfg.traps.enabled):
            return None
        from supervisor.snmp.poller import CredentialsError, targets_from_model

        try:
            targets_from_model(new, cfg)
        except CredentialsError as exc:
            return [str(exc)]
        return None

    def _swap(self, new: CityModel, diff: ModelDiff, rebinding: Rebinding | None,
              placed: list[DeviceInfo]) -> tuple[int, dict[str, list[str]]]:
        """Every holder of the model, in one step (the caller holds the supervisor's lock)."""
        sup = self._sup
        now = sup.clock()
        gone_devices = diff.ids("removed", devices=True)
        gone = gone_devices | diff.ids("removed", devices=False)
        sup.model = new
        for pipeline in (sup.pipeline, sup.lane_pipeline):
            if pipeline.identity is not None:
                pipeline.identity.rebind(new.devices)
        sup.commands.model = new
        sup.periodic.position_of = new.devices.position  # the status points' positions (the map)
        for d in gone_devices:
            sup.state.unregister(d)
            sup.device_driver.pop(d, None)
        for info in placed:
            sup.state.place(info.id, info.family, info.zone, info.interval, now)
            sup.device_driver[info.id] = info.driver
        from supervisor.alarms._manager import REMOVED_BY_RELOAD

        cleared = 0
        if sup.alarms is not None:
            cleared += len(sup.alarms.rebind(new, gone, now))
        cleared += sup.lifecycle.rebind(new, gone, now, REMOVED_BY_RELOAD)
        rules: dict[str, list[str]] = {}
        if sup.rules is not None and rebinding is not None:
            result: ReloadResult = sup.rules.rebind(rebinding, gone=gone_devices)
            rules = {"added": list(result.added), "removed": list(result.removed), "rebuilt": list(result.changed)}
        sup.periodic.check_now()
        return cleared, rules

    def _call_hooks(self, new: CityModel) -> None:
        hooks = list(self.on_model)
        for hook in hooks:
            try:
                hook(new)
            except Exception:  # one part failing to follow must not undo the reload nor stop the others
                _log.exception("model reload: the on_model callback %r failed", hook)

    def _record(self, outcome: ReloadOutcome) -> None:
        """Count, log and store one reload."""
        sup = self._sup
        if outcome.ok:
            self.ok += 1
            assert outcome.diff is not None
            _log.info("model reloaded from %s (%s; prepared in %.0f ms, swapped in %.1f ms): %s",
                      outcome.source, outcome.trigger, outcome.prepare_ms, outcome.swap_ms, outcome.detail())
            counts = outcome.diff.counts()
            result, swap_ms = "ok", outcome.swap_ms
        else:
            self.refused += 1
            _log.error("model reload refused (%s): %s", outcome.trigger, outcome.detail())
            counts, result, swap_ms = {}, "refused", None
        self.last = outcome
        with sup.lock:
            sup._store("model reload", lambda: schema.model_reload_line(
                sup.instance, result, outcome.trigger, counts=counts, detail=outcome.detail(), ts=outcome.at,
                swap_ms=swap_ms))


class ReloadTriggers:
    """The reloads asked by SIGHUP and, with ``city_watch``, by a change of the city file, run on a
    thread of their own: a signal handler only calls :meth:`request` (it sets an event).

    The watch polls the file's modification time and size every ``watch`` seconds (no inotify
    dependency: one ``stat`` per period costs nothing) and reloads once a change has stayed the
    same for one period, so that a file still being written is not read half way. A refused file
    is not tried again until it changes again.
    """

    def __init__(self, sup: Supervisor, watch: float | None = None) -> None:
        self._sup = sup
        self._watch = watch
        self._asked = threading.Event()
        self._stop = threading.Event()
        self._seen = self._stamp()
        self._thread = threading.Thread(target=self._run, name="model-reload", daemon=True)

    def request(self) -> None:
        """Ask for a reload (safe in a signal handler)."""
        self._asked.set()

    def start(self) -> ReloadTriggers:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._asked.set()
        self._thread.join(timeout)

    def _stamp(self) -> tuple[int, int] | None:
        city = self._sup.settings.city
        if city is None:
            return None
        try:
            st = Path(city).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _run(self) -> None:
        pending: tuple[int, int] | None = None
        while True:
            asked = self._asked.wait(self._watch or 1.0)
            if self._stop.is_set():
                return
            if asked:
                self._asked.clear()
                self._seen, pending = self._stamp(), None
                self._reload("sighup")
                continue
            if self._watch is None:
                continue
            stamp = self._stamp()
            if stamp is None or stamp == self._seen:
                pending = None
            elif stamp == pending:  # changed, then unchanged for one period
                self._seen, pending = stamp, None
                self._reload("watch")
            else:
                pending = stamp

    def _reload(self, trigger: str) -> None:
        try:
            self._sup.reload_model(trigger)  # logged, counted and stored, refused or not
        except Exception:  # the thread must survive whatever a reload raises
            _log.exception("model reload (%s) failed", trigger)
