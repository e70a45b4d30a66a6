"""The stored schema: every point the supervisor formats fits its declared measurement, and the
README's table is the schema's."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import Event, Reading
from drivers._schema import CANONICAL
from rules import CommandState, Decision
from supervisor.alarms import AlarmManager
from supervisor.state.registry import StatusChange
from supervisor.storage import LineProtocolError, ParsedPoint, parse_line, schema
from supervisor.storage.schema import MEASUREMENTS, Measurement

ROOT = Path(__file__).resolve().parents[2]
TYPES = {float: float, int: int, bool: bool, str: str}


def fits(line: bytes) -> ParsedPoint:
    """Parse a line and check it against its declared measurement: tags, fields and their types."""
    p = parse_line(line)
    m = MEASUREMENTS[p.measurement]
    assert set(p.tags) <= set(m.tags), (p.measurement, p.tags)
    for k, v in p.fields.items():
        if k in m.fields:
            assert type(v) is TYPES[m.fields[k]], (p.measurement, k, v)
        else:
            assert m.open_fields, (p.measurement, k)
    assert set(m.fields) - m.optional <= set(p.fields), (p.measurement, p.fields)
    return p


def test_readme_table_is_the_schema() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What lands in InfluxDB\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == schema.markdown_table(), "README.md is stale: paste supervisor.storage.schema.markdown_table()"


def test_family_measurements_are_the_canonical_measures() -> None:
    assert set(schema.FAMILIES) == set(CANONICAL)
    for fam, measures in CANONICAL.items():
        assert {k: t for k, t in schema.FAMILIES[fam].fields.items()} == {k: s.kind for k, s in measures.items()}


def test_reading_and_event_points_fit_and_truncate_ms() -> None:
    line = schema.reading_point(Reading("cab-1", "lighting", {"power": 12, "lamps": 24, "door_open": False},
                                        zone="z1", channel="2"), 10.0009)
    p = fits(line)
    assert p.fields == {"power": 12.0, "lamps": 24, "door_open": False} and p.ts_ms == 10000
    assert fits(schema.event_point(Event("cam-1", "cctv", "motion", zone="z", data={"s": 1}), 2.5)).ts_ms == 2500


def test_measurement_refuses_what_it_does_not_declare() -> None:
    with pytest.raises(LineProtocolError, match="tag"):
        schema.FLEET.line({"family": "cctv", "zone": "z", "device": "x"}, {"total": 1, "ok": 1, "stale": 0,
                                                                          "fault": 0}, 1.0)
    with pytest.raises(LineProtocolError, match="field"):
        schema.COMMANDS.line({"device": "d", "state": "pending"}, {"level": 1.0, "attempts": 1, "extra": 1}, 1.0)
    with pytest.raises(LineProtocolError, match="missing"):
        schema.COMMANDS.line({"device": "d", "state": "pending"}, {"level": 1.0}, 1.0)
    with pytest.raises(LineProtocolError, match="expected an integer"):
        schema.COMMANDS.line({"device": "d", "state": "pending"}, {"level": 1.0, "attempts": 1.5}, 1.0)


def test_fields_are_typed_as_declared_and_empty_tags_left_out() -> None:
    m = Measurement("m", "doc", ("a", "b"), {"f": float, "i": int})
    assert m.line({"a": "x", "b": ""}, {"f": 3, "i": 2}, 1.5) == b"m,a=x f=3.0,i=2i 1500"
    assert m.line({"a": "x", "b": None}, {"f": 3, "i": 2.0}, 1.5) == b"m,a=x f=3.0,i=2i 1500"


def test_every_point_the_supervisor_formats_fits() -> None:
    lines = [
        schema.device_status_line(StatusChange("d1", "traffic", "z", "ok", "stale", 5.0, "silent 300 s")),
        *schema.fleet_lines({("traffic", "z"): {"ok": 3, "fault": 1}, ("cctv", ""): {"stale": 2}}, 5.0),
        schema.supervisor_line("h:1", {"received": 1, "decoded": 1, "errors": 0, "points_written": 0,
                                       "write_latency_ms": 0, "spool_bytes": 0, "lag_ms": 1.5, "msg_rate": 0.0,
                                       "devices": 3, "dead_letters": 0, "commands_refused": 0,
                                       "sessions_lost": 0}, 5.0),
        *schema.ingest_error_lines("h:1", {("-", "unknown_topic"): 2}, 5.0),
        schema.decision_line(Decision(5.0, "r1", "dimming", "lamp-1", 60, "traffic high", {"flow": 900.0})),
        schema.command_line(CommandState("lamp-1", None, "z", 60, "pending", 1, 5.0, 5.0)),
    ]
    parsed = [fits(line) for line in lines]
    assert parsed[1].tags == {"family": "cctv", "zone": "-"}  # fleet without a zone (sorted first)
    assert parsed[-2].fields["output"] == 60.0 and "zone" not in parsed[-2].tags  # no zone: no empty tag
    assert parsed[-1].fields == {"level": 60.0, "attempts": 1}


def test_root_cause_alarm_points_fit() -> None:
    from tests.alarms.test_manager import model

    change = AlarmManager(model()).update({"wm-1", "wm-2"}, now=42.5)[0]
    p = fits(schema.alarm_change_line(change))
    assert p.tags["kind"] == "root_cause" and p.ts_ms == 42500


def test_only_the_schema_formats_points() -> None:
    """No module of the supervisor but the storage package builds line protocol itself."""
    offenders = []
    for path in (ROOT / "supervisor").rglob("*.py"):
        if path.parent.name == "storage":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"\b(point_line|reading_line|event_line)\b|storage\.lineprotocol import (?!LineProtocolError\b)",
                     text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_status_points_carry_the_model_position() -> None:
    from supervisor.state.registry import StateRegistry

    change = StatusChange("d1", "traffic", "z", "ok", "fault", 5.0, "offline")
    p = fits(schema.device_status_line(change, (2.35, 48.85)))
    assert p.fields == {"status": "fault", "code": 2, "reason": "offline", "lon": 2.35, "lat": 48.85}
    assert "lat" not in fits(schema.device_status_line(change)).fields  # a device the model does not know
    reg = StateRegistry({})
    reg.register("d1", "traffic", "z")
    reg.register("d2", "cctv", "")
    reg.update(Reading("d2", "cctv", {"online": False}), 7.0, 7.0)
    snap = [fits(line) for line in schema.device_snapshot_lines(reg, {"d1": (2.0, 48.0)}.get, 9.0)]
    assert [(p.tags, p.fields) for p in snap] == [
        ({"device": "d1", "family": "traffic", "zone": "z"},
         {"status": "ok", "code": 0, "reason": "snapshot", "lon": 2.0, "lat": 48.0}),
        ({"device": "d2", "family": "cctv"}, {"status": "fault", "code": 2, "reason": "snapshot: offline"})]
    assert all(p.ts_ms == 9000 for p in snap)



def test_a_kept_series_formats_what_line_formats_and_checks_the_same() -> None:
    """:meth:`Measurement.series` + :meth:`series_line` (the SNMP poller's per-port series) write the
    same bytes as :meth:`Measurement.line` and refuse the same mistakes."""
    net = schema.NETWORK
    tags = {"switch": "sw 1", "port": "sw 1:p,2", "zone": None}
    fields = {"status": 'up "x"', "in_octets": 3, "in_errors": 2.0, "in_bps": 1.5, "reachable": True}
    series = net.series(tags)
    assert series == "network,port=sw\\ 1:p\\,2,switch=sw\\ 1 "
    assert net.series_line(series, fields, 12.3456) == net.line(tags, fields, 12.3456)
    fits(net.series_line(series, fields, 12.3456))
    with pytest.raises(LineProtocolError, match="bad_tag"):
        net.series({"switch": "a", "vlan": "1"})
    with pytest.raises(LineProtocolError, match="bad_tag"):
        net.series({"switch": "a\nb"})
    with pytest.raises(LineProtocolError, match="bad_field"):
        net.series_line(series, {"status": "up", "speed": 1}, 1.0)
    with pytest.raises(LineProtocolError, match="bad_value"):
        net.series_line(series, {"in_bps": float("nan")}, 1.0)
    with pytest.raises(LineProtocolError, match="no_fields"):
        schema.FLEET.series_line(schema.FLEET.series({"family": "a"}), {"total": 1}, 1.0)


# -- the decision and command points a rule command writes: its own formatting, the generic bytes ------
_texts = st.text(max_size=40)
_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans())


def _generic_or_error(make: Callable[[], bytes]) -> tuple[str, object]:
    try:
        return "line", make()
    except LineProtocolError as exc:
        return "refused", exc.reason
    except (TypeError, ValueError, OverflowError) as exc:
        return "raised", type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(rule=_texts, device=_texts, zone=st.one_of(st.none(), _texts), output=_values, text=_texts,
       inputs=st.dictionaries(st.text(max_size=8), st.one_of(st.floats(allow_nan=False), st.text(max_size=8)),
                              max_size=3),
       ts=st.floats(min_value=0, max_value=4e9))
def test_a_decision_point_has_the_bytes_of_the_generic_formatter(  # noqa: PLR0917 (hypothesis' draws)
        rule: str, device: str, zone: str | None, output: float, text: str, inputs: dict[str, object],
        ts: float) -> None:
    d = Decision(ts, rule, "adaptive_lighting", device, output, text, inputs, zone)  # type: ignore[arg-type]

    def generic() -> bytes:
        p = d.as_point()
        return schema.DECISIONS.line(p.tags, p.fields, p.ts)

    assert _generic_or_error(lambda: schema.decision_line(d)) == _generic_or_error(generic)


@settings(max_examples=400, deadline=None)
@given(device=_texts, state=st.sampled_from(["pending", "confirmed", "failed", ""]), level=_values,
       attempts=st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True)), since=st.floats(0, 4e9))
def test_a_command_point_has_the_bytes_of_the_generic_formatter(device: str, state: str, level: float,
                                                                attempts: int, since: float) -> None:
    cs = CommandState(device, None, "z", level, state, attempts, since, since)  # type: ignore[arg-type]

    def generic() -> bytes:
        return schema.COMMANDS.line({"device": cs.device, "state": cs.state},
                                    {"level": cs.level, "attempts": cs.attempts}, cs.since)

    assert _generic_or_error(lambda: schema.command_line(cs)) == _generic_or_error(generic)
