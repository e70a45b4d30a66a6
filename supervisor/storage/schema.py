"""What the supervisor stores in InfluxDB: every measurement (tags, fields, field types, meaning),
and the functions that format its points. Nothing else in the supervisor writes line protocol.

- the family measurements (``traffic``, ``lighting``...) come from the canonical measures of
  :mod:`drivers._schema`; their lines are the ingest hot path (:func:`reading_point`);
- the other measurements are declared below; :meth:`Measurement.line` refuses a tag or a field
  the declaration does not name, and types each field as declared (an ``int`` given for a float
  field is written ``1.0``, never ``1i``, so a field keeps one type in every shard).

Timestamps are UTC epoch seconds, written as integer milliseconds **truncated** (``precision=ms``).
A tag whose value is ``None`` or empty is left out (InfluxDB has no empty tag value: a missing
tag is what a query sees as ``''``).

The README's "What lands in InfluxDB" table is :func:`markdown_table` (checked by a test), and
the Grafana boards are checked against :data:`MEASUREMENTS` by ``tests/grafana``.

Retention (docs/data-protection.md, :mod:`supervisor.storage.retention`) reads two more facts here:

- ``rollup``: how each field is aggregated into the hourly and daily series (``mean``, ``sum``,
  ``last``, ``max``, ``min``; a field absent from it is not kept beyond the raw retention), and
  ``rollup_tags``, the tags the aggregates keep (``None``: all of them);
- ``personal``: the raw points are personal data (household water meters): the writer sends them
  to their own, shorter retention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import orjson

from drivers._contract import Event, Reading, Value
from drivers._schema import CANONICAL
from supervisor.storage.lineprotocol import (
    _INT_MAX,
    _INT_MIN,
    FieldFormatter,
    LineProtocolError,
    _fmt_str,
    event_line,
    field_formatters,
    field_plan,
    point_line,
    reading_line,
    series_line,
    series_prefix,
)

if TYPE_CHECKING:
    from rules import CommandState, Decision
    from supervisor.alarms import AlarmChange
    from supervisor.alarms.store import AlarmRecord, MaintenanceWindow
    from supervisor.state.registry import DeviceState, StatusChange

__all__ = [
    "AFFECTED_MAX", "AGGREGATIONS", "ALARMS", "COMMANDS", "DECISIONS", "DEVICE_STATUS", "EVENTS", "FAMILIES",
    "FLEET", "INGEST_ERRORS", "MEASUREMENTS", "NETWORK", "SUPERVISOR", "Aggregation", "Measurement",
    "alarm_change_line", "command_line", "decision_line", "device_snapshot_lines", "device_status_line", "event_point",
    "fleet_lines", "ingest_error_lines",
    "lifecycle_alarm_line", "markdown_table", "ms",
    "reading_point", "rollup_of", "supervisor_line",
]


def ms(ts: float) -> int:
    """Epoch seconds to the stored integer milliseconds (truncated, as every point is written)."""
    return int(ts * 1000)


Aggregation = Literal["mean", "sum", "last", "max", "min"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "sum", "last", "max", "min")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One InfluxDB measurement: its tags, its fields with their types, and what a point means.

    ``optional`` fields may be absent from a point; ``open_fields`` admits fields not declared
    here (typed by their Python type): drivers may report measures the catalogue does not know.
    """

    name: str
    doc: str
    tags: tuple[str, ...]
    fields: Mapping[str, type]
    optional: frozenset[str] = frozenset()
    open_fields: bool = False
    rollup: Mapping[str, Aggregation] = field(default_factory=dict)
    rollup_tags: tuple[str, ...] | None = None
    personal: bool = False
    _formats: Mapping[str, FieldFormatter] = field(init=False, repr=False, compare=False)
    _plan: Mapping[str, tuple[str, FieldFormatter]] = field(init=False, repr=False, compare=False)
    _required: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_formats", field_formatters(self.fields))
        object.__setattr__(self, "_plan", field_plan(self.fields))
        object.__setattr__(self, "_required", frozenset(self.fields) - self.optional)
        unknown = set(self.rollup) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.name}: rollup of field(s) {sorted(unknown)} not in the schema")
        bad = {k: a for k, a in self.rollup.items() if a not in AGGREGATIONS or (
            a in ("mean", "sum") and self.fields[k] not in (int, float))}
        if bad:
            raise ValueError(f"{self.name}: rollup {bad} is not an aggregation of the field's type")
        if self.rollup_tags is not None and not set(self.rollup_tags) <= set(self.tags):
            raise ValueError(f"{self.name}: rollup tags {self.rollup_tags} not in the schema")

    def line(self, tags: Mapping[str, str | None], fields: Mapping[str, Value], ts: float) -> bytes:
        """One point of this measurement; :class:`LineProtocolError` names what does not fit."""
        unknown = tags.keys() - set(self.tags)
        if unknown:
            raise LineProtocolError("bad_tag", f"{self.name}: tag(s) {sorted(unknown)} not in the schema")
        if not self.open_fields:
            extra = fields.keys() - self.fields.keys()
            if extra:
                raise LineProtocolError("bad_field", f"{self.name}: field(s) {sorted(extra)} not in the schema")
        missing = self._required - fields.keys()
        if missing:
            raise LineProtocolError("no_fields", f"{self.name}: field(s) {sorted(missing)} missing")
        kept = {k: v for k, v in tags.items() if v}
        return point_line(self.name, kept, fields, ms(ts), self._formats)

    def series(self, tags: Mapping[str, str | None]) -> str:
        """The escaped ``name,tags `` of one series, checked once: keep it for :meth:`series_line`
        when the same series is written again and again (the SNMP poller: every port, every round)."""
        unknown = tags.keys() - set(self.tags)
        if unknown:
            raise LineProtocolError("bad_tag", f"{self.name}: tag(s) {sorted(unknown)} not in the schema")
        return series_prefix(self.name, {k: v for k, v in tags.items() if v})

    def series_line(self, series: str, fields: Mapping[str, Value], ts: float) -> bytes:
        """:meth:`line` of a series from :meth:`series`: only the fields are checked and formatted.

        Measured (9,800 ``network`` points of 200 switches, rates included, same run): 13.2 us a point
        against 16.1 us with :meth:`line`, which sorts, checks and escapes the same tags at every point."""
        if not self.open_fields and not fields.keys() <= self._plan.keys():
            extra = sorted(fields.keys() - self._plan.keys())
            raise LineProtocolError("bad_field", f"{self.name}: field(s) {extra} not in the schema")
        if not self._required <= fields.keys():
            raise LineProtocolError("no_fields", f"{self.name}: field(s) {sorted(self._required - fields.keys())} "
                                    "missing")
        return series_line(series, fields, int(ts * 1000), self._plan)


