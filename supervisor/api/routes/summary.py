"""``GET /api/v1/summary``: the supervisor's own summary (MQTT, ingest, storage, devices, alarms)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from supervisor.api._json import to_jsonable
from supervisor.api.deps import ServiceDep, ViewerDep

router = APIRouter(tags=["summary"])


@router.get("/summary", name="summary-get")
def get_summary(svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    out: dict[str, Any] = to_jsonable(svc.summary())
    return out
