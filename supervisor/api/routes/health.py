"""``GET /health``: liveness, with the state of the broker connection and of the writer. No auth."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from supervisor.api.deps import ServiceDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]  # degraded: broker not connected or writer failing
    alive: bool
    mqtt_connected: bool
    writer_ok: bool
    writer_detail: str
    uptime_s: float


@router.get("/health", name="health-get", response_model=Health)
def health(svc: ServiceDep) -> Health:
    """Always 200 while the process answers (a liveness probe must not restart it for a broker outage);
    ``status`` says whether the broker connection and the writer are healthy."""
    h = svc.health()
    return Health(
        status="ok" if h.mqtt_connected and h.writer_ok else "degraded",
        alive=True,
        mqtt_connected=h.mqtt_connected,
        writer_ok=h.writer_ok,
        writer_detail=h.writer_detail,
        uptime_s=h.uptime_s,
    )
