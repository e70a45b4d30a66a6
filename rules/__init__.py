"""Rule engine: declarative rule files coupling the city's services, arbitrated and explained.

Public API::

    rules = load_rules("rules/examples", topology)          # RuleFileError on bad files
    engine = RuleEngine(topology, state, sink, clock, on_decision=..., on_alarm=...)
    engine.load(rules)                                       # or engine.reload(directory)
    engine.on_readings(readings, now); engine.on_events(events, now); engine.tick(now)
    engine.override(device, level, until, user); engine.why(device); engine.commands()
"""

from ._arbiter import PRIORITY_MANUAL, PRIORITY_SAFETY, PRIORITY_SCHEDULE, PRIORITY_TRAFFIC
from ._clock import Clock, RealClock, VirtualClock
from ._commands import CommandState
from ._engine import EngineOptions, ReloadResult, RuleEngine
from ._errors import OverrideError, RuleError, RuleFileError, RuleIssue, UnknownDeviceError
from ._loader import RuleSet, load_rules
from ._types import CommandSink, Decision, DeviceInfo, Point, RuleAlarm, StateView, Topology

__all__ = [
    "PRIORITY_MANUAL",
    "PRIORITY_SAFETY",
    "PRIORITY_SCHEDULE",
    "PRIORITY_TRAFFIC",
    "Clock",
    "CommandSink",
    "CommandState",
    "Decision",
    "DeviceInfo",
    "EngineOptions",
    "OverrideError",
    "Point",
    "RealClock",
    "ReloadResult",
    "RuleAlarm",
    "RuleEngine",
    "RuleError",
    "RuleFileError",
    "RuleIssue",
    "RuleSet",
    "StateView",
    "Topology",
    "UnknownDeviceError",
    "VirtualClock",
    "load_rules",
]
