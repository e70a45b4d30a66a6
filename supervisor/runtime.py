"""The supervisor process; split by concern in :mod:`supervisor.service`, whose names stay importable here."""

from supervisor.service import (
    BATCH_LIMIT,
    CommandRefusedError,
    Supervisor,
    SupervisorError,
    build_drivers,
    subscription_roots,
)
from supervisor.service.health import SPOOL_ALARM, SPOOL_CLEAR
from supervisor.service.periodic import HEALTH_INTERVAL, RULE_TICK

__all__ = [
    "BATCH_LIMIT",
    "HEALTH_INTERVAL",
    "RULE_TICK",
    "SPOOL_ALARM",
    "SPOOL_CLEAR",
    "CommandRefusedError",
    "Supervisor",
    "SupervisorError",
    "build_drivers",
    "subscription_roots",
]
