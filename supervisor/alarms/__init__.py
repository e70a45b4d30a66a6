"""Alarms: root-cause correlation (:mod:`._manager`) and the one durable alarm list of every source
(:mod:`.lifecycle`, stored by :mod:`.store`; see ``docs/alarms.md``).

``AlarmManager(model).update(failing_devices, now)`` returns the changes; each
``AlarmChange.as_point()`` is a ``(measurement, tags, fields, ts)`` tuple for storage.
"""

from drivers.catalogue import Severity  # the alarm levels: one list, in the family catalogue
from supervisor.alarms._manager import (
    Alarm,
    AlarmChange,
    AlarmError,
    AlarmKind,
    AlarmManager,
    AlarmState,
    AlarmStateError,
    UnknownAlarmError,
)
from supervisor.storage.schema import AFFECTED_MAX

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
