"""Alarm lifecycle with root-cause correlation, kept quiet.

Every ``update`` receives the devices currently silent or faulty. The network model explains them
by as few upstream elements as it can; each such element gets ONE ``root_cause`` alarm listing the
devices and services it takes down. Devices failing alone get a ``device`` alarm. Three rules keep
the list quiet:

- **Recovery.** A device inside an open root-cause alarm never gets an alarm of its own, nor a new
  root cause, while the cause is down *or recovering*: once the element no longer explains the
  silence (it came back), the alarm stays open, with ``recovering_since``, until every one of its
  devices has reported again (then it clears, ``recovered``). A device still failing
  ``recovery_grace_intervals`` of its own reporting interval after the recovery began is released:
  it then gets its own alarm (or a root cause of its own, when released with its siblings).
- **Flapping.** An alarm cleared as recovered whose cause comes back within ``flap_window`` seconds
  is re-opened: same id, ``flap_count`` + 1, its acknowledgement kept (the change has
  ``reopened=True``).
- **Merging.** Open alarms that a root cause explains when it is raised (a device alarm for one of
  its devices, a smaller root cause inside it) are merged into it: they are cleared with
  ``merged_into`` (and reason ``suppressed by <id>``), and the root cause lists their ids in
  ``merged``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from drivers import catalogue
from drivers.catalogue import Severity
from supervisor.alarms.errors import AlarmError, AlarmStateError, UnknownAlarmError  # noqa: F401 (were defined here)
from supervisor.config import AlarmsConfig
from supervisor.model import CityModel, RootCause
from supervisor.storage.schema import AFFECTED_MAX, ALARMS

log = logging.getLogger(__name__)

AlarmKind = Literal["root_cause", "device"]
AlarmState = Literal["raised", "acknowledged", "cleared"]
Evidence = Literal["observed", "inferred"]

MEASUREMENT = ALARMS.name  # the stored schema: supervisor/storage/schema.py
_DEFAULTS = AlarmsConfig()  # the defaults are the configuration's (``alarms:`` in the YAML file)
#: a recovering root cause holds each of its devices this many of the device's reporting intervals
RECOVERY_GRACE_INTERVALS: float = _DEFAULTS.recovery_grace_intervals
#: an alarm that comes back within this many seconds of its clearing is re-opened (a flap)
FLAP_WINDOW: float = _DEFAULTS.flap_window

class _KindSeverity(Mapping[str, Severity]):
    """device kind -> severity of its device alarm, read live from :mod:`drivers.catalogue`."""

    def __getitem__(self, kind_name: str) -> Severity:
        try:
            return catalogue.kind(kind_name).severity
        except catalogue.UnknownKindError:
            raise KeyError(kind_name) from None

    def __iter__(self) -> Iterator[str]:
        return (k.name for k in catalogue.kinds())

    def __len__(self) -> int:
        return sum(len(f.kinds) for f in catalogue.families().values())


DEVICE_SEVERITY: Mapping[str, Severity] = _KindSeverity()


@dataclass(slots=True)
class Alarm:
    id: str
    kind: AlarmKind
    element: str
    severity: Severity
    state: AlarmState
    devices: tuple[str, ...]
    services: tuple[str, ...]
    raised_at: float
    text: str
    acked_at: float | None = None
    acked_by: str | None = None
    cleared_at: float | None = None
    clear_reason: str | None = None  # "recovered" or "suppressed by <alarm id>"
    alternatives: tuple[str, ...] = ()
    flap_count: int = 0  # times it came back within the flap window after clearing (same id)
    reopened_at: float | None = None  # the last time it came back
    merged: tuple[str, ...] = ()  # ids of the alarms this one explained and absorbed
    merged_into: str | None = None  # cleared because this root-cause alarm explains it
    recovering_since: float | None = None  # root cause: its element is back, its devices not all yet
    #: ``observed``: the element itself was seen down (SNMP poll or trap, a radio gateway's statistics
    #: stopping while the others' arrive), not only inferred from
    #: its silent devices (``inferred``)
    evidence: Evidence = "inferred"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "element": self.element,
            "severity": self.severity,
            "state": self.state,
            "devices": list(self.devices),
            "services": list(self.services),
            "alternatives": list(self.alternatives),
            "raised_at": self.raised_at,
            "acked_at": self.acked_at,
            "acked_by": self.acked_by,
            "cleared_at": self.cleared_at,
            "clear_reason": self.clear_reason,
            "text": self.text,
            "flap_count": self.flap_count,
            "reopened_at": self.reopened_at,
            "merged": list(self.merged),
            "merged_into": self.merged_into,
            "recovering_since": self.recovering_since,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One lifecycle transition: a snapshot of the alarm after it, and when it happened.

    ``reopened``: the alarm came back within the flap window (its state is ``raised``, or
    ``acknowledged`` when it had been; its ``flap_count`` grew).
    """

    alarm: Alarm
    ts: float
    reopened: bool = False

    @property
    def state(self) -> AlarmState:
        return self.alarm.state

    @property
    def transition(self) -> str:
        """``raised``, ``acknowledged``, ``cleared`` or ``reopened``."""
        return "reopened" if self.reopened else self.alarm.state

    def as_point(self) -> tuple[str, dict[str, str], dict[str, Any], float]:
        """``(measurement, tags, fields, ts)`` for the ``alarms`` measurement."""
        a = self.alarm
        tags = {"kind": a.kind, "severity": a.severity, "element": a.element, "state": a.state}
        fields: dict[str, Any] = {
            "id": a.id,
            "devices": len(a.devices),
            "services": ",".join(a.services),
            "affected": orjson.dumps(list(a.devices[:AFFECTED_MAX])).decode(),
        }
        if a.flap_count:
            fields["flap_count"] = a.flap_count
        if a.merged:
            fields["merged"] = orjson.dumps(list(a.merged[:AFFECTED_MAX])).decode()
        if a.merged_into is not None:
            fields["merged_into"] = a.merged_into
        if a.kind == "root_cause":
            fields["evidence"] = a.evidence
        return MEASUREMENT, tags, fields, self.ts

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "transition": self.transition, "alarm": self.alarm.as_dict()}


