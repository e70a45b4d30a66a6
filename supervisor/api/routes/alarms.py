"""Alarms: the active ones (or the history) and their acknowledgement by an operator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from supervisor.api._json import to_jsonable
from supervisor.api.deps import AlarmsDep, OperatorDep, SupervisorDep, ViewerDep
from supervisor.api.routes.overrides import audit_user

router = APIRouter(prefix="/alarms", tags=["alarms"])


class AckIn(BaseModel):
    user: str = Field(min_length=1, max_length=100, description="who acknowledges (recorded with the token's role)")


def _sort_key(a: Any) -> float:
    return float(a.raised_at or 0.0)


@router.get("", name="alarms-list")
def list_alarms(
    sup: SupervisorDep,
    _: ViewerDep,
    alarms: AlarmsDep,
    all_: Annotated[bool, Query(alias="all", description="the history too, not only the active alarms")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    """Active alarms by default, newest first; ``?all=true`` adds the kept history."""
    with sup.lock:
        active = list(alarms.active())
        items = list(active)
        if all_:
            seen = {a.id for a in items}
            items += [a for a in alarms.history if a.id not in seen]
        items.sort(key=_sort_key, reverse=True)
        return {"active": len(active), "total": len(items), "items": [to_jsonable(a) for a in items[:limit]]}


@router.post("/{alarm_id}/ack", name="alarms-ack")
def ack_alarm(alarm_id: str, body: AckIn, principal: OperatorDep, sup: SupervisorDep,
              alarms: AlarmsDep) -> dict[str, Any]:
    """Acknowledge an alarm; the user recorded is ``<user> (<operator#n>)``."""
    user = audit_user(body.user, principal)
    with sup.lock:
        if alarms.get(alarm_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alarm {alarm_id!r} not found")
        alarms.acknowledge(alarm_id, user, sup.clock())
        out: dict[str, Any] = to_jsonable(alarms.get(alarm_id))
    return out
