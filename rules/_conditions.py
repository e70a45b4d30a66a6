"""Conditions shared by rule kinds: a typed comparison of a measure, and a condition held for a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from drivers import Value

from ._runtime import OPS, BadInputError

Transition = Literal["raised", "cleared"]


class Comparison:
    """``measure op value`` on a reading's value; a value of the wrong type is a :class:`BadInputError`."""

    __slots__ = ("_op", "measure", "op", "value")

    def __init__(self, measure: str, op: str, value: bool | float | str) -> None:
        self.measure = measure
        self.op = op
        self.value = value
        self._op = OPS[op]

    def test(self, value: Value) -> bool:
        want = self.value
        if isinstance(want, (bool, str)):
            if type(value) is not type(want):
                raise BadInputError("bad_type", f"{self.measure}={value!r} is not a {type(want).__name__}")
            return self._op(value, want)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInputError("bad_type", f"{self.measure}={value!r} is not a number")
        return self._op(float(value), want)

    def text(self, value: Value, *, negated: bool = False) -> str:
        rel = f", no longer {self.op}" if negated else f" {self.op}"
        return f"{self.measure} = {value!r}{rel} {self.value!r}"


class Held:
    """Per key: a condition true since when; raised once it held ``for_s``, cleared when it ends."""

    __slots__ = ("_since", "for_s", "raised")

    def __init__(self, for_s: float) -> None:
        self.for_s = for_s
        self._since: dict[str, tuple[float, Value]] = {}  # true since, last value
        self.raised: set[str] = set()

    def update(self, key: str, true: bool, value: Value, now: float) -> Transition | None:
        """Record the condition's state for ``key``; return the transition it causes, if any."""
        if true:
            since = self._since.get(key, (now, value))[0]
            self._since[key] = (since, value)
            return self._check(key, now)
        self._since.pop(key, None)
        if key in self.raised:
            self.raised.discard(key)
            return "cleared"
        return None

    def _check(self, key: str, now: float) -> Transition | None:
        since = self._since[key][0]
        if key in self.raised or now - since < self.for_s:
            return None
        self.raised.add(key)
        return "raised"

    def due(self, now: float) -> Iterator[str]:
        """Keys whose condition has now held ``for_s`` (raised as they are yielded)."""
        if self.for_s <= 0:
            return
        for key in [k for k in self._since if k not in self.raised]:
            if self._check(key, now) is not None:
                yield key

    def held(self, key: str, now: float) -> tuple[float, Value]:
        """(seconds the condition has held, its last value)."""
        since, value = self._since[key]
        return now - since, value