F, I, S, B = float, int, str, bool  # noqa: E741 (a table of types reads better short)

#: the rollup of a canonical measure that its type alone does not say: counters keep their last
#: value, per-interval counts are summed, extremes keep their extreme, a level keeps its worst
_ROLLUP: dict[tuple[str, str], Aggregation | None] = {
    ("traffic", "count"): "sum", ("traffic", "interval"): "sum",
    ("lighting", "energy"): "last", ("lighting", "energy_period"): "sum", ("lighting", "lamps"): "last",
    ("lighting", "lamp_failures"): "max", ("lighting", "lqi"): "mean",
    ("cctv", "objects"): "max",
    ("water", "index"): None, ("water", "target_index"): None,  # per-meter counters: not across a zone
    ("water", "max_flow"): "max", ("water", "min_flow"): "min", ("water", "battery"): "min",
    ("air", "eaqi"): "max",
    ("lorawan", "rx_received"): "sum", ("lorawan", "rx_ok"): "sum", ("lorawan", "tx_received"): "sum",
    ("lorawan", "tx_emitted"): "sum",
}
#: by type otherwise: a gauge (float) is averaged, an integer keeps its maximum, a boolean its last
#: state; strings (tokens, JSON) are not rolled up
_ROLLUP_BY_TYPE: dict[type, Aggregation] = {float: "mean", int: "max", bool: "last"}
#: families whose raw points are personal data (GDPR): household water meters. Their rollups keep the
#: zone (district) only, never the meter (docs/data-protection.md)
_PERSONAL = frozenset({"water"})


def rollup_of(family: str, measure: str, kind: type) -> Aggregation | None:
    """How a canonical measure is aggregated into the hourly and daily series (None: not kept)."""
    if (family, measure) in _ROLLUP:
        return _ROLLUP[family, measure]
    return _ROLLUP_BY_TYPE.get(kind)


