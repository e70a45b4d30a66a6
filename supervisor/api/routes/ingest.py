"""Ingest diagnostics: refused messages by driver and reason, and the dead-letter sample."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from supervisor.api.deps import SupervisorDep, ViewerDep
from supervisor.api.limits import MAX_PAGE

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.get("/errors", name="ingest-errors")
def ingest_errors(sup: SupervisorDep, _: ViewerDep) -> dict[str, Any]:
    """Refused messages counted by (driver, reason) since start; ``-`` is "no driver claimed it"."""
    with sup.lock:
        c = sup.pipeline.counters
        items = [{"driver": d, "reason": r, "count": n} for (d, r), n in sorted(c.errors.items())]
        return {"received": c.received, "decoded": c.decoded, "total": c.error_total,
                "by_reason": dict(sorted(c.errors_by_reason().items())), "by_driver": items}


@router.get("/dead-letters", name="ingest-dead-letters")
def dead_letters(
    sup: SupervisorDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    reason: str | None = None,
) -> dict[str, Any]:
    """The most recent refused messages (newest first) from the bounded sample the pipeline keeps."""
    with sup.lock:
        dl = sup.pipeline.dead_letters
        kept = len(dl)
        items = [d.as_dict() for d in reversed(dl) if reason is None or d.reason == reason][:limit]
        return {"kept": kept, "capacity": dl.maxlen, "items": items}
