"""Dependencies shared by the routes: the supervisor, the caller's role, the optional parts.

``SupervisorDep`` is the running :class:`~supervisor.runtime.Supervisor`; ``ViewerDep`` and
``OperatorDep`` resolve the caller (see :mod:`supervisor.api.auth` for the rules); ``ModelDep``,
``AlarmsDep`` and ``RulesDep`` are the network model, the alarm manager and the rule engine, and
answer 503 "not configured" when the supervisor runs without them.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from supervisor.api.auth import ANONYMOUS, Principal, TokenAuth
from supervisor.runtime import Supervisor

_bearer = HTTPBearer(auto_error=False, description="viewer or operator token from api.*_tokens")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_supervisor(request: Request) -> Supervisor:
    return cast(Supervisor, request.app.state.supervisor)


def get_auth(request: Request) -> TokenAuth:
    return cast(TokenAuth, request.app.state.auth)


SupervisorDep = Annotated[Supervisor, Depends(get_supervisor)]
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


def _not_configured(what: str, how: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"not configured: {what} ({how})")


def get_model(sup: SupervisorDep) -> Any:
    if sup.model is None:
        raise _not_configured("no network model is loaded", "set `city` in the configuration")
    return sup.model


def get_alarms(sup: SupervisorDep) -> Any:
    if sup.alarms is None:
        raise _not_configured("no alarm manager", "alarms need a network model: set `city`")
    return sup.alarms


def get_rules(sup: SupervisorDep) -> Any:
    if sup.rules is None:
        raise _not_configured("no rule engine is loaded", "set `rules_dir` in the configuration")
    return sup.rules


ModelDep = Annotated[Any, Depends(get_model)]
AlarmsDep = Annotated[Any, Depends(get_alarms)]
RulesDep = Annotated[Any, Depends(get_rules)]
