"""The rule engine: indexes rules by device, arbitrates requests, tracks commands, explains."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers import Event, Reading, Value

from ._arbiter import PRIORITY_MANUAL, Actuator, Arbiter, Request
from ._clock import Clock
from ._commands import CommandState, CommandTracker
from ._devices import DeviceTable
from ._errors import OverrideError, RuleFileError, RuleIssue, UnknownDeviceError
from ._lane import LanePlan, LaneShare, lane_share, plan_lane
from ._loader import RuleSet, RuleSpec, load_dir, validate_rules
from ._registry import get_kind
from ._runtime import BadInputError, Context, NightSource, RuleRuntime
from ._types import CommandSink, Decision, RuleAlarm, StateView, Topology
from .sun import SunCalendar

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class EngineOptions:
    command_timeout_s: float = 30.0
    command_attempts: int = 3  # transmissions before a command is failed
    history_per_device: int = 50
    max_history_devices: int = 200_000


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    rules: int  # rules running after the call
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    issues: tuple[RuleIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class Rebinding:
    """A new topology and the rules to run on it, validated by :meth:`RuleEngine.prepare_rebind`;
    nothing runs on it until :meth:`RuleEngine.rebind`."""

    topology: Topology
    devices: DeviceTable
    ruleset: RuleSet
    ctx: Context  # the rules' context on the new topology
    fresh: Mapping[str, RuleRuntime]  # every enabled rule built on it (off the pipeline thread)
    lane: LanePlan  # the control lane of ``fresh`` (a kept rule binds what its fresh copy binds)
    share: LaneShare
    reading_index: dict[str, tuple[RuleRuntime, ...]]  # the engine's indexes over ``fresh``
    event_index: dict[str, tuple[RuleRuntime, ...]]
    keep: frozenset[str]  # the running rules that stay as they are (same spec, same devices, none touched)


def _binding(r: RuleRuntime) -> tuple[tuple[str, ...], tuple[str, ...], tuple[Actuator, ...]]:
    """What a running rule's selectors resolved to: the devices it reads, hears and commands."""
    return r.reading_devices, r.event_devices, tuple(r.actuators())


def _lane_of(runtimes: Mapping[str, RuleRuntime], specs: Mapping[str, RuleSpec]) -> LanePlan:
    pairs = []
    for rid, rt in runtimes.items():
        plugin = get_kind(specs[rid].kind)
        pairs.append((rt, plugin is not None and plugin.commands_for(specs[rid])))
    return plan_lane(pairs)


def _run_order(runtimes: Iterable[RuleRuntime]) -> list[RuleRuntime]:
    """The rules others refer to for the night (schedules) run first, so that others see them."""
    return sorted(runtimes, key=lambda r: 0 if isinstance(r, NightSource) else 1)


def _index_of(order: Sequence[RuleRuntime],
              attr: Callable[[RuleRuntime], tuple[str, ...]]) -> dict[str, tuple[RuleRuntime, ...]]:
    """device -> the rules that take it (``attr``: its readings or its events), in run order."""
    idx: dict[str, list[RuleRuntime]] = {}
    for r in order:
        for d in attr(r):
            idx.setdefault(d, []).append(r)
    return {d: tuple(v) for d, v in idx.items()}


def _substitute(idx: dict[str, tuple[RuleRuntime, ...]], repl: Mapping[RuleRuntime, RuleRuntime],
                attr: Callable[[RuleRuntime], tuple[str, ...]]) -> dict[str, tuple[RuleRuntime, ...]]:
    """``idx`` (over the fresh rules) with each fresh rule of ``repl`` replaced by the running rule
    kept in its place: only the entries of the kept rules' devices are rewritten (a kept rule
    takes the same devices as its fresh copy)."""
    out = dict(idx)
    for old in repl.values():
        for d in attr(old):
            out[d] = tuple(repl.get(h, h) for h in out[d])
    return out


def _build(spec: RuleSpec, ctx: Context) -> RuleRuntime:
    plugin = get_kind(spec.kind)
    if plugin is None:
        raise RuleFileError([RuleIssue("?", spec.id, "kind", f"rule kind {spec.kind!r} is not installed")])
    return plugin.runtime(spec, ctx)


