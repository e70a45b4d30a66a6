"""The FastAPI application: ``create_app(sup, cfg)``.

OpenAPI operation ids are the route names (``devices-list``, ``alarms-ack``...), so generated
clients keep stable method names. CORS is closed unless ``api.cors_origins`` lists origins.
Errors share one body (:mod:`supervisor.api.errors`); body size, write rate and security headers
are :mod:`supervisor.api.limits`; the access-dependent part of the contract is
:mod:`supervisor.api.contract`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from supervisor import console
from supervisor.api.auth import TokenAuth
from supervisor.api.contract import declare_access, install_method_not_allowed
from supervisor.api.errors import install_error_handlers
from supervisor.api.limits import Limits, LimitsMiddleware, Refusals
from supervisor.api.routes import api_router, ngsi, root_router
from supervisor.api.routes.metrics import metrics_registry
from supervisor.config import ApiConfig
from supervisor.runtime import Supervisor
from supervisor.service.facade import (
    ConflictError,
    InvalidError,
    NotFoundError,
    Service,
    ServiceError,
    UnavailableError,
)

API_PREFIX = "/api/v1"

#: the HTTP status of each kind of refusal of the service
SERVICE_ERROR_STATUS: dict[type[ServiceError], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    InvalidError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def service_error(_: Request, exc: Exception) -> JSONResponse:
    """A refusal of the service, answered as FastAPI answers an HTTPException (``{"detail": ...}``)."""
    code = next((c for kind, c in SERVICE_ERROR_STATUS.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
    return JSONResponse({"detail": str(exc)}, status_code=code)


def route_id(route: APIRoute) -> str:
    """The OpenAPI operation id of a route: its name, set explicitly on every route."""
    return route.name


def create_app(sup: Supervisor, cfg: ApiConfig, limits: Limits | None = None) -> FastAPI:
    """The API of ``sup``; ``limits`` defaults to :class:`~supervisor.api.limits.Limits` ()."""
    app = build_app(cfg, limits)
    app.state.supervisor = sup
    app.state.service = Service(sup)
    app.state.metrics = metrics_registry(app.state.service)
    return app


def build_app(cfg: ApiConfig, limits: Limits | None = None) -> FastAPI:
    """Everything but the supervisor: enough to serve the OpenAPI document."""
    lim = limits or Limits()
    app = FastAPI(
        title="urban-supervisor",
        summary="Supervisor of a city's shared IoT network: devices, ingest, network model, alarms, rules.",
        description=(
            "Bearer tokens with two roles: viewer tokens read, operator tokens read and write. "
            "Reads are open only when no viewer token and no operator token is configured; writes "
            "always need an operator token. `/health` is always open; `/metrics` is open unless "
            "viewer tokens are configured. Each operation's `security` states this for the running "
            "configuration. Every error has the body `{\"detail\": ...}`. Request bodies are limited "
            f"to {lim.max_body_bytes} bytes (413); writes are limited per token to {lim.write_burst} "
            f"at once, then {lim.writes_per_second:g} per second (429 with `Retry-After`)."
        ),
        version="1",
        generate_unique_id_function=route_id,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.add_exception_handler(ServiceError, service_error)
    auth = TokenAuth(cfg)
    app.state.auth = auth
    app.state.refusals = Refusals()
    install_error_handlers(app)
    # before CORS, so inside it: a refusal (413, 429) still carries the CORS headers a browser needs
    app.add_middleware(LimitsMiddleware, auth=auth, limits=lim, refusals=app.state.refusals,
                       console_csp=console.csp(cfg.console) if cfg.console.enabled else None)
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )
    app.include_router(root_router)
    app.include_router(api_router, prefix=API_PREFIX)
    ngsi.install(app)  # /ngsi-ld/v1/: NGSI-LD's own errors and media types, not in the OpenAPI document
    console.install(app, cfg.console)  # /console/: static files, not in the OpenAPI document
    declare_access(app, auth)
    install_method_not_allowed(app)
    return app
