"""Devices: ``GET /api/v1/devices`` (filtered, paginated) and ``GET /api/v1/devices/{device_id}``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from drivers import catalogue
from supervisor.api._json import to_jsonable
from supervisor.api.contract import links
from supervisor.api.deps import ServiceDep, ViewerDep
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
    svc: ServiceDep,
    _: ViewerDep,
    family: str | None = None,
    zone: str | None = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """Device states sorted by id; ``total`` counts every match so a client can page through."""
    total, page = svc.devices(family, zone, status_, limit, offset)
    return DevicePage(total=total, limit=limit, offset=offset, items=page)


def _units(family: object) -> dict[str, str]:
    if not isinstance(family, str):
        return {}
    try:
        fam = catalogue.family(family)
    except catalogue.UnknownFamilyError:
        return {}
    return {m: spec.unit for m, spec in fam.measures.items()}


@router.get("/{device_id}", name="devices-get", responses=links(
    200,
    ModelEntry=("model-element", {"element_id": "$response.body#/id"}),
    Impact=("model-impact", {"element_id": "$response.body#/id"}),
) | responses(404))
def get_device(device_id: str, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """State of one device, plus its model entry and what it depends on when a model is loaded;
    ``units``: the unit of each measure of its family (from the catalogue); ``radio`` (a LoRaWAN
    gateway device only): its observed status (up, silent, down) and link quality (median RSSI and
    SNR, rx ok ratio; ``link`` ok, degraded or unknown)."""
    found = svc.device(device_id)
    family = (found["state"] or {}).get("family") or getattr(found["model"], "family", None)
    return {
        "id": device_id,
        "state": found["state"],
        "units": _units(family),
        "model": to_jsonable(found["model"]) if found["model"] is not None else None,
        "dependencies": to_jsonable(found["dependencies"]) if found["dependencies"] is not None else None,
        **({"radio": found["radio"]} if found.get("radio") is not None else {}),
    }
