"""Alarms: the active ones (or the history) and their acknowledgement by an operator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from supervisor.api.contract import links
from supervisor.api.deps import AlarmsDep, OperatorDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE
from supervisor.api.routes.overrides import audit_user

router = APIRouter(prefix="/alarms", tags=["alarms"])


class AckIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [{"user": "alice"}]})

    user: str = Field(min_length=1, max_length=100, description="who acknowledges (recorded with the token's role)")


@router.get("", name="alarms-list", responses=links(
    200,
    Acknowledge=("alarms-ack", {"alarm_id": "$response.body#/items/0/id"}),
) | responses(503))
def list_alarms(
    svc: ServiceDep,
    _: ViewerDep,
    _alarms: AlarmsDep,
    all_: Annotated[bool, Query(alias="all", description="every alarm in the kept history, cleared ones too")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
) -> dict[str, Any]:
    """Active (raised or acknowledged) alarms, newest first. ``?all=true``: every alarm the kept
    history knows, each in its latest state (cleared ones included), newest first."""
    return svc.alarms(all_, limit)


@router.post("/{alarm_id}/ack", name="alarms-ack", responses=responses(404, 409, 503))
def ack_alarm(alarm_id: str, body: AckIn, principal: OperatorDep, svc: ServiceDep,
              _alarms: AlarmsDep) -> dict[str, Any]:
    """Acknowledge an active alarm; the user recorded is ``<user> (<operator#n>)``. 404 for an unknown
    alarm, 409 for a cleared one; acknowledging twice keeps the first acknowledgement."""
    return svc.acknowledge_alarm(alarm_id, audit_user(body.user, principal))
