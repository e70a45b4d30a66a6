"""Ingest diagnostics: refused messages by driver and reason, and the dead-letter sample."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from supervisor.api.deps import ServiceDep, ViewerDep
from supervisor.api.limits import MAX_PAGE

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.get("/errors", name="ingest-errors")
def ingest_errors(svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """Refused messages counted by (driver, reason) since start; ``-`` is "no driver claimed it"."""
    return svc.ingest_errors()


@router.get("/dead-letters", name="ingest-dead-letters")
def dead_letters(
    svc: ServiceDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    reason: str | None = None,
) -> dict[str, Any]:
    """The most recent refused messages (newest first) from the bounded sample the pipeline keeps."""
    return svc.dead_letters(limit, reason)
