"""Maintenance windows: planned works on an element (switch, cabinet, feeder, gateway, zone or device).

Alarms within the element's impact set raised during the window are recorded "in maintenance"
and never notified (see ``docs/alarms.md``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from supervisor.api.contract import links
from supervisor.api.deps import OperatorDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.routes.alarms import Epoch
from supervisor.api.routes.overrides import audit_user

router = APIRouter(prefix="/maintenance", tags=["maintenance"])


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [
        {"element": "sw-z01", "start": 1893456000, "end": 1893463200, "reason": "firmware", "user": "alice"}]})

    element: str = Field(min_length=1, max_length=200, description="an element, a device or a zone of the model")
    start: Epoch
    end: Epoch
    reason: str = Field(min_length=1, max_length=500)
    user: str = Field(min_length=1, max_length=100, description="who declares it (recorded with the token's role)")


@router.get("", name="maintenance-list")
def list_windows(svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """The declared maintenance windows (past, current and planned), by start; ``active``: covers now."""
    return {"items": svc.maintenance()}


@router.post("", name="maintenance-create", status_code=status.HTTP_201_CREATED, responses=links(
    201, Remove=("maintenance-delete", {"window_id": "$response.body#/id"})))
def create_window(body: MaintenanceIn, principal: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Declare maintenance on an element for ``[start, end)``. 422 when the end is not after the
    start or the element is not in the network model."""
    return svc.add_maintenance(body.element, body.start, body.end, body.reason, audit_user(body.user, principal))


@router.delete("/{window_id}", name="maintenance-delete", responses=responses(404))
def delete_window(window_id: str, _: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Remove a maintenance window (alarms already recorded in it stay so). 404 for an unknown one."""
    return svc.remove_maintenance(window_id)
