"""ONE alarm list for every source, kept across restarts, with maintenance windows.

Sources feed :class:`AlarmLifecycle`:

- the network (:class:`~supervisor.alarms.AlarmManager`: root causes and devices), through
  :meth:`AlarmLifecycle.on_manager_change` (the manager's ``on_change`` hook; the manager takes
  its alarm ids from :meth:`AlarmLifecycle.id_for`, so both name an alarm alike);
- the rules (:meth:`on_rule_alarm`), the rule commands (:meth:`on_command`: a failed command
  raises, the next confirmed one on that device clears) and the supervisor itself
  (:meth:`supervisor_alarm`).

Every alarm has a *key* naming its cause (``root_cause:sw-z01``, ``rule:leak:meter-7``...), and
its id is that key (a rule's own key ``<rule>:<device>`` for a rule alarm), followed by ``~<n>``
from its second occurrence on: the same cause raised again while its alarm is active (after a
restart, say) is the same alarm, with its acknowledgement; once cleared, the next one is new.
Each transition is committed to the :class:`~supervisor.alarms.store.AlarmStore` before anything else hears of it, then
written to InfluxDB (``alarms``) and handed to the notifier (whose idempotency key is the alarm
id, the transition and the flap count: a transition re-submitted after a crash is sent once).

After a restart, the restored active alarms wait for their source to assert them again: a
network alarm whose devices have all reported since the start is cleared at once ("recovered
while the supervisor was down"); any other one that nobody asserted within ``settle_s`` clears
("cause gone after restart"). Failed commands and event alarms (an acknowledged one clears) wait
for an operator.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from supervisor.alarms.errors import AlarmError, AlarmStateError, UnknownAlarmError
from supervisor.alarms.store import AlarmQuery, AlarmRecord, AlarmStore, MaintenanceWindow
from supervisor.storage import schema

if TYPE_CHECKING:
    from rules import CommandState, RuleAlarm
    from supervisor.alarms._manager import AlarmChange
    from supervisor.model import CityModel
    from supervisor.notify import AlarmEvent

log = logging.getLogger(__name__)

#: supervisor alarms that report an event (nothing clears them by itself): an acknowledgement clears them
EVENT_ELEMENTS = frozenset({"mqtt-session", "broker-queue", "worker"})
NOTIFY_SEVERITY = {"info": "warning"}  # rule severities the notifier does not know


class AlarmInputError(AlarmError, ValueError):
    """A request whose values cannot be carried out (a window ending before it starts...)."""


class UnknownWindowError(AlarmError, KeyError):
    def __str__(self) -> str:
        return f"unknown maintenance window {self.args[0]!r}"


@dataclass(frozen=True, slots=True)
class Cause:
    """What a source says when it raises: everything but the lifecycle's own bookkeeping."""

    key: str
    source: str
    kind: str
    severity: str
    element: str
    text: str
    devices: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    evidence: str = "inferred"  # network root causes: "observed" or "inferred"


#: the first part of every key but a rule's: a rule of that name keeps the ``rule:`` prefix in its ids
RESERVED = frozenset({"root_cause", "device", "command", "supervisor", "rule"})


def alarm_id(key: str, occurrence: int) -> str:
    """The id of the ``occurrence``-th alarm of ``key``: distinct keys never share an id."""
    base = key
    if key.startswith("rule:"):
        rest = key.removeprefix("rule:")
        if rest.split(":", 1)[0] not in RESERVED:
            base = rest  # the rule's own key, as the rule engine names the condition
    return base if occurrence == 1 else f"{base}~{occurrence}"


