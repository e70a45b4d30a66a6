"""The declarative toolkit: parsing helpers, topic patterns, field sets, declarative drivers."""

from __future__ import annotations

import math
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import CANONICAL, Decoded, DecodeError, available
from drivers.kit import (
    REASONS,
    TS_MAX,
    TS_MIN,
    DeclarativeDriver,
    DefinitionError,
    Field,
    FieldSet,
    TopicPattern,
    check_range,
    filter_matches,
    filters_collide,
    parse_object,
    parse_timestamp,
    to_bool,
    to_float,
    to_identifier,
    to_int,
    to_tokens,
)

T0 = 1764115200.0  # 2025-11-26T00:00:00Z


def reason(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DecodeError) as info:
        fn(*args, **kwargs)
    assert info.value.reason in REASONS
    return info.value.reason


# ---------------------------------------------------------------- parse_object


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"a": -Infinity}', "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b'{"a": 1} // c', "invalid_json"),
        (b'/* c */ {"a": 1}', "invalid_json"),
        (b"{'a': 1}", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"online", "invalid_json"),
        (b"42", "bad_type"),
        (b'"ON"', "bad_type"),
        (b"null", "bad_type"),
        (b"[1]", "bad_type"),
    ],
)
def test_parse_object_refuses(payload: bytes, expected: str) -> None:
    assert reason(parse_object, payload) == expected


def test_parse_object_accepts_objects() -> None:
    assert parse_object(b' {"a": 1, "id": "0012"}\n') == {"a": 1, "id": "0012"}
    assert parse_object('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


# ---------------------------------------------------------------- converters


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, None), ("", None), ("  ", None), ("%", None), (0, 0.0), (3, 3.0), (2.5, 2.5), ("2.5", 2.5),
     (" -4 ", -4.0), ("17%", 17.0), ("1e3", 1000.0), ("0", 0.0)],
)
def test_to_float(raw: Any, value: float | None) -> None:
    got = to_float(raw, "k")
    assert got == value and (got is None or type(got) is float)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, "bad_type"), (False, "bad_type"), ([1], "bad_type"), ({"v": 1}, "bad_type"),
     ("abc", "bad_value"), ("NaN", "bad_value"), ("inf", "bad_value"), ("-Infinity", "bad_value"),
     ("1_000", "bad_value"), ("-%", "bad_value"), (math.nan, "bad_value"), (math.inf, "bad_value")],
)
def test_to_float_refuses(raw: Any, expected: str) -> None:
    assert reason(to_float, raw, "k") == expected


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, None), ("", None), (0, 0), (7, 7), (7.0, 7), ("7", 7), ("+7", 7), ("-7", -7), ("7.0", 7),
     (1e15, 10**15)],
)
def test_to_int(raw: Any, value: int | None) -> None:
    got = to_int(raw, "k")
    assert got == value and (got is None or type(got) is int)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, "bad_type"), (2.5, "bad_value"), ("2.5", "bad_value"), ("two", "bad_value"), ("+-3", "bad_value"),
     ("²", "bad_value"), ([], "bad_type")],
)
def test_to_int_refuses(raw: Any, expected: str) -> None:
    assert reason(to_int, raw, "k") == expected


@pytest.mark.parametrize(
    ("raw", "value"),
    [(True, True), (False, False), (1, True), (0, False), ("ON", True), ("off", False), ("On", True),
     ("TRUE", True), ("false", False), ("1", True), ("0", False), ("Online", True), ("OFFLINE", False),
     (" on ", True), (None, None), ("", None)],
)
def test_to_bool(raw: Any, value: bool | None) -> None:
    assert to_bool(raw, "k") is value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(2, "bad_value"), (-1, "bad_value"), ("yes please", "bad_value"), ("maybe", "bad_value"),
     (1.0, "bad_type"), ([True], "bad_type")],
)
def test_to_bool_refuses(raw: Any, expected: str) -> None:
    assert reason(to_bool, raw, "k") == expected