def _family(fam: str, measures: Mapping[str, type]) -> Measurement:
    rollup = {m: agg for m, kind in measures.items() if (agg := rollup_of(fam, m, kind)) is not None}
    personal = fam in _PERSONAL
    return Measurement(fam, "one reading of a device of the family, in canonical units",
                       ("channel", "device", "zone"), measures, optional=frozenset(measures), open_fields=True,
                       rollup=rollup, rollup_tags=("zone",) if personal else None, personal=personal)


FAMILIES: dict[str, Measurement] = {
    fam: _family(fam, {m: spec.kind for m, spec in measures.items()}) for fam, measures in CANONICAL.items()
}
EVENTS = Measurement("events", "something a device reported once (motion, tamper, leak...); `data` is JSON",
                     ("device", "family", "kind", "zone"), {"value": I, "data": S})
DEVICE_STATUS = Measurement("device_status", "a device's status (ok, stale, fault) and why: at each change, and "
                            "for every device at start and every `state.snapshot_interval` (`reason` starts with "
                            "`snapshot`), so that a map of any longer range finds every device; `lat`, `lon`: its "
                            "position in the city model (WGS84; absent for a device the model does not know)",
                            ("family", "zone", "device"), {"status": S, "code": I, "reason": S, "lat": F, "lon": F},
                            optional=frozenset({"lat", "lon"}))
FLEET = Measurement("fleet", "devices per family and zone by status, every health period (zone `-`: none)",
                    ("family", "zone"), {"total": I, "ok": I, "stale": I, "fault": I},
                    rollup={"total": "last", "ok": "min", "stale": "max", "fault": "max"})
#: an InfluxDB v1 string field is limited to 64 KiB: ``affected`` lists at most this many ids
AFFECTED_MAX = 1000
ALARMS = Measurement("alarms", "an alarm's lifecycle change (raised, acknowledged, shelved, cleared) from the one "
                     "alarm list: root causes and devices, rule alarms (`rule:<kind>`), failed commands "
                     "(`command`) and the supervisor's own (`supervisor`); `by`: who made this change, "
                     "`acked_by`: who acknowledged the alarm, `raised_at`: when it was raised (epoch s), "
                     "`maintenance`: the maintenance window it fell in; `flap_count` when it came back within "
                     "the flap window, `merged` (JSON ids) the alarms a root cause absorbed, `merged_into` the "
                     "root cause that absorbed it; `evidence` (root causes): `observed` when SNMP saw the "
                     "element down or a radio gateway's statistics stopped (docs/network-observed.md), `inferred` "
                     "when only its silent devices tell",
                     ("kind", "severity", "element", "state"),
                     {"id": S, "devices": I, "services": S, "affected": S, "text": S, "source": S, "by": S,
                      "acked_by": S, "raised_at": F, "maintenance": S, "flap_count": I, "merged": S,
                      "merged_into": S, "evidence": S},
                     optional=frozenset({"text", "source", "by", "acked_by", "raised_at", "maintenance",
                                         "flap_count", "merged", "merged_into", "evidence"}))
MAINTENANCE = Measurement("maintenance", "a planned-works window declared or removed on an element (`state`); "
                          "`start` and `end` in epoch s; alarms in its impact set are recorded in maintenance "
                          "and never notified",
                          ("element", "window", "state"), {"start": F, "end": F, "reason": S, "by": S})
DECISIONS = Measurement("decisions", "one explained rule decision (`inputs` is JSON)",
                        ("rule", "device", "zone"), {"output": F, "inputs": S, "text": S})
COMMANDS = Measurement("commands", "a rule command changed state (pending, confirmed, failed)",
                       ("device", "state"), {"level": F, "attempts": I})
#: the control lane and the bulk inbox (supervisor/ingest/lane.py): depths, age of the oldest waiting
#: message, the lane's reaction latency (receive -> rules done) over the last minute
_LANE_FIELDS = {"lane_depth": I, "bulk_depth": I, "lane_oldest_ms": F, "bulk_oldest_ms": F, "reaction_p50_ms": F,
                "reaction_p99_ms": F, "lane_received": I, "lane_topics": I}
