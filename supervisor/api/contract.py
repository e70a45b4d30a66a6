"""The OpenAPI contract: the status codes and the security that depend on who may call a route.

Each route says in its decorator the errors that are its own (404, 409, 503...). What follows
from *access* is added here, in one place, from the route's auth dependency and the configured
tokens, so the served document is exact for the running configuration:

- a read (``require_viewer``) is secured, with 401, unless no token is configured at all;
- ``/metrics`` (``require_metrics_reader``) is secured, with 401, only when viewer tokens are;
- a write (``require_operator``) is secured and can answer 403 (viewer token, or no operator token
  configured), 401 when operator tokens exist, and 413 and 429 from :mod:`supervisor.api.limits`;
- a route with a JSON body can answer 400 (malformed JSON); one with parameters 422;
- a route without auth (``/health``) declares ``security: []``.

``docs/openapi.json`` is :func:`reference_document`, the document served with both viewer and
operator tokens configured; ``make openapi`` rewrites it (:func:`main`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from supervisor.api.auth import TokenAuth
from supervisor.api.deps import require_metrics_reader, require_operator, require_viewer
from supervisor.api.errors import DESCRIPTIONS, ErrorBody, error_response
from supervisor.api.limits import READ_METHODS

Access = Literal["open", "viewer", "metrics", "operator"]
SCHEME = "HTTPBearer"  # the name FastAPI gives the bearer scheme of deps._bearer
REGENERATE = "make openapi"
REF = "#/components/schemas/"

_ACCESS_OF: dict[Callable[..., Any], Access] = {
    require_viewer: "viewer",
    require_metrics_reader: "metrics",
    require_operator: "operator",
}


def access_of(dependant: Dependant) -> Access:
    """The access rule of a route: the first auth dependency found among its dependencies."""
    for dep in dependant.dependencies:
        found = _ACCESS_OF.get(dep.call) if dep.call is not None else None
        if found is None:
            sub = access_of(dep)
            found = None if sub == "open" else sub
        if found is not None:
            return found
    return "open"


def _secured(access: Access, auth: TokenAuth) -> bool:
    if access == "viewer":
        return not auth.open_reads
    if access == "metrics":
        return auth.has_viewers
    return access == "operator"


def _access_codes(route: APIRoute, access: Access, auth: TokenAuth) -> list[int]:
    codes: list[int] = []
    if _secured(access, auth) and (access != "operator" or auth.has_operators):
        codes.append(401)
    if access == "operator":
        codes.append(403)
    if not READ_METHODS.issuperset(route.methods or ()):
        codes += [413, 429]
    if route.body_field is not None:
        codes.append(400)
    if route.body_field is not None or get_flat_params(route.dependant):
        codes.append(422)
    return codes


def links(code: int, **targets: tuple[str, dict[str, str]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links of the success answer ``code``: ``name=(operationId, {parameter: runtime expression})``,
    so a client (and Schemathesis's stateful phase) can follow an answer to the resources it names."""
    found = {name: {"operationId": op, "parameters": params} for name, (op, params) in targets.items()}
    return {code: {"links": found}}


def _error_ref(code: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": f"{REF}{ErrorBody.__name__}"}}}}


def _add_error_schemas(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template=REF + "{model}")
    schemas.update(body.pop("$defs", {}))
    schemas[ErrorBody.__name__] = body
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body: replaced by ErrorBody
        schemas.pop(name, None)


def declare_access(app: FastAPI, auth: TokenAuth) -> None:
    """Make ``app.openapi()`` state, for every route, its security and the codes its access implies."""
    per_op: dict[str, tuple[bool, list[int]]] = {}
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            access = access_of(route.dependant)
            per_op[route.name] = (_secured(access, auth), _access_codes(route, access, auth))
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            for path in doc["paths"].values():
                for op in path.values():
                    secured, codes = per_op[op["operationId"]]
                    op["security"] = [{SCHEME: []}] if secured else []
                    answers = op["responses"]
                    answers.pop("422", None)  # FastAPI's own, with its own body
                    answers.update({str(c): _error_ref(c) for c in codes if str(c) not in answers})
                    op["responses"] = dict(sorted(answers.items()))
            _add_error_schemas(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_method_not_allowed(app: FastAPI) -> None:
    """405 answers list in ``Allow`` every method of the path, not only those of the first route
    matched (``GET`` and ``POST /commands`` are two routes; Starlette would say ``Allow: GET``)."""
    methods_of: list[tuple[re.Pattern[str], set[str]]] = []
    for ctx in iter_route_contexts(app.routes):
        methods = getattr(ctx.original_route, "methods", None)
        if ctx.path is not None and methods:
            methods_of.append((compile_path(ctx.path)[0], set(methods)))

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        path = request.url.path
        allow = sorted(set().union(*(m for regex, m in methods_of if regex.match(path))))
        return error_response(405, f"method {request.method} not allowed here", {"Allow": ", ".join(allow)})

    app.add_exception_handler(StarletteHTTPException, handler)


def reference_document() -> dict[str, Any]:
    """The document of ``docs/openapi.json``: viewer and operator tokens configured."""
    from supervisor.api.app import build_app
    from supervisor.config import ApiConfig

    cfg = ApiConfig(viewer_tokens=["reference-viewer"], operator_tokens=["reference-operator"])
    return build_app(cfg).openapi()


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """``make openapi``: the reference document on standard output."""
    sys.stdout.write(dumps(reference_document()))
