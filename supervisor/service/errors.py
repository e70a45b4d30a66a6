"""The errors of the supervisor service."""

from __future__ import annotations


class SupervisorError(Exception):
    """The supervisor cannot start with this configuration (message says why and where)."""


class CommandRefusedError(SupervisorError):
    """A command the supervisor will not publish (unknown device, foreign topic, rate limit)."""
