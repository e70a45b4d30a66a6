"""What the alarm lifecycle hands to the notifier: one :class:`AlarmEvent` per alarm transition."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from supervisor.notify.config import SEVERITIES

Transition = Literal["raised", "acknowledged", "cleared", "escalated", "flapping"]
TRANSITIONS: tuple[str, ...] = get_args(Transition)
#: transitions that tell about an alarm someone was already told of (never sent alone, never delayed)
FOLLOW_UPS = frozenset({"acknowledged", "cleared"})
#: transitions that start an alarm's trouble (a route's delay and escalation apply)
STARTS = frozenset({"raised", "flapping"})


class InvalidEventError(ValueError):
    """An :class:`AlarmEvent` that cannot be notified; the message names the field."""


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One transition of one alarm.

    ``flap_count`` tells the n-th return of a flapping alarm apart from the previous ones (the
    idempotency key includes it); ``position`` is (lon, lat) of the alarm's element.
    """

    alarm_id: str
    transition: Transition
    kind: str
    severity: str
    element: str
    text: str
    ts: float
    services: tuple[str, ...] = ()
    zone: str | None = None
    devices: int = 0
    position: tuple[float, float] | None = None
    acknowledged_by: str | None = None
    in_maintenance: bool = False
    flap_count: int = 0

    def __post_init__(self) -> None:
        if not self.alarm_id or not isinstance(self.alarm_id, str):
            raise InvalidEventError("alarm_id must be a non-empty string")
        if self.transition not in TRANSITIONS:
            raise InvalidEventError(f"transition must be one of {', '.join(TRANSITIONS)}, got {self.transition!r}")
        if self.severity not in SEVERITIES:
            raise InvalidEventError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if not self.kind:
            raise InvalidEventError("kind must be a non-empty string")
        if not math.isfinite(self.ts):
            raise InvalidEventError(f"ts must be a finite epoch time, got {self.ts!r}")
        if self.devices < 0 or self.flap_count < 0:
            raise InvalidEventError("devices and flap_count must be >= 0")
        if self.position is not None and (len(self.position) != 2 or not all(map(math.isfinite, self.position))):
            raise InvalidEventError(f"position must be (lon, lat), got {self.position!r}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["services"] = list(self.services)
        out["position"] = list(self.position) if self.position is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlarmEvent:
        """The inverse of :meth:`to_json`; keys this version does not know are ignored."""
        data = {k: v for k, v in data.items() if k in _FIELDS}
        data["services"] = tuple(data.get("services") or ())
        pos = data.get("position")
        data["position"] = (float(pos[0]), float(pos[1])) if pos is not None else None
        return cls(**data)

    def severity_rank(self) -> int:
        """0 for critical ... 3 for warning."""
        return SEVERITIES.index(self.severity)


_FIELDS = frozenset(f.name for f in fields(AlarmEvent))
