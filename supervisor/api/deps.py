"""Dependencies shared by the routes: the service, the caller's role, the optional parts.

``ServiceDep`` is the :class:`~supervisor.service.facade.Service` of the running supervisor (the
routes read and write only through it); ``ViewerDep`` and ``OperatorDep`` resolve the caller (see
:mod:`supervisor.api.auth` for the rules); ``ModelDep`` is the network model; ``AlarmsDep`` and
``RulesDep`` check that the alarm manager and the rule engine are there. All three answer 503
"not configured" when the supervisor runs without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from supervisor.api.auth import ANONYMOUS, Principal, TokenAuth
from supervisor.service.facade import Service, ServiceError

if TYPE_CHECKING:
    from supervisor.model import CityModel

_bearer = HTTPBearer(auto_error=False, description="viewer or operator token from api.*_tokens")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


def get_auth(request: Request) -> TokenAuth:
    return cast(TokenAuth, request.app.state.auth)


ServiceDep = Annotated[Service, Depends(get_service)]
AuthDep = Annotated[TokenAuth, Depends(get_auth)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)


def _identify(auth: TokenAuth, creds: HTTPAuthorizationCredentials | None) -> Principal:
    if creds is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    principal = auth.identify(creds.credentials)
    if principal is None:
        raise _unauthorized("invalid bearer token")
    return principal


def require_viewer(auth: AuthDep, creds: BearerDep) -> Principal:
    """Any configured token (viewer or operator); nothing when no token is configured at all."""
    if auth.open_reads:
        return ANONYMOUS
    return _identify(auth, creds)


def require_operator(auth: AuthDep, creds: BearerDep) -> Principal:
    """An operator token; writes are refused outright when no operator token is configured."""
    if not auth.has_operators:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "writes are disabled: api.operator_tokens is not configured")
    principal = _identify(auth, creds)
    if not principal.can_write:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"{principal.role} token may only read; this needs an operator token")
    return principal


def require_metrics_reader(auth: AuthDep, creds: BearerDep) -> Principal:
    """``/metrics`` is open unless viewer tokens are configured (then any valid token)."""
    if not auth.has_viewers:
        return ANONYMOUS
    return _identify(auth, creds)


ViewerDep = Annotated[Principal, Depends(require_viewer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
MetricsReaderDep = Annotated[Principal, Depends(require_metrics_reader)]


def _unavailable(exc: ServiceError) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))


def get_model(svc: ServiceDep) -> CityModel:
    try:
        return svc.model
    except ServiceError as exc:
        raise _unavailable(exc) from None


def require_alarms(svc: ServiceDep) -> None:
    try:
        svc.require_alarms()
    except ServiceError as exc:
        raise _unavailable(exc) from None


def require_rules(svc: ServiceDep) -> None:
    try:
        svc.require_rules()
    except ServiceError as exc:
        raise _unavailable(exc) from None


if TYPE_CHECKING:
    ModelDep = Annotated[CityModel, Depends(get_model)]
else:  # the network model package (numpy, shapely, networkx) loads only when a city is configured
    ModelDep = Annotated[object, Depends(get_model)]
AlarmsDep = Annotated[None, Depends(require_alarms)]
RulesDep = Annotated[None, Depends(require_rules)]
