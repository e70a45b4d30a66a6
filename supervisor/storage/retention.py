# The InfluxQL here is built from the schema, the configuration (names checked by pattern) and quoted
# identifiers only (no outside input): S608 does not apply.
# ruff: noqa: S608
"""Retention and downsampling of the stored data: one declaration, provisioned on InfluxDB 1 and 2.

What is kept and for how long is ``storage.retention`` (:class:`~supervisor.config.RetentionConfig`);
how each field is aggregated is the schema's ``rollup`` (:mod:`supervisor.storage.schema`). From
these two facts :func:`declare` derives the policies and the rollups, and:

- on **InfluxDB 1.x**, :func:`plan_v1` compares them with ``SHOW RETENTION POLICIES`` and
  ``SHOW CONTINUOUS QUERIES`` and lists the statements that make the server match: ``CREATE`` or
  ``ALTER RETENTION POLICY`` (an ``ALTER`` keeps every point still inside the new duration), and
  continuous queries named ``us_<tier>_<measurement>_<hash of the statement>``: a changed query
  gets a new name, so the old one is dropped and the new one created, and an unchanged one is left
  alone. Applying a plan twice changes nothing the second time (the plan is empty: "no change");
- on **InfluxDB 2.x**, :func:`plan_v2` does the same with buckets (``retentionRules``) and tasks
  written in Flux (:func:`flux_task`), through the HTTP API.

The raw data stay in the database's default policy (``storage.retention_policy`` when set); the
personal measurements (household water) are written by the sink into a policy of their own
(:func:`routes`). The aggregates of a period are stamped at its start, as InfluxQL's
``GROUP BY time()`` does, so that a Grafana panel reads raw and aggregated series the same way.

Continuous queries run at the end of each period over the last ``RESAMPLE_FOR`` periods: data
arriving later than that (a long InfluxDB outage replayed from the spool) is aggregated by
:func:`backfill_v1` (``urban-supervisor storage backfill``), which runs the same ``SELECT ... INTO``
over a past range.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.config import StorageConfig, duration_seconds

from . import schema
from ._errors import StorageError
from ._influx import InfluxV1Sink, InfluxV2Sink

__all__ = [
    "CQ_PREFIX", "Action", "Declaration", "Plan", "Policy", "Rollup", "apply", "backfill_v1", "declare",
    "flux_task", "markdown_table", "plan", "plan_v1", "plan_v2", "provision", "raw_from", "raw_sources", "routes",
]

log = logging.getLogger(__name__)

#: every continuous query and task the supervisor owns starts with this (others are left alone)
CQ_PREFIX = "us_"
#: a continuous query recomputes its last RESAMPLE_FOR periods at each run (late points)
RESAMPLE_FOR = 2
_TIERS = (("hourly", "1h", 3600), ("daily", "1d", 86400))


@dataclass(frozen=True, slots=True)
class Policy:
    """A retention policy (InfluxDB 1) or bucket (InfluxDB 2): a name and a duration in seconds."""

    name: str
    seconds: int
    what: str


@dataclass(frozen=True, slots=True)
class Rollup:
    """One measurement aggregated into one tier: ``fields`` ``{field: aggregation}`` over ``every``."""

    tier: str
    every: str
    seconds: int
    measurement: str
    source: str  # policy (v1) or bucket (v2) read
    target: str  # policy or bucket written
    fields: Mapping[str, schema.Aggregation]
    tags: tuple[str, ...] | None  # kept tags (None: all)


@dataclass(frozen=True, slots=True)
class Declaration:
    raw: Policy
    personal: Policy
    hourly: Policy
    daily: Policy
    rollups: tuple[Rollup, ...]

    @property
    def policies(self) -> tuple[Policy, ...]:
        return (self.raw, self.personal, self.hourly, self.daily)


def _q(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def declare(cfg: StorageConfig, raw_name: str, measurements: Iterable[schema.Measurement] | None = None,
            *, bucket_names: bool = False) -> Declaration:
    """The policies and rollups of ``cfg.retention`` over the schema's measurements.

    ``raw_name`` is the raw policy (InfluxDB 1: the default policy; InfluxDB 2: ``storage.bucket``);
    with ``bucket_names`` the other destinations are named ``<raw_name>_<policy>`` (InfluxDB 2).
    """
    r = cfg.retention

    def name(policy: str) -> str:
        return f"{raw_name}_{policy}" if bucket_names else policy

    raw = Policy(raw_name, duration_seconds(r.raw), "raw points")
    personal = Policy(name(r.personal_policy), duration_seconds(r.personal_raw),
                      "raw points of personal data (household water meters)")
    hourly = Policy(name(r.hourly_policy), duration_seconds(r.hourly), "hourly aggregates")
    daily = Policy(name(r.daily_policy), duration_seconds(r.daily), "daily aggregates")
    rollups: list[Rollup] = []
    for tier, every, seconds in _TIERS:
        target = hourly if tier == "hourly" else daily
        for m in measurements if measurements is not None else schema.MEASUREMENTS.values():
            if not m.rollup:
                continue
            rollups.append(Rollup(tier, every, seconds, m.name, personal.name if m.personal else raw.name,
                                  target.name, dict(m.rollup), m.rollup_tags))
    return Declaration(raw, personal, hourly, daily, tuple(rollups))


def routes(cfg: StorageConfig, measurements: Iterable[schema.Measurement] | None = None) -> dict[str, str]:
    """``{measurement: destination}`` of the personal measurements, for the sink (empty when off)."""
    r = cfg.retention
    if not r.enabled or cfg.backend == "sqlite":
        return {}
    dest = f"{cfg.bucket}_{r.personal_policy}" if cfg.backend == "influx-v2" else r.personal_policy
    ms = measurements if measurements is not None else schema.MEASUREMENTS.values()
    return {m.name: dest for m in ms if m.personal}


def raw_from(cfg: StorageConfig, measurement: str) -> str:
    """The InfluxQL ``FROM`` of a measurement's raw points: ``"personal_raw"."water"`` for a personal
    measurement while retention is on, else ``"<measurement>"`` (the default policy). For readers of
    raw data (exports, tests); InfluxDB 1 only."""
    m = schema.MEASUREMENTS.get(measurement)
    if m is not None and m.personal and cfg.retention.enabled and cfg.backend == "influx-v1":
        return f"{_q(cfg.retention.personal_policy)}.{_q(measurement)}"
    return _q(measurement)


def markdown_table(measurements: Iterable[schema.Measurement] | None = None) -> str:
    """docs/data-protection.md's table of the aggregates (a test keeps the doc equal to it)."""
    rows = ["| measurement | kept tags | mean | sum | last | max | min |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in measurements if measurements is not None else schema.MEASUREMENTS.values():
        if not m.rollup:
            continue
        tags = ", ".join(f"`{t}`" for t in (m.tags if m.rollup_tags is None else m.rollup_tags))
        cols = [", ".join(f"`{f}`" for f, a in m.rollup.items() if a == agg) or "-" for agg in schema.AGGREGATIONS]
        rows.append(f"| `{m.name}` | {tags} | {' | '.join(cols)} |")
    return "\n".join(rows) + "\n"


def raw_sources(measurement: str, policies: Iterable[str], cfg: StorageConfig | None = None) -> list[str]:
    """Every InfluxQL ``FROM`` that may hold a measurement's raw points, given the database's
    ``policies``: the default policy, and for a personal measurement its own policy when it exists
    (points written before retention was provisioned, or by another writer, stay in the default).
    For counting readers (benchmarks, tests)."""
    cfg = cfg or StorageConfig()
    out = [_q(measurement)]
    own = raw_from(cfg, measurement)
    if own != out[0] and cfg.retention.personal_policy in set(policies):
        out.append(own)
    return out


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class Action:
    """One change: what it does, in words, and how (an InfluxQL statement or an HTTP call)."""

    text: str
    statement: str = ""
    method: str = ""
    path: str = ""
    payload: Any = None


@dataclass
class Plan:
    """What provisioning would change; empty when the server already matches (``no change``)."""

    target: str
    actions: list[Action] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def render(self) -> str:
        lines = [f"retention on {self.target}:"]
        lines += [f"  = {u}" for u in self.unchanged]
        lines += [f"  + {a.text}" + (f"\n      {a.statement}" if a.statement else "") for a in self.actions]
        lines.append(f"  {len(self.actions)} change(s)" if self.actions else "  no change")
        return "\n".join(lines)


def _influx_seconds(text: str) -> int:
    """A duration as SHOW RETENTION POLICIES prints it (``720h0m0s``, ``0s`` for infinite)."""
    total = 0
    for n, unit in re.findall(r"(\d+)([hms])", text):
        total += int(n) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def _shard_seconds(seconds: int) -> int:
    """InfluxDB 1's default shard group duration for a policy duration."""
    if seconds < 2 * 86400:
        return 3600
    return 86400 if seconds <= 180 * 86400 else 7 * 86400


def _duration(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def cq_select(rollup: Rollup, database: str, *, where: str = "") -> str:
    """The ``SELECT ... INTO`` of a rollup (the body of its continuous query, and of a backfill)."""
    cols = ", ".join(f'{agg}({_q(f)}) AS {_q(f)}' for f, agg in sorted(rollup.fields.items()))
    group = ", ".join(_q(t) for t in rollup.tags) if rollup.tags is not None else "*"
    return (f"SELECT {cols} INTO {_q(database)}.{_q(rollup.target)}.{_q(rollup.measurement)} "
            f"FROM {_q(database)}.{_q(rollup.source)}.{_q(rollup.measurement)}"
            f"{f' WHERE {where}' if where else ''} GROUP BY time({rollup.every}){', ' + group if group else ''}")


def continuous_queries(decl: Declaration, database: str) -> dict[str, str]:
    """``{name: CREATE CONTINUOUS QUERY statement}``; the name carries a hash of the statement."""
    out: dict[str, str] = {}
    for r in decl.rollups:
        body = (f"RESAMPLE EVERY {r.every} FOR {RESAMPLE_FOR * r.seconds // 3600}h "
                f"BEGIN {cq_select(r, database)} END")
        digest = hashlib.sha256(body.encode()).hexdigest()[:8]
        name = f"{CQ_PREFIX}{r.tier}_{r.measurement}_{digest}"
        out[name] = f"CREATE CONTINUOUS QUERY {_q(name)} ON {_q(database)} {body}"
    return out


def _rows(results: list[dict[str, Any]]) -> list[tuple[str, list[list[Any]], list[str]]]:
    return [(s.get("name", ""), s.get("values") or [], s.get("columns") or [])
            for res in results for s in res.get("series", [])]


def plan_v1(sink: InfluxV1Sink, cfg: StorageConfig) -> Plan:
    """Compare the server with the declaration; no change is made."""
    db = sink.database
    plan = Plan(f"InfluxDB 1 {sink.endpoint} database {db}")
    databases = {row[0] for _, values, _ in _rows(sink.query("SHOW DATABASES", on_database=False)) for row in values}
    current: dict[str, tuple[int, int, bool]] = {}
    if db in databases:
        for _, values, columns in _rows(sink.query(f"SHOW RETENTION POLICIES ON {_q(db)}", on_database=False)):
            for row in values:
                rec = dict(zip(columns, row, strict=False))
                current[rec["name"]] = (_influx_seconds(rec["duration"]), _influx_seconds(rec["shardGroupDuration"]),
                                        bool(rec["default"]))
    elif cfg.create_database:
        plan.actions.append(Action(f"create database {db}", f"CREATE DATABASE {_q(db)}"))
        current["autogen"] = (0, 7 * 86400, True)  # what CREATE DATABASE makes
    else:
        raise StorageError(False, None, f"retention: database {db!r} does not exist (storage.create_database "
                                        "is off)")
    default = next((n for n, (_, _, d) in current.items() if d), "autogen")
    decl = declare(cfg, cfg.retention_policy or default)
    for p in decl.policies:
        have = current.get(p.name)
        if have is None:
            plan.actions.append(Action(
                f"create retention policy {p.name} ({p.what}): {_duration(p.seconds)}",
                f"CREATE RETENTION POLICY {_q(p.name)} ON {_q(db)} DURATION {_duration(p.seconds)} REPLICATION 1"))
        elif have[0] != p.seconds:
            shard = f" SHARD DURATION {_duration(_shard_seconds(p.seconds))}" if have[1] > p.seconds else ""
            before = "infinite" if have[0] == 0 else _duration(have[0])
            plan.actions.append(Action(
                f"alter retention policy {p.name} ({p.what}): {before} -> {_duration(p.seconds)}",
                f"ALTER RETENTION POLICY {_q(p.name)} ON {_q(db)} DURATION {_duration(p.seconds)}{shard}"))
        else:
            plan.unchanged.append(f"retention policy {p.name} ({p.what}): {_duration(p.seconds)}")
    existing: set[str] = set()
    if db in databases:
        for name, values, _ in _rows(sink.query("SHOW CONTINUOUS QUERIES", on_database=False)):
            if name == db:
                existing |= {row[0] for row in values if str(row[0]).startswith(CQ_PREFIX)}
    wanted = continuous_queries(decl, db)
    for name in sorted(existing - wanted.keys()):
        plan.actions.append(Action(f"drop continuous query {name} (no longer declared)",
                                   f"DROP CONTINUOUS QUERY {_q(name)} ON {_q(db)}"))
    for name, stmt in wanted.items():
        if name in existing:
            plan.unchanged.append(f"continuous query {name}")
        else:
            plan.actions.append(Action(f"create continuous query {name}", stmt))
    return plan


def backfill_v1(sink: InfluxV1Sink, cfg: StorageConfig, start: float, end: float, *,
                tiers: Sequence[str] = ("hourly", "daily")) -> int:
    """Run the rollups' ``SELECT ... INTO`` over ``[start, end)`` (epoch s, widened to whole periods),
    one day (hourly) or 7 days (daily) per statement; returns the points written. A long range makes
    long statements: give the sink a generous timeout."""
    decl = declare(cfg, cfg.retention_policy or _default_policy(sink))
    written = 0
    for r in decl.rollups:
        if r.tier not in tiers:
            continue
        chunk = r.seconds * (24 if r.tier == "hourly" else 7)
        t = int(start) // r.seconds * r.seconds
        stop = -(-int(end) // r.seconds) * r.seconds
        while t < stop:
            upper = min(t + chunk, stop)
            q = cq_select(r, sink.database, where=f"time >= {t}s AND time < {upper}s")
            for _, values, columns in _rows(sink.query(q)):
                if "written" in columns:
                    written += sum(int(row[columns.index("written")]) for row in values)
            t = upper
    return written


def _default_policy(sink: InfluxV1Sink) -> str:
    for _, values, columns in _rows(sink.query(f"SHOW RETENTION POLICIES ON {_q(sink.database)}", on_database=False)):
        for row in values:
            rec = dict(zip(columns, row, strict=False))
            if rec["default"]:
                return str(rec["name"])
    return "autogen"


# ----------------------------------------------------------------------------- InfluxDB 2


def _flux_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def flux_task(rollup: Rollup, org: str) -> str:
    """The Flux of a rollup's task: one pipeline per aggregation, stamped at the window's start."""
    window = f"-{RESAMPLE_FOR * rollup.seconds // 3600}h"
    lines = [
        f"option task = {{name: {_flux_string(task_name(rollup))}, every: {rollup.every}, offset: 5m}}",
        "",
        f"data = from(bucket: {_flux_string(rollup.source)})",
        f"    |> range(start: {window})",
        f"    |> filter(fn: (r) => r._measurement == {_flux_string(rollup.measurement)})",
    ]
    if rollup.tags is not None:
        cols = ", ".join(_flux_string(c) for c in ("_measurement", "_field", *rollup.tags))
        lines.append(f"    |> group(columns: [{cols}])")
    by_agg: dict[str, list[str]] = {}
    for f, agg in sorted(rollup.fields.items()):
        by_agg.setdefault(agg, []).append(f)
    for agg in schema.AGGREGATIONS:
        if agg not in by_agg:
            continue
        fields = ", ".join(_flux_string(f) for f in by_agg[agg])
        lines += [
            "",
            "data",
            f"    |> filter(fn: (r) => contains(value: r._field, set: [{fields}]))",
            f"    |> aggregateWindow(every: {rollup.every}, fn: {agg}, createEmpty: false, timeSrc: \"_start\")",
            f"    |> to(bucket: {_flux_string(rollup.target)}, org: {_flux_string(org)})",
        ]
    return "\n".join(lines) + "\n"


def task_name(rollup: Rollup) -> str:
    return f"{CQ_PREFIX}{rollup.tier}_{rollup.measurement}"


def _check(status: int, data: Any, what: str) -> None:
    if 200 <= status < 300:
        return
    text = data.get("message", "") if isinstance(data, dict) else ""
    raise StorageError(status == 429 or status >= 500, status, f"retention: {what} failed (HTTP {status}): {text}")


def plan_v2(sink: InfluxV2Sink, cfg: StorageConfig) -> Plan:
    """Compare the server's buckets and tasks with the declaration; no change is made."""
    from urllib.parse import urlencode

    plan = Plan(f"InfluxDB 2 {sink.endpoint} org {sink.org}")
    status, data = sink.api("GET", "/api/v2/orgs?" + urlencode({"org": sink.org}))
    _check(status, data, "organisation lookup")
    orgs = data.get("orgs") if isinstance(data, dict) else None
    if not orgs:
        raise StorageError(False, status, f"retention: organisation {sink.org!r} not found")
    org_id = orgs[0]["id"]
    decl = declare(cfg, sink.bucket, bucket_names=True)
    for p in decl.policies:
        status, data = sink.api("GET", "/api/v2/buckets?" + urlencode({"orgID": org_id, "name": p.name}))
        _check(status, data, f"bucket lookup {p.name}")
        rules = [{"type": "expire", "everySeconds": p.seconds}]
        found = (data or {}).get("buckets") or []
        if not found:
            plan.actions.append(Action(f"create bucket {p.name} ({p.what}): {_duration(p.seconds)}",
                                       method="POST", path="/api/v2/buckets",
                                       payload={"orgID": org_id, "name": p.name, "retentionRules": rules}))
            continue
        have = [r.get("everySeconds", 0) for r in found[0].get("retentionRules") or [] if r.get("type") == "expire"]
        if have != [p.seconds]:
            plan.actions.append(Action(
                f"set bucket {p.name} ({p.what}) retention: {_duration(have[0]) if have and have[0] else 'infinite'}"
                f" -> {_duration(p.seconds)}",
                method="PATCH", path=f"/api/v2/buckets/{found[0]['id']}", payload={"retentionRules": rules}))
        else:
            plan.unchanged.append(f"bucket {p.name} ({p.what}): {_duration(p.seconds)}")
    status, data = sink.api("GET", "/api/v2/tasks?" + urlencode({"orgID": org_id, "limit": 500}))
    _check(status, data, "task list")
    tasks = {t["name"]: t for t in (data or {}).get("tasks") or [] if str(t.get("name", "")).startswith(CQ_PREFIX)}
    wanted = {task_name(r): flux_task(r, sink.org) for r in decl.rollups}
    for name in sorted(tasks.keys() - wanted.keys()):
        plan.actions.append(Action(f"delete task {name} (no longer declared)", method="DELETE",
                                   path=f"/api/v2/tasks/{tasks[name]['id']}"))
    for name, flux in wanted.items():
        have_task = tasks.get(name)
        if have_task is None:
            plan.actions.append(Action(f"create task {name}", method="POST", path="/api/v2/tasks",
                                       payload={"orgID": org_id, "flux": flux, "status": "active",
                                                "description": "urban-supervisor rollup (docs/data-protection.md)"}))
        elif have_task.get("flux") != flux:
            plan.actions.append(Action(f"update task {name} (its Flux changed)", method="PATCH",
                                       path=f"/api/v2/tasks/{have_task['id']}", payload={"flux": flux}))
        else:
            plan.unchanged.append(f"task {name}")
    return plan


# ----------------------------------------------------------------------------- apply


def plan(sink: object, cfg: StorageConfig) -> Plan | None:
    """The plan for the configured backend (None: SQLite, or retention switched off)."""
    if not cfg.retention.enabled:
        return None
    if isinstance(sink, InfluxV1Sink):
        return plan_v1(sink, cfg)
    if isinstance(sink, InfluxV2Sink):
        return plan_v2(sink, cfg)
    return None


def apply(sink: object, p: Plan) -> None:
    """Carry out a plan's actions in order; the first refused one raises :class:`StorageError`."""
    for a in p.actions:
        if a.statement:
            assert isinstance(sink, InfluxV1Sink)
            sink.query(a.statement, on_database=False)
        else:
            assert isinstance(sink, InfluxV2Sink)
            status, data = sink.api(a.method, a.path, a.payload)
            _check(status, data, a.text)
        log.info("retention: %s", a.text)


def provision(sink: object, cfg: StorageConfig, *, clock: Callable[[], float] = time.perf_counter) -> Plan | None:
    """Plan and apply; logs "no change" when the server already matched. Idempotent."""
    t0 = clock()
    p = plan(sink, cfg)
    if p is None:
        return None
    apply(sink, p)
    log.info("retention: %s in %.0f ms", f"{len(p.actions)} change(s)" if p.changed else "no change",
             (clock() - t0) * 1000)
    return p
