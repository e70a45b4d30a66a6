"""The supervisor service, split by concern.

- :mod:`.supervisor`: wiring and lifecycle (:class:`Supervisor`);
- :mod:`.periodic`: the work between batches (rule ticks, status checks, alarms, saves, health);
- :mod:`.rulestate`: rule state that survives restarts;
- :mod:`.health`: health points and the supervisor's own alarms;
- :mod:`.commands`: command sending (known devices, topic check, rate limit);
- :mod:`.facade`: what the API reads and writes, under the supervisor's lock.
"""

from supervisor.service.errors import CommandRefusedError, SupervisorError
from supervisor.service.supervisor import BATCH_LIMIT, Supervisor
from supervisor.service.wiring import build_drivers, subscription_roots

__all__ = ["BATCH_LIMIT", "CommandRefusedError", "Supervisor", "SupervisorError", "build_drivers",
           "subscription_roots"]
