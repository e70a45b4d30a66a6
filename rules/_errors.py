"""Errors of the rule engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """One problem of a rule file: where (file, rule id, field path) and what."""

    file: str
    rule: str | None
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: rule {self.rule or '-'}: {self.path or '(rule)'}: {self.message}"


class RuleError(Exception):
    """Base class of the rule engine's errors."""


class RuleFileError(RuleError):
    """Rule files that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[RuleIssue]) -> None:
        self.issues: tuple[RuleIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid rule files")


class UnknownDeviceError(RuleError):
    """A device the topology does not know, or that cannot be commanded."""

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"device {device!r}: {reason}")
        self.device = device
        self.reason = reason


class OverrideError(RuleError):
    """A manual override that cannot be applied (bad level, expiry in the past)."""