class RuleEngine:
    """Runs a rule set against the city.

    The pipeline calls :meth:`on_readings` / :meth:`on_events` once per batch and :meth:`tick`
    periodically; all calls come from one thread.
    """

    def __init__(
        self,
        topology: Topology,
        state: StateView,
        sink: CommandSink,
        clock: Clock,
        *,
        on_decision: Callable[[Decision], None] | None = None,
        on_alarm: Callable[[RuleAlarm], None] | None = None,
        on_command: Callable[[CommandState], None] | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self._topology = topology
        self._clock = clock
        self._on_decision = on_decision
        self._on_alarm = on_alarm
        try:
            tz = ZoneInfo(topology.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"city timezone {topology.timezone!r} is unknown: {exc}") from exc
        lon, lat = topology.center
        self._arbiter = Arbiter(self._arbitrated)
        self._devices = DeviceTable(topology)
        self._ctx = Context(topology, self._devices, state, self._arbiter, SunCalendar(lon, lat, tz), self._decide,
                            self._alarm)
        self._tracker = CommandTracker(
            sink,
            timeout_s=self.options.command_timeout_s,
            max_attempts=self.options.command_attempts,
            on_alarm=self._alarm,
            on_change=on_command,
        )
        self._rules: dict[str, RuleRuntime] = {}
        self._unfinished: list[RuleRuntime] = []  # rules whose last tick stopped at its deadline
        self._specs: dict[str, RuleSpec] = {}
        self._sources: dict[str, str] = {}
        self._reading_index: dict[str, tuple[RuleRuntime, ...]] = {}
        self._event_index: dict[str, tuple[RuleRuntime, ...]] = {}
        self._history: dict[str, deque[Decision]] = {}
        self.errors: dict[str, int] = {}  # "<rule>:<reason>" -> count
        self.lane = LanePlan()
        #: called with the new :class:`LanePlan` after every load or reload that changed the rules
        self.on_lane: Callable[[LanePlan], None] | None = None
        self.decisions = 0
        self.alarms = 0
        self.late_events = 0  # events from a backlog too old to command anything (:meth:`on_events`)

    # ------------------------------------------------------------------ rule set

    def rules(self) -> list[str]:
        return list(self._rules)

    def load(self, ruleset: RuleSet) -> ReloadResult:
        """Run ``ruleset`` (validated against the topology first); atomic: on error nothing changes."""
        return self._load(ruleset, validated=False)

    def ruleset(self) -> RuleSet:
        """The rule set running now (the specs as loaded, with the file each came from)."""
        return RuleSet(tuple(self._specs.values()), dict(self._sources))

    def prepare_rebind(self, topology: Topology, directory: str | Path | None = None, *,
                       touched: Collection[str] = (), rebuild_all: bool = False) -> Rebinding:
        """Validate, against a new ``topology`` (a reloaded city model), the rules of ``directory``
        (read again), or without one the running rules: :class:`RuleFileError` lists what no longer
        resolves. Changes nothing; :meth:`rebind` runs the result.

        Every rule is built on the new topology here, off the pipeline thread (the rule set only
        changes by a rebind or a load, which the caller does not run meanwhile). A running rule
        whose spec is unchanged, whose selectors resolve to the same devices and actuators, none
        of them in ``touched`` (devices whose attributes changed), is kept running as it is; the
        others will be replaced by their fresh copy. ``rebuild_all`` (zones, streets or the city's
        own attributes changed) replaces every rule."""
        try:
            ZoneInfo(topology.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RuleFileError([RuleIssue("<city>", None, "timezone", f"unknown: {exc}")]) from exc
        devices = DeviceTable(topology)
        if directory is not None:
            ruleset = load_dir(directory, devices)
        else:
            ruleset = self.ruleset()
            issues = validate_rules([(ruleset.sources.get(r.id, "?"), r) for r in ruleset], devices)
            if issues:
                raise RuleFileError(issues)
        # the expensive part (selectors, distances, streets) here, not under the supervisor's lock:
        # building a rule reads only the topology, never the arbiter or the device state
        calendar = self._ctx.calendar
        if (topology.timezone, topology.center) != (self._topology.timezone, self._topology.center):
            lon, lat = topology.center
            calendar = SunCalendar(lon, lat, ZoneInfo(topology.timezone))
        ctx = Context(topology, devices, self._ctx.state, self._arbiter, calendar, self._decide, self._alarm)
        specs = {s.id: s for s in ruleset}
        fresh = {s.id: _build(s, ctx) for s in ruleset if s.enabled}
        lane = _lane_of(fresh, specs)
        order = _run_order(fresh.values())
        keep: set[str] = set()
        if not rebuild_all:
            hit = set(touched)
            for rid, rt in fresh.items():
                old = self._rules.get(rid)
                if old is None or self._specs.get(rid) != specs[rid]:
                    continue
                binding = _binding(old)
                if _binding(rt) == binding and not any(d in hit for part in binding[:2] for d in part) and not any(
                        a[0] in hit for a in binding[2]):
                    keep.add(rid)
        return Rebinding(topology, devices, ruleset, ctx, fresh, lane, lane_share(lane, devices),
                         _index_of(order, lambda r: r.reading_devices), _index_of(order, lambda r: r.event_devices),
                         frozenset(keep))

    def rebind(self, rb: Rebinding, *, gone: Collection[str] | None = None) -> ReloadResult:
        """Run on a new topology (:meth:`prepare_rebind`): every rule re-resolves its selectors.

        The rules :meth:`prepare_rebind` kept run on untouched; the others are replaced by their
        fresh copy, their state carried over (snapshot, restore) and their requests kept on the
        actuators they still command, so that a reload does not make lights blink. Requests and
        pending commands on devices no longer in the city (``gone``, when the caller knows them:
        else computed) are dropped silently.
        """
        if gone is None:
            gone = [d for d in self._devices if d not in rb.devices]
        self._topology = rb.topology
        self._devices = rb.devices
        self._ctx = rb.ctx
        if gone:
            gone_set = set(gone)
            self._arbiter.forget(gone_set)
            self._tracker.forget(gone_set)
            for d in gone:
                self._history.pop(d, None)
        return self._load(rb.ruleset, validated=True, rebinding=rb)

    def _load(self, ruleset: RuleSet, *, validated: bool, rebinding: Rebinding | None = None) -> ReloadResult:
        """``rebinding``: from :meth:`rebind`, the rules prebuilt on the new topology."""
        prebuilt: Mapping[str, RuleRuntime] = rebinding.fresh if rebinding is not None else {}
        if not validated:
            issues = validate_rules([(ruleset.sources.get(r.id, "?"), r) for r in ruleset], self._devices)
            if issues:
                return self._refused(issues)
        now = self._clock.now()
        new: dict[str, RuleRuntime] = {}
        added: list[str] = []
        changed: list[str] = []
        carried: list[tuple[RuleRuntime, dict[str, Any]]] = []
        for spec in ruleset:
            old = self._rules.get(spec.id)
            if old is not None and self._specs.get(spec.id) == spec:
                if rebinding is None:
                    new[spec.id] = old
                    continue
                if spec.id in rebinding.keep:
                    old.ctx = self._ctx  # the same devices: it runs on, on the new topology
                    new[spec.id] = old
                    continue
                fresh = prebuilt.get(spec.id) or _build(spec, self._ctx)
                changed.append(spec.id)
                new[spec.id] = fresh
                carried.append((fresh, old.snapshot()))
                continue
            (changed if old is not None else added).append(spec.id)
            if spec.enabled:
                new[spec.id] = prebuilt.get(spec.id) or _build(spec, self._ctx)
        removed = [rid for rid in self._rules if ruleset.get(rid) is None]
        # swap: withdraw what the replaced rules asked, then index the new set; a re-bound rule (same
        # spec) keeps its requests on the actuators it still commands (its successor asks the same)
        rebound_ids = {fresh.id for fresh, _ in carried}
        for rid in removed + changed:
            if rid in rebound_ids:
                self._arbiter.withdraw_rule(rid, set(new[rid].actuators()), now,
                                            f"rule '{rid}' no longer selects it (model reload)")
            elif rid in self._rules:
                self._rules[rid].stop(now)
        order = _run_order(new.values())
        self._rules = {r.id: r for r in order}
        self._specs = {s.id: s for s in ruleset}
        self._sources = dict(ruleset.sources)
        self._ctx.schedules = {r.id: r for r in order if isinstance(r, NightSource)}
        self._set_indexes(order, new, rebinding)
        for rid in added + changed:
            if rid in self._rules:
                self._rules[rid].start(now)
        for fresh, saved in carried:  # re-bound rules: what they knew before (held states, counters)
            fresh.restore(saved, now)
        self._plan_lane(rebinding)
        log.info("rules: %d running (%d added, %d changed, %d removed)",
                 len(self._rules), len(added), len(changed), len(removed))
        return ReloadResult(True, len(self._rules), tuple(added), tuple(removed), tuple(changed))

    def reload(self, directory: str | Path) -> ReloadResult:
        """Load ``directory``; a bad file is refused with its errors and the running rules keep running."""
        try:
            ruleset = load_dir(directory, self._devices)
        except RuleFileError as exc:
            return self._refused(list(exc.issues))
        return self._load(ruleset, validated=True)

    def _set_indexes(self, order: Sequence[RuleRuntime], running: Mapping[str, RuleRuntime],
                     rebinding: Rebinding | None) -> None:
        """The device -> rules indexes of the hot path; after a rebind, those built in
        :meth:`prepare_rebind`, with the rules kept running in place of their fresh copies."""
        if rebinding is None:
            self._reading_index = _index_of(order, lambda r: r.reading_devices)
            self._event_index = _index_of(order, lambda r: r.event_devices)
            return
        kept = {rebinding.fresh[rid]: rt for rid, rt in running.items() if rt is not rebinding.fresh.get(rid)}
        self._reading_index = _substitute(rebinding.reading_index, kept, lambda r: r.reading_devices)
        self._event_index = _substitute(rebinding.event_index, kept, lambda r: r.event_devices)

    def _refused(self, issues: Sequence[RuleIssue]) -> ReloadResult:
        self._count("reload", "refused")
        log.warning("rule reload refused, %d rules keep running: %s", len(self._rules), "; ".join(map(str, issues)))
        return ReloadResult(False, len(self._rules), issues=tuple(issues))

    def _plan_lane(self, rebinding: Rebinding | None = None) -> None:
        """The control lane of the running rules (see :mod:`rules._lane`); warn when it is most traffic."""
        plan = rebinding.lane if rebinding is not None else _lane_of(self._rules, self._specs)
        if plan == self.lane:
            return
        self.lane = plan
        share = rebinding.share if rebinding is not None else self.lane_share()
        if share.too_large:
            log.warning("rules: %s", share.warning())
        if self.on_lane is not None:
            self.on_lane(plan)

    def lane_share(self) -> LaneShare:
        """The control lane's share of the city's expected message rate, by rule."""
        return lane_share(self.lane, self._devices)

    # ------------------------------------------------------------------ inputs (hot path)

    def on_readings(self, readings: Sequence[Reading], now: float) -> None:
        idx = self._reading_index
        pending = self._tracker.pending
        touched: dict[RuleRuntime, set[str]] = {}
        for r in readings:
            handlers = idx.get(r.device)
            if handlers is not None:
                for h in handlers:
                    try:
                        h.on_reading(r, now)
                    except BadInputError as exc:
                        self._bad_input(h.id, exc, r.device)
                        continue
                    except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
                        self._rule_failed(h.id, exc, r.device)
                        continue
                    if h.reactive:
                        devs = touched.get(h)
                        if devs is None:
                            touched[h] = {r.device}
                        else:
                            devs.add(r.device)
            if pending and r.device in pending:
                self._tracker.observe(r, now)
        for h, devs in touched.items():  # react within the batch, not at the next tick
            try:
                h.react(devs, now)
            except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
                self._rule_failed(h.id, exc, "-")

    def on_events(self, events: Sequence[Event], now: float, *, stale_before: float | None = None) -> None:
        """Feed ``events`` to the rules that hear their devices.

        ``stale_before`` (UTC epoch s, the device's clock): the caller knows these events may come from
        a backlog (the broker's stored session, delivered after the supervisor was away), and one
        stamped before it is too old to act on. The rules still see it (an alarm rule raises its
        alarm, with the event's own time in the store), but what it would command is withheld and
        counted (``late_events``, ``late_requests``): lamps lit for an intrusion an hour ago would
        light an empty street, and ride over the leases of what is happening now."""
        idx = self._event_index
        arbiter = self._arbiter
        for e in events:
            handlers = idx.get(e.device)
            if handlers is None:
                continue
            past = stale_before - e.ts if stale_before is not None and e.ts is not None else 0.0
            late = past > 0.0
            if late:
                self._late(e, past)
            arbiter.holding = late
            try:
                for h in handlers:
                    try:
                        h.on_event(e, now)
                    except BadInputError as exc:
                        self._bad_input(h.id, exc, e.device)
                    except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
                        self._rule_failed(h.id, exc, e.device)
            finally:
                arbiter.holding = False

    def _late(self, e: Event, past_s: float) -> None:
        self.late_events += 1
        if self.late_events == 1 or self.late_events % 10_000 == 0:
            log.info("rules: %s event of %s from a backlog, %.0f s past the age limit: it commands nothing "
                     "(alarms still raised; %d such events so far)", e.kind, e.device, past_s, self.late_events)

    def tick(self, now: float, deadline: float | None = None) -> bool:
        """The rules' periodic work, the leases' expiry and the command retries.

        With a ``deadline`` (``time.perf_counter()``), a rule whose walk is long stops past it
        (:meth:`RuleRuntime.tick_until`) and False is returned: the next call (a new period, or
        the caller's next pass) goes on with the unfinished rules only. The supervisor's loop
        passes one, so that a lane reaction waits for at most a slice of tick."""
        fresh = not self._unfinished
        if fresh:
            self._arbiter.expire(now)
        unfinished: list[RuleRuntime] = []
        for r in list(self._rules.values()) if fresh else self._unfinished:
            try:
                if not r.tick_until(now, deadline):
                    unfinished.append(r)
            except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
                self._rule_failed(r.id, exc, "-")
        self._unfinished = [r for r in unfinished if self._rules.get(r.id) is r]
        if fresh:
            self._tracker.tick(now)
        return not self._unfinished

    def _count(self, rule: str, reason: str) -> int:
        key = f"{rule}:{reason}"
        n = self.errors.get(key, 0) + 1
        self.errors[key] = n
        return n

    def _bad_input(self, rule: str, exc: BadInputError, device: str) -> None:
        n = self._count(rule, exc.reason)
        (log.warning if n == 1 else log.debug)("rule %s: bad input from %s: %s (count %d)", rule, device, exc, n)

    def _rule_failed(self, rule: str, exc: Exception, device: str) -> None:
        n = self._count(rule, "rule_error")
        if n == 1:
            log.exception("rule %s failed on %s: %s", rule, device, exc)
        else:
            log.debug("rule %s failed on %s: %s (count %d)", rule, device, exc, n)

    # ------------------------------------------------------------------ arbitration and outputs

    def _arbitrated(self, act: Actuator, req: Request | None, prev: float | None, now: float,
                    reason: str | None) -> None:
        dev, ch = act
        zone = self._ctx.zone_of(dev)
        name = dev if ch is None else f"{dev}/{ch}"
        after = f" (after {reason})" if reason else ""
        if req is None:
            lv = 0.0 if prev is None else prev
            self._decide(Decision(now, "arbiter", "arbitration", dev, lv,
                                  f"{name} left at {lv:.0f} %: no active request{after}", {}, zone, ch))
            return
        lvl = f"{req.level:.0f}" if abs(req.level - round(req.level)) < 0.05 else f"{req.level:.1f}"
        inputs = dict(req.inputs)
        inputs["priority"] = req.priority
        if prev is not None:
            inputs["previous"] = prev
        self._decide(Decision(now, req.rule, req.kind, dev, req.level, f"{name} at {lvl} %: {req.text}{after}",
                              inputs, zone, ch))
        if prev is None or prev != req.level:
            self._tracker.send(act, zone, req.level, now)

    def _decide(self, d: Decision) -> None:
        self.decisions += 1
        h = self._history.get(d.device)
        if h is None:
            if len(self._history) >= self.options.max_history_devices:
                self._history.pop(next(iter(self._history)))
            h = self._history[d.device] = deque(maxlen=self.options.history_per_device)
        h.append(d)
        if self._on_decision is not None:
            self._on_decision(d)

    def _alarm(self, a: RuleAlarm) -> None:
        self.alarms += 1
        log.info("rule alarm %s %s: %s", a.state, a.key, a.text)
        if self._on_alarm is not None:
            self._on_alarm(a)

    # ------------------------------------------------------------------ API

    def why(self, device: str) -> list[Decision]:
        """Recent decisions about ``device``, oldest first (bounded history)."""
        return list(self._history.get(device, ()))

    def level(self, device: str, channel: str | None = None) -> float | None:
        """The level the arbitration currently asks of an actuator."""
        return self._arbiter.level((device, channel))

    def requests(self, device: str, channel: str | None = None) -> list[dict[str, object]]:
        """The priority stack of an actuator, winner first."""
        return [r.as_dict() for r in self._arbiter.stack((device, channel))]

    def commands(self) -> dict[str, dict[str, object]]:
        """Last command per actuator: state (pending/confirmed/failed), attempts, level, since."""
        return self._tracker.states()

    def _check_actuator(self, device: str) -> None:
        info = self._devices.get(device)
        if info is None:
            raise UnknownDeviceError(device, "not in the city model")
        if info.family != "lighting":
            raise UnknownDeviceError(device, f"is a {info.kind}, only lighting can be dimmed")

    def override(self, device: str, level: float, until: float, user: str, channel: str | None = None) -> None:
        """Manual override (priority 100) until ``until`` (UTC epoch s)."""
        self._check_actuator(device)
        now = self._clock.now()
        if isinstance(level, bool) or not math.isfinite(level) or not 0.0 <= level <= 100.0:
            raise OverrideError(f"override of {device}: level must be 0..100 %, got {level!r}")
        if not math.isfinite(until) or until <= now:
            raise OverrideError(f"override of {device}: until ({until!r}) must be in the future (now {now:.0f})")
        if not user or not user.strip():
            raise OverrideError(f"override of {device}: user is required")
        text = f"manual override by {user} until {self._ctx.local_hhmm(until)} local"
        inputs: dict[str, Value] = {"user": user, "until": until}
        self._arbiter.put((device, channel),
                          Request("manual", PRIORITY_MANUAL, float(level), until, "manual", "override", text,
                                  inputs, user), now)

    def clear_override(self, device: str, channel: str | None = None, user: str | None = None) -> bool:
        """Remove a manual override; return whether there was one."""
        self._check_actuator(device)
        who = f" by {user}" if user else ""
        return self._arbiter.withdraw((device, channel), "manual", self._clock.now(), f"override cleared{who}")

    def stats(self) -> dict[str, Any]:
        return {
            "rules": len(self._rules),
            "indexed_devices": len(self._reading_index),
            "decisions": self.decisions,
            "alarms": self.alarms,
            "commands_sent": self._tracker.sent,
            "late_events": self.late_events,
            "late_requests": self._arbiter.withheld,
            "errors": dict(self.errors),
        }

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """Leased requests (overrides, alarm lighting) and rule counters; JSON-serialisable."""
        reqs = []
        for (dev, ch), req in self._arbiter.requests():
            if req.until is not None:
                d = req.as_dict()
                d["device"] = dev
                d["channel"] = ch
                reqs.append(d)
        rules = {rid: {"kind": r.kind, "state": r.snapshot()} for rid, r in self._rules.items()}
        return {"version": SNAPSHOT_VERSION, "saved_at": self._clock.now(), "requests": reqs, "rules": rules}

    def restore(self, data: dict[str, Any]) -> int:
        """Take back a :meth:`snapshot`; expired leases and unknown rules are skipped. Return requests restored."""
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            self._count("restore", "bad_snapshot")
            raise ValueError(f"unsupported rule engine snapshot (version {data.get('version')!r})"
                             if isinstance(data, dict) else "rule engine snapshot must be a mapping")
        now = self._clock.now()
        n = 0
        for item in data.get("requests", []):
            try:
                req = Request(
                    source=str(item["source"]), priority=int(item["priority"]), level=float(item["level"]),
                    until=float(item["until"]), rule=str(item["rule"]), kind=str(item["kind"]),
                    text=str(item["text"]), inputs=dict(item.get("inputs") or {}),
                    user=None if item.get("user") is None else str(item["user"]),
                )
                dev = str(item["device"])
                ch = None if item.get("channel") is None else str(item["channel"])
            except (KeyError, TypeError, ValueError) as exc:
                self._count("restore", "bad_request")
                log.warning("snapshot: skipping bad request %r: %s", item, exc)
                continue
            if req.until is None or req.until <= now or dev not in self._devices:
                continue
            if not req.source.startswith("manual") and req.rule not in self._rules:
                continue
            self._arbiter.put((dev, ch), req, now)
            n += 1
        for rid, saved in (data.get("rules") or {}).items():
            r = self._rules.get(rid)
            if r is not None and isinstance(saved, dict) and saved.get("kind") == r.kind:
                r.restore(dict(saved.get("state") or {}), now)
        return n