#: model reloads since start (supervisor/service/reload.py): swapped in, and refused (the running model kept)
_RELOAD_FIELDS = {"model_reloads": I, "model_reloads_refused": I}
#: SNMP (supervisor/snmp): poll rounds, the last round's duration, switches unreachable in it, rounds longer
#: than the interval, traps accepted and refused (unknown agent, bad credentials...)
_SNMP_FIELDS = {"snmp_rounds": I, "snmp_round_s": F, "snmp_unreachable": I, "snmp_overruns": I, "snmp_traps": I,
                "snmp_traps_refused": I}
SUPERVISOR = Measurement(
    "supervisor", "the supervisor's health, every health period",
    ("instance",),
    {"received": I, "decoded": I, "errors": I, "points_written": I, "write_latency_ms": F, "spool_bytes": I,
     "lag_ms": F, "msg_rate": F, "devices": I, "dead_letters": I, "commands_refused": I, "sessions_lost": I,
     "broker_dropped": I, "notify_sent": I, "notify_retried": I, "notify_failed": I, **_LANE_FIELDS,
     **_RELOAD_FIELDS, **_SNMP_FIELDS},
    optional=frozenset({"broker_dropped", "notify_sent", "notify_retried", "notify_failed", *_LANE_FIELDS,
                        *_RELOAD_FIELDS, *_SNMP_FIELDS}),
    # counters since start keep their last value; gauges their mean, latencies and depths their worst
    rollup={"received": "last", "decoded": "last", "errors": "last", "points_written": "last",
            "write_latency_ms": "max", "spool_bytes": "max", "lag_ms": "max", "msg_rate": "mean", "devices": "last",
            "dead_letters": "last", "commands_refused": "last", "sessions_lost": "last", "broker_dropped": "last",
            "notify_sent": "last", "notify_retried": "last", "notify_failed": "last", "lane_depth": "max",
            "bulk_depth": "max", "lane_oldest_ms": "max", "bulk_oldest_ms": "max", "reaction_p50_ms": "mean",
            "reaction_p99_ms": "max", "lane_received": "last", "lane_topics": "max", "model_reloads": "last",
            "model_reloads_refused": "last", "snmp_rounds": "last",
            "snmp_round_s": "max", "snmp_unreachable": "max", "snmp_overruns": "last", "snmp_traps": "last",
            "snmp_traps_refused": "last"})
MODEL_RELOADS = Measurement(
    "model_reload", "a reload of the city model (`result` ok or refused; API, SIGHUP or file watch: `trigger`): "
    "elements and devices added, removed and changed, how long the swap held the pipeline, and `detail` "
    "(the diff's summary, or why the file was refused)",
    ("instance", "result", "trigger"),
    {"devices_added": I, "devices_removed": I, "devices_changed": I, "elements_added": I, "elements_removed": I,
     "elements_changed": I, "swap_ms": F, "detail": S},
    optional=frozenset({"swap_ms"}))
NETWORK = Measurement(
    "network", "one switch port polled over SNMP (IF-MIB), supervisor/snmp: `status` up/down/testing/... "
    "(ifOperStatus), `admin` (ifAdminStatus), `in_octets`/`out_octets` the 64-bit counters "
    "(float: InfluxDB integers are signed 64-bit), `in_bps`/"
    "`out_bps` rates in bit/s and `in_errors_ps`/`out_errors_ps` errors/s since the previous poll "
    "(absent after a counter reset or an agent reboot: never negative); a switch's own point (port `-`) "
    "carries `reachable` and `uptime_s`",
    ("switch", "port", "zone"),
    {"status": S, "admin": S, "in_octets": F, "out_octets": F, "in_errors": I, "out_errors": I, "in_bps": F,
     "out_bps": F, "in_errors_ps": F, "out_errors_ps": F, "reachable": B, "uptime_s": F},
    optional=frozenset({"status", "admin", "in_octets", "out_octets", "in_errors", "out_errors", "in_bps",
                        "out_bps", "in_errors_ps", "out_errors_ps", "reachable", "uptime_s"}))
INGEST_ERRORS = Measurement("ingest_errors", "messages refused since start, by driver and reason",
                            ("instance", "reason", "driver"), {"count": I}, rollup={"count": "last"})

MEASUREMENTS: dict[str, Measurement] = {
    m.name: m for m in (*FAMILIES.values(), EVENTS, DEVICE_STATUS, FLEET, ALARMS, MAINTENANCE, DECISIONS, COMMANDS,
                        SUPERVISOR, INGEST_ERRORS, MODEL_RELOADS, NETWORK)
}


