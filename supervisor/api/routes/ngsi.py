"""NGSI-LD read API, ``/ngsi-ld/v1/``: a read-only subset of ETSI GS CIM 009 over :mod:`supervisor.ngsi`.

- ``GET /ngsi-ld/v1/entities``: ``type`` (comma-separated), ``id`` (comma-separated), ``idPattern``,
  ``q``, ``georel``/``geometry``/``coordinates``/``geoproperty``, ``limit`` (default 20, at most
  1000; 0 with ``count=true``), ``offset``, ``options=keyValues``, ``count=true`` (the
  ``NGSILD-Results-Count`` header). At least one of ``type``, ``id``, ``idPattern``, ``q``, ``georel``.
- ``GET /ngsi-ld/v1/entities/{entityId}`` (``options=keyValues`` too);
- ``GET /ngsi-ld/v1/types``: an ``EntityTypeList``;
- ``GET /ngsi-ld/v1/context.jsonld``: the ``@context`` of every entity (open: it holds no data).

Reads need a viewer (or operator) token as the rest of the API does. Answers are ``application/json``
with the ``@context`` in a ``Link`` header, or ``application/ld+json`` with ``@context`` in each
entity when the request accepts it. Every error is an NGSI-LD ProblemDetails body (RFC 7807,
``application/json``): ``{"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "title": ...,
"detail": ...}``.

These routes are not in ``/api/v1/openapi.json``: that document promises one error body
(``{"detail": ...}``) and bearer-token semantics of its own; NGSI-LD has its standard ones, described
in ``docs/ngsi-ld.md`` (and by ETSI's own OpenAPI of the full API).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from supervisor.api.deps import AuthDep, BearerDep, ServiceDep, require_viewer
from supervisor.ngsi import CONTEXT, ENTITY_TYPES, Entity, Query, QueryError, key_values, parse_geo, parse_q
from supervisor.service.facade import NotFoundError, ServiceError, UnavailableError

PREFIX = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
MAX_PATTERN = 256
JSON_LD = "application/ld+json"
CONTEXT_PATH = "/context.jsonld"
COUNT_HEADER = "NGSILD-Results-Count"

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class NgsiProblem(Exception):
    """An NGSI-LD error answer: HTTP status, the ProblemDetails type (an ETSI error name) and why."""

    def __init__(self, status: int, error: str, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.title = title or re.sub(r"(?<!^)(?=[A-Z])", " ", error)

    def body(self) -> dict[str, Any]:
        return {"type": ERRORS + self.error, "title": self.title, "detail": self.detail}


def bad_request(detail: str) -> NgsiProblem:
    return NgsiProblem(400, "BadRequestData", detail)


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NgsiProblem)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def ngsi_viewer(auth: AuthDep, creds: BearerDep) -> None:
    """The API's read access, its refusals as ProblemDetails."""
    try:
        require_viewer(auth, creds)
    except HTTPException as exc:
        raise NgsiProblem(exc.status_code, "InvalidRequest", str(exc.detail), "Unauthorized") from None


Viewer = Annotated[None, Depends(ngsi_viewer)]


