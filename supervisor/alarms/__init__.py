"""Alarms: root-cause correlation (:mod:`._manager`) and the one durable alarm list of every source
(:mod:`.lifecycle`, stored by :mod:`.store`; see ``docs/alarms.md``).

``AlarmManager(model).update(failing_devices, now)`` returns the changes; each
``AlarmChange.as_point()`` is a ``(measurement, tags, fields, ts)`` tuple for storage.

The correlation (and the network model it needs: numpy, shapely, networkx) is imported on first
use, so that a supervisor without a city, and the API, load neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drivers.catalogue import Severity  # the alarm levels: one list, in the family catalogue
from supervisor.alarms.errors import AlarmError, AlarmStateError, UnknownAlarmError
from supervisor.storage.schema import AFFECTED_MAX

if TYPE_CHECKING:
    from supervisor.alarms._manager import Alarm, AlarmChange, AlarmKind, AlarmManager, AlarmState

_LAZY = frozenset({"Alarm", "AlarmChange", "AlarmKind", "AlarmManager", "AlarmState"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("supervisor.alarms._manager"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AFFECTED_MAX",
    "Alarm",
    "AlarmChange",
    "AlarmError",
    "AlarmKind",
    "AlarmManager",
    "AlarmState",
    "AlarmStateError",
    "Severity",
    "UnknownAlarmError",
]
