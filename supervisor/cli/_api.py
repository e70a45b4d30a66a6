"""A small client of the running supervisor's API, for the operator commands (``alarms``, ``maintenance``).

The API's address comes from ``--url`` or ``URBAN_API_URL`` (default ``http://127.0.0.1:8080``);
the token from ``--token-file`` or the ``URBAN_API_TOKEN`` environment variable, never from the
command line (argv is visible to every user of the host and kept in shell histories).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import EXIT_FAILURE, EXIT_INVALID

DEFAULT_URL = "http://127.0.0.1:8080"
_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliError(Exception):
    """A refusal to print: the message, and the exit status."""

    def __init__(self, message: str, status: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.status = status


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("URBAN_API_URL", DEFAULT_URL),
                        help="the supervisor's API (env URBAN_API_URL; default %(default)s)")
    parser.add_argument("--token-file", type=Path, help="file holding the API token (else env URBAN_API_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            value: str = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
    else:
        value = os.environ.get("URBAN_API_TOKEN", "").strip()
    if not value:
        raise CliError("no API token: set URBAN_API_TOKEN or give --token-file FILE")
    return value


def when(text: str, now: float | None = None) -> float:
    """An epoch: epoch seconds, an ISO 8601 time (UTC unless it says), or a duration from now (``2h``)."""
    now = time.time() if now is None else now
    m = _DURATION.match(text.strip())
    if m:
        return now + float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{text!r}: not a time (epoch seconds, ISO 8601 like 2026-12-03T22:00, or 30m/2h/1d)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None,
         query: dict[str, Any] | None = None) -> Any:
    """One request; an error answer becomes a :class:`CliError` with the API's ``detail``."""
    url = args.url.rstrip("/") + "/api/v1" + path
    params = {k: v for k, v in (query or {}).items() if v is not None}
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 (the operator's URL)
        "Authorization": f"Bearer {token(args)}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = _detail(exc.read())
        status = EXIT_INVALID if exc.code in (400, 422) else EXIT_FAILURE
        raise CliError(f"{method} {path}: {exc.code} {detail}", status) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach the API at {args.url}: {getattr(exc, 'reason', exc)}", EXIT_FAILURE) from None


def _detail(raw: bytes) -> str:
    try:
        detail = json.loads(raw).get("detail", "")
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")
    return detail if isinstance(detail, str) else json.dumps(detail)


def run(fn: Any, args: argparse.Namespace) -> int:
    """Run a command body; a :class:`CliError` is printed on stderr with its exit status."""
    try:
        rc: int = fn(args)
    except CliError as exc:
        print(f"urban-supervisor: {exc}", file=sys.stderr)
        return exc.status
    return rc


def stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
