"""What the API reads and writes, as a small service (the FastAPI template's ``crud.py``).

Every method takes the supervisor's lock itself, for as short as it can: the API never takes
it, never touches the pipeline, the writer or the MQTT client, and never formats a stored point.
Results are plain data (dicts, lists, numbers); a refusal is a :class:`ServiceError` whose
subclass says what kind (the API maps each kind to one HTTP status).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from drivers import Command, DriverError
from supervisor.ingest.mqtt import MqttError, MqttStats
from supervisor.ingest.pipeline import IngestCounters
from supervisor.service.errors import SupervisorError

if TYPE_CHECKING:
    from pathlib import Path

    from rules import RuleEngine
    from supervisor.alarms import AlarmManager
    from supervisor.alarms.store import AlarmQuery
    from supervisor.model import CityModel
    from supervisor.ngsi import Entity, Live, NgsiView, Query
    from supervisor.ngsi.config import NgsiPushConfig
    from supervisor.ngsi.push import NgsiPusher
    from supervisor.opendata import OpenDataConfig
    from supervisor.service.live import Changes
    from supervisor.service.supervisor import Supervisor
    from supervisor.state.registry import DeviceState, StateRegistry
    from supervisor.storage.writer import WriterStats

T = TypeVar("T")
COMMAND_STATES = ("pending", "confirmed", "failed")


class ServiceError(Exception):
    """A request the service refuses; the message says why."""


class NotFoundError(ServiceError):
    """The device, alarm or override asked for does not exist."""


class ConflictError(ServiceError):
    """The request does not fit the current state (a cleared alarm, a refused command)."""


class InvalidError(ServiceError):
    """The request is well formed but cannot be carried out (a value the device cannot take)."""


class UnavailableError(ServiceError):
    """A part the request needs is not there: not configured, or the broker is not reachable."""


def _not_configured(what: str, how: str) -> UnavailableError:
    return UnavailableError(f"not configured: {what} ({how})")


@dataclass(frozen=True, slots=True)
class HealthView:
    mqtt_connected: bool
    writer_ok: bool
    writer_detail: str
    uptime_s: float


@dataclass(frozen=True, slots=True)
class MetricsView:
    """What ``/metrics`` shows, read under the lock in one go (counters are copied as they are then)."""

    counters: IngestCounters  # a copy
    dead_letters: int
    msg_rate: float
    devices: dict[tuple[str, str], int]  # (family, status) -> devices
    families: list[str]
    writer_stats: WriterStats
    mqtt_stats: MqttStats  # the client's own counters (read as they are)
    alarms_active: dict[tuple[str, str], int] | None  # (kind, severity) -> active alarms
    rules_stats: dict[str, Any] | None
    commands_by_state: dict[str, int] | None
    lane: dict[str, float | int] = field(default_factory=dict)  # the control lane (Supervisor.lane_fields)
    model_reloads: dict[str, int] | None = None  # ok, refused; None without a model


class Service:
    """The API's view of one :class:`~supervisor.service.supervisor.Supervisor`."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._ngsi_cache: tuple[CityModel, NgsiView] | None = None

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._sup.lock:
            return fn()

    # -- the optional parts ------------------------------------------------------------------------
    @property
    def model(self) -> CityModel:
        """The network model (immutable once loaded, replaced whole by a reload: read without the lock;
        a caller takes the reference once and reads that one model)."""
        if self._sup.model is None:
            raise _not_configured("no network model is loaded", "set `city` in the configuration")
        return self._sup.model

    def _alarms(self) -> AlarmManager:
        if self._sup.alarms is None:
            raise _not_configured("no alarm manager", "alarms need a network model: set `city`")
        return self._sup.alarms

    def _rules(self) -> RuleEngine:
        if self._sup.rules is None:
            raise _not_configured("no rule engine is loaded", "set `rules_dir` in the configuration")
        return self._sup.rules

    def require_alarms(self) -> None:
        self._alarms()

    def require_rules(self) -> None:
        self._rules()

    def model_drift(self) -> dict[str, Any]:
        """The last LLDP check of the network as built against the model (supervisor/snmp/drift.py);
        ``checked_at`` null before the first one."""
        snmp = self._sup.snmp
        if snmp is None:
            raise _not_configured("no SNMP", "set snmp.enabled and give switches a mgmt address in the city file")
        last = snmp.last_drift
        if last is None:
            return {"checked_at": None, "drift": [], "unreachable": [], "switches": len(snmp.poller.targets)}
        ts, found, silent = last
        return {"checked_at": ts, "drift": [d.as_dict() for d in found], "unreachable": list(silent),
                "switches": len(snmp.poller.targets)}

    # -- health and summary ------------------------------------------------------------------------
    def health(self) -> HealthView:
        """The broker connection and the writer: ok when every line given reached the store."""
        sup = self._sup
        ws = sup.writer.stats()
        problems = []
        if ws.spool_records:
            problems.append(f"{ws.spool_records} batch(es) spooled, waiting for the store ({ws.spool_bytes} bytes)")
        if ws.unsaved:
            problems.append(f"{ws.unsaved} line(s) could be neither written nor spooled")
        detail = "; ".join(problems) if problems else f"{ws.points_written} points written, {ws.pending} pending"
        return HealthView(mqtt_connected=sup.mqtt.stats.connected, writer_ok=not problems, writer_detail=detail,
                          uptime_s=round(time.time() - sup.started_at, 1) if sup.started_at else 0.0)

    def summary(self) -> dict[str, Any]:
        return self._locked(self._sup.summary)

    # -- devices -----------------------------------------------------------------------------------
    def devices(self, family: str | None, zone: str | None, status: str | None, limit: int,
                offset: int) -> tuple[int, list[dict[str, Any]]]:
        """Device states sorted by id: (matches before pagination, the page)."""
        def read() -> tuple[int, list[dict[str, Any]]]:
            matches: list[DeviceState] = sorted(self._sup.state.select(family, zone, status), key=lambda st: st.device)
            return len(matches), [st.as_dict() for st in matches[offset:offset + limit]]
        return self._locked(read)

    def device(self, device_id: str) -> dict[str, Any]:
        """State of one device, plus its model entry and what it depends on when a model is loaded."""
        sup = self._sup
        with sup.lock:
            st = sup.state.get(device_id)
            model = sup.model
            info = model.devices.get(device_id) if model is not None else None
            if st is None and info is None:
                where = "in the device state or the network model" if model is not None else "in the device state"
                raise NotFoundError(f"device {device_id!r} not found {where}")
            radio = sup.radio.device_state(device_id, sup.clock()) if sup.radio is not None else None
            return {"state": st.as_dict() if st is not None else None, "model": info,
                    "dependencies": model.dependencies(device_id) if model is not None and info is not None else None,
                    "radio": radio}

    def radio_element(self, element_id: str) -> dict[str, Any] | None:
        """A radio gateway's observed status and link quality (None: not a watched radio gateway)."""
        sup = self._sup
        with sup.lock:
            return sup.radio.element_state(element_id, sup.clock()) if sup.radio is not None else None

    def device_layer(self, build: Callable[[CityModel, StateRegistry], T]) -> T:
        """``build(model, device state)`` under the lock (the devices layer of the map)."""
        model = self.model
        return self._locked(lambda: build(model, self._sup.state))

    def knows_device(self, device_id: str) -> bool:
        with self._sup.lock:
            return self._knows(device_id)

    def _knows(self, device_id: str) -> bool:
        model = self._sup.model
        return (model is not None and device_id in model.devices) or self._sup.state.get(device_id) is not None

    # -- ingest diagnostics ------------------------------------------------------------------------
    def ingest_errors(self) -> dict[str, Any]:
        with self._sup.lock:
            c = self._sup.pipeline.counters
            items = [{"driver": d, "reason": r, "count": n} for (d, r), n in sorted(c.errors.items())]
            return {"received": c.received, "decoded": c.decoded, "total": c.error_total,
                    "by_reason": dict(sorted(c.errors_by_reason().items())), "by_driver": items}

    def dead_letters(self, limit: int, reason: str | None) -> dict[str, Any]:
        """The most recent refused messages (newest first) from the pipeline's bounded sample."""
        with self._sup.lock:
            dl = self._sup.pipeline.dead_letters
            items = [d.as_dict() for d in reversed(dl) if reason is None or d.reason == reason][:limit]
            return {"kept": len(dl), "capacity": dl.maxlen, "items": items}

    # -- alarms: the one list of every source (supervisor/alarms/lifecycle.py) -----------------------
    def alarms(self, all_: bool, limit: int, offset: int = 0, query: AlarmQuery | None = None) -> dict[str, Any]:
        """Alarms matching ``query``, newest first: active ones unless ``all_`` or a state is asked.

        ``active``: how many are active in all; ``total``: how many match (before paging)."""
        from supervisor.alarms.store import AlarmQuery

        q = query or AlarmQuery()
        if q.state is None and not all_:
            q = replace(q, state="active")
        lc = self._sup.lifecycle
        total, items = lc.query(q, limit, offset)
        return {"active": len(lc.active()), "total": total, "items": [a.as_dict() for a in items]}

    def alarm(self, alarm_id: str) -> dict[str, Any]:
        """One alarm (cleared ones too) with its journal."""
        lc = self._sup.lifecycle
        with _alarm_errors():
            out = lc.get(alarm_id).as_dict()
        out["journal"] = lc.store.journal(alarm_id)
        return out

    def acknowledge_alarm(self, alarm_id: str, user: str) -> dict[str, Any]:
        """Acknowledge an active alarm (twice keeps the first): stored, written, notified."""
        sup = self._sup
        with sup.lock, _alarm_errors():
            changed, alarm = sup.lifecycle.acknowledge(alarm_id, user, sup.clock())
            return {"changed": changed, "alarm": alarm.as_dict()}

    def comment_alarm(self, alarm_id: str, user: str, text: str) -> dict[str, Any]:
        sup = self._sup
        with sup.lock, _alarm_errors():
            return sup.lifecycle.comment(alarm_id, user, text, sup.clock()).as_dict()

    def shelve_alarm(self, alarm_id: str, user: str, until: float, reason: str) -> dict[str, Any]:
        sup = self._sup
        with sup.lock, _alarm_errors():
            return sup.lifecycle.shelve(alarm_id, user, until, reason, sup.clock()).as_dict()

    # -- maintenance windows -----------------------------------------------------------------------
    def maintenance(self) -> list[dict[str, Any]]:
        now = self._sup.clock()
        return [w.as_dict() | {"active": w.covers(now)} for w in self._sup.lifecycle.windows()]

    def add_maintenance(self, element: str, start: float, end: float, reason: str, user: str) -> dict[str, Any]:
        sup = self._sup
        with sup.lock, _alarm_errors():
            now = sup.clock()
            w = sup.lifecycle.add_window(element, start=start, end=end, reason=reason, user=user, now=now)
            return w.as_dict() | {"active": w.covers(now)}

    def remove_maintenance(self, window_id: str) -> dict[str, Any]:
        sup = self._sup
        with sup.lock, _alarm_errors():
            return sup.lifecycle.remove_window(window_id).as_dict()

    # -- commands ----------------------------------------------------------------------------------
    def commands(self, state: str | None) -> dict[str, Any]:
        """Last command the rule engine sent per actuator, and how many are in each state."""
        rules = self._rules()
        with self._sup.lock:
            items = {k: v for k, v in sorted(rules.commands().items()) if state is None or v.get("state") == state}
        counts = {s: sum(1 for v in items.values() if v.get("state") == s) for s in COMMAND_STATES}
        return {"counts": counts if state is None else {state: len(items)}, "commands": items}

    def command_history(self, device_id: str) -> dict[str, Any]:
        """The latest command states of a device sent by the rule engine (newest first, bounded)."""
        self._rules()
        with self._sup.lock:
            if not self._knows(device_id):
                raise NotFoundError(f"device {device_id!r} is unknown (not in the network model nor the device state)")
        items = self._sup.command_log.of(device_id)
        return {"device": device_id, "kept": self._sup.command_log.per_device, "items": items}

    def send_command(self, cmd: Command) -> list[str]:
        """Publish one command to a known device now; returns the topics published."""
        sup = self._sup
        with sup.lock:
            model = sup.model
            known = cmd.device in model.devices if model is not None else cmd.device in sup.device_driver
            if not known:
                where = "the network model" if model is not None else "the known devices (no network model is loaded)"
                raise NotFoundError(f"device {cmd.device!r} is not in {where}: commands go only to known devices")
            try:
                return sup.send_command(cmd)
            except DriverError as exc:
                raise InvalidError(f"device {cmd.device!r} cannot take this command: {exc}") from None
            except SupervisorError as exc:
                raise ConflictError(str(exc)) from None
            except MqttError as exc:
                raise UnavailableError(str(exc)) from None

    # -- rules and overrides -----------------------------------------------------------------------
    def rules(self) -> dict[str, Any]:
        rules = self._rules()
        with self._sup.lock:
            return {"rules": list(rules.rules()), "stats": rules.stats()}

    def why(self, device_id: str, limit: int) -> dict[str, Any]:
        """Recent decisions about a device (newest first), the level asked now and the requests behind it."""
        rules = self._rules()
        with self._sup.lock:
            decisions = list(rules.why(device_id))
            if not decisions and not self._knows(device_id):
                raise NotFoundError(
                    f"device {device_id!r} is unknown (not in the network model nor the device state)")
            return {"device": device_id, "level": rules.level(device_id), "requests": rules.requests(device_id),
                    "decisions": list(reversed(decisions))[:limit]}

    def override(self, device: str, level: float, *, until: float | None, duration_s: float | None,
                 user: str, channel: str | None) -> tuple[float, float | None]:
        """Hold a light at ``level`` until ``until`` (or for ``duration_s``): (until, level asked now)."""
        from rules import RuleError

        rules = self._rules()
        with self._sup.lock:
            end = until if until is not None else self._sup.clock() + (duration_s or 0.0)
            if not math.isfinite(end):
                raise InvalidError("until must be a finite epoch")
            try:
                rules.override(device, level, end, user, channel=channel)
            except RuleError as exc:
                raise _rule_error(exc) from None
            return end, rules.level(device, channel)

    def clear_override(self, device: str, channel: str | None, user: str) -> float | None:
        """Remove a device's manual override; returns the level the arbitration asks now."""
        from rules import RuleError

        rules = self._rules()
        with self._sup.lock:
            try:
                removed = rules.clear_override(device, channel=channel, user=user)
            except RuleError as exc:
                raise _rule_error(exc) from None
            if not removed:
                raise NotFoundError(f"device {device!r} has no manual override")
            return rules.level(device, channel)

    # -- live changes (the console's event stream) ----------------------------------------------------
    def live_cursor(self) -> int:
        """The sequence of the latest change: a stream starting now asks for what comes after it."""
        return self._sup.live.cursor

    def live_since(self, cursor: int, limit: int) -> Changes:
        """Changes after ``cursor`` (statuses, alarms, decisions), read from the bounded shared feed
        without the supervisor's lock; ``lost`` when the client fell too far behind."""
        return self._sup.live.since(cursor, limit)

    # -- metrics -----------------------------------------------------------------------------------
    def metrics(self) -> MetricsView:
        sup = self._sup
        with sup.lock:
            c = sup.pipeline.counters
            counters = replace(c, errors=Counter(c.errors), per_family=Counter(c.per_family))
            devices: Counter[tuple[str, str]] = Counter()
            families: set[str] = set()
            for (family, _zone), by_status in sup.state.counts().items():
                families.add(family)
                for st, n in by_status.items():
                    devices[(family, st)] += n
            # the one list: network, rule, command and the supervisor's own alarms alike
            alarms = dict(Counter((str(a.kind), str(a.severity)) for a in sup.lifecycle.active()))
            rules_stats = None if sup.rules is None else sup.rules.stats()
            by_state = None if sup.rules is None else dict(Counter(
                str(v.get("state")) for v in sup.rules.commands().values()))
            reloads = None if sup.model is None else {"ok": sup.reloader.ok, "refused": sup.reloader.refused}
            view = MetricsView(counters, len(sup.pipeline.dead_letters), sup.msg_rate, dict(devices),
                               sorted(families), sup.writer.stats(), sup.mqtt.stats, alarms, rules_stats, by_state,
                               sup.lane_fields(), reloads)
        return view

    # -- the model reload (supervisor/service/reload.py) -----------------------------------------------
    def reload_model(self) -> dict[str, Any]:
        """Read the configured city file again and swap it in: the diff. Refused (the loader's or the
        rules' problems, :class:`InvalidError`), the running model stays in place."""
        outcome = self._sup.reload_model("api")
        if not outcome.ok:
            if not outcome.configured:
                raise _not_configured("no network model is loaded", "set `city` in the configuration and restart")
            raise InvalidError("; ".join((outcome.error, *outcome.problems)))
        return outcome.as_dict()

    # -- NGSI-LD (supervisor.ngsi) -------------------------------------------------------------------
    @property
    def _ngsi(self) -> NgsiView:
        """The NGSI-LD view of the model, indexed on first use and again after a model reload."""
        from supervisor.ngsi import NgsiView

        model = self.model
        cached = self._ngsi_cache
        if cached is None or cached[0] is not model:
            cached = self._ngsi_cache = (model, NgsiView(model))
        return cached[1]

    def _ngsi_live(self, devices: Sequence[str]) -> Mapping[str, Live]:
        from supervisor.ngsi.view import read_live

        return self._locked(lambda: read_live(self._sup.state, devices))  # one lock per chunk of devices

    def ngsi_entities(self, query: Query) -> tuple[int, list[Entity]]:
        """(entities matching ``query``, the page), sorted by id; see :meth:`NgsiView.find`."""
        return self._ngsi.find(query, self._ngsi_live)

    def ngsi_entity(self, entity_id: str) -> Entity:
        found = self._ngsi.entity(entity_id, self._ngsi_live)
        if found is None:
            raise NotFoundError(f"entity {entity_id!r} not found")
        return found

    def ngsi_types(self) -> list[str]:
        return self._ngsi.types()

    def ngsi_pusher(self, cfg: NgsiPushConfig, data_dir: Path) -> NgsiPusher:
        """The push-mode syncer over this supervisor's entities (not started)."""
        from supervisor.ngsi.push import NgsiPusher

        pusher = NgsiPusher(cfg, data_dir, self._ngsi, self._ngsi_live)
        self._sup.on_model.append(lambda _model: setattr(pusher, "view", self._ngsi))  # a reload: the new view
        return pusher

    # -- open data (docs/open-data.md) -------------------------------------------------------------
    def open_data_config(self) -> OpenDataConfig:
        return self._sup.settings.opendata

    def open_data_file(self, name: str) -> tuple[Path, str]:
        """The published open-data file ``name`` (``""``: the DCAT-AP catalogue) and its media type.

        :class:`NotFoundError` when publication is off (``opendata.publish``), nothing is exported
        yet, or the catalogue does not list ``name``."""
        from supervisor.opendata import published_file

        cfg = self._sup.settings.opendata
        found = published_file(cfg.out_path(self._sup.settings.data_dir), name) if cfg.publish else None
        if found is None:
            raise NotFoundError(f"no open-data file {name!r}" if name else "no open-data catalogue")
        return found


@contextmanager
def _alarm_errors() -> Iterator[None]:
    """The alarm list's refusals as the service's: unknown -> not found, wrong state -> conflict,
    bad values -> invalid."""
    from supervisor.alarms import AlarmStateError, UnknownAlarmError
    from supervisor.alarms.lifecycle import AlarmInputError, UnknownWindowError

    try:
        yield
    except (UnknownAlarmError, UnknownWindowError) as exc:
        raise NotFoundError(str(exc)) from None
    except AlarmStateError as exc:
        raise ConflictError(str(exc)) from None
    except AlarmInputError as exc:
        raise InvalidError(str(exc)) from None


def _rule_error(exc: Exception) -> ServiceError:
    from rules import UnknownDeviceError

    if isinstance(exc, UnknownDeviceError) and exc.reason == "not in the city model":
        return NotFoundError(str(exc))
    return InvalidError(str(exc))


__all__ = ["COMMAND_STATES", "ConflictError", "HealthView", "InvalidError", "MetricsView",
           "NotFoundError", "Service", "ServiceError", "UnavailableError"]