def _call(fn: Any, *args: Any) -> Any:
    """A facade call, its refusals as ProblemDetails."""
    try:
        return fn(*args)
    except NotFoundError as exc:
        raise NgsiProblem(404, "ResourceNotFound", str(exc)) from None
    except UnavailableError as exc:
        raise NgsiProblem(503, "InternalError", str(exc), "Service Unavailable") from None
    except ServiceError as exc:
        raise bad_request(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# parameters


#: what an entity id must look like: a URI (scheme, colon, no white space)
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+")


def _int(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,9}", raw):
        raise bad_request(f"{name} must be a non-negative integer, got {raw[:40]!r}")
    return int(raw)


def _list(name: str, raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    items = [s for s in raw.split(",") if s]
    if not items:
        raise bad_request(f"{name} is empty")
    return items


def _types(raw: str | None) -> tuple[str, ...]:
    """The types asked (all of them when none is given); an unknown type simply matches nothing."""
    names = _list("type", raw)
    return ENTITY_TYPES if names is None else tuple(t for t in ENTITY_TYPES if t in names)


def _pattern(raw: str | None) -> re.Pattern[str] | None:
    if raw is None:
        return None
    if len(raw) > MAX_PATTERN:
        raise bad_request(f"idPattern is longer than {MAX_PATTERN} characters")
    try:
        return re.compile(raw)
    except re.error as exc:
        raise bad_request(f"idPattern is not a regular expression: {exc}") from None


def _page(params: dict[str, str], count: bool) -> tuple[int, int]:
    limit = _int("limit", params.get("limit"), DEFAULT_LIMIT)
    offset = _int("offset", params.get("offset"), 0)
    if limit > MAX_LIMIT:
        raise bad_request(f"limit must be at most {MAX_LIMIT}, got {limit}")
    if limit == 0 and not count:
        raise bad_request("limit=0 is only allowed with count=true")
    return limit, offset


def _flag(params: dict[str, str], name: str, values: tuple[str, ...] = ("true", "false")) -> str | None:
    raw = params.get(name)
    if raw is not None and raw not in values:
        raise bad_request(f"{name} must be one of {', '.join(values)}, got {raw[:40]!r}")
    return raw


def _key_values(params: dict[str, str]) -> bool:
    options = _list("options", params.get("options")) or []
    unknown = [o for o in options if o not in ("keyValues", "normalized", "sysAttrs")]
    if unknown:
        raise bad_request(f"options: {', '.join(unknown)} is not supported (keyValues, normalized)")
    if "keyValues" in options and "normalized" in options:
        raise bad_request("options: keyValues and normalized exclude each other")
    return "keyValues" in options


def parse_query(params: dict[str, str]) -> tuple[Query, bool]:
    """(the query, count asked) from the query string; :class:`NgsiProblem` when something is wrong."""
    if not any(k in params for k in ("type", "id", "idPattern", "q", "georel")):
        raise bad_request("give at least one of type, id, idPattern, q or georel")
    count = _flag(params, "count") == "true"
    limit, offset = _page(params, count)
    ids = _list("id", params.get("id"))
    for i in ids or ():
        if not _URI.fullmatch(i):
            raise bad_request(f"id {i[:80]!r} is not a URI")
    loose = [k for k in ("geometry", "coordinates", "geoproperty") if k in params and "georel" not in params]
    if loose:
        raise bad_request(f"{', '.join(loose)} without georel: a geoQ needs georel, geometry and coordinates")
    try:
        q = parse_q(params["q"]) if "q" in params else None
        geo = parse_geo(params["georel"], params.get("geometry"), params.get("coordinates"),
                        params.get("geoproperty")) if "georel" in params else None
    except QueryError as exc:
        raise bad_request(str(exc)) from None
    return Query(_types(params.get("type")), frozenset(ids) if ids is not None else None,
                 _pattern(params.get("idPattern")), q, geo, limit, offset), count


# ---------------------------------------------------------------------------------------------
# answers


def _wants_ld(request: Request) -> bool:
    return JSON_LD in request.headers.get("accept", "")


def _render(request: Request, entities: list[Entity], key_vals: bool) -> tuple[list[Entity], dict[str, str], str]:
    """Entities in the form asked, the headers and the media type."""
    out = [key_values(e) for e in entities] if key_vals else entities
    if _wants_ld(request):
        return out, {}, JSON_LD
    link = f'<{str(request.base_url).rstrip("/")}{PREFIX}{CONTEXT_PATH}>; ' \
           'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    return [{k: v for k, v in e.items() if k != "@context"} for e in out], {"Link": link}, "application/json"


@router.get("/entities", name="ngsi-entities")
def query_entities(request: Request, svc: ServiceDep, _: Viewer) -> Response:
    params = dict(request.query_params)
    query, count = parse_query(params)
    key_vals = _key_values(params)
    total, page = _call(svc.ngsi_entities, query)
    body, headers, media = _render(request, page, key_vals)
    if count:
        headers[COUNT_HEADER] = str(total)
    return Response(orjson.dumps(body), headers=headers, media_type=media)


@router.get("/entities/{entity_id:path}", name="ngsi-entity")
def get_entity(entity_id: str, request: Request, svc: ServiceDep, _: Viewer) -> Response:
    params = dict(request.query_params)
    key_vals = _key_values(params)
    if not _URI.fullmatch(entity_id):
        raise bad_request(f"entity id {entity_id[:80]!r} is not a URI")
    body, headers, media = _render(request, [_call(svc.ngsi_entity, entity_id)], key_vals)
    return JSONResponse(body[0], headers=headers, media_type=media)


@router.get("/types", name="ngsi-types")
def get_types(request: Request, svc: ServiceDep, _: Viewer) -> Response:
    body: dict[str, Any] = {"id": "urn:ngsi-ld:EntityTypeList:urban-supervisor", "type": "EntityTypeList",
                            "typeList": _call(svc.ngsi_types)}
    if _wants_ld(request):
        return JSONResponse(body | {"@context": list(CONTEXT)}, media_type=JSON_LD)
    return JSONResponse(body)


@router.get(CONTEXT_PATH, name="ngsi-context")
def get_context() -> Response:
    return JSONResponse({"@context": list(CONTEXT)}, media_type=JSON_LD)


def install(app: FastAPI) -> None:
    """Serve ``/ngsi-ld/v1/`` on ``app``, with its ProblemDetails answers."""
    app.add_exception_handler(NgsiProblem, _problem)
    app.include_router(router)
