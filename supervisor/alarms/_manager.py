"""Alarm lifecycle with root-cause correlation.

Every ``update`` receives the devices currently silent or faulty. The network model explains them
by as few upstream elements as it can; each such element gets ONE ``root_cause`` alarm listing the
devices and services it takes down, and the per-device alarms it explains are suppressed (cleared,
or never raised). Devices failing alone get a ``device`` alarm. An alarm whose devices are no
longer failing is cleared.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from drivers import catalogue
from drivers.catalogue import Severity
from supervisor.alarms.errors import AlarmError, AlarmStateError, UnknownAlarmError  # noqa: F401 (were defined here)
from supervisor.model import CityModel, RootCause
from supervisor.storage.schema import AFFECTED_MAX, ALARMS

log = logging.getLogger(__name__)

AlarmKind = Literal["root_cause", "device"]
AlarmState = Literal["raised", "acknowledged", "cleared"]

MEASUREMENT = ALARMS.name  # the stored schema: supervisor/storage/schema.py
RECOVERY_GRACE_INTERVALS = 3.0  # a recovering root cause keeps its devices this many intervals



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
        }


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One lifecycle transition: a snapshot of the alarm after it, and when it happened."""

    alarm: Alarm
    ts: float

    @property
    def state(self) -> AlarmState:
        return self.alarm.state

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
        return MEASUREMENT, tags, fields, self.ts

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "alarm": self.alarm.as_dict()}


def _root_cause_severity(cause: RootCause) -> Severity:
    if len(cause.services) >= 2 or len(cause.devices) >= 100:
        return "critical"
    return "major"


