"""Alarms: the one list of every source (network, rules, commands, the supervisor itself), kept
across restarts, and what an operator does with one: acknowledge, comment, shelve."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from supervisor.alarms.store import AlarmQuery
from supervisor.api.contract import links
from supervisor.api.deps import OperatorDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE
from supervisor.api.routes.overrides import audit_user

router = APIRouter(prefix="/alarms", tags=["alarms"])

AlarmStateFilter = Literal["raised", "acknowledged", "cleared", "active", "shelved"]
Epoch = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False, description="UTC epoch seconds")]
Name = Annotated[str, Query(min_length=1, max_length=200)]


class AckIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [{"user": "alice"}]})

    user: str = Field(min_length=1, max_length=100, description="who acknowledges (recorded with the token's role)")


class CommentIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [{"user": "alice", "text": "crew sent"}]})

    user: str = Field(min_length=1, max_length=100, description="who comments (recorded with the token's role)")
    text: str = Field(min_length=1, max_length=2000)


class ShelveIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={
        "examples": [{"user": "alice", "until": 1893456000, "reason": "known, repair planned"}]})

    user: str = Field(min_length=1, max_length=100, description="who shelves (recorded with the token's role)")
    until: Epoch
    reason: str = Field(min_length=1, max_length=500)


@router.get("", name="alarms-list", responses=links(
    200,
    Acknowledge=("alarms-ack", {"alarm_id": "$response.body#/items/0/id"}),
    Detail=("alarms-get", {"alarm_id": "$response.body#/items/0/id"}),
    Comment=("alarms-comment", {"alarm_id": "$response.body#/items/0/id"}),
    Shelve=("alarms-shelve", {"alarm_id": "$response.body#/items/0/id"}),
))
def list_alarms(  # noqa: PLR0917 (one argument per filter of the list)
    svc: ServiceDep,
    _: ViewerDep,
    all_: Annotated[bool, Query(alias="all", description="cleared alarms too (same as state unset)")] = False,
    state: Annotated[AlarmStateFilter | None, Query(description="active = raised or acknowledged")] = None,
    kind: Name | None = None,
    severity: Name | None = None,
    service: Name | None = None,
    zone: Name | None = None,
    element: Name | None = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="raised at or after (epoch s)")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="raised at or before (epoch s)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Alarms of every source, newest first: the active ones (raised or acknowledged), or with
    ``?all=true`` every kept alarm in its latest state; filtered by state, kind (``root_cause``,
    ``device``, ``rule:<kind>``, ``command``, ``supervisor``), severity, service, zone, element and
    the time it was raised. ``active``: active alarms in all; ``total``: matches before paging."""
    q = AlarmQuery(state=state, kind=kind, severity=severity, service=service, zone=zone, element=element,
                   since=since, until=until)
    return svc.alarms(all_, limit, offset, q)


@router.get("/{alarm_id}", name="alarms-get", responses=responses(404))
def get_alarm(alarm_id: str, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """One alarm (cleared ones too) with its journal: raised, acknowledged, comments, shelving, cleared."""
    return svc.alarm(alarm_id)


@router.post("/{alarm_id}/ack", name="alarms-ack", responses=responses(404, 409))
def ack_alarm(alarm_id: str, body: AckIn, principal: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Acknowledge an active alarm; the user recorded is ``<user> (<operator#n>)``. 404 for an unknown
    alarm, 409 for a cleared one; acknowledging twice keeps the first acknowledgement."""
    return svc.acknowledge_alarm(alarm_id, audit_user(body.user, principal))


@router.post("/{alarm_id}/comment", name="alarms-comment", responses=responses(404))
def comment_alarm(alarm_id: str, body: CommentIn, principal: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Add a comment to an alarm's journal (cleared alarms too). 404 for an unknown alarm."""
    return svc.comment_alarm(alarm_id, audit_user(body.user, principal), body.text)


@router.post("/{alarm_id}/shelve", name="alarms-shelve", responses=responses(404, 409))
def shelve_alarm(alarm_id: str, body: ShelveIn, principal: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Silence an active alarm until ``until`` (no notification meanwhile), with a reason; a time
    not in the future ends the shelving. 404 for an unknown alarm, 409 for a cleared one."""
    return svc.shelve_alarm(alarm_id, audit_user(body.user, principal), body.until, body.reason)
