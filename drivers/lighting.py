"""Lighting building blocks that every lighting driver composes (public API, like :mod:`drivers.kit`).

- the Zigbee level 0..254 (ZCL ``CurrentLevel``, Zigbee2MQTT ``brightness``, Tasmota ``ZbSend Dimmer``)
  to and from the canonical level in %;
- % to a whole 0..100 percentage (Tasmota ``Dimmer``, the AsyncAPI streetlights ``percentage``);
- a colour temperature in mired to the canonical kelvin;
- the checks of the ``set_level`` and ``switch`` command values, with one wording for every driver.

In both directions a level above 0 never rounds down to 0, which every device reads as "off".
"""

from __future__ import annotations

import math
from typing import Any

from ._contract import DecodeError, EncodeError
from .kit import BAD_VALUE, OUT_OF_RANGE, check_range, to_float, to_int

__all__ = [
    "FAMILY",
    "ZIGBEE_LEVEL_MAX",
    "level_command",
    "mired_to_kelvin",
    "percent_to_whole",
    "percent_to_zigbee",
    "switch_command",
    "zigbee_level",
    "zigbee_to_percent",
]

FAMILY = "lighting"
ZIGBEE_LEVEL_MAX = 254  # 255 (0xFF) is "invalid" in the ZCL level cluster


def zigbee_to_percent(raw: int) -> float:
    """Zigbee level 0..254 → % (2 decimals)."""
    return round(raw * 100 / ZIGBEE_LEVEL_MAX, 2)


def percent_to_zigbee(level: float) -> int:
    """% → Zigbee level 0..254; a level above 0 never rounds down to 0 (off)."""
    value = round(level * ZIGBEE_LEVEL_MAX / 100)
    return max(value, 1) if level > 0 else 0


def percent_to_whole(level: float) -> int:
    """% → a whole percentage 0..100; a level above 0 never rounds down to 0 (off)."""
    value = round(level)
    return max(value, 1) if level > 0 else 0


def zigbee_level(raw: Any, key: str, *, clamp_255: bool = False) -> float | None:
    """A Zigbee level read from a payload, in %; ``None`` for "no value".

    ``clamp_255`` reads 255 as 254, for bridges that pass the invalid ZCL value through
    (Zigbee2MQTT); otherwise it is ``out_of_range`` like any value outside 0..254.
    """
    value = to_int(raw, key)
    if value is None:
        return None
    top = ZIGBEE_LEVEL_MAX + 1 if clamp_255 else ZIGBEE_LEVEL_MAX
    if not 0 <= value <= top:
        raise DecodeError(OUT_OF_RANGE, f"{key}: {value} is outside the Zigbee level 0..{ZIGBEE_LEVEL_MAX}")
    return zigbee_to_percent(min(value, ZIGBEE_LEVEL_MAX))


def mired_to_kelvin(raw: Any, key: str) -> float | None:
    """A colour temperature in mired read from a payload, in kelvin (1 decimal, canonical range)."""
    mired = to_float(raw, key)
    if mired is None:
        return None
    if mired <= 0:
        raise DecodeError(BAD_VALUE, f"{key}: {mired!r} mired is not a colour temperature")
    return float(check_range(FAMILY, "color_temp", round(1_000_000 / mired, 1)))


def level_command(driver: str, value: float | bool) -> float:
    """The level of a ``set_level`` command in % 0..100, or :class:`EncodeError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"{driver}: set_level needs a number, got {value!r}")
    if not 0 <= value <= 100:
        raise EncodeError(f"{driver}: level {value!r} is outside 0..100 %")
    return float(value)


def switch_command(driver: str, value: float | bool) -> bool:
    """The state of a ``switch`` command (true or false), or :class:`EncodeError`."""
    if not isinstance(value, bool):
        raise EncodeError(f"{driver}: switch needs true or false, got {value!r}")
    return value