def test_identifiers_stay_strings() -> None:
    assert to_identifier("03122061") == "03122061"
    assert to_identifier("7b210c44") == "7b210c44"
    assert to_identifier(12) == "12"
    assert to_identifier("") is None
    assert reason(to_identifier, "a b") == "bad_identifier"
    assert reason(to_identifier, "a/+") == "bad_identifier"
    assert reason(to_identifier, True) == "bad_type"
    assert reason(to_identifier, 1.5) == "bad_type"


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [(["LEAK"], ["LEAK"]), ("leak burst", ["LEAK", "BURST"]),
     ("meter_blocked,underflow", ["METER_BLOCKED", "UNDERFLOW"]),
     ("OK", []), ("ok", []), ("no_alarm", []), ("", []), ([], []), (["Leak", "LEAK", "ok"], ["LEAK"]),
     (["LEAK POWER_LOW"], ["LEAK", "POWER_LOW"]), ("ERROR_FLAGS_0x1f", ["ERROR_FLAGS_0X1F"]), (None, None)],
)
def test_to_tokens(raw: Any, tokens: list[str] | None) -> None:
    assert to_tokens(raw) == tokens


def test_to_tokens_refuses() -> None:
    assert reason(to_tokens, 5) == "bad_type"
    assert reason(to_tokens, ["LEAK", None]) == "bad_type"
    assert reason(to_tokens, {"LEAK": True}) == "bad_type"
    assert reason(to_tokens, "LEAK!") == "bad_value"


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("raw", "ts"),
    [(None, None), ("", None), (T0, T0), (int(T0), T0), (T0 * 1000, T0), (int(T0 * 1000) + 250, T0 + 0.25),
     (str(int(T0)), T0), ("2025-11-26T00:00:00Z", T0), ("2025-11-26T00:00:00.500Z", T0 + 0.5),
     ("2025-11-26T05:30:00+05:30", T0), ("2025-11-26 00:00:00+00:00", T0),
     ("2025-11-26T00:00:00.0449+00:00", T0 + 0.0449)],
)
def test_parse_timestamp(raw: Any, ts: float | None) -> None:
    got = parse_timestamp(raw)
    assert got == pytest.approx(ts) if ts is not None else got is None


def test_naive_iso_needs_a_zone() -> None:
    assert reason(parse_timestamp, "2025-11-26T01:00:00") == "bad_timestamp"
    cet = timezone(timedelta(hours=1))
    assert parse_timestamp("2025-11-26T01:00:00", tz=cet) == T0


@pytest.mark.parametrize(
    "raw",
    [True, math.nan, math.inf, -1, 0, 946684799, 4102444801, 10**16, "1111-11-11T11:11:11Z", "2024-02-01",
     "2101-01-01T00:00:00Z", "yesterday", "2025-13-01T00:00:00Z", [T0], {"@value": T0}],
)
def test_parse_timestamp_refuses(raw: Any) -> None:
    assert reason(parse_timestamp, raw) == "bad_timestamp"


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_timestamps_are_plausible_or_refused(raw: float | int) -> None:
    try:
        ts = parse_timestamp(raw)
    except DecodeError as exc:
        assert exc.reason == "bad_timestamp"
    else:
        assert ts is not None and TS_MIN <= ts <= TS_MAX


# ---------------------------------------------------------------- ranges and fields


def test_check_range() -> None:
    assert check_range("traffic", "occupancy", 100.0) == 100.0
    assert reason(check_range, "traffic", "occupancy", 100.5) == "out_of_range"
    assert reason(check_range, "water", "index", -0.001) == "out_of_range"
    assert check_range("water", "index", 1e12) == 1e12  # no upper bound
    assert reason(check_range, "traffic", "occupancy", "12") == "bad_type"
    assert reason(check_range, "lighting", "lamps", 2.0) == "bad_type"  # the storage type is fixed
    assert reason(check_range, "traffic", "colour", 1.0) == "bad_value"


def test_fieldset_keys_scale_and_required() -> None:
    fs = FieldSet("lighting", (Field("power", key="totalActivePower", scale=1000.0), Field("level", key="Dimmer"),
                               Field("on", key="POWER", required=True)))
    assert fs.measures == {("lighting", "power"): "W", ("lighting", "level"): "%", ("lighting", "on"): "bool"}
    assert fs.extract({"totalActivePower": "1.5", "Dimmer": 40, "POWER": "ON"}) == {
        "power": 1500.0, "level": 40.0, "on": True}
    assert reason(fs.extract, {"Dimmer": 40}) == "missing_field"
    assert reason(fs.extract, {"POWER": "ON", "totalActivePower": 1001}) == "out_of_range"


def test_fieldset_definition_errors() -> None:
    with pytest.raises(DefinitionError):
        FieldSet("traffic", (Field("colour"),))
    with pytest.raises(DefinitionError):
        FieldSet("nope", (Field("flow"),))
    with pytest.raises(DefinitionError):
        FieldSet("traffic", (Field("flow"), Field("flow", key="q")))
    with pytest.raises(DefinitionError):
        FieldSet("water", (Field("alarms"),))  # a str measure needs its converter
    with pytest.raises(DefinitionError):
        FieldSet("lighting", (Field("lamps", scale=2.0),))


