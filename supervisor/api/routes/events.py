"""``GET /api/v1/events``: what changes, as server-sent events (the console's live updates).

The stream starts with ``event: hello`` (``{"cursor": n}``), then sends ``event: changes`` with
the device statuses, alarm transitions and rule decisions that came after the cursor (see
:mod:`supervisor.service.live`), at most every :data:`POLL_S` seconds, and a comment every
:data:`KEEPALIVE_S` seconds so that proxies keep it open. ``event: resync`` means changes were
lost (the client was too far behind): reload from the API. A stream lasts ``max_s`` seconds, then
ends; the client reconnects with ``after`` = the last cursor it saw, and misses nothing.

Authentication is the ``Authorization`` header, like every route: browsers read the stream with
``fetch`` (``EventSource`` cannot send a header, and a token never goes in a URL). Each stream
holds a cursor, nothing else: no queue per client. At most :data:`MAX_STREAMS` streams are open
at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from supervisor.api.deps import ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.service.facade import Service

router = APIRouter(tags=["events"])

POLL_S = 0.5
KEEPALIVE_S = 15.0
MAX_STREAMS = 64
BATCH = 20_000  # changes per event at most (a mass failure is sent in a few events, back to back)

_SSE: dict[str, Any] = {"text/event-stream": {"schema": {"type": "string", "description": (
    "server-sent events: `hello` {cursor}, `changes` {cursor, lost, status: {device: {status, fault, at}}, "
    "alarms: [alarm], decisions: [decision]}, `resync` {cursor}, `end` {cursor}")}}}


_STREAM: dict[int | str, dict[str, Any]] = {200: {"description": "a stream of server-sent events", "content": _SSE}}


class _Streams:
    """Open streams (bounded) and the server's stop signal."""

    def __init__(self) -> None:
        self.open = 0
        self.guard = threading.Lock()
        self.stop = threading.Event()


def streams_of(request: Request) -> _Streams:
    found: _Streams | None = getattr(request.app.state, "event_streams", None)
    if found is None:
        found = request.app.state.event_streams = _Streams()
    return found


def _event(name: str, data: object, eid: int | None = None) -> bytes:
    head = f"id: {eid}\n" if eid is not None else ""
    return f"{head}event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def _stream(svc: Service, request: Request, streams: _Streams, cursor: int, max_s: float) -> AsyncIterator[bytes]:
    with streams.guard:  # counted here, where the finally below is sure to run
        streams.open += 1
    try:
        yield b"retry: 2000\n" + _event("hello", {"cursor": cursor}, cursor)
        end = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while time.monotonic() < end and not streams.stop.is_set():
            changes = svc.live_since(cursor, BATCH)
            cursor = changes.cursor
            if changes.lost:
                yield _event("resync", {"cursor": cursor}, cursor)
                quiet_since = time.monotonic()
            elif not changes.empty:
                yield _event("changes", changes.as_dict(), cursor)
                quiet_since = time.monotonic()
                full = len(changes.status) + len(changes.alarms) + len(changes.decisions) >= BATCH
                if full:
                    continue  # more is waiting: send it now
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)
        yield _event("end", {"cursor": cursor}, cursor)
    finally:
        with streams.guard:
            streams.open -= 1


@router.get("/events", name="events-stream", response_class=StreamingResponse,
            responses=_STREAM | responses(503))
async def events(
    request: Request,
    svc: ServiceDep,
    _: ViewerDep,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="the last cursor seen (reconnecting)")] = None,
    max_s: Annotated[float, Query(ge=1, le=3600, description="seconds before the stream ends")] = 300.0,
) -> StreamingResponse:
    """Device statuses, alarm transitions and rule decisions as they change (server-sent events).

    Starts from ``after`` (a cursor of a previous stream) or from now; ``event: resync`` when what
    was asked is no longer kept. Send the token in ``Authorization``, never in the URL."""
    streams = streams_of(request)
    with streams.guard:
        if streams.open >= MAX_STREAMS:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"too many event streams open (at most {MAX_STREAMS}): retry later")
    cursor = svc.live_cursor() if after is None else after
    return StreamingResponse(_stream(svc, request, streams, cursor, max_s), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
