"""Clocks: the engine never reads the system time itself, so a night can run in seconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Current time, UTC epoch seconds."""
        ...


class RealClock:
    """The system clock."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time.

    ``speed=0`` freezes it: only :meth:`advance` moves it (what unit tests use).
    """

    def __init__(
        self, start: float, speed: float = 1.0, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if not math.isfinite(start):
            raise ValueError(f"VirtualClock start must be finite, got {start!r}")
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"VirtualClock speed must be finite and >= 0, got {speed!r}")
        self._start = float(start)
        self._speed = float(speed)
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._offset = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._start + self._offset + (self._monotonic() - self._t0) * self._speed

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); return the new time."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"VirtualClock.advance needs a finite, non-negative duration, got {seconds!r}")
        self._offset += seconds
        return self.now()
