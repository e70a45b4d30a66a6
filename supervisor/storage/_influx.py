"""InfluxDB sinks over HTTP: v1 (``/write``) and v2/v3 (``/api/v2/write``).

One keep-alive ``http.client`` connection per sink (a sink is used by one writer thread). Error
semantics, shared by both versions:

- 2xx: stored;
- 429, 5xx, connection errors and timeouts: :class:`StorageError` with ``retryable=True``
  (InfluxDB 1.6 sometimes answers 500 "engine: error syncing wal" to a write it did store: a
  retry is harmless because the same series and timestamp overwrite);
- 400 and 413: the batch is split in halves until the refused lines are isolated; the others
  are stored and :class:`PartialWriteError` carries the refused lines and InfluxDB's error text;
- other 4xx (401, 403, 404...): :class:`StorageError` with ``retryable=False``.

Secrets (password, token) are kept only in a prepared header value; they never appear in
``repr``, logs or exception messages, and credentials embedded in the URL are refused.
"""

from __future__ import annotations

import base64
import gzip as _gzip
import http.client
import json
import logging
import urllib.parse
from typing import Any

from pydantic import SecretStr

from ._errors import PartialWriteError, StorageConfigError, StorageError

log = logging.getLogger(__name__)

_DETAIL_MAX = 500
_STALE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _secret(value: str | SecretStr | None) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                text = doc[key]
                break
    return text[:_DETAIL_MAX] or "(empty response)"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignore, the writer's backoff applies


