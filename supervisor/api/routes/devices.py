"""Devices: ``GET /api/v1/devices`` (filtered, paginated) and ``GET /api/v1/devices/{device_id}``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from supervisor.api._json import to_jsonable
from supervisor.api.contract import links
from supervisor.api.deps import SupervisorDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE

router = APIRouter(prefix="/devices", tags=["devices"])

Status = Literal["ok", "stale", "fault"]


class DevicePage(BaseModel):
    total: int  # devices matching the filters, before pagination
    limit: int
    offset: int
    items: list[dict[str, Any]]


@router.get("", name="devices-list", response_model=DevicePage, responses=links(
    200,
    DeviceDetail=("devices-get", {"device_id": "$response.body#/items/0/device"}),
    DeviceDecisions=("rules-why", {"device_id": "$response.body#/items/0/device"}),
))
def list_devices(
    *,
    sup: SupervisorDep,
    _: ViewerDep,
    family: str | None = None,
    zone: str | None = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """Device states sorted by id; ``total`` counts every match so a client can page through."""
    with sup.lock:
        matches = sorted(sup.state.select(family, zone, status_), key=lambda st: st.device)
        page = [st.as_dict() for st in matches[offset:offset + limit]]
    return DevicePage(total=len(matches), limit=limit, offset=offset, items=page)


@router.get("/{device_id}", name="devices-get", responses=links(
    200,
    ModelEntry=("model-element", {"element_id": "$response.body#/id"}),
    Impact=("model-impact", {"element_id": "$response.body#/id"}),
) | responses(404))
def get_device(device_id: str, sup: SupervisorDep, _: ViewerDep) -> dict[str, Any]:
    """State of one device, plus its model entry and what it depends on when a model is loaded."""
    with sup.lock:
        st = sup.state.get(device_id)
        model = sup.model
        info = model.devices.get(device_id) if model is not None else None
        if st is None and info is None:
            where = "in the device state or the network model" if model is not None else "in the device state"
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} not found {where}")
        out: dict[str, Any] = {
            "id": device_id,
            "state": st.as_dict() if st is not None else None,
            "model": to_jsonable(info) if info is not None else None,
            "dependencies": to_jsonable(model.dependencies(device_id)) if info is not None else None,
        }
    return out
