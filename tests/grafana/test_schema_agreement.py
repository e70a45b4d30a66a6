"""Every measurement, tag and field a Grafana panel or variable queries exists in the stored schema
(:mod:`supervisor.storage.schema`): a renamed field fails here, not on a blank board. A panel that
reads the retention policy ``$rp`` chooses (raw, hourly or daily) reads only fields the schema rolls
up and tags the rollup keeps (docs/data-protection.md)."""

from __future__ import annotations

import re

from supervisor.storage.schema import MEASUREMENTS
from tests.grafana.boards import load_boards

_QUOTED = re.compile(r'"([^"]+)"')
_ALIAS = re.compile(r'\bAS\s+"([^"]+)"')
_FROM = re.compile(r'\bFROM\s+(?:"([^"]+)"\.)?"([^"]+)"')
_SHOW_TAGS = re.compile(r'^SHOW TAG VALUES FROM "([^"]+)" WITH KEY = "([^"]+)"(.*)$')


def _innermost_selects(query: str) -> list[tuple[str | None, str, str]]:
    """(retention policy, measurement, text) of each SELECT that reads a measurement, not a subquery."""
    out = []
    for m in re.finditer(r"\bSELECT\b", query):
        depth, end = 0, len(query)
        for i in range(m.start(), len(query)):
            depth += {"(": 1, ")": -1}.get(query[i], 0)
            if depth < 0:
                end = i
                break
        text = query[m.start():end]
        if "SELECT" in text[6:]:
            continue  # reads a subquery: its names are the inner query's aliases
        src = _FROM.search(text)
        assert src, f"a SELECT without a measurement: {text}"
        out.append((src.group(1), src.group(2), text))
    return out


def _queries() -> list[tuple[str, str]]:
    out = []
    for name, board in load_boards().items():
        for panel in board["panels"]:
            out += [(f"{name}: {panel.get('title')}", t["query"]) for t in panel.get("targets", []) if "query" in t]
        out += [(f"{name}: ${v['name']}", v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    return out


def _unknown_names(query: str) -> list[str]:
    show = _SHOW_TAGS.match(query)
    if show:
        measurement, key, rest = show.groups()
        m = MEASUREMENTS.get(measurement)
        if m is None:
            return [measurement]
        return [n for n in [key, *_QUOTED.findall(rest)] if n not in m.tags]
    unknown = []
    for rp, measurement, text in _innermost_selects(query):
        m = MEASUREMENTS.get(measurement)
        if m is None:
            unknown.append(measurement)
            continue
        aliases = set(_ALIAS.findall(text))
        names = {n for n in _QUOTED.findall(_ALIAS.sub("", text)) if n not in (measurement, rp)} - aliases
        if rp != "$rp":  # the raw points (default policy, or the personal data's own)
            unknown += sorted(n for n in names if n not in m.tags and n not in m.fields)
        else:  # raw or aggregated: only what the rollup keeps
            tags = m.tags if m.rollup_tags is None else m.rollup_tags
            unknown += sorted(n for n in names if n not in tags and n not in m.rollup)
    return unknown


def test_boards_query_only_what_the_schema_declares() -> None:
    queries = _queries()
    assert len(queries) > 50
    problems = [f"{where}: {_unknown_names(q)} in {q}" for where, q in queries if _unknown_names(q)]
    assert problems == []


def test_the_check_sees_a_wrong_name() -> None:
    assert _unknown_names('SELECT mean("flwo") AS "flow" FROM "traffic" WHERE "zone" =~ /^$zone$/') == ["flwo"]
    assert _unknown_names('SELECT last("ok") AS "ok" FROM "fleets"') == ["fleets"]
    assert _unknown_names('SHOW TAG VALUES FROM "fleet" WITH KEY = "device"') == ["device"]
    assert _unknown_names('SELECT sum("ok") AS "ok" FROM (SELECT last("ok") AS "ok" FROM "fleet" '
                          'GROUP BY "family", "zne")') == ["zne"]
    # through $rp: a field the rollup does not keep, a tag the water rollup drops
    assert _unknown_names('SELECT last("alarms") AS "a" FROM "$rp"."water" GROUP BY "zone"') == ["alarms"]
    assert _unknown_names('SELECT mean("flow") AS "f" FROM "$rp"."water" GROUP BY "device"') == ["device"]
    assert _unknown_names('SELECT mean("flow") AS "f" FROM "$rp"."traffic" GROUP BY "device"') == []
