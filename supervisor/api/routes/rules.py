"""Rules: the loaded rule set and "why is this light at 60 %?" (the recent decisions for a device)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from supervisor.api._json import to_jsonable
from supervisor.api.deps import RulesDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE

router = APIRouter(tags=["rules"])


@router.get("/rules", name="rules-list", responses=responses(503))
def list_rules(svc: ServiceDep, _: ViewerDep, _rules: RulesDep) -> dict[str, Any]:
    """Ids of the running rules and the engine's counters (decisions, alarms, commands, errors)."""
    out: dict[str, Any] = to_jsonable(svc.rules())
    return out


@router.get("/why/{device_id}", name="rules-why", responses=responses(404, 503))
def why(
    device_id: str,
    svc: ServiceDep,
    _: ViewerDep,
    _rules: RulesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Recent decisions about a device, newest first: rule, inputs, output and the explanation text,
    with the level the arbitration asks now and the priority stack behind it."""
    out: dict[str, Any] = to_jsonable(svc.why(device_id, limit))
    return out
