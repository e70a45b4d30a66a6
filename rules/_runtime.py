"""What a running rule sees (the context) and the base class of running rules."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from drivers import Event, Reading, Value

from ._arbiter import Actuator, Arbiter
from ._devices import DeviceTable
from ._errors import RuleError
from ._types import Decision, RuleAlarm, StateView, Topology
from .sun import SunCalendar

#: the comparison operators of rule files (no eval: a fixed table)
OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@runtime_checkable
class NightSource(Protocol):
    """A running rule that says when it is night (a schedule); other rules may refer to it by id."""

    id: str

    def is_night(self, now: float) -> bool: ...


def fmt_level(level: float) -> str:
    """A level in % as the explanations write it: no decimal unless it matters."""
    return f"{level:.0f}" if abs(level - round(level)) < 0.05 else f"{level:.1f}"


class BadInputError(RuleError):
    """A reading or event value a rule cannot use; counted under ``reason``, never raised further."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def number(value: Value | None, what: str) -> float:
    """``value`` as a finite float, or :class:`BadInputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError("bad_type", f"{what} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise BadInputError("not_finite", f"{what} is {value!r}")
    return f


def flow_of(r: Reading, now: float) -> tuple[float, float] | None:
    """``(flow, ts)`` of a reading that carries a flow (a finite number >= 0), or ``None`` without one;
    ``ts`` is the reading's own time, else ``now``."""
    if "flow" not in r.values:
        return None
    flow = number(r.values["flow"], "flow")
    if flow < 0:
        raise BadInputError("out_of_range", f"flow {flow} < 0")
    return flow, (r.ts if r.ts is not None else now)


@dataclass(slots=True)
class Context:
    topology: Topology
    devices: DeviceTable
    state: StateView
    arbiter: Arbiter
    calendar: SunCalendar
    decide: Callable[[Decision], None]
    alarm: Callable[[RuleAlarm], None]
    schedules: dict[str, NightSource] = field(default_factory=dict)

    def zone_of(self, device: str) -> str | None:
        d = self.devices.get(device)
        return None if d is None else d.zone

    def local_hhmm(self, ts: float) -> str:
        return self.calendar.local_datetime(ts).strftime("%H:%M")

    def lamps_near(self, device: str, radius_m: float) -> list[Actuator]:
        """The lamps within ``radius_m`` of ``device``, nearest first."""
        d = self.devices[device]
        return [(x, None) for x in self.topology.devices_within(d.lon, d.lat, radius_m, family="lighting", kind="lamp")]

    def is_night(self, now: float, schedule: str | None) -> bool:
        """Night by the named schedule rule when it runs, else by the sun."""
        sched = self.schedules.get(schedule) if schedule else None
        return sched.is_night(now) if sched is not None else self.calendar.is_night(now)


class RuleRuntime:
    """A rule bound to the city. Subclasses override what they need."""

    kind: str = ""
    #: True when :meth:`react` acts on readings at once (the engine then calls it after each batch)
    reactive: bool = False

    def __init__(self, rule_id: str, ctx: Context) -> None:
        self.id = rule_id
        self.ctx = ctx
        self.reading_devices: tuple[str, ...] = ()
        self.event_devices: tuple[str, ...] = ()

    def on_reading(self, r: Reading, now: float) -> None:
        """A reading of one of ``reading_devices``."""

    def on_event(self, e: Event, now: float) -> None:
        """An event of one of ``event_devices``."""

    def tick(self, now: float) -> None:
        """Periodic work (schedules, staleness, night windows)."""

    def tick_until(self, now: float, deadline: float | None) -> bool:
        """Periodic work, stopping once ``time.perf_counter()`` passes ``deadline`` (``None``: no
        limit); True when done, False when the next call goes on where this one stopped.

        A kind whose tick walks many items overrides it (adaptive lighting walks every street,
        and a ramp over all of them commanded ~1,000 lamps in one tick, 25-67 ms during which the
        pipeline thread took no reaction). The others tick whole."""
        self.tick(now)
        return True

    def react(self, devices: set[str], now: float) -> None:
        """After a batch in which ``devices`` (of ``reading_devices``) reported: act on it now.

        Only called when :attr:`reactive` is set. Without it a rule acts at its next tick, which
        the supervisor runs at a bounded cadence (50 ms): too late for a reaction-time target.
        """

    def start(self, now: float) -> None:
        """Called once when the rule starts running (after a load or reload)."""

    def stop(self, now: float) -> None:
        """Withdraw everything the rule asked of the arbiter (rule removed or replaced)."""

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, data: dict[str, Any], now: float) -> None:
        """Take back what :meth:`snapshot` saved."""

    def actuators(self) -> list[Actuator]:
        return []
