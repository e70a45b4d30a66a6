"""InfluxDB line protocol: fast serialisation of readings, events and other points, and a parser.

Layout (docs/architecture.md, "InfluxDB schema"): the measurement of a reading is its family,
tags are ``channel`` (when set), ``device`` and ``zone`` (when set), sorted by key as InfluxDB
prefers; fields are typed by :mod:`drivers._schema` (int ``42i``, bool ``true``/``false``, string
quoted, float ``repr``), measures not in the schema by their Python type; the timestamp is an
integer in **milliseconds** (writes use ``precision=ms``).

Escaping follows InfluxDB 1.x, whose parser is the strictest of the versions we target:

- measurement: ``,`` and space are backslash-escaped;
- tag keys, tag values, field keys: ``,``, ``=`` and space are backslash-escaped;
- string field values: ``\\`` and ``"`` are backslash-escaped.

What cannot be represented is refused with :class:`LineProtocolError` rather than written wrong:
carriage returns and newlines anywhere (a line is one point; InfluxDB 1.x has no escape for them
and the batch body is newline-separated), backslashes in names and tag values (InfluxDB 1.x does
not unescape ``\\\\`` there, so a trailing backslash or one before a separator would corrupt the
line), empty names or tag values, a measurement starting with ``#`` (a comment line), the reserved
key ``time``, non-finite floats and integers outside 64 bits.

The hot path caches the escaped series prefix per (family, device, zone, channel) and the escaped
field keys (bounded ``lru_cache`` of pure functions), and builds each line with one ``str.join``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import orjson

from drivers._contract import Event, Reading, Value
from drivers._schema import CANONICAL

__all__ = [
    "FieldFormatter",
    "LineProtocolError",
    "ParsedPoint",
    "event_line",
    "field_formatters",
    "field_plan",
    "parse_line",
    "point_line",
    "reading_line",
    "series_line",
    "series_prefix",
]

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_SERIES_CACHE = 65536
_KEY_CACHE = 4096


class LineProtocolError(ValueError):
    """A value that cannot be written as line protocol.

    ``reason`` is a short stable code for counters (``bad_name``, ``bad_tag``, ``bad_field``,
    ``bad_value``, ``no_fields``); ``detail`` says which item and why (values are shown with
    ``repr`` and truncated).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _short(s: object, limit: int = 80) -> str:
    r = repr(s)
    return r if len(r) <= limit else r[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# escaping (cached, pure)

_FORBIDDEN_NAME = ("\n", "\r", "\\")


def _check_name(what: str, s: str) -> None:
    if not s:
        raise LineProtocolError("bad_name" if what != "tag value" else "bad_tag", f"empty {what}")
    for ch in _FORBIDDEN_NAME:
        if ch in s:
            reason = "bad_tag" if what == "tag value" else "bad_name"
            raise LineProtocolError(reason, f"{what} {_short(s)} contains {ch!r}")


@lru_cache(maxsize=_KEY_CACHE)
def _esc_measurement(name: str) -> str:
    _check_name("measurement", name)
    if name.startswith("#"):
        raise LineProtocolError("bad_name", f"measurement {_short(name)} starts with '#' (a comment)")
    return name.replace(",", "\\,").replace(" ", "\\ ")


def _esc_key_uncached(key: str, what: str) -> str:
    _check_name(what, key)
    if key == "time":
        raise LineProtocolError("bad_name", f"{what} 'time' is reserved by InfluxDB")
    return key.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@lru_cache(maxsize=_KEY_CACHE)
def _esc_field_key(key: str) -> str:
    return _esc_key_uncached(key, "field key")


@lru_cache(maxsize=_KEY_CACHE)
def _esc_tag_key(key: str) -> str:
    return _esc_key_uncached(key, "tag key")


def _esc_tag_value(value: str) -> str:
    _check_name("tag value", value)
    return value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@lru_cache(maxsize=_SERIES_CACHE)
def _series_prefix(family: str, device: str, zone: str | None, channel: str | None) -> str:
    """``family,channel=..,device=..,zone=.. `` (trailing space), tags sorted by key."""
    parts = [_esc_measurement(family)]
    if channel is not None:
        parts.append(",channel=" + _esc_tag_value(channel))
    parts.append(",device=" + _esc_tag_value(device))
    if zone is not None:
        parts.append(",zone=" + _esc_tag_value(zone))
    parts.append(" ")
    return "".join(parts)


@lru_cache(maxsize=_SERIES_CACHE)
def _event_prefix(family: str, kind: str, device: str, zone: str | None) -> str:
    parts = [
        "events,device=",
        _esc_tag_value(device),
        ",family=",
        _esc_tag_value(family),
        ",kind=",
        _esc_tag_value(kind),
    ]
    if zone is not None:
        parts.append(",zone=" + _esc_tag_value(zone))
    parts.append(" ")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# field values


def _fmt_float(key: str, v: Value) -> str:
    t = type(v)
    if t is float:
        if not math.isfinite(v):  # type: ignore[arg-type]
            raise LineProtocolError("bad_value", f"field {key!r}: non-finite float {v!r}")
        return repr(v)
    if t is int:
        return repr(float(v))
    raise LineProtocolError("bad_value", f"field {key!r}: expected a number, got {type(v).__name__}")


def _fmt_int(key: str, v: Value) -> str:
    t = type(v)
    if t is int:
        if not _INT_MIN <= v <= _INT_MAX:  # type: ignore[operator]
            raise LineProtocolError("bad_value", f"field {key!r}: integer {v!r} outside 64 bits")
        return f"{v}i"
    if t is float and v.is_integer() and _INT_MIN <= v <= _INT_MAX:  # type: ignore[union-attr,operator]
        return f"{int(v)}i"
    raise LineProtocolError("bad_value", f"field {key!r}: expected an integer, got {_short(v)}")


def _fmt_bool(key: str, v: Value) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    raise LineProtocolError("bad_value", f"field {key!r}: expected a bool, got {_short(v)}")


def _fmt_str(key: str, v: Value) -> str:
    if type(v) is not str:
        raise LineProtocolError("bad_value", f"field {key!r}: expected a string, got {type(v).__name__}")
    s: str = v
    if "\n" in s or "\r" in s:
        raise LineProtocolError("bad_value", f"field {key!r}: string contains a newline")
    if "\\" in s or '"' in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def _fmt_auto(key: str, v: Value) -> str:
    t = type(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return _fmt_int(key, v)
    if t is float:
        return _fmt_float(key, v)
    if t is str:
        return _fmt_str(key, v)
    raise LineProtocolError("bad_value", f"field {key!r}: unsupported type {t.__name__}")


_Formatter = Callable[[str, Value], str]
FieldFormatter = _Formatter
_BY_KIND: dict[type, _Formatter] = {float: _fmt_float, int: _fmt_int, bool: _fmt_bool, str: _fmt_str}


def field_formatters(kinds: Mapping[str, type]) -> dict[str, FieldFormatter]:
    """Formatters for :func:`point_line` from declared field types (float, int, bool or str)."""
    return {k: _BY_KIND[t] for k, t in kinds.items()}

def field_plan(kinds: Mapping[str, type]) -> dict[str, tuple[str, FieldFormatter]]:
    """For :func:`series_line`: each declared field's escaped ``key=`` and formatter."""
    return {k: (_esc_field_key(k) + "=", _BY_KIND[t]) for k, t in kinds.items()}


# (family, measure) -> formatter, built once from the canonical schema (read-only afterwards)
_SCHEMA_FMT: dict[str, dict[str, _Formatter]] = {
    fam: {m: _BY_KIND[s.kind] for m, s in measures.items()} for fam, measures in CANONICAL.items()
}
_NO_SCHEMA: dict[str, _Formatter] = {}


def _fields(values: Mapping[str, Value], fmts: Mapping[str, _Formatter]) -> str:
    if not values:
        raise LineProtocolError("no_fields", "a point needs at least one field")
    get = fmts.get
    return ",".join(
        [_esc_field_key(k) + "=" + get(k, _fmt_auto)(k, v) for k, v in values.items()]
    )


# ---------------------------------------------------------------------------------------------
# public encoders


# (family, measure) -> ("escaped_key=", formatter): the schema's field keys escaped once
_SCHEMA_PLAN: dict[str, dict[str, tuple[str, _Formatter]]] = {
    fam: {m: (_esc_field_key(m) + "=", f) for m, f in fmts.items()} for fam, fmts in _SCHEMA_FMT.items()
}
_NO_PLAN: dict[str, tuple[str, _Formatter]] = {}


def _reading_fields(values: Mapping[str, Value], plan: Mapping[str, tuple[str, _Formatter]]) -> str:
    """:func:`_fields` for readings, with the schema's keys pre-escaped and finite floats inline."""
    if not values:
        raise LineProtocolError("no_fields", "a point needs at least one field")
    parts = []
    get = plan.get
    for k, v in values.items():
        p = get(k)
        if p is None:
            parts.append(_esc_field_key(k) + "=" + _fmt_auto(k, v))
        elif p[1] is _fmt_float and type(v) is float and v - v == 0.0:  # finite: what _fmt_float writes
            parts.append(p[0] + repr(v))
        else:
            parts.append(p[0] + p[1](k, v))
    return ",".join(parts)


def reading_line(r: Reading, ts_ms: int) -> bytes:
    """One line for a reading; ``ts_ms`` is used as is (the caller chooses reading or receive time)."""
    prefix = _series_prefix(r.family, r.device, r.zone, r.channel)
    body = _reading_fields(r.values, _SCHEMA_PLAN.get(r.family, _NO_PLAN))
    return f"{prefix}{body} {ts_ms}".encode()


def event_line(e: Event, ts_ms: int) -> bytes:
    """One ``events`` line: tags device, family, kind, zone; fields ``value=1i`` and ``data`` (JSON)."""
    prefix = _event_prefix(e.family, e.kind, e.device, e.zone)
    try:
        data = orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise LineProtocolError("bad_value", f"event data is not JSON serialisable: {exc}") from None
    return f"{prefix}value=1i,data={_fmt_str('data', data)} {ts_ms}".encode()


def point_line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Value], ts_ms: int,
               formats: Mapping[str, FieldFormatter] = _NO_SCHEMA) -> bytes:
    """One line for any other measurement (device_status, fleet, supervisor, alarms, ...).

    Tags are sorted by key; field values are typed by ``formats`` (see :func:`field_formatters`,
    built from :mod:`supervisor.storage.schema`), those it does not name by their Python type.
    """
    return f"{series_prefix(measurement, tags)}{_fields(fields, formats)} {int(ts_ms)}".encode()


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,... `` (tags sorted, escaped and checked, trailing space): the part of
    :func:`point_line` that does not change between the points of one series, for a caller that
    writes the same series every round (:func:`series_line`)."""
    parts = [_esc_measurement(measurement)]
    for k in sorted(tags):
        v = tags[k]
        if type(v) is not str:
            raise LineProtocolError("bad_tag", f"tag {k!r}: expected a string, got {type(v).__name__}")
        parts.append("," + _esc_tag_key(k) + "=" + _esc_tag_value(v))
    parts.append(" ")
    return "".join(parts)


def series_line(prefix: str, values: Mapping[str, Value], ts_ms: int,
                plan: Mapping[str, tuple[str, FieldFormatter]]) -> bytes:
    """One line of the series ``prefix`` (:func:`series_prefix`); ``plan`` maps each field to its
    escaped ``key=`` and its formatter (a field it does not name is typed by its Python type)."""
    return f"{prefix}{_reading_fields(values, plan)} {ts_ms}".encode()


# ---------------------------------------------------------------------------------------------
# parser (used by the SQLite sink and the tests; InfluxDB 1.x semantics)


@dataclass(slots=True)
class ParsedPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Value]
    ts_ms: int | None


_UNESC_NAME = {",", " ", "="}


def _scan_name(s: str, i: int, stops: str, specials: set[str]) -> tuple[str, int]:
    """Read an escaped token from ``i`` up to an unescaped char of ``stops``; return (token, index)."""
    out: list[str] = []
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "\\" and i + 1 < n:
            nxt = s[i + 1]
            if nxt in specials:
                out.append(nxt)
            else:
                out.append(ch)
                out.append(nxt)
            i += 2
            continue
        if ch in stops:
            break
        out.append(ch)
        i += 1
    return "".join(out), i


def _parse_value(raw: str, line: str) -> Value:
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    try:
        if raw.endswith("i"):
            return int(raw[:-1])
        if raw.endswith("u"):
            return int(raw[:-1])
        return float(raw)
    except ValueError:
        raise LineProtocolError("bad_value", f"cannot parse field value {_short(raw)} in {_short(line)}") from None


def _parse_simple(s: str) -> ParsedPoint | None:
    """Fast path for lines without escapes or quotes (most of them); None when it does not apply."""
    parts = s.split(" ")
    if len(parts) not in (2, 3):
        return None
    head = parts[0].split(",")
    if not head[0]:
        return None
    tags: dict[str, str] = {}
    for kv in head[1:]:
        k, sep, v = kv.partition("=")
        if not sep or not k or not v or "=" in v:
            return None
        tags[k] = v
    fields: dict[str, Value] = {}
    for kv in parts[1].split(","):
        k, sep, v = kv.partition("=")
        if not sep or not k or not v or "=" in v:
            return None
        fields[k] = _parse_value(v, s)
    ts: int | None = None
    if len(parts) == 3:
        try:
            ts = int(parts[2])
        except ValueError:
            raise LineProtocolError("bad_line", f"bad timestamp {_short(parts[2])}") from None
    return ParsedPoint(head[0], tags, fields, ts)


def _parse_tags(s: str, i: int) -> tuple[dict[str, str], int]:
    tags: dict[str, str] = {}
    n = len(s)
    while i < n and s[i] == ",":
        key, i = _scan_name(s, i + 1, "=, ", _UNESC_NAME)
        if i >= n or s[i] != "=" or not key:
            raise LineProtocolError("bad_line", f"malformed tag in {_short(s)}")
        val, i = _scan_name(s, i + 1, ", ", _UNESC_NAME)
        if not val:
            raise LineProtocolError("bad_line", f"missing tag value for {key!r} in {_short(s)}")
        tags[key] = val
    return tags, i


def _parse_string(s: str, i: int) -> tuple[str, int]:
    """A quoted string field value starting after its opening quote; returns (value, index after)."""
    n = len(s)
    buf: list[str] = []
    while i < n and s[i] != '"':
        if s[i] == "\\" and i + 1 < n and s[i + 1] in '"\\':
            buf.append(s[i + 1])
            i += 2
        else:
            buf.append(s[i])
            i += 1
    if i >= n:
        raise LineProtocolError("bad_line", f"unterminated string in {_short(s)}")
    return "".join(buf), i + 1


def _parse_fields(s: str, i: int) -> tuple[dict[str, Value], int]:
    fields: dict[str, Value] = {}
    n = len(s)
    while True:
        key, i = _scan_name(s, i, "=", _UNESC_NAME)
        if i >= n or not key:
            raise LineProtocolError("bad_line", f"malformed field in {_short(s)}")
        i += 1
        if i < n and s[i] == '"':
            fields[key], i = _parse_string(s, i + 1)
        else:
            j = i
            while j < n and s[j] not in ", ":
                j += 1
            fields[key] = _parse_value(s[i:j], s)
            i = j
        if i < n and s[i] == ",":
            i += 1
            continue
        return fields, i


def parse_line(line: bytes | str) -> ParsedPoint:
    """Parse one line of line protocol; raise :class:`LineProtocolError` when it is malformed."""
    s = line.decode("utf-8") if isinstance(line, bytes) else line
    if not s or "\n" in s:
        raise LineProtocolError("bad_line", f"expected exactly one line, got {_short(s)}")
    if "\\" not in s and '"' not in s:
        simple = _parse_simple(s)
        if simple is not None:
            return simple
    measurement, i = _scan_name(s, 0, ", ", {",", " "})
    if not measurement:
        raise LineProtocolError("bad_line", f"missing measurement in {_short(s)}")
    tags, i = _parse_tags(s, i)
    if i >= len(s) or s[i] != " ":
        raise LineProtocolError("bad_line", f"missing fields in {_short(s)}")
    fields, i = _parse_fields(s, i + 1)
    ts: int | None = None
    rest = s[i:].strip()
    if rest:
        try:
            ts = int(rest)
        except ValueError:
            raise LineProtocolError("bad_line", f"bad timestamp {_short(rest)}") from None
    return ParsedPoint(measurement, tags, fields, ts)
