"""Water meter (native scheme): volume index, flow and alarm tokens.

Topic ``city/<zone>/water/<device>/telemetry``; see README.md in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._contract import Event, Reading, Value
from ..kit import DeclarativeDriver, Field, to_tokens

__all__ = ["WaterMeterDriver"]


def _alarms(value: Any, key: str) -> Value | None:
    """Alarm tokens as the canonical comma-separated string ("" when none)."""
    tokens = to_tokens(value, key)
    return None if tokens is None else ",".join(tokens)


class WaterMeterDriver(DeclarativeDriver):
    name = "water_meter"
    family = "water"
    pattern = "city/{zone}/water/{device}/telemetry"
    fields = (Field("index"), Field("flow"), Field("alarms", convert=_alarms))

    def events(self, obj: Mapping[str, Any], reading: Reading) -> list[Event]:
        """One ``alarm`` event per active token."""
        alarms = reading.values.get("alarms")
        if not alarms or not isinstance(alarms, str):
            return []
        return [
            Event(reading.device, self.family, "alarm", reading.ts, reading.zone, {"token": token})
            for token in alarms.split(",")
        ]
