"""Rule engine: declarative rule files coupling the city's services, arbitrated and explained.

Public API::

    rules = load_rules("rules/examples", topology)          # RuleFileError on bad files
    engine = RuleEngine(topology, state, sink, clock, on_decision=..., on_alarm=...)
    engine.load(rules)                                       # or engine.reload(directory)
    engine.on_readings(readings, now); engine.on_events(events, now); engine.tick(now)
    engine.override(device, level, until, user); engine.why(device); engine.commands()

Rule kinds are plug-ins (``rules/README.md``, "Writing a rule kind")::

    register_kind(RuleKind("my_kind", MyRule, MyRuntime, (SelectorField("devices"),)))
    # or, from an installed package: entry point group "urban_supervisor.rule_kinds"
"""

from ._arbiter import PRIORITY_MANUAL, PRIORITY_SAFETY, PRIORITY_SCHEDULE, PRIORITY_TRAFFIC
from ._clock import Clock, RealClock, VirtualClock
from ._commands import CommandState
from ._devices import DeviceRow, DeviceTable, resolve
from ._engine import EngineOptions, Rebinding, ReloadResult, RuleEngine
from ._errors import OverrideError, RuleError, RuleFileError, RuleIssue, UnknownDeviceError
from ._lane import LANE_SHARE_WARN, LanePlan, LaneShare, lane_share
from ._loader import RuleSet, load_rules
from ._registry import GROUP as RULE_KINDS_GROUP
from ._registry import CityCheck, RuleKind, SelectorField, refresh_kinds, register_kind, rule_kinds, unregister_kind
from ._runtime import OPS, BadInputError, Context, NightSource, RuleRuntime, number
from ._spec import Ident, Level, Near, Operator, RuleBase, Selector, SeverityName, Where, check_comparison
from ._types import CommandSink, Decision, DeviceInfo, Point, RuleAlarm, StateView, Topology

__all__ = [
    "LANE_SHARE_WARN",
    "OPS",
    "PRIORITY_MANUAL",
    "PRIORITY_SAFETY",
    "PRIORITY_SCHEDULE",
    "PRIORITY_TRAFFIC",
    "RULE_KINDS_GROUP",
    "BadInputError",
    "CityCheck",
    "Clock",
    "CommandSink",
    "CommandState",
    "Context",
    "Decision",
    "DeviceInfo",
    "DeviceRow",
    "DeviceTable",
    "EngineOptions",
    "Ident",
    "LanePlan",
    "LaneShare",
    "Level",
    "Near",
    "NightSource",
    "Operator",
    "OverrideError",
    "Point",
    "RealClock",
    "Rebinding",
    "ReloadResult",
    "RuleAlarm",
    "RuleBase",
    "RuleEngine",
    "RuleError",
    "RuleFileError",
    "RuleIssue",
    "RuleKind",
    "RuleRuntime",
    "RuleSet",
    "Selector",
    "SelectorField",
    "SeverityName",
    "StateView",
    "Topology",
    "UnknownDeviceError",
    "VirtualClock",
    "Where",
    "check_comparison",
    "lane_share",
    "load_rules",
    "number",
    "refresh_kinds",
    "register_kind",
    "resolve",
    "rule_kinds",
    "unregister_kind",
]