def _root_cause_severity(cause: RootCause) -> Severity:
    if len(cause.services) >= 2 or len(cause.devices) >= 100:
        return "critical"
    return "major"


#: why an alarm about an element or device that a model reload removed is cleared
REMOVED_BY_RELOAD = "removed from the network model by a reload"


@dataclass
class AlarmManager:
    """Raises, acknowledges and clears alarms from the set of failing devices.

    ``history`` keeps the last ``history_size`` changes; cleared alarms stay reachable through
    ``get`` for as long (both bounded). ``flap_window`` (seconds, 0: off) and
    ``recovery_grace_intervals`` tune the quiet rules of the module docstring.
    """

    model: CityModel
    history_size: int = 10_000
    device_severity: Mapping[str, Severity] = field(default_factory=lambda: DEVICE_SEVERITY)
    root_cause_severity: Callable[[RootCause], Severity] = _root_cause_severity
    flap_window: float = FLAP_WINDOW
    recovery_grace_intervals: float = RECOVERY_GRACE_INTERVALS
    #: the lifecycle's hooks (supervisor/alarms/lifecycle.py): the id of a new alarm of (kind,
    #: element), and every change as it is recorded
    id_for: Callable[[str, str], str] | None = None
    on_change: Callable[[AlarmChange], None] | None = None
    history: deque[AlarmChange] = field(init=False)
    _active: dict[tuple[str, str], Alarm] = field(init=False, default_factory=dict)
    #: recovering root cause (element) -> {device not back yet: when it is released}
    _pending: dict[str, dict[str, float]] = field(init=False, default_factory=dict)
    #: open root cause (element) -> when it went down last (raised, re-opened, or down again while recovering)
    _down_since: dict[str, float] = field(init=False, default_factory=dict)
    _by_id: dict[str, Alarm] = field(init=False, default_factory=dict)
    _cleared: OrderedDict[str, Alarm] = field(init=False, default_factory=OrderedDict)
    #: alarms cleared as recovered within the flap window, oldest first: (kind, element) -> alarm
    _recent: OrderedDict[tuple[str, str], Alarm] = field(init=False, default_factory=OrderedDict)
    _seq: int = field(init=False, default=0)
    #: elements observed down now by any source (SNMP: an unreachable switch, a port oper-down while
    #: admin-up, a linkDown trap; LoRaWAN: a radio gateway whose statistics stopped), element -> what
    #: was observed: see :meth:`observe`
    _observed: dict[str, str] = field(init=False, default_factory=dict)
    #: the same, per source (``snmp``, ``lorawan``): source -> element -> what it observed
    _sources: dict[str, dict[str, str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size}")
        if not self.flap_window >= 0.0:
            raise ValueError(f"flap_window must be >= 0 seconds, got {self.flap_window}")
        if not self.recovery_grace_intervals >= 0.0:
            raise ValueError(f"recovery_grace_intervals must be >= 0, got {self.recovery_grace_intervals}")
        self.history = deque(maxlen=self.history_size)

    # ------------------------------------------------------------------ queries
    def active(self) -> list[Alarm]:
        """Alarms not cleared, oldest first."""
        return sorted(self._by_id.values(), key=lambda a: (a.raised_at, a.id))

    def get(self, alarm_id: str) -> Alarm:
        alarm = self._by_id.get(alarm_id) or self._cleared.get(alarm_id)
        if alarm is None:
            raise UnknownAlarmError(alarm_id)
        return alarm

    def due(self) -> bool:
        """True when :meth:`update` must run at the next check even if no device changed status: while a
        root cause recovers (a slow device presumed silent, never marked stale, comes back without
        a status change; a dead one is released at the end of its grace, a time nothing marks)."""
        return bool(self._pending)

    def recovering(self, alarm_id: str) -> tuple[str, ...]:
        """The devices a recovering root-cause alarm still waits for (empty when it does not wait)."""
        alarm = self.get(alarm_id)
        if alarm.kind != "root_cause" or self._active.get(("root_cause", alarm.element)) is not alarm:
            return ()
        return tuple(sorted(self._pending.get(alarm.element, ())))

    # ------------------------------------------------------------------ transitions
    def _record(self, alarm: Alarm, now: float, out: list[AlarmChange], *, reopened: bool = False) -> None:
        change = AlarmChange(replace(alarm), now, reopened)
        self.history.append(change)
        out.append(change)
        if self.on_change is not None:
            self.on_change(change)

    def _open(self, kind: AlarmKind, element: str, *, severity: Severity, devices: Iterable[str],
              services: Iterable[str], text: str, now: float,
              alternatives: tuple[str, ...] = ()) -> tuple[Alarm, bool]:  # fmt: skip
        """The alarm of ``(kind, element)``, active again, and whether it was re-opened (it cleared as
        recovered within the flap window) rather than new. The caller records it (:meth:`_opened`)."""
        key = (kind, element)
        self._expire_recent(now)
        alarm = self._recent.pop(key, None)
        reopened = alarm is not None
        if alarm is not None:
            self._cleared.pop(alarm.id, None)
            alarm.state = "acknowledged" if alarm.acked_at is not None else "raised"
            alarm.cleared_at = alarm.clear_reason = None
            alarm.flap_count += 1
            alarm.reopened_at = now
            alarm.severity, alarm.text = severity, text
        else:
            self._seq += 1
            alarm_id = self.id_for(kind, element) if self.id_for is not None else f"A{self._seq:06d}"
            alarm = Alarm(id=alarm_id, kind=kind, element=element, severity=severity, state="raised",
                          devices=tuple(devices), services=tuple(services), raised_at=now, text=text,
                          alternatives=alternatives)  # fmt: skip
        self._active[key] = alarm
        self._by_id[alarm.id] = alarm
        return alarm, reopened

    def _opened(self, alarm: Alarm, reopened: bool, now: float, out: list[AlarmChange]) -> None:
        if reopened:
            log.info("alarm %s back within the flap window (flap %d): %s", alarm.id, alarm.flap_count, alarm.text)
        else:
            log.info("alarm %s raised: %s", alarm.id, alarm.text)
        self._record(alarm, now, out, reopened=reopened)

    def _expire_recent(self, now: float) -> None:
        recent = self._recent
        while recent:
            alarm = next(iter(recent.values()))
            if alarm.cleared_at is not None and now - alarm.cleared_at <= self.flap_window:
                break
            recent.popitem(last=False)

    def _clear(self, key: tuple[str, str], reason: str, now: float, out: list[AlarmChange], *,
               merged_into: str | None = None) -> None:  # fmt: skip
        alarm = self._active.pop(key)
        del self._by_id[alarm.id]
        if key[0] == "root_cause":
            self._pending.pop(key[1], None)
            self._down_since.pop(key[1], None)
        alarm.state = "cleared"
        alarm.cleared_at = now
        alarm.clear_reason = reason
        alarm.merged_into = merged_into
        alarm.recovering_since = None
        self._cleared[alarm.id] = alarm
        while len(self._cleared) > self.history_size:
            self._cleared.popitem(last=False)
        if merged_into is None and self.flap_window > 0.0:
            self._recent.pop(key, None)
            self._recent[key] = alarm
            while len(self._recent) > self.history_size:
                self._recent.popitem(last=False)
        log.info("alarm %s cleared (%s)", alarm.id, reason)
        self._record(alarm, now, out)

    def _merge(self, key: tuple[str, str], into: Alarm, now: float, out: list[AlarmChange]) -> None:
        """Clear the alarm of ``key`` as explained by ``into``, and list it in ``into.merged``."""
        alarm = self._active[key]
        if alarm.id not in into.merged:
            into.merged = (*into.merged, alarm.id)
        self._clear(key, f"suppressed by {into.id}", now, out, merged_into=into.id)

    def rebind(self, model: CityModel, gone: Collection[str], now: float) -> list[AlarmChange]:
        """Correlate with a reloaded ``model`` from now on. The alarms about an element or device no
        longer in it (``gone``) are cleared, saying so; recoveries stop waiting for such devices."""
        self.model = model
        out: list[AlarmChange] = []
        for key in [k for k in self._active if k[1] in gone]:
            self._clear(key, REMOVED_BY_RELOAD, now, out)
        for key in [k for k in self._recent if k[1] in gone]:
            del self._recent[key]  # never re-opened: the element is gone
        for waiting in self._pending.values():
            for d in [d for d in waiting if d in gone]:
                del waiting[d]
        for source, found in list(self._sources.items()):  # evidence on a removed element: gone with it
            self.observe(source, {e: why for e, why in found.items() if e not in gone})
        return out

    # ------------------------------------------------------------------ correlation
    def update(self, silent_or_faulty: set[str] | frozenset[str], now: float, *,
               stale: set[str] | frozenset[str] | None = None,
               last_seen: Callable[[str], float | None] | None = None) -> list[AlarmChange]:
        """Bring the alarms in line with the devices failing ``now``; return the changes.

        With ``stale`` (the silent subset) and ``last_seen``, devices of different reporting
        intervals behind one failed element are correlated before the slow ones are overdue: see
        :meth:`presumed`. Without them, an element is blamed only once all its dependents failed.
        Changes come in this order: recovered root causes cleared, root causes raised (each followed
        by the alarms merged into it), then device alarms merged, cleared and raised.
        """
        evidence = set(silent_or_faulty)
        if stale and last_seen is not None:
            evidence |= self.presumed(stale, last_seen)
        observed = self._observed_causes()
        result = self.model.root_causes(evidence)
        result.unexplained.intersection_update(silent_or_faulty)  # presumed devices never get their own alarm
        for cause in observed:
            result.unexplained.difference_update(cause.devices)
        out: list[AlarmChange] = []
        self._expire_recent(now)
        wanted = {c.element for c in result.causes} | {c.element for c in observed}
        held = self._recover(wanted, silent_or_faulty, last_seen, now, out)
        explained = self._causes([*observed, *result.causes], held, now, out)
        self._settle_devices(explained, result.unexplained, now, out)
        return out

    def observe(self, source: str, observed: Mapping[str, str]) -> None:
        """Set the elements ``source`` observes down now (element -> what was observed, for the alarm text).

        Evidence is kept per source (``snmp``: the poller and traps; ``lorawan``: the radio gateways'
        statistics, supervisor/state/radio.py): a source replaces only its own set, so SNMP and
        LoRaWAN never erase each other; an element is observed down while any source says so.

        Observed evidence needs no silent device: at the next :meth:`update` each observed element
        gets its root-cause alarm at once (``evidence="observed"``), listing every device behind
        it; when those devices go stale later, the same alarm explains them (no second alarm). An
        element observed again up leaves the set and its alarm recovers as an inferred one does.
        Elements the model does not know are ignored (logged)."""
        known: dict[str, str] = {}
        for element, why in observed.items():
            if element in self.model.elements:
                known[element] = why
            else:
                log.warning("%s: observed evidence on %r, which the city model does not know: ignored", source,
                            element)
        if known:
            self._sources[source] = known
        else:
            self._sources.pop(source, None)
        merged: dict[str, str] = {}
        for found in self._sources.values():
            for element, why in found.items():
                merged[element] = f"{merged[element]}; {why}" if element in merged else why
        self._observed = merged

    @property
    def observed(self) -> dict[str, str]:
        """Every element observed down now, by any source (element -> what was observed)."""
        return dict(self._observed)

    def observed_by(self, source: str) -> dict[str, str]:
        """What ``source`` alone observes down now."""
        return dict(self._sources.get(source, {}))

    def _observed_causes(self) -> list[RootCause]:
        """One root cause per observed element, the most upstream first; an element whose dependents
        an observed element above it already covers is left out (its switch is down: the port is
        not news). An element nothing depends on (a spare port) raises nothing."""
        model = self.model
        found: list[RootCause] = []
        for element in self._observed:
            impact = model.impact(element)
            if impact.total == 0:
                continue
            devices = tuple(sorted(d for devs in impact.services.values() for d in devs))
            found.append(RootCause(element, impact.kind, devices, tuple(sorted(impact.services))))
        found.sort(key=lambda c: (-len(c.devices), c.element))
        out: list[RootCause] = []
        covered: set[str] = set()
        for cause in found:
            if covered.issuperset(cause.devices):
                continue
            covered.update(cause.devices)
            out.append(cause)
        return out

    def _recover(self, wanted: set[str], failing: set[str] | frozenset[str],
                 last_seen: Callable[[str], float | None] | None, now: float,
                 out: list[AlarmChange]) -> dict[str, str]:  # fmt: skip
        """Root-cause alarms whose element no longer explains the silence: each holds its devices
        not back yet until they report or their grace ends, then clears. Returns device -> id of
        the recovering alarm holding it.

        A device is back when it is not failing and, with ``last_seen``, has reported since the
        element went down: a slow device presumed silent (not overdue yet when the element came
        back) is held too, until it reports."""
        held: dict[str, str] = {}
        for key, alarm in list(self._active.items()):
            kind, element = key
            if kind != "root_cause":
                continue
            if element in wanted:  # down (again)
                if alarm.recovering_since is not None:
                    alarm.recovering_since = None
                    self._pending.pop(element, None)
                    self._down_since[element] = now
                continue
            since = self._down_since.get(element, alarm.raised_at)

            def back(d: str, since: float = since) -> bool:
                return d not in failing and (last_seen is None or (last_seen(d) or 0.0) >= since)

            pending = self._pending.get(element)
            if pending is None:
                pending = self._pending[element] = self._release_times([d for d in alarm.devices if not back(d)], now)
                alarm.recovering_since = now
                log.info("alarm %s recovering: %d of %d devices not back yet", alarm.id, len(pending),
                         len(alarm.devices))  # fmt: skip
            for d in [d for d, until in pending.items() if now > until or back(d)]:
                del pending[d]
            if pending:
                held.update(dict.fromkeys(pending, alarm.id))
            else:
                self._clear(key, "recovered", now, out)
        return held

    def _release_times(self, still: list[str], now: float) -> dict[str, float]:
        """Each device not back, with the end of its grace (grace intervals x its own interval)."""
        intervals = self.model.intervals(still)
        return {d: now + self.recovery_grace_intervals * iv for d, iv in zip(still, intervals, strict=True)}

    def _causes(self, causes: list[RootCause], held: dict[str, str], now: float,
                out: list[AlarmChange]) -> dict[str, str]:  # fmt: skip
        """Raise (or re-open) the root causes not open yet, unless every device they explain is
        already in an open alarm. Returns device -> id of the alarm that explains it."""
        explained = dict(held)
        new: list[RootCause] = []
        for cause in causes:
            alarm = self._active.get(("root_cause", cause.element))
            if alarm is None:
                new.append(cause)
            else:
                explained.update(dict.fromkeys(cause.devices, alarm.id))
        for cause in new:
            if all(d in explained for d in cause.devices):
                continue  # inside alarms already open (down or recovering): nothing new to say
            alarm = self._raise_root_cause(cause, now, out)
            explained.update(dict.fromkeys(cause.devices, alarm.id))
        return explained

    def _raise_root_cause(self, cause: RootCause, now: float, out: list[AlarmChange]) -> Alarm:
        """Open the alarm of ``cause`` and merge into it the open alarms it explains: device alarms
        of its devices, and root causes whose devices it all takes down."""
        devset = set(cause.devices)
        absorbed = [key for key, a in self._active.items()
                    if (a.element in devset if a.kind == "device" else devset.issuperset(a.devices))]
        svc_text = ", ".join(cause.services)
        alt = f" (or {', '.join(cause.alternatives)})" if cause.alternatives else ""
        seen = self._observed.get(cause.element)
        if seen is not None:
            text = (f"{cause.kind} {cause.element} down, observed ({seen}): {len(cause.devices)} devices "
                    f"behind it ({svc_text})")
        else:
            text = f"{cause.kind} {cause.element}{alt} down: {len(cause.devices)} devices silent ({svc_text})"
        alarm, reopened = self._open("root_cause", cause.element, severity=self.root_cause_severity(cause),
                                     devices=cause.devices, services=cause.services, text=text, now=now,
                                     alternatives=cause.alternatives)  # fmt: skip
        alarm.merged = (*alarm.merged, *(self._active[k].id for k in absorbed))
        alarm.evidence = "observed" if seen is not None else "inferred"
        self._down_since[cause.element] = now
        self._opened(alarm, reopened, now, out)
        for key in absorbed:
            self._merge(key, alarm, now, out)
        return alarm

    def _settle_devices(self, explained: dict[str, str], unexplained: set[str], now: float,
                        out: list[AlarmChange]) -> None:  # fmt: skip
        """Device alarms: merged into the alarm that now explains the device, cleared when the
        device is back, raised (or re-opened) for a device failing alone."""
        for key in [k for k in self._active if k[0] == "device"]:
            into = explained.get(key[1])
            if into is not None:
                self._merge(key, self._by_id[into], now, out)
            elif key[1] not in unexplained:
                self._clear(key, "recovered", now, out)
        for device in sorted(unexplained):
            if device in explained or ("device", device) in self._active:
                continue
            info = self.model.devices.get(device)
            kind_name = "device" if info is None else info.kind
            services: tuple[str, ...] = () if info is None else (info.service,)
            alarm, reopened = self._open("device", device, severity=self.device_severity.get(kind_name, "minor"),
                                         devices=(device,), services=services, now=now,
                                         text=f"{kind_name} {device} silent or faulty")  # fmt: skip
            self._opened(alarm, reopened, now, out)

    def presumed(self, stale: set[str] | frozenset[str], last_seen: Callable[[str], float | None]) -> set[str]:
        """Devices presumed silent although not overdue yet, because an element above them failed.

        When an element fails, its dependents go stale at different times: a camera reporting every
        60 s after 3 minutes, a lamp reporting every 300 s after 15. Without this, the cameras would
        raise device alarms for 12 minutes before the element is blamed. An element with at least
        two stale dependents is presumed failed when none of its other dependents has reported
        since the stale ones stopped (within the stale ones' reporting interval); its other
        dependents are then presumed silent. A healthy element is cleared by its first report.
        """
        candidates: dict[str, list[str]] = {}
        for d in stale:
            for el in self.model.dependencies(d):
                candidates.setdefault(el, []).append(d)
        devices = self.model.devices
        out: set[str] = set()
        for el, silent in candidates.items():
            if len(silent) < 2:
                continue
            t_silent = max(last_seen(d) or 0.0 for d in silent)
            tolerance = max(float(devices[d].interval) for d in silent if d in devices) if silent else 0.0
            horizon = t_silent + tolerance
            others = [o for o in self.model.dependents(el) if o not in stale]
            if others and not any((last_seen(o) or 0.0) > horizon for o in others):
                out.update(others)
        return out

    # ------------------------------------------------------------------ operators
    def acknowledge(self, alarm_id: str, user: str, now: float) -> AlarmChange | None:
        """Acknowledge an active alarm; ``None`` when it already was."""
        alarm = self._by_id.get(alarm_id)
        if alarm is None:
            if alarm_id in self._cleared:
                raise AlarmStateError(alarm_id, "cleared", "acknowledge")
            raise UnknownAlarmError(alarm_id)
        if alarm.state == "acknowledged":
            return None
        alarm.state = "acknowledged"
        alarm.acked_at = now
        alarm.acked_by = user
        log.info("alarm %s acknowledged by %s", alarm_id, user)
        out: list[AlarmChange] = []
        self._record(alarm, now, out)
        return out[0]
