"""Helpers of the dashboard tests: load the boards, expand Grafana's macros, parse InfluxQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
DEFAULT_INTERVAL = "1m"

Json = dict[str, Any]


def load_boards() -> dict[str, Json]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def iter_targets(board: Json) -> Iterator[tuple[Json, Json]]:
    for p in board["panels"]:
        for t in p.get("targets", []):
            yield p, t


def duration_ms(text: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    assert m, f"not a Grafana duration: {text!r}"
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]


# Grafana's escapeRegex for values of multi-value / include-all variables in InfluxQL regexes
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def variable_values(board: Json, chosen: dict[str, str | None]) -> dict[str, str]:
    """What Grafana puts in place of each variable: ``None`` in ``chosen`` means "All"."""
    out: dict[str, str] = {}
    for v in board["templating"]["list"]:
        name = v["name"]
        if v["type"] == "query":
            value = chosen.get(name)
            out[name] = v["allValue"] if value is None else regex_escape(value)
        elif v["type"] in ("textbox", "constant", "custom"):
            out[name] = chosen.get(name) or v["current"]["value"]
        else:
            raise AssertionError(f"{board['uid']}: unexpected variable type {v['type']}")
    return out


_VAR = re.compile(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)")


def expand(query: str, variables: dict[str, str], start_ms: int, end_ms: int, *,
           interval: str = DEFAULT_INTERVAL, min_interval: str | None = None) -> str:
    """Substitute Grafana's macros and template variables; an unknown ``$name`` is an error."""
    if min_interval and duration_ms(min_interval) > duration_ms(interval):
        interval = min_interval
    time_filter = f"time >= {start_ms}ms and time <= {end_ms}ms"
    macros = {
        "timeFilter": time_filter,
        "__timeFilter": time_filter,
        "__interval": interval,
        "interval": interval,
        "__interval_ms": str(duration_ms(interval)),
        "__from": str(start_ms),
        "__to": str(end_ms),
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in macros:
            return macros[name]
        if name in variables:
            return variables[name]
        raise AssertionError(f"query uses ${name}, which is neither a Grafana macro nor a variable: {query}")

    return _VAR.sub(sub, query)


def outer_columns(query: str) -> list[str]:
    """Column names of the outermost SELECT; every item must be named with AS "name"."""
    assert query.startswith("SELECT "), query
    depth = 0
    quote = ""
    items: list[str] = []
    start = len("SELECT ")
    i = start
    while i < len(query):
        c = query[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c == ",":
            items.append(query[start:i])
            start = i + 1
        elif depth == 0 and query.startswith(" FROM ", i):
            items.append(query[start:i])
            break
        i += 1
    cols = []
    for item in items:
        m = re.search(r'\s+AS\s+"([^"]+)"\s*$', item)
        assert m, f"select item without AS \"name\": {item.strip()!r} in {query}"
        cols.append(m.group(1))
    return cols
