"""Alarms: lifecycle (raised, acknowledged, cleared) and root-cause correlation.

``AlarmManager(model).update(failing_devices, now)`` returns the changes; each
``AlarmChange.as_point()`` is a ``(measurement, tags, fields, ts)`` tuple for storage.
"""

from drivers.catalogue import Severity  # the alarm levels: one list, in the family catalogue
from supervisor.alarms._manager import (
    AFFECTED_MAX,
    Alarm,
    AlarmChange,
    AlarmError,
    AlarmKind,
    AlarmManager,
    AlarmState,
    AlarmStateError,
    UnknownAlarmError,
)

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
