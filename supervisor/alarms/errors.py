"""The errors of the alarm list (light: importing them loads neither the network model nor SQLite)."""

from __future__ import annotations


class AlarmError(Exception):
    """Base class of alarm-manager errors."""


class UnknownAlarmError(AlarmError, KeyError):
    def __init__(self, alarm_id: str) -> None:
        super().__init__(alarm_id)
        self.alarm_id = alarm_id

    def __str__(self) -> str:
        return f"unknown alarm {self.alarm_id!r}"


class AlarmStateError(AlarmError):
    """An action the alarm's state does not allow (acknowledging a cleared alarm)."""

    def __init__(self, alarm_id: str, state: str, action: str) -> None:
        super().__init__(f"alarm {alarm_id!r} is {state}: cannot {action} it")
        self.alarm_id = alarm_id
        self.state = state


__all__ = ["AlarmError", "AlarmStateError", "UnknownAlarmError"]
