"""Rules: the loaded rule set and "why is this light at 60 %?" (the recent decisions for a device)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from supervisor.api._json import to_jsonable
from supervisor.api.deps import RulesDep, SupervisorDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE

router = APIRouter(tags=["rules"])


@router.get("/rules", name="rules-list", responses=responses(503))
def list_rules(sup: SupervisorDep, _: ViewerDep, rules: RulesDep) -> dict[str, Any]:
    """Ids of the running rules and the engine's counters (decisions, alarms, commands, errors)."""
    with sup.lock:
        return {"rules": list(rules.rules()), "stats": to_jsonable(rules.stats())}


@router.get("/why/{device_id}", name="rules-why", responses=responses(404, 503))
def why(
    device_id: str,
    sup: SupervisorDep,
    _: ViewerDep,
    rules: RulesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Recent decisions about a device, newest first: rule, inputs, output and the explanation text,
    with the level the arbitration asks now and the priority stack behind it."""
    with sup.lock:
        decisions = list(rules.why(device_id))
        known = (sup.model is not None and device_id in sup.model.devices) or sup.state.get(device_id) is not None
        if not decisions and not known:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"device {device_id!r} is unknown (not in the network model nor the device state)")
        return {
            "device": device_id,
            "level": rules.level(device_id),
            "requests": to_jsonable(rules.requests(device_id)),
            "decisions": [to_jsonable(d) for d in reversed(decisions)][:limit],
        }