def test_a_declarative_driver_is_a_dozen_lines() -> None:
    class Counter(DeclarativeDriver):
        name = "test_counter"
        family = "traffic"
        pattern = "telraam/{device}/report"
        fields = (Field("count", key="car"), Field("uptime", scale=100.0), Field("v85"))

    assert Counter.topics == ("telraam/+/report",)
    assert Counter.families == ("traffic",)
    assert set(Counter.measures) == {("traffic", "count"), ("traffic", "uptime"), ("traffic", "v85")}
    out = Counter().decode("telraam/9000001234/report", b'{"car": "12", "uptime": 0.97, "v85": ""}')
    (r,) = out.readings
    assert (r.device, r.zone, r.ts, r.values) == ("9000001234", None, None, {"count": 12, "uptime": 97.0})
    assert reason(Counter().decode, "telraam/x/other", b"{}") == "unknown_topic"

    with pytest.raises(DefinitionError):
        class NoDevice(DeclarativeDriver):
            name = "test_nodevice"
            family = "traffic"
            pattern = "x/{zone}"
            fields = (Field("flow"),)


# ---------------------------------------------------------------- topics


def test_topic_pattern_captures() -> None:
    p = TopicPattern("city/{zone}/traffic/{device}/telemetry")
    assert p.filter == "city/+/traffic/+/telemetry"
    assert p.match("city/north/traffic/det-001/telemetry") == {"zone": "north", "device": "det-001"}
    assert p.match("city/north/traffic/det-001/telemetry/x") is None
    assert p.match("city/north/lighting/det-001/telemetry") is None
    assert p.match("city/north/traffic/telemetry") is None
    assert reason(p.match, "city/no rth/traffic/d/telemetry") == "bad_identifier"
    assert reason(p.match, "city//traffic/d/telemetry") == "bad_identifier"
    assert reason(p.match, "city/a+b/traffic/d/telemetry") == "bad_identifier"


def test_topic_pattern_multilevel_and_dollar() -> None:
    p = TopicPattern("z2m/{device}/{rest#}")
    assert p.filter == "z2m/+/#"
    assert p.match("z2m/lamp1") == {"device": "lamp1", "rest": ""}
    assert p.match("z2m/lamp1/set/brightness") == {"device": "lamp1", "rest": "set/brightness"}
    assert TopicPattern("+/x").match("$SYS/x") is None
    assert TopicPattern("#").match("a/b/c") == {}
    assert TopicPattern("a.b/+/c").match("aXb/1/c") is None  # literals are escaped
    for bad in ("a/#/b", "a/b+", "a/{x}/{x}", "a/{1x}", "", "a/{x"):
        with pytest.raises(DefinitionError):
            TopicPattern(bad)


@pytest.mark.parametrize(
    ("filt", "topic", "ok"),
    [("city/+/traffic/+/telemetry", "city/n/traffic/d/telemetry", True),
     ("city/+/traffic/+/telemetry", "city/n/traffic/d", False),
     ("a/#", "a", True), ("a/#", "a/b/c", True), ("#", "x", True), ("+", "$SYS", False),
     ("#", "$SYS/x", False), ("$SYS/#", "$SYS/x", True), ("a/+", "a/", True), ("a/b", "a/b/c", False)],
)
def test_filter_matches(filt: str, topic: str, ok: bool) -> None:
    assert filter_matches(filt, topic) is ok


@pytest.mark.parametrize(
    ("a", "b", "collide"),
    [("city/+/traffic/+/telemetry", "city/+/lighting/+/telemetry", False),
     ("city/+/traffic/+/telemetry", "city/north/+/+/telemetry", True),
     ("city/#", "city/+/water/+/telemetry", True), ("a/#", "a", True), ("a/+", "a", False),
     ("a/b", "a/b/c", False), ("+/b", "a/+", True), ("#", "$SYS/x", False), ("$SYS/#", "$SYS/+", True),
     ("city/+/cctv/+/event", "city/+/cctv/+/telemetry", False)],
)
def test_filters_collide(a: str, b: str, collide: bool) -> None:
    assert filters_collide(a, b) is collide
    assert filters_collide(b, a) is collide


_segment = st.sampled_from(["a", "b", "+", "#", "$s"])


