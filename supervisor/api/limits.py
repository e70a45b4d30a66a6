"""What the API refuses before a route runs: big bodies, bursts of writes; and the headers it always adds.

:class:`LimitsMiddleware` (plain ASGI, so a refused request never reaches FastAPI):

- a request body over :attr:`Limits.max_body_bytes` answers 413. A ``Content-Length`` over the
  limit is refused without reading a byte; a body without one (chunked) is read up to the limit
  and refused as soon as it passes it, so memory stays bounded either way;
- writes (every method but GET, HEAD and OPTIONS) are rate-limited per token: a token bucket of
  :attr:`Limits.write_burst` writes refilled at :attr:`Limits.writes_per_second`; an empty bucket
  answers 429 with ``Retry-After`` (whole seconds). Buckets are per configured token (by its
  principal name, never the token itself); every unknown or missing token shares one bucket, so
  the number of buckets is bounded by the configuration;
- every answer carries ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``;
  JSON answers carry a CSP that allows nothing, HTML answers (the ``/docs`` page) one that allows
  the Swagger UI assets and nothing else, and every answer under ``/console`` the console's own
  (:func:`supervisor.console.csp`: this origin only, no inline script or style).

Refused requests change nothing: the route does not run.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from supervisor.api.auth import TokenAuth
from supervisor.api.errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_PAGE = 1000  # the most items any list answers in one page
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONSOLE_PATH = "/console"  # supervisor.console.PATH (not imported: the console imports the API's config)
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# the Swagger UI page: its bundle and style from the CDN FastAPI uses, one inline start-up script,
# the schema fetched from this origin
HTML_CSP = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src https://cdn.jsdelivr.net; img-src data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; frame-ancestors 'none'")
_COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * 1024
    writes_per_second: float = 5.0
    write_burst: int = 20


@dataclass(slots=True)
class Refusals:
    """Requests the limits refused, by reason (read by the metrics)."""

    too_large: int = 0
    rate_limited: int = 0


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class WriteRateLimiter:
    """Token buckets by key; :meth:`take` answers 0 when a write may go, else seconds to wait."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("write rate limit: rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            b = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, auth: TokenAuth, limits: Limits, refusals: Refusals,
                 console_csp: str | None = None) -> None:
        self.app, self.auth, self.limits, self.refusals = app, auth, limits, refusals
        self.console_csp = console_csp
        self.rate = WriteRateLimiter(limits.writes_per_second, limits.write_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        console = self.console_csp is not None and (path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/"))
        send = _with_security_headers(send, self.console_csp if console else None)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limits.max_body_bytes):
            await self._refuse_size(scope, receive, send)
            return
        if scope["method"] not in READ_METHODS:
            wait = self.rate.take(self._writer(scope))
            if wait > 0:
                self.refusals.rate_limited += 1
                await error_response(429, f"too many writes with this token: retry in {math.ceil(wait)} s",
                                     {"Retry-After": str(max(1, math.ceil(wait)))})(scope, receive, send)
                return
        body = await self._read_bounded(receive) if declared is None and _may_have_body(scope) else None
        if body is _TOO_LARGE:
            await self._refuse_size(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive) if body is not None else receive, send)

    def _writer(self, scope: Scope) -> str:
        raw = _header(scope, b"authorization") or b""
        scheme, _, token = raw.decode("latin-1").partition(" ")
        principal = self.auth.identify(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        return principal.name if principal is not None else "unidentified"

    async def _refuse_size(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.refusals.too_large += 1
        detail = f"request body too large: the limit is {self.limits.max_body_bytes} bytes"
        # the client may still be sending: close the connection rather than read what it sends
        await error_response(413, detail, {"Connection": "close"})(scope, receive, send)

    async def _read_bounded(self, receive: Receive) -> bytes | object:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                return _TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


_TOO_LARGE = object()


def _may_have_body(scope: Scope) -> bool:
    return _header(scope, b"transfer-encoding") is not None


def _replay(body: bytes | object, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _with_security_headers(send: Send, fixed_csp: str | None = None) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            content_type = next((bytes(v) for k, v in headers if bytes(k).lower() == b"content-type"), b"")
            csp = fixed_csp or (HTML_CSP if content_type.startswith(b"text/html") else JSON_CSP)
            message["headers"] = [*headers, *_COMMON_HEADERS, (b"content-security-policy", csp.encode())]
        await send(message)

    return wrapped