@dataclass
class AlarmManager:
    """Raises, acknowledges and clears alarms from the set of failing devices.

    ``history`` keeps the last ``history_size`` changes; cleared alarms stay reachable through
    ``get`` for as long (both bounded).
    """

    model: CityModel
    history_size: int = 10_000
    device_severity: Mapping[str, Severity] = field(default_factory=lambda: DEVICE_SEVERITY)
    root_cause_severity: Callable[[RootCause], Severity] = _root_cause_severity
    #: the lifecycle's hooks (supervisor/alarms/lifecycle.py): the id of a new alarm of (kind,
    #: element), and every change as it is recorded
    id_for: Callable[[str, str], str] | None = None
    on_change: Callable[[AlarmChange], None] | None = None
    history: deque[AlarmChange] = field(init=False)
    _active: dict[tuple[str, str], Alarm] = field(init=False, default_factory=dict)
    _recovering: dict[str, float] = field(init=False, default_factory=dict)  # element -> since
    _by_id: dict[str, Alarm] = field(init=False, default_factory=dict)
    _cleared: OrderedDict[str, Alarm] = field(init=False, default_factory=OrderedDict)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size}")
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

    # ------------------------------------------------------------------ transitions
    def _record(self, alarm: Alarm, now: float, out: list[AlarmChange]) -> None:
        change = AlarmChange(replace(alarm), now)
        self.history.append(change)
        out.append(change)
        if self.on_change is not None:
            self.on_change(change)

    def _raise(self, kind: AlarmKind, element: str, *, severity: Severity, devices: Iterable[str],
               services: Iterable[str], text: str, now: float, out: list[AlarmChange],
               alternatives: tuple[str, ...] = ()) -> Alarm:  # fmt: skip
        self._seq += 1
        alarm = Alarm(
            id=self.id_for(kind, element) if self.id_for is not None else f"A{self._seq:06d}",
            kind=kind,
            element=element,
            severity=severity,
            state="raised",
            devices=tuple(devices),
            services=tuple(services),
            raised_at=now,
            text=text,
            alternatives=alternatives,
        )
        self._active[(kind, element)] = alarm
        self._by_id[alarm.id] = alarm
        log.info("alarm %s raised: %s", alarm.id, text)
        self._record(alarm, now, out)
        return alarm

    def _clear(self, key: tuple[str, str], reason: str, now: float, out: list[AlarmChange]) -> None:
        alarm = self._active.pop(key)
        del self._by_id[alarm.id]
        alarm.state = "cleared"
        alarm.cleared_at = now
        alarm.clear_reason = reason
        self._cleared[alarm.id] = alarm
        while len(self._cleared) > self.history_size:
            self._cleared.popitem(last=False)
        log.info("alarm %s cleared (%s)", alarm.id, reason)
        self._record(alarm, now, out)

    def update(self, silent_or_faulty: set[str] | frozenset[str], now: float, *,
               stale: set[str] | frozenset[str] | None = None,
               last_seen: Callable[[str], float | None] | None = None) -> list[AlarmChange]:
        """Bring the alarms in line with the devices failing ``now``; return the changes.

        With ``stale`` (the silent subset) and ``last_seen``, devices of different reporting
        intervals behind one failed element are correlated before the slow ones are overdue: see
        :meth:`presumed`. Without them, an element is blamed only once all its dependents failed.
        """
        evidence = set(silent_or_faulty)
        if stale and last_seen is not None:
            evidence |= self.presumed(stale, last_seen)
        result = self.model.root_causes(evidence)
        result.unexplained.intersection_update(silent_or_faulty)  # presumed devices never get their own alarm
        out: list[AlarmChange] = []
        wanted_rc = {c.element: c for c in result.causes}
        # clear what is no longer true first, so that a device moving from a device alarm to a
        # root-cause alarm (or back) shows the clear before the raise
        explained_by: dict[str, str] = {}
        for key in list(self._active):
            kind, element = key
            if kind == "root_cause" and element not in wanted_rc:
                recovering = self._active[key]
                # recovering: its devices come back one by one (a lamp reports every 5 minutes);
                # those not back yet stay attributed to it for a grace period, instead of each
                # raising its own alarm, then whatever is still failing is on its own
                still = [d for d in recovering.devices if d in silent_or_faulty]
                since = self._recovering.setdefault(element, now)
                grace = RECOVERY_GRACE_INTERVALS * max(
                    (float(self.model.devices[d].interval) for d in still if d in self.model.devices), default=0.0)
                if still and now - since <= grace:
                    for d in still:
                        explained_by[d] = recovering.id
                    continue
                self._recovering.pop(element, None)
                self._clear(key, "recovered", now, out)
            elif kind == "root_cause":
                self._recovering.pop(element, None)
        for element, cause in wanted_rc.items():
            alarm = self._active.get(("root_cause", element))
            if alarm is None:
                svc_text = ", ".join(cause.services)
                alt = f" (or {', '.join(cause.alternatives)})" if cause.alternatives else ""
                text = (f"{cause.kind} {element}{alt} down: {len(cause.devices)} devices silent "
                        f"({svc_text})")  # fmt: skip
                alarm = self._raise("root_cause", element, severity=self.root_cause_severity(cause),
                                    devices=cause.devices, services=cause.services, text=text, now=now,
                                    out=out, alternatives=cause.alternatives)  # fmt: skip
            for d in cause.devices:
                explained_by[d] = alarm.id
        for key in list(self._active):
            kind, element = key
            if kind != "device":
                continue
            if element in explained_by:
                self._clear(key, f"suppressed by {explained_by[element]}", now, out)
            elif element not in result.unexplained:
                self._clear(key, "recovered", now, out)
        for device in sorted(result.unexplained):
            if ("device", device) in self._active or device in explained_by:
                continue
            info = self.model.devices.get(device)
            kind_name = "device" if info is None else info.kind
            services: tuple[str, ...] = () if info is None else (info.service,)
            sev: Severity = self.device_severity.get(kind_name, "minor")
            self._raise("device", device, severity=sev, devices=(device,), services=services,
                        text=f"{kind_name} {device} silent or faulty", now=now, out=out)  # fmt: skip
        return out

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
