"""The one error body of the API, the status codes it goes with, and the handlers that produce it.

Every error answer is ``{"detail": ...}``: a sentence for the caller, or, for a request that does
not fit its schema (422), the list of problems, one per field. A body that is not JSON at all is a
400 (``detail`` says where it broke), not a 422: the request is malformed, not merely invalid.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    """One reason a request did not fit its schema (pydantic's error, without the input echoed)."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str | list[FieldProblem]


DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: the body is not valid JSON.",
    401: "Missing or invalid bearer token (`WWW-Authenticate: Bearer`).",
    403: "The token may not do this (a viewer token on a write), or writes are disabled "
         "(no operator token configured).",
    404: "Not found.",
    409: "Conflicts with the current state.",
    413: "Request body too large.",
    422: "The request does not fit its schema, or the value does not fit this device.",
    429: "Too many writes with this token: wait `Retry-After` seconds.",
    503: "Not configured (no network model, alarm manager or rule engine), or the broker is unreachable.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route for these error codes, each with the shared body."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def error_response(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(detail=detail).model_dump(), status_code=code, headers=headers)


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()]


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        ctx = bad_json.get("ctx") or {}
        where = f" at byte {bad_json['loc'][-1]}" if len(bad_json.get("loc", ())) > 1 else ""
        return error_response(400, f"malformed JSON body{where}: {ctx.get('error', 'cannot be parsed')}")
    return JSONResponse({"detail": _problems(exc)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
