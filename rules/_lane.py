"""Which devices the ingest control lane carries, derived from the running rules.

Only rules that command something need the lane: a lamp must light within milliseconds of the
camera event that asks for it, so the camera's messages (the inputs of commanding rules) and the
commanded lamps' confirmations (their actuators) are processed before bulk telemetry. Alarm-only
rules (threshold, no_signal, water_leak, lamp_faults, a when_then with ``then.alarm``) stay on the
bulk path: an alarm raised a backlog late is still raised, and in order with the telemetry around
it. A kind says which it is through :attr:`rules.RuleKind.commands` and the ``role`` of its
selector fields; nothing here knows a kind by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._devices import DeviceTable
from ._runtime import RuleRuntime

#: above this share of the city's expected message rate in the lane, ``rules check`` and load warn
LANE_SHARE_WARN = 0.5
_DEFAULT_INTERVAL = 60.0  # s, for a device of the model without a reporting interval


@dataclass(frozen=True, slots=True)
class LanePlan:
    """The control lane of a rule set: its devices, which rule puts which, and the rules left out."""

    by_rule: Mapping[str, frozenset[str]] = field(default_factory=dict)  # commanding rule -> its lane devices
    alarm_only: tuple[str, ...] = ()  # rules whose inputs stay on the bulk path
    #: the commanded lamps among :attr:`devices` (for their confirmations)
    actuators: frozenset[str] = frozenset()
    #: what the commanding rules read (readings and events)
    read: frozenset[str] = frozenset()

    @property
    def devices(self) -> frozenset[str]:
        return frozenset().union(*self.by_rule.values()) if self.by_rule else frozenset()

    @property
    def inputs(self) -> frozenset[str]:
        """The lane without the confirmations: what the commanding rules react to."""
        return self.read

    @property
    def confirmations(self) -> frozenset[str]:
        """The commanded devices that no commanding rule reads: on the lane for their confirmations
        only, queued behind the inputs."""
        return self.actuators - self.read


def plan_lane(rules: Iterable[tuple[RuleRuntime, bool]]) -> LanePlan:
    """The lane of running rules given as (runtime, commands) pairs."""
    by_rule: dict[str, frozenset[str]] = {}
    alarm_only: list[str] = []
    actuators: set[str] = set()
    read: set[str] = set()
    for rt, commands in rules:
        if not commands:
            alarm_only.append(rt.id)
            continue
        acts = {d for d, _ in rt.actuators()}
        actuators |= acts
        reads = frozenset(rt.reading_devices) | frozenset(rt.event_devices)
        read |= reads
        by_rule[rt.id] = reads | acts
    return LanePlan(by_rule, tuple(alarm_only), frozenset(actuators), frozenset(read))


def _rate(devices: DeviceTable, ids: Iterable[str]) -> float:
    total = 0.0
    for d in ids:
        row = devices.get(d)
        if row is not None:
            total += 1.0 / (row.interval or _DEFAULT_INTERVAL)
    return total


@dataclass(frozen=True, slots=True)
class LaneShare:
    """The lane's share of the city's expected message rate (messages/s by each device's interval)."""

    share: float  # 0..1
    by_rule: tuple[tuple[str, float], ...]  # (rule, its own share), largest first

    @property
    def too_large(self) -> bool:
        return self.share > LANE_SHARE_WARN

    def warning(self) -> str:
        """A one-line warning naming the rules that fill the lane (empty when the share is fine)."""
        if not self.too_large:
            return ""
        top = ", ".join(f"{rid} ({s:.0%})" for rid, s in self.by_rule[:5] if s > 0)
        return (f"the control lane would carry {self.share:.0%} of the expected traffic (warning above "
                f"{LANE_SHARE_WARN:.0%}), so it would no longer be ahead of anything: {top}. Only commanding "
                f"rules need the lane; an alarm-only rule (then.alarm, threshold, no_signal) stays on the bulk path")


def lane_share(plan: LanePlan, devices: DeviceTable) -> LaneShare:
    whole = _rate(devices, devices.keys())
    if whole <= 0:
        return LaneShare(0.0, ())
    per = sorted(((rid, _rate(devices, devs) / whole) for rid, devs in plan.by_rule.items()),
                 key=lambda x: -x[1])
    return LaneShare(_rate(devices, plan.devices) / whole, tuple(per))