class _HttpSink:
    """HTTP plumbing shared by the InfluxDB sinks."""

    name: str

    def __init__(self, url: str, *, gzip: bool, timeout: float, name: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StorageConfigError(f"{name}: url must be http(s)://host[:port][/prefix]")
        if parts.username is not None or parts.password is not None:
            raise StorageConfigError(f"{name}: credentials in the url are refused; use the settings")
        if parts.query or parts.fragment:
            raise StorageConfigError(f"{name}: url must not carry a query or fragment")
        self.name = name
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._gzip = gzip
        self._timeout = timeout
        self._auth: str | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False
        self._routes: list[tuple[bytes, bytes, str]] = []

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._https else 'http'}://{self._host}:{self._port}{self._prefix}"

    # -- transport ---------------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        if self._closed:
            raise StorageError(False, None, f"{self.name}: sink is closed")
        if self._conn is not None:
            return self._conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn, False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        """One request on the keep-alive connection; one silent retry on a stale connection."""
        hdrs = {"User-Agent": "urban-supervisor", "Accept": "application/json", **headers}
        if self._auth is not None:
            hdrs["Authorization"] = self._auth
        url = self._prefix + path
        for attempt in (0, 1):
            conn, reused = self._connection()
            try:
                conn.request(method, url, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop_connection()
                return resp.status, data, resp.getheader("Retry-After")
            except _STALE_ERRORS as exc:
                self._drop_connection()
                if reused and attempt == 0:
                    log.debug("%s: keep-alive connection was closed by the server, reconnecting", self.name)
                    continue
                raise self._conn_error(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise self._conn_error(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _conn_error(self, exc: BaseException) -> StorageError:
        what = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return StorageError(True, None, f"{self.name}: {what} talking to {self.endpoint}: {exc}")

    def _post_lines(self, path: str, body: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = _gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        status, data, retry_after = self._request("POST", path, body, headers)
        if 200 <= status < 300:
            return
        detail = f"{self.name}: {_error_text(data)}"
        if status == 429 or status >= 500:
            raise StorageError(True, status, detail, retry_after=_retry_after(retry_after))
        raise StorageError(False, status, detail)

    # -- the Sink protocol ---------------------------------------------------------------------

    def _write_path(self) -> str:
        raise NotImplementedError

    def _routed_path(self, destination: str) -> str:
        """The write path of a routed measurement's destination (retention policy or bucket)."""
        raise NotImplementedError

    def set_routes(self, routes: dict[str, str] | None) -> None:
        """``{measurement: destination}``: lines of these measurements are written there instead
        (``None``: every line to the sink's own destination). Safe while the writer runs."""
        self._routes = [(m.encode() + b",", m.encode() + b" ", self._routed_path(dest))
                        for m, dest in sorted((routes or {}).items())]

    def _split(self, body: bytes) -> list[tuple[str, bytes]]:
        """The batch cut by destination (one scan of the lines, only when a measurement is routed)."""
        default = self._write_path()
        routes = self._routes  # one view of them for the whole batch (set_routes may swap them)
        if not routes or not any(comma in body or space in body for comma, space, _ in routes):
            return [(default, body)]
        groups: dict[str, list[bytes]] = {}
        for ln in body.split(b"\n"):
            if not ln:
                continue
            path = default
            for comma, space, routed in routes:
                if ln.startswith((comma, space)):
                    path = routed
                    break
            groups.setdefault(path, []).append(ln)
        return [(path, b"\n".join(lines)) for path, lines in groups.items()]

    def write(self, body: bytes, count: int) -> None:
        """Write a batch; routed measurements go to their own destination (a retry of the whole batch
        after a part was stored rewrites that part: same series and timestamps, harmless)."""
        rejected: list[bytes] = []
        written = 0
        status: int | None = None
        detail = ""
        for path, part in self._split(body):
            refused, part_status, part_detail, n = self._write_part(path, part)
            written += n
            if refused:
                rejected.extend(refused)
                status, detail = status or part_status, detail or part_detail
        if rejected:
            raise PartialWriteError(status, detail, rejected, written)

    def _write_part(self, path: str, body: bytes) -> tuple[list[bytes], int | None, str, int]:
        """Post one destination's lines: (refused lines, status, InfluxDB's error text, lines stored)."""
        try:
            self._post_lines(path, body)
            return [], None, "", body.count(b"\n") + 1
        except StorageError as exc:
            if exc.retryable or exc.status not in (400, 413):
                raise
            first = exc
        lines = [ln for ln in body.split(b"\n") if ln]
        rejected, detail = self._isolate(path, lines, first)
        if rejected:
            log.warning(
                "%s: %d of %d line(s) refused (HTTP %s): %s",
                self.name, len(rejected), len(lines), first.status, detail,
            )
        return rejected, first.status, detail, len(lines) - len(rejected)

    def _isolate(self, path: str, lines: list[bytes], first: StorageError) -> tuple[list[bytes], str]:
        """Bisect a refused batch: store every good line, return the refused ones in order."""
        rejected: list[bytes] = []
        detail = first.detail
        if len(lines) <= 1:
            return lines, detail
        mid = len(lines) // 2
        stack = [lines[mid:], lines[:mid]]  # left half first
        max_steps = 4 * len(lines) + 8  # a binary split never needs more requests than this
        steps = 0
        while stack:
            steps += 1
            if steps > max_steps:  # defensive bound; cannot happen with a consistent server
                raise StorageError(False, first.status, f"{self.name}: could not isolate bad lines")
            part = stack.pop()
            try:
                self._post_lines(path, b"\n".join(part))
            except StorageError as exc:
                if exc.retryable or exc.status not in (400, 413):
                    raise
                if len(part) == 1:
                    rejected.extend(part)
                    detail = exc.detail if len(rejected) == 1 else detail
                    continue
                half = len(part) // 2
                stack.append(part[half:])
                stack.append(part[:half])
        return rejected, detail

    def close(self) -> None:
        self._closed = True
        self._drop_connection()

    def __enter__(self) -> _HttpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxV1Sink(_HttpSink):
    """InfluxDB 1.x: ``POST /write?db=&rp=&precision=ms`` with Basic authentication."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        gzip: bool = True,
        timeout: float = 10.0,
        create_database: bool = True,
        routes: dict[str, str] | None = None,
        name: str = "influx-v1",
    ) -> None:
        super().__init__(url, gzip=gzip, timeout=timeout, name=name)
        if not database:
            raise StorageConfigError(f"{name}: database must not be empty")
        if (username is None) != (password is None):
            raise StorageConfigError(f"{name}: username and password go together")
        self.database = database
        self.retention_policy = retention_policy
        self.username = username
        self._create = create_database
        secret = _secret(password)
        if username is not None and secret is not None:
            token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
            self._auth = "Basic " + token
        params = {"db": database, "precision": "ms"}
        if retention_policy:
            params["rp"] = retention_policy
        self._path = "/write?" + urllib.parse.urlencode(params)
        self.set_routes(routes)  # {measurement: retention policy} (personal data, docs/data-protection.md)

    def __repr__(self) -> str:
        return (
            f"InfluxV1Sink(url={self.endpoint!r}, database={self.database!r}, "
            f"retention_policy={self.retention_policy!r}, username={self.username!r})"
        )

    def _write_path(self) -> str:
        return self._path

    def _routed_path(self, destination: str) -> str:
        return "/write?" + urllib.parse.urlencode({"db": self.database, "precision": "ms", "rp": destination})

    def query(self, q: str, *, on_database: bool = True) -> list[dict[str, Any]]:
        """Run InfluxQL (on this database, or server-wide); an error is a :class:`StorageError`."""
        return self._query(q, db=self.database if on_database else None)

    def _query(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        body = urllib.parse.urlencode({"q": q, **({"db": db} if db else {})}).encode()
        status, data, _ = self._request(
            "POST", "/query", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 200:
            retryable = status == 429 or status >= 500
            raise StorageError(retryable, status, f"{self.name}: query failed: {_error_text(data)}")
        try:
            results: list[dict[str, Any]] = json.loads(data).get("results", [])
        except (ValueError, AttributeError):
            raise StorageError(True, status, f"{self.name}: unreadable query answer") from None
        for res in results:
            if "error" in res:
                raise StorageError(False, status, f"{self.name}: query failed: {res['error']}")
        return results

    def ensure_ready(self) -> None:
        if self._create:
            self._query(f"CREATE DATABASE {_quote_ident(self.database)}")
        if self.retention_policy:
            results = self._query(f"SHOW RETENTION POLICIES ON {_quote_ident(self.database)}")
            names = {
                row[0]
                for res in results
                for s in res.get("series", [])
                for row in s.get("values", [])
            }
            if self.retention_policy not in names:
                raise StorageError(
                    False, None,
                    f"{self.name}: retention policy {self.retention_policy!r} does not exist "
                    f"on database {self.database!r} (have: {', '.join(sorted(names)) or 'none'})",
                )
        log.info("%s: ready (%s, database %s)", self.name, self.endpoint, self.database)


class InfluxV2Sink(_HttpSink):
    """InfluxDB 2.x / 3.x: ``POST /api/v2/write?org=&bucket=&precision=ms`` with a token."""

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str | SecretStr,
        gzip: bool = True,
        timeout: float = 10.0,
        create_bucket: bool = True,
        routes: dict[str, str] | None = None,
        name: str = "influx-v2",
    ) -> None:
        super().__init__(url, gzip=gzip, timeout=timeout, name=name)
        secret = _secret(token)
        if not org or not bucket or not secret:
            raise StorageConfigError(f"{name}: org, bucket and token are required")
        self.org = org
        self.bucket = bucket
        self._create = create_bucket
        self._auth = "Token " + secret
        self._path = "/api/v2/write?" + urllib.parse.urlencode(
            {"org": org, "bucket": bucket, "precision": "ms"}
        )
        self.set_routes(routes)  # {measurement: bucket} (personal data, docs/data-protection.md)

    def __repr__(self) -> str:
        return f"InfluxV2Sink(url={self.endpoint!r}, org={self.org!r}, bucket={self.bucket!r})"

    def _write_path(self) -> str:
        return self._path

    def _routed_path(self, destination: str) -> str:
        return "/api/v2/write?" + urllib.parse.urlencode({"org": self.org, "bucket": destination, "precision": "ms"})

    def api(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """One JSON call of the InfluxDB 2 API (used by the retention provisioner)."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        status, data, _ = self._request(method, path, body, headers)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def _get_json(self, path: str) -> tuple[int, Any]:
        status, data, _ = self._request("GET", path, None, {})
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def _check(self, status: int, data: Any, what: str) -> None:
        if 200 <= status < 300:
            return
        retryable = status == 429 or status >= 500
        text = data.get("message", "") if isinstance(data, dict) else ""
        raise StorageError(retryable, status, f"{self.name}: {what} failed: {text}"[:_DETAIL_MAX])

    def ensure_ready(self) -> None:
        if not self._create:
            status, data = self._get_json("/ping")
            self._check(status, data, "ping")
            return
        q = urllib.parse.urlencode({"name": self.bucket, "org": self.org})
        status, data = self._get_json("/api/v2/buckets?" + q)
        if status == 404 and not (isinstance(data, dict) and data.get("code") == "not found"):
            # no bucket API (InfluxDB 3 creates the database on first write)
            log.info("%s: no bucket API at %s; relying on create-on-write", self.name, self.endpoint)
            return
        self._check(status, data, "bucket lookup")
        if isinstance(data, dict) and data.get("buckets"):
            return
        status, data = self._get_json("/api/v2/orgs?" + urllib.parse.urlencode({"org": self.org}))
        self._check(status, data, "org lookup")
        orgs = data.get("orgs") if isinstance(data, dict) else None
        if not orgs:
            raise StorageError(False, status, f"{self.name}: organisation {self.org!r} not found")
        payload = json.dumps({"orgID": orgs[0]["id"], "name": self.bucket, "retentionRules": []}).encode()
        status, raw, _ = self._request("POST", "/api/v2/buckets", payload, {"Content-Type": "application/json"})
        if not 200 <= status < 300:
            retryable = status == 429 or status >= 500
            raise StorageError(retryable, status, f"{self.name}: bucket creation failed: {_error_text(raw)}")
        log.info("%s: created bucket %s in org %s", self.name, self.bucket, self.org)