# -- the ingest hot path: the family measurements and events ---------------------------------------
def reading_point(r: Reading, ts: float) -> bytes:
    """A reading of ``FAMILIES[r.family]`` (tags channel, device, zone) at ``ts``."""
    return reading_line(r, int(ts * 1000))


def event_point(e: Event, ts: float) -> bytes:
    """An ``events`` point at ``ts``."""
    return event_line(e, int(ts * 1000))


# -- state, fleet and health ----------------------------------------------------------------------
#: where a device is: ``(lon, lat)``, or ``None`` for a device the city model does not know
PositionOf = Callable[[str], "tuple[float, float] | None"]


def _status_point(tags: Mapping[str, str], status: str, reason: str, position: tuple[float, float] | None,
                  ts: float) -> bytes:
    from supervisor.state.registry import STATUS_CODE

    fields: dict[str, Value] = {"status": status, "code": STATUS_CODE[status], "reason": reason}
    if position is not None:
        fields["lon"], fields["lat"] = position
    return DEVICE_STATUS.line(tags, fields, ts)


def device_status_line(ch: StatusChange, position: tuple[float, float] | None = None) -> bytes:
    """A status change of a device at ``position`` (``(lon, lat)``, from the city model)."""
    return _status_point({"family": ch.family, "zone": ch.zone, "device": ch.device}, ch.new, ch.reason, position,
                         ch.at)


def device_snapshot_lines(states: Iterable[DeviceState], position_of: PositionOf, ts: float) -> list[bytes]:
    """The current status and position of ``states`` at ``ts`` (``reason``: ``snapshot``, then the fault)."""
    return [_status_point({"family": st.family, "zone": st.zone, "device": st.device}, st.status,
                          f"snapshot: {st.fault}" if st.fault else "snapshot", position_of(st.device), ts)
            for st in states]


def fleet_lines(counts: Mapping[tuple[str, str], Mapping[str, int]], ts: float) -> list[bytes]:
    return [FLEET.line({"family": family, "zone": zone or "-"},
                       {"total": sum(c.values()), "ok": c.get("ok", 0), "stale": c.get("stale", 0),
                        "fault": c.get("fault", 0)}, ts)
            for (family, zone), c in sorted(counts.items())]


def supervisor_line(instance: str, fields: Mapping[str, Value], ts: float) -> bytes:
    return SUPERVISOR.line({"instance": instance}, fields, ts)


def ingest_error_lines(instance: str, errors: Mapping[tuple[str, str], int], ts: float) -> list[bytes]:
    return [INGEST_ERRORS.line({"instance": instance, "reason": reason, "driver": driver}, {"count": n}, ts)
            for (driver, reason), n in sorted(errors.items())]


def model_reload_line(instance: str, result: str, trigger: str, *, counts: Mapping[str, Mapping[str, int]],
                      detail: str, ts: float, swap_ms: float | None = None) -> bytes:
    """One model reload: ``counts`` is :meth:`supervisor.model.ModelDiff.counts` (empty when refused)."""
    fields: dict[str, Value] = {f"{kind}_{what}": counts.get(what, {}).get(kind, 0)
                                for what in ("added", "removed", "changed") for kind in ("devices", "elements")}
    fields["detail"] = detail[:16_000]  # an InfluxDB v1 string field is limited to 64 KiB (escapes included)
    if swap_ms is not None:
        fields["swap_ms"] = swap_ms
    return MODEL_RELOADS.line({"instance": instance, "result": result, "trigger": trigger}, fields, ts)


# -- alarms -----------------------------------------------------------------------------------------
def alarm_change_line(change: AlarmChange) -> bytes:
    """A root-cause alarm's change (the alarm manager's :meth:`~supervisor.alarms.AlarmChange.as_point`)."""
    measurement, tags, fields, ts = change.as_point()
    return MEASUREMENTS[measurement].line(tags, fields, ts)


def maintenance_line(w: MaintenanceWindow, state: str, ts: float) -> bytes:
    """A maintenance window declared (``state`` ``declared``) or removed (``removed``) at ``ts``."""
    return MAINTENANCE.line({"element": w.element, "window": w.id, "state": state},
                            {"start": w.start, "end": w.end, "reason": w.reason, "by": w.created_by}, ts)


