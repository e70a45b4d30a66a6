"""``GET /api/v1/session``: who the presented token is (a client's login check, and what it may do)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from supervisor.api.deps import ViewerDep

router = APIRouter(tags=["session"])


class SessionOut(BaseModel):
    role: Literal["anonymous", "viewer", "operator"]
    name: str  # the principal's name (``operator#1``), never the token
    can_write: bool


@router.get("/session", name="session-get", response_model=SessionOut)
def session(principal: ViewerDep) -> SessionOut:
    """The role of the token sent (401 for none or an unknown one, unless reads are open), so a
    client can disable what the API would refuse (it refuses anyway)."""
    return SessionOut(role=principal.role, name=principal.name, can_write=principal.can_write)
