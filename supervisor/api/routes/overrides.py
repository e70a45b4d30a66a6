"""Manual overrides of a light (operator): ``POST /api/v1/overrides``, ``DELETE /api/v1/overrides/{device}``.

An override is a priority request in the rule engine's arbitration; it expires at ``until`` (or
after ``duration_s``) and its author is recorded as ``<user> (<operator#n>)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from supervisor.api.auth import Principal
from supervisor.api.contract import links
from supervisor.api.deps import OperatorDep, RulesDep, ServiceDep
from supervisor.api.errors import responses

router = APIRouter(prefix="/overrides", tags=["overrides"])

MAX_DURATION_S = 7 * 24 * 3600.0
MIN_DURATION_S = 1.0  # shorter would be over before the engine sees it (Schemathesis sent 5e-324 s)


class OverrideIn(BaseModel):
    """Exactly one of ``duration_s`` and ``until`` (the schema's ``oneOf``); neither may be ``null``."""

    # strict: no `false` for 0 nor "40" for 40, as the schema says (Schemathesis found `level: false` accepted)
    model_config = ConfigDict(strict=True, json_schema_extra={
        "oneOf": [{"required": ["duration_s"]}, {"required": ["until"]}],
        "examples": [{"device": "lamp-000001", "level": 40, "duration_s": 3600, "user": "alice"},
                     {"device": "cab-0001", "channel": "c1", "level": 0, "until": 1893456000, "user": "bob"}],
    })

    device: str = Field(min_length=1, max_length=200)
    level: float = Field(ge=0, le=100, allow_inf_nan=False, description="dimming level in %, 0 = off")
    # the constraints on the number itself, so that the schema carries them (not the union with None)
    duration_s: Annotated[float, Field(ge=MIN_DURATION_S, le=MAX_DURATION_S, allow_inf_nan=False)] | (
        SkipJsonSchema[None]) = None
    until: Annotated[float, Field(allow_inf_nan=False)] | SkipJsonSchema[None] = Field(
        None, description="UTC epoch seconds")
    channel: str | None = Field(None, max_length=50, description="cabinet circuit, when not the whole device")
    user: str = Field(min_length=1, max_length=100, description="who asks (recorded with the token's role)")

    @field_validator("duration_s", "until", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        # null would pass as "not given" and make the oneOf above a lie: leave the field out instead
        if value is None:
            raise ValueError("leave the field out rather than sending null")
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> OverrideIn:
        if (self.duration_s is None) == (self.until is None):
            raise ValueError("give exactly one of duration_s or until")
        return self


class OverrideOut(BaseModel):
    device: str
    channel: str | None
    level: float
    until: float
    user: str
    active_level: float | None  # what the arbitration asks of the light now


def audit_user(user: str, principal: Principal) -> str:
    """The name recorded for a write: the name given in the body, tied to the token that was used."""
    return f"{user.strip()} ({principal.name})"


@router.post("", name="overrides-create", response_model=OverrideOut, status_code=status.HTTP_201_CREATED,
             responses=links(
                 201,
                 Clear=("overrides-delete", {"device_id": "$response.body#/device"}),
                 Decisions=("rules-why", {"device_id": "$response.body#/device"}),
             ) | responses(404, 503))
def create_override(body: OverrideIn, principal: OperatorDep, svc: ServiceDep, _rules: RulesDep) -> OverrideOut:
    user = audit_user(body.user, principal)
    until, active = svc.override(body.device, body.level, until=body.until, duration_s=body.duration_s, user=user,
                                 channel=body.channel)
    return OverrideOut(device=body.device, channel=body.channel, level=body.level, until=until, user=user,
                       active_level=active)


@router.delete("/{device_id}", name="overrides-delete", responses=responses(404, 503))
def delete_override(
    device_id: str,
    principal: OperatorDep,
    svc: ServiceDep,
    _rules: RulesDep,
    channel: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    active = svc.clear_override(device_id, channel, principal.name)
    return {"device": device_id, "channel": channel, "removed": True, "active_level": active}