class AlarmLifecycle:
    """The one alarm list. Thread-safe; every transition is durable before it is told to anyone."""

    def __init__(self, store: AlarmStore, *, model: CityModel | None = None,
                 write: Callable[[str, Callable[[], bytes]], None] | None = None,
                 notify: Callable[[AlarmEvent], object] | None = None,
                 clock: Callable[[], float] = time.time, settle_s: float = 900.0,
                 zone_of: Callable[[str], str | None] | None = None) -> None:
        """``zone_of(device)``: the device's zone, fast (the supervisor's device state); by default
        read from the model (which builds a device record per call: slow for 100,000 devices)."""
        self.store = store
        self.model = model
        self.write = write
        self.notify = notify
        self.clock = clock
        self.settle_s = settle_s
        self.manager_ack: Callable[[str, str, float], object] | None = None
        self.cancel_notify: Callable[[str], object] | None = None  # the notifier's cancel (shelving)
        self.on_commit: Callable[[AlarmRecord, str], object] | None = None  # every stored transition (live feed)
        self._lock = threading.RLock()
        self._syncing = False
        self._active: dict[str, AlarmRecord] = {a.key: a for a in store.active()}
        self._by_id: dict[str, AlarmRecord] = {a.id: a for a in self._active.values()}
        self._restored: set[str] = set(self._active)  # keys no source asserted since the start
        self._windows: dict[str, MaintenanceWindow] = {w.id: w for w in store.windows()}
        self._impact: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self.started_at = clock()
        self.zone_of = zone_of or self._model_zone

    # -- ids ------------------------------------------------------------------------------------
    def id_for(self, kind: str, element: str) -> str:
        """The id the network alarm ``(kind, element)`` has (active) or will have (raised now)."""
        return self._id_for_key(f"{kind}:{element}")

    def _id_for_key(self, key: str) -> str:
        with self._lock:
            active = self._active.get(key)
            return active.id if active is not None else alarm_id(key, self.store.next_occurrence(key))

    # -- sources --------------------------------------------------------------------------------
    def on_manager_change(self, change: AlarmChange) -> None:
        a = change.alarm
        key = f"{a.kind}:{a.element}"
        if change.reopened:
            self.reopen(key, a.id, a.flap_count, a.text, change.ts)
        elif a.state == "raised":
            self.raise_(Cause(key, "network", a.kind, a.severity, a.element, a.text, a.devices, a.services,
                              a.evidence), change.ts)
        elif a.state == "cleared":
            self.clear(key, a.clear_reason or "recovered", change.ts)
        elif not self._syncing and a.acked_by is not None:
            try:
                self.acknowledge(self.id_for(a.kind, a.element), a.acked_by, change.ts)
            except AlarmError as exc:
                log.warning("alarm %s: acknowledgement not carried over: %s", a.id, exc)

    def on_rule_alarm(self, alarm: RuleAlarm) -> None:
        key = f"rule:{alarm.key}"
        if alarm.state == "raised":
            self.raise_(Cause(key, "rule", f"rule:{alarm.kind}", alarm.severity, alarm.device, alarm.text,
                              (alarm.device,), self._services_of((alarm.device,))), alarm.ts)
        else:
            self.clear(key, "the rule's condition ended", alarm.ts)

    def on_command(self, cs: CommandState) -> None:
        key = f"command:{cs.device}:{cs.channel or ''}"
        if cs.state == "failed":
            why = f": {cs.error}" if cs.error else ""
            text = f"command level {cs.level:g} to {cs.device} not confirmed after {cs.attempts} attempt(s){why}"
            self.raise_(Cause(key, "command", "command", "major", cs.device, text, (cs.device,),
                              self._services_of((cs.device,))), cs.since)
        elif cs.state == "confirmed":
            self.clear(key, "a later command was confirmed", cs.since)

    def supervisor_alarm(self, element: str, severity: str, state: str, text: str, ts: float) -> None:
        """The supervisor's own alarm about ``element`` (``spool``, ``storage``, ``mqtt-session``...)."""
        key = f"supervisor:{element}"
        if state == "raised":
            self.raise_(Cause(key, "supervisor", "supervisor", severity, element, text), ts)
        else:
            self.clear(key, text, ts)

    # -- transitions ----------------------------------------------------------------------------
    def raise_(self, cause: Cause, ts: float) -> AlarmRecord:
        """Raise the alarm of ``cause``; the one already active for it is returned unchanged
        (its devices and text brought up to date), never notified again."""
        with self._lock:
            self._restored.discard(cause.key)
            alarm = self._active.get(cause.key)
            if alarm is not None:
                self._refresh(alarm, cause, ts)
                return alarm
            occurrence = self.store.next_occurrence(cause.key)
            alarm = AlarmRecord(
                id=alarm_id(cause.key, occurrence), key=cause.key, occurrence=occurrence, source=cause.source,
                kind=cause.kind, severity=cause.severity, element=cause.element, state="raised",
                devices=cause.devices[:schema.AFFECTED_MAX], device_count=len(cause.devices),
                services=cause.services, zones=self._zones_of(cause.element, cause.devices),
                lon=None, lat=None, text=cause.text, raised_at=ts, updated_at=ts, evidence=cause.evidence)
            alarm.lon, alarm.lat = self._position(cause.element) or (None, None)
            window = self._window_for(cause.element, cause.devices, ts)
            alarm.in_maintenance = window.id if window is not None else None
            self._active[cause.key] = alarm
            self._by_id[alarm.id] = alarm
            detail = f"in maintenance {window.id}" if window is not None else None
            self._commit(alarm, "raised", ts, None, detail)
            log.info("alarm %s raised%s: %s", alarm.id, " (in maintenance)" if window else "", alarm.text)
            return alarm

    def _refresh(self, alarm: AlarmRecord, cause: Cause, ts: float) -> None:
        devices = cause.devices[:schema.AFFECTED_MAX]
        if (devices, cause.text, len(cause.devices), cause.evidence) == (alarm.devices, alarm.text,
                                                                         alarm.device_count, alarm.evidence):
            return
        alarm.devices, alarm.device_count, alarm.text = devices, len(cause.devices), cause.text
        alarm.evidence = cause.evidence
        alarm.updated_at = ts
        self.store.save(alarm, "updated", ts, None, cause.text)

    def reopen(self, key: str, alarm_id_: str, flap_count: int, text: str, ts: float) -> AlarmRecord | None:
        """The cleared alarm ``alarm_id_`` of ``key`` is active again: it came back within the flap
        window, so it stays the same alarm (its id, its acknowledgement), with ``flap_count`` returns."""
        with self._lock:
            if key in self._active:
                return self._active[key]
            alarm = self.store.get(alarm_id_)
            if alarm is None or alarm.key != key:
                log.warning("alarm %s came back but is not in the store: not reopened", alarm_id_)
                return None
            alarm.state = "acknowledged" if alarm.acked_at is not None else "raised"
            alarm.cleared_at = alarm.clear_reason = None
            alarm.flap_count, alarm.text, alarm.updated_at = flap_count, text, ts
            window = self._window_for(alarm.element, alarm.devices, ts)  # judged anew, at its return
            alarm.in_maintenance = window.id if window is not None else None
            self._active[key] = alarm
            self._by_id[alarm.id] = alarm
            self._commit(alarm, "reopened", ts, None, f"came back within the flap window ({flap_count})")
            log.info("alarm %s came back (flap %d): %s", alarm.id, flap_count, alarm.text)
            return alarm

    def clear(self, key: str, reason: str, ts: float) -> AlarmRecord | None:
        """Clear the active alarm of ``key`` (none: nothing happens)."""
        with self._lock:
            alarm = self._active.pop(key, None)
            if alarm is None:
                return None
            del self._by_id[alarm.id]
            self._restored.discard(key)
            alarm.state, alarm.cleared_at, alarm.clear_reason, alarm.updated_at = "cleared", ts, reason, ts
            self._commit(alarm, "cleared", ts, None, reason)
            log.info("alarm %s cleared (%s)", alarm.id, reason)
            return alarm

    def acknowledge(self, alarm_id_: str, user: str, now: float) -> tuple[bool, AlarmRecord]:
        """Acknowledge an active alarm: (changed, the alarm). Twice keeps the first."""
        with self._lock:
            alarm = self._require_active(alarm_id_, "acknowledge")
            if alarm.state == "acknowledged":
                return False, alarm
            alarm.state, alarm.acked_at, alarm.acked_by, alarm.updated_at = "acknowledged", now, user, now
            self._commit(alarm, "acknowledged", now, user, None)
            log.info("alarm %s acknowledged by %s", alarm.id, user)
            if alarm.source == "network" and self.manager_ack is not None:
                self._syncing = True
                try:
                    self.manager_ack(alarm.id, user, now)
                except AlarmError:
                    pass  # restored before the manager raised it again: the lifecycle is the record
                finally:
                    self._syncing = False
            if alarm.source == "supervisor" and alarm.element in EVENT_ELEMENTS:
                self.clear(alarm.key, f"event acknowledged by {user}", now)
            return True, alarm

    def comment(self, alarm_id_: str, user: str, text: str, now: float) -> AlarmRecord:
        with self._lock:
            alarm = self._by_id.get(alarm_id_) or self.store.get(alarm_id_)
            if alarm is None:
                raise UnknownAlarmError(alarm_id_)
            alarm.updated_at = now
            self.store.save(alarm, "comment", now, user, text)
            alarm.comments.append({"ts": now, "action": "comment", "user": user, "detail": text})
            return alarm

    def shelve(self, alarm_id_: str, user: str, until: float, reason: str, now: float) -> AlarmRecord:
        """Silence an active alarm until ``until`` (its notifications are not sent meanwhile); a time
        not after ``now`` ends the shelving (unshelve)."""
        if not math.isfinite(until):
            raise AlarmInputError(f"shelve until {until!r}: must be a finite epoch time")
        with self._lock:
            alarm = self._require_active(alarm_id_, "shelve")
            alarm.shelved_until, alarm.shelved_reason, alarm.shelved_by = until, reason, user
            alarm.updated_at = now
            self._commit(alarm, "shelved" if until > now else "unshelved", now, user, reason)
            if until > now and self.cancel_notify is not None:  # a delayed raise, an escalation: silenced too
                self.cancel_notify(alarm.id)
            return alarm

    def _require_active(self, alarm_id_: str, action: str) -> AlarmRecord:
        alarm = self._by_id.get(alarm_id_)
        if alarm is not None:
            return alarm
        if self.store.get(alarm_id_) is not None:
            raise AlarmStateError(alarm_id_, "cleared", action)
        raise UnknownAlarmError(alarm_id_)

    def _commit(self, alarm: AlarmRecord, transition: str, ts: float, user: str | None, detail: str | None) -> None:
        """Durable first, then InfluxDB, then the notifier."""
        self.store.save(alarm, transition, ts, user, detail)
        if self.on_commit is not None:
            self.on_commit(alarm, transition)
        if self.write is not None:  # the supervisor's writer: a point that does not fit is counted there
            snapshot = replace(alarm, comments=[])
            self.write(f"alarm {alarm.id} {transition}",
                       lambda: schema.lifecycle_alarm_line(snapshot, transition, ts, user))
        if transition in ("raised", "acknowledged", "cleared"):
            self._notify(alarm, transition, ts)
        elif transition == "reopened":
            self._notify(alarm, "flapping", ts)

    def _notify(self, alarm: AlarmRecord, transition: str, ts: float) -> None:
        if self.notify is None or (alarm.shelved(ts) and transition != "cleared"):
            return
        from supervisor.notify import AlarmEvent

        event = AlarmEvent(
            alarm_id=alarm.id, transition=transition,  # type: ignore[arg-type]
            kind=alarm.kind, severity=NOTIFY_SEVERITY.get(alarm.severity, alarm.severity), element=alarm.element,
            text=alarm.text, ts=ts, services=alarm.services, zone=alarm.zones[0] if len(alarm.zones) == 1 else None,
            devices=alarm.device_count, position=None if alarm.lon is None or alarm.lat is None
            else (alarm.lon, alarm.lat), acknowledged_by=alarm.acked_by if transition == "acknowledged" else None,
            in_maintenance=alarm.in_maintenance is not None, flap_count=alarm.flap_count)
        self.notify(event)

    # -- after a restart --------------------------------------------------------------------------
    def reconcile(self, now: float, reported_since_start: Callable[[str], bool] | None = None) -> int:
        """Clear the restored alarms whose cause is gone; returns how many were cleared."""
        with self._lock:
            if not self._restored:
                return 0
            n = 0
            for key in sorted(self._restored):
                alarm = self._active.get(key)
                if alarm is None or alarm.source == "command" or alarm.element in EVENT_ELEMENTS:
                    self._restored.discard(key)
                    continue
                back = (alarm.source == "network" and reported_since_start is not None and alarm.devices
                        and all(reported_since_start(d) for d in alarm.devices))
                if back:
                    self.clear(key, "recovered while the supervisor was down", now)
                elif now - self.started_at >= self.settle_s:
                    self.clear(key, "cause gone after restart (not raised again)", now)
                else:
                    continue
                n += 1
            return n

    # -- queries --------------------------------------------------------------------------------
    def active(self) -> list[AlarmRecord]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (a.raised_at, a.id))

    def get(self, alarm_id_: str) -> AlarmRecord:
        with self._lock:
            alarm = self.store.get(alarm_id_)
        if alarm is None:
            raise UnknownAlarmError(alarm_id_)
        return alarm

    def query(self, q: AlarmQuery, limit: int, offset: int) -> tuple[int, list[AlarmRecord]]:
        return self.store.query(q, self.clock(), limit, offset)

    # -- maintenance ------------------------------------------------------------------------------
    def add_window(self, element: str, *, start: float, end: float, reason: str, user: str,
                   now: float) -> MaintenanceWindow:
        """Declare maintenance on ``element``; the active alarms it covers now are marked at once."""
        if not (math.isfinite(start) and math.isfinite(end)):
            raise AlarmInputError("start and end must be finite epoch times")
        if end <= start:
            raise AlarmInputError(f"maintenance window ends ({end}) before it starts ({start})")
        if self.model is not None and not self._known_element(element):
            raise AlarmInputError(f"unknown element {element!r}: not a device, element or zone of the network model")
        w = MaintenanceWindow(f"MW-{uuid.uuid4().hex[:12]}", element, start, end, reason, user, now)
        with self._lock:
            self.store.add_window(w)
            self._windows[w.id] = w
            if self.write is not None:  # the boards show the window
                self.write(f"maintenance {w.id}", lambda: schema.maintenance_line(w, "declared", now))
            if w.covers(now):
                for alarm in list(self._active.values()):
                    if alarm.in_maintenance is None and self._within(w, alarm.element, alarm.devices):
                        alarm.in_maintenance = w.id
                        alarm.updated_at = now
                        self.store.save(alarm, "maintenance", now, user, w.id)
                        self._notify(alarm, "raised", now)  # in maintenance: cancels what waited for it
        return w

    def remove_window(self, window_id: str) -> MaintenanceWindow:
        with self._lock:
            w = self._windows.pop(window_id, None)
            if w is None:
                raise UnknownWindowError(window_id)
            self.store.remove_window(window_id)
            self._impact.pop(w.element, None)
            if self.write is not None:
                removed_at = self.clock()
                self.write(f"maintenance {w.id}", lambda: schema.maintenance_line(w, "removed", removed_at))
            return w

    def windows(self) -> list[MaintenanceWindow]:
        with self._lock:
            return sorted(self._windows.values(), key=lambda w: (w.start, w.id))

    def _window_for(self, element: str, devices: Iterable[str], now: float) -> MaintenanceWindow | None:
        devs = tuple(devices)
        for w in self._windows.values():
            if w.covers(now) and self._within(w, element, devs):
                return w
        return None

    def _within(self, w: MaintenanceWindow, element: str, devices: tuple[str, ...]) -> bool:
        if element == w.element:
            return True
        if self.model is None:
            return False
        elements, devs = self._impact_of(w.element)
        return element in elements or element in devs or (bool(devices) and all(d in devs for d in devices))

    def _impact_of(self, element: str) -> tuple[frozenset[str], frozenset[str]]:
        """(elements downstream, devices) of ``element`` (a zone: its devices), cached per element."""
        cached = self._impact.get(element)
        if cached is not None:
            return cached
        model = self.model
        assert model is not None
        out: tuple[frozenset[str], frozenset[str]]
        if element in model.zones:
            out = (frozenset(), frozenset(d for d in model.devices if self.zone_of(d) == element))
        else:
            imp = model.impact(element)
            out = (frozenset(imp.downstream), frozenset(d for devs in imp.services.values() for d in devs))
        self._impact[element] = out
        return out

    # -- the model ------------------------------------------------------------------------------
    def rebind(self, model: CityModel, gone: Collection[str], now: float, reason: str) -> int:
        """Use a reloaded ``model`` from now on; clear every active alarm (rule, command, network...)
        about an element or device no longer in it (``gone``), with ``reason``. Returns how many."""
        with self._lock:
            self.model = model
            self._impact.clear()
            keys = [k for k, a in self._active.items() if a.element in gone and a.source != "supervisor"]
            for key in keys:
                self.clear(key, reason, now)
            return len(keys)

    def _known_element(self, element: str) -> bool:
        m = self.model
        return m is not None and (element in m.devices or element in m.elements or element in m.zones)

    def _services_of(self, devices: tuple[str, ...]) -> tuple[str, ...]:
        m = self.model
        if m is None:
            return ()
        return tuple(sorted({m.devices[d].service for d in devices if d in m.devices}))

    def _zones_of(self, element: str, devices: tuple[str, ...]) -> tuple[str, ...]:
        m = self.model
        if m is None:
            return ()
        zones = {z for z in map(self.zone_of, devices) if z}
        site = self._site_of(element)
        if site is not None and site.zone:
            zones.add(site.zone)
        if element in m.zones:
            zones.add(element)
        return tuple(sorted(zones))

    def _model_zone(self, device: str) -> str | None:
        m = self.model
        return m.devices[device].zone if m is not None and device in m.devices else None

    def _site_of(self, element: str) -> Any:
        m = self.model
        if m is None:
            return None
        if element in m.ports:
            element = m.ports[element].switch
        if element in m.switches:
            element = m.switches[element].site
        return m.sites.get(element)

    def _position(self, element: str) -> tuple[float, float] | None:
        m = self.model
        if m is None:
            return None
        if element in m.devices:
            d = m.devices[element]
            return (d.lon, d.lat)
        site = self._site_of(element)
        if site is not None:
            return (site.lon, site.lat)
        feeder = m.feeders.get(element)
        if feeder is not None and feeder.coords:
            return (feeder.coords[0][0], feeder.coords[0][1])
        return None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"active": len(self._active), "restored_pending": len(self._restored),
                    "maintenance_windows": len(self._windows)}


__all__ = ["EVENT_ELEMENTS", "RESERVED", "AlarmInputError", "AlarmLifecycle", "Cause", "UnknownWindowError", "alarm_id"]
