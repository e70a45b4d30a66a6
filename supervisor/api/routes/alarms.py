"""Alarms: the active ones (or the history) and their acknowledgement by an operator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from supervisor.api.contract import links
from supervisor.api.deps import AlarmsDep, OperatorDep, SupervisorDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE
from supervisor.api.routes.overrides import audit_user
from supervisor.storage.lineprotocol import point_line

router = APIRouter(prefix="/alarms", tags=["alarms"])


class AckIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [{"user": "alice"}]})

    user: str = Field(min_length=1, max_length=100, description="who acknowledges (recorded with the token's role)")


@router.get("", name="alarms-list", responses=links(
    200,
    Acknowledge=("alarms-ack", {"alarm_id": "$response.body#/items/0/id"}),
) | responses(503))
def list_alarms(
    sup: SupervisorDep,
    _: ViewerDep,
    alarms: AlarmsDep,
    all_: Annotated[bool, Query(alias="all", description="every alarm in the kept history, cleared ones too")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
) -> dict[str, Any]:
    """Active (raised or acknowledged) alarms, newest first. ``?all=true``: every alarm the kept
    history knows, each in its latest state (cleared ones included), newest first."""
    from supervisor.alarms import Alarm

    with sup.lock:
        active: list[Alarm] = list(alarms.active())
        latest: dict[str, Alarm] = {}
        if all_:
            for change in alarms.history:  # oldest first: later snapshots win
                latest[change.alarm.id] = change.alarm
        for a in active:  # the live object is the current truth
            latest[a.id] = a
        items = sorted(latest.values(), key=lambda a: (a.raised_at, a.id), reverse=True)
        return {"active": len(active), "total": len(items), "items": [a.as_dict() for a in items[:limit]]}


@router.post("/{alarm_id}/ack", name="alarms-ack", responses=responses(404, 409, 503))
def ack_alarm(alarm_id: str, body: AckIn, principal: OperatorDep, sup: SupervisorDep,
              alarms: AlarmsDep) -> dict[str, Any]:
    """Acknowledge an active alarm; the user recorded is ``<user> (<operator#n>)``. 404 for an unknown
    alarm, 409 for a cleared one; acknowledging twice keeps the first acknowledgement."""
    from supervisor.alarms import AlarmStateError, UnknownAlarmError

    user = audit_user(body.user, principal)
    with sup.lock:
        now = sup.clock()
        try:
            change = alarms.acknowledge(alarm_id, user, now)
        except UnknownAlarmError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alarm {alarm_id!r} not found") from None
        except AlarmStateError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        alarm = alarms.get(alarm_id).as_dict()
    if change is not None:  # outside the lock: submit may wait for room in the writer's queue
        measurement, tags, fields, ts = change.as_point()
        sup.writer.submit([point_line(measurement, tags, fields, int(ts * 1000))])
    return {"changed": change is not None, "alarm": alarm}