def lifecycle_alarm_line(alarm: AlarmRecord, transition: str, ts: float, by: str | None = None) -> bytes:
    """One transition of an alarm of the one alarm list (:mod:`supervisor.alarms.lifecycle`)."""
    fields: dict[str, Value] = {
        "id": alarm.id, "devices": alarm.device_count, "services": ",".join(alarm.services),
        "affected": orjson.dumps(list(alarm.devices[:AFFECTED_MAX])).decode(), "text": alarm.text,
        "source": alarm.source, "raised_at": alarm.raised_at}
    if by:
        fields["by"] = by
    if alarm.acked_by:
        fields["acked_by"] = alarm.acked_by
    if alarm.in_maintenance:
        fields["maintenance"] = alarm.in_maintenance
    if alarm.flap_count:
        fields["flap_count"] = alarm.flap_count
    if alarm.kind == "root_cause":
        fields["evidence"] = alarm.evidence
    return ALARMS.line({"kind": alarm.kind, "severity": alarm.severity, "element": alarm.element,
                        "state": transition}, fields, ts)


# -- rules: decisions and commands ------------------------------------------------------------------
# A rule command writes two points (its decision, its command state) on the thread that reacts. In
# ``bench rules``'s wave of ~7,000 commands/s they were about a quarter of a command's cost: the
# generic ``Measurement.line`` checks the tag and field names, sorts, checks and escapes the tags of
# every point (8.2 us a decision, 5.2 us a command state, measured with timeit). Their series are
# few (device x state, rule x device x zone): each is checked and escaped once (``Measurement.series``,
# cached); the field values go through the same formatters. The bytes are those of ``Measurement.line``
# (tests/storage/test_schema.py compares both on arbitrary values); anything unusual takes that path.
@lru_cache(maxsize=65536)
def _command_series(device: str, state: str) -> str:
    return COMMANDS.series({"device": device, "state": state})


@lru_cache(maxsize=65536)
def _decision_series(rule: str, device: str, zone: str) -> str:
    return DECISIONS.series({"rule": rule, "device": device, "zone": zone})


def decision_line(decision: Decision) -> bytes:
    output = float(decision.output)
    if output - output != 0.0:  # not finite: the generic path says so
        p = decision.as_point()
        return DECISIONS.line(p.tags, p.fields, p.ts)
    inputs = orjson.dumps(dict(decision.inputs)).decode()  # first, as ``as_point`` (its error first)
    prefix = _decision_series(decision.rule, decision.device, decision.zone or "")
    fields = f"output={output!r},inputs={_fmt_str('inputs', inputs)},text={_fmt_str('text', decision.text)}"
    return f"{prefix}{fields} {ms(decision.ts)}".encode()


def command_line(cs: CommandState) -> bytes:
    level, attempts = cs.level, cs.attempts
    if type(level) is float and level - level == 0.0 and type(attempts) is int and _INT_MIN <= attempts <= _INT_MAX:
        return f"{_command_series(cs.device, cs.state)}level={level!r},attempts={attempts}i {ms(cs.since)}".encode()
    return COMMANDS.line({"device": cs.device, "state": cs.state}, {"level": cs.level, "attempts": cs.attempts},
                         cs.since)


# -- documentation ----------------------------------------------------------------------------------
_TYPE_NAME = {float: "float", int: "integer", bool: "boolean", str: "string"}


def _row(names: Iterable[str], m: Measurement, fields: str) -> str:
    tags = ", ".join(f"`{t}`" for t in m.tags)
    return f"| {', '.join(f'`{n}`' for n in names)} | {tags} | {fields} | {m.doc} |"


def markdown_table() -> str:
    """The README's "What lands in InfluxDB" table."""
    rows = ["| measurement | tags | fields (type) | what a point is |", "| --- | --- | --- | --- |",
            _row(FAMILIES, next(iter(FAMILIES.values())), "the family's canonical measures "
                 "(`drivers/catalogue.py`), typed as declared there")]
    for m in MEASUREMENTS.values():
        if m.name in FAMILIES:
            continue
        fields = ", ".join(f"`{k}` {_TYPE_NAME[t]}{' (optional)' if k in m.optional else ''}"
                           for k, t in m.fields.items())
        rows.append(_row([m.name], m, fields))
    return "\n".join(rows) + "\n"
