"""``GET /open/`` (the DCAT-AP catalogue) and ``GET /open/{name}`` (a file it lists): open data.

No token: the files are public by design (docs/open-data.md). Requests are rate-limited per client
address with the API's token bucket (:class:`supervisor.api.limits.WriteRateLimiter`,
``opendata.rate_per_second`` and ``opendata.burst``): an empty bucket answers 429 with
``Retry-After``. Publication off (``opendata.publish: false``, the default), nothing exported yet,
or a name the catalogue does not list: 404. A name is looked up in the catalogue's list, never
joined to a path, so ``..`` or an encoded ``/`` reaches nothing (``{name}`` holds no ``/`` either).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from supervisor.api.deps import ServiceDep
from supervisor.api.errors import ErrorBody, error_response, responses
from supervisor.api.limits import WriteRateLimiter

router = APIRouter(tags=["open data"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(404),
    429: {"model": ErrorBody, "description": "Too many requests from this address: wait `Retry-After` seconds."},
}
_FILE = {"description": "The file, with its media type.",
         "content": {m: {} for m in ("text/csv", "application/geo+json", "application/json", "application/ld+json")}}


def _limited(request: Request, svc: ServiceDep) -> Response | None:
    limiter: WriteRateLimiter | None = getattr(request.app.state, "open_limiter", None)
    if limiter is None:
        cfg = svc.open_data_config()
        limiter = request.app.state.open_limiter = WriteRateLimiter(cfg.rate_per_second, cfg.burst)
    wait = limiter.take(request.client.host if request.client else "unknown")
    if wait > 0:
        return error_response(429, f"too many open-data requests from this address: retry in {math.ceil(wait)} s",
                              {"Retry-After": str(max(1, math.ceil(wait)))})
    return None


def _serve(request: Request, svc: ServiceDep, name: str) -> Response:
    refused = _limited(request, svc)
    if refused is not None:
        return refused
    path, media = svc.open_data_file(name)
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=300"})


@router.get("/open/", name="opendata-catalogue", response_class=Response,
            responses={**_RESPONSES, 200: {"description": "The DCAT-AP catalogue (JSON-LD).",
                                           "content": {"application/ld+json": {}}}})
def catalogue(request: Request, svc: ServiceDep) -> Response:
    """The DCAT-AP 2 catalogue of the published datasets (JSON-LD); no token."""
    return _serve(request, svc, "")


@router.get("/open/{name}", name="opendata-file", response_class=Response, responses={**_RESPONSES, 200: _FILE})
def open_file(name: str, request: Request, svc: ServiceDep) -> Response:
    """A file listed in the catalogue (CSV, Table Schema, GeoJSON); no token."""
    return _serve(request, svc, name)
