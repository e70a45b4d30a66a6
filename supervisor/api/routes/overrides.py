"""Manual overrides of a light (operator): ``POST /api/v1/overrides``, ``DELETE /api/v1/overrides/{device}``.

An override is a priority request in the rule engine's arbitration; it expires at ``until`` (or
after ``duration_s``) and its author is recorded as ``<user> (<operator#n>)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, model_validator

from supervisor.api.auth import Principal
from supervisor.api.deps import OperatorDep, RulesDep, ServiceDep

router = APIRouter(prefix="/overrides", tags=["overrides"])

MAX_DURATION_S = 7 * 24 * 3600.0


class OverrideIn(BaseModel):
    device: str = Field(min_length=1, max_length=200)
    level: float = Field(ge=0, le=100, allow_inf_nan=False, description="dimming level in %, 0 = off")
    duration_s: float | None = Field(None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False)
    until: float | None = Field(None, allow_inf_nan=False, description="UTC epoch seconds")
    channel: str | None = Field(None, max_length=50, description="cabinet circuit, when not the whole device")
    user: str = Field(min_length=1, max_length=100, description="who asks (recorded with the token's role)")

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


@router.post("", name="overrides-create", response_model=OverrideOut, status_code=status.HTTP_201_CREATED)
def create_override(body: OverrideIn, principal: OperatorDep, svc: ServiceDep, _rules: RulesDep) -> OverrideOut:
    user = audit_user(body.user, principal)
    until, active = svc.override(body.device, body.level, until=body.until, duration_s=body.duration_s, user=user,
                                 channel=body.channel)
    return OverrideOut(device=body.device, channel=body.channel, level=body.level, until=until, user=user,
                       active_level=active)


@router.delete("/{device_id}", name="overrides-delete")
def delete_override(
    device_id: str,
    principal: OperatorDep,
    svc: ServiceDep,
    _rules: RulesDep,
    channel: Annotated[str | None, Query(max_length=50)] = None,
) -> dict[str, Any]:
    active = svc.clear_override(device_id, channel, principal.name)
    return {"device": device_id, "channel": channel, "removed": True, "active_level": active}