@given(st.lists(_segment, min_size=1, max_size=4), st.lists(_segment, min_size=1, max_size=4),
       st.lists(st.sampled_from(["a", "b", "$s", "", "c"]), min_size=1, max_size=5))
def test_collision_agrees_with_matching(a: list[str], b: list[str], topic: list[str]) -> None:
    fa, fb, t = "/".join(a), "/".join(b), "/".join(topic)
    if "#" in a[:-1] or "#" in b[:-1]:
        return  # not valid filters
    if filter_matches(fa, t) and filter_matches(fb, t):
        assert filters_collide(fa, fb), (fa, fb, t)


# ---------------------------------------------------------------- drivers never raise anything else

DRIVERS = available()
_keys = sorted({m for fam in CANONICAL.values() for m in fam} | {"ts", "circuits", "id", "type", "score", "alarms"})
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["ON", "off", "12.5%", "", "NaN", "LEAK ok", "1764115200"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_keys), inner, max_size=5),
    max_leaves=8,
)
_objects = st.dictionaries(st.sampled_from(_keys), _json, max_size=8)
_segments = st.sampled_from(["city", "north", "d-1", "traffic", "lighting", "cctv", "water", "telemetry", "event",
                             "cmd", "", "+", "a b", "$SYS"])
_topics = st.lists(_segments, min_size=1, max_size=6).map("/".join) | st.text(max_size=40)


def _check_decoded(name: str, out: Decoded) -> None:
    cls = DRIVERS[name]
    assert isinstance(out, Decoded)
    for r in out.readings:
        assert r.values, "a reading has values"
        for measure, value in r.values.items():
            assert (r.family, measure) in cls.measures
            check_range(r.family, measure, value)  # canonical type and range
        assert r.ts is None or TS_MIN <= r.ts <= TS_MAX


@pytest.mark.parametrize("name", list(DRIVERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=_topics, payload=st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(name: str, topic: str, payload: bytes) -> None:
    try:
        _check_decoded(name, DRIVERS[name]().decode(topic, payload))
    except DecodeError as exc:
        assert exc.reason in REASONS


@pytest.mark.parametrize("name", list(DRIVERS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), obj=_objects)
def test_random_objects_on_claimed_topics(name: str, data: st.DataObject, obj: dict[str, Any]) -> None:
    cls = DRIVERS[name]
    filt = data.draw(st.sampled_from(cls.topics))
    topic = "/".join(data.draw(st.sampled_from(["z1", "d-7", "00042"])) if s == "+" else s for s in filt.split("/"))
    try:
        _check_decoded(name, cls().decode(topic, orjson.dumps(obj)))
    except DecodeError as exc:
        assert exc.reason in REASONS


def test_declarative_timezone_option() -> None:
    from drivers import ConfigError

    cls = DRIVERS["road_sensor"]
    topic, payload = "city/n/traffic/d/telemetry", b'{"ts": "2025-11-26T01:00:00", "flow": 1}'
    assert reason(cls().decode, topic, payload) == "bad_timestamp"
    (r,) = cls({"timezone": "Europe/Paris"}).decode(topic, payload).readings
    assert r.ts == T0  # 01:00 in Paris in November is 00:00 UTC
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        cls({"timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="colour"):
        cls({"colour": "red"})


# the quick loop of FieldSet.extract (every field plain) and its full path agree on any object
_RAW = st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.sampled_from(["1.5", "ON", "off", "12", ""]))


def _outcome(fn: Any, obj: dict[str, Any]) -> tuple[str, object]:
    try:
        return "values", fn(obj)
    except DecodeError as exc:
        return "refused", exc.reason


@settings(max_examples=500, deadline=None)
@given(flow=_RAW, speed=_RAW, on=_RAW, lamps=_RAW, drop=st.sets(st.sampled_from(["flow", "speed", "on", "lamps"])))
def test_the_quick_extraction_and_the_full_one_agree(flow: Any, speed: Any, on: Any, lamps: Any,
                                                    drop: set[str]) -> None:
    traffic = FieldSet("traffic", (Field("flow"), Field("speed", required=True)))
    lighting = FieldSet("lighting", (Field("on"), Field("lamps"), Field("level", key="flow")))
    obj = {k: v for k, v in {"flow": flow, "speed": speed, "on": on, "lamps": lamps}.items() if k not in drop}
    for fs in (traffic, lighting):
        assert fs._quick is not None  # both take the quick loop first
        assert _outcome(fs.extract, obj) == _outcome(fs._extract, obj)
