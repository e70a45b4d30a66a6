"""Driver registry fed by the ``urban_supervisor.drivers`` entry-point group.

Our own drivers are declared in ``pyproject.toml`` exactly like a third party's, so there is one
way in. ``register`` exists for tests and for embedding applications.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from ._contract import Driver

GROUP = "urban_supervisor.drivers"
_log = logging.getLogger(__name__)
_extra: dict[str, type[Driver]] = {}


class UnknownDriverError(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown driver {self.name!r}; installed drivers: {', '.join(self.known) or 'none'}"


def register(cls: type[Driver]) -> type[Driver]:
    """Register a driver class by its ``name`` (usable as a decorator)."""
    _extra[cls.name] = cls
    return cls


def available() -> dict[str, type[Driver]]:
    """All installed drivers, by name. A broken entry point is logged and skipped."""
    found: dict[str, type[Driver]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a third-party package must not take the supervisor down
            _log.error("driver entry point %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            _log.error("driver entry point %s (%s) is not a Driver subclass", ep.name, ep.value)
            continue
        found[ep.name] = cls
    found.update(_extra)
    return dict(sorted(found.items()))


def get(name: str) -> type[Driver]:
    drivers = available()
    try:
        return drivers[name]
    except KeyError:
        raise UnknownDriverError(name, list(drivers)) from None
