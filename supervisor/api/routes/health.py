"""``GET /health``: liveness, with the state of the broker connection and of the writer. No auth."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from supervisor.api.deps import SupervisorDep
from supervisor.runtime import Supervisor

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]  # degraded: broker not connected or writer failing
    alive: bool
    mqtt_connected: bool
    writer_ok: bool
    writer_detail: str
    uptime_s: float


@router.get("/health", name="health-get", response_model=Health)
def health(sup: SupervisorDep) -> Health:
    """Always 200 while the process answers (a liveness probe must not restart it for a broker outage);
    ``status`` says whether the broker connection and the writer are healthy."""
    mqtt_ok = sup.mqtt.stats.connected
    writer_ok, detail = writer_health(sup)
    return Health(
        status="ok" if mqtt_ok and writer_ok else "degraded",
        alive=True,
        mqtt_connected=mqtt_ok,
        writer_ok=writer_ok,
        writer_detail=detail,
        uptime_s=round(time.time() - sup.started_at, 1) if sup.started_at else 0.0,
    )


def writer_health(sup: Supervisor) -> tuple[bool, str]:
    """The writer is ok when nothing waits in its spool and nothing was left unsaved: every line it
    was given reached the store (a spool that holds data means the store refused or did not answer)."""
    ws = sup.writer.stats()
    problems = []
    if ws.spool_records:
        problems.append(f"{ws.spool_records} batch(es) spooled, waiting for the store ({ws.spool_bytes} bytes)")
    if ws.unsaved:
        problems.append(f"{ws.unsaved} line(s) could be neither written nor spooled")
    if problems:
        return False, "; ".join(problems)
    return True, f"{ws.points_written} points written, {ws.pending} pending"
