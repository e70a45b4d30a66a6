"""Property-based fuzzing of every registered driver (``drivers.available()`` at test time).

For any input, ``decode`` returns a :class:`~drivers.Decoded` or raises
:class:`~drivers.DecodeError` with a stable reason, never anything else; whatever it returns is
canonical (finite values of the schema's type, within the schema's range, identifiers as device,
zone and channel, a plausible time) and serialisable as line protocol. ``encode`` raises
:class:`~drivers.DriverError` or returns publishes that are never retained, never on a wildcard
topic, and always name the device.

Inputs: random bytes; random JSON values; objects built from the driver's own field names (its
declared measures and the keys of its case files) with hostile values (NaN/Infinity as JSON text
and as strings, huge numbers, wrong types, deep nesting, empty strings, unicode); topics built from
the driver's subscription filters with hostile segments.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from drivers import CANONICAL, FAMILIES, Command, Decoded, DecodeError, Driver, DriverError, Publish, available
from drivers.kit import REASONS, TS_MAX, TS_MIN
from supervisor.storage.lineprotocol import event_line, reading_line
from tests.drivers.casefiles import cases_of

EXAMPLES = 200
IDENT = re.compile(r"[A-Za-z0-9_.:-]+")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
NATIVE = frozenset({"road_sensor", "lighting_cabinet", "cctv", "water_meter"})  # use the shared reason codes
REASON_FORMAT = re.compile(r"[a-z][a-z0-9_]{1,40}")


def _instance(name: str, cls: type[Driver]) -> Driver:
    """The driver with no options, or with the options of its first case file that has some."""
    try:
        return cls()
    except DriverError:
        for case in cases_of(name, cls):
            if case.data.get("options"):
                return cls(case.data["options"])
        raise


DRIVERS = available()
NAMES = sorted(DRIVERS)


def _keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys_in(v)


def _seeds(name: str) -> tuple[list[str], list[str], list[bytes]]:
    """Field names, topics and payloads the driver's own case files use."""
    cls = DRIVERS[name]
    keys = {m for _, m in cls.measures} | {"ts", "time", "timestamp", "type", "id", "circuits", "score", "state"}
    topics: list[str] = []
    payloads: list[bytes] = []
    for case in cases_of(name, cls):
        d = case.data
        if "topic" in d:
            topics.append(str(d["topic"]))
        raw = d.get("payload")
        if isinstance(raw, str):
            payloads.append(raw.encode("utf-8", "surrogatepass"))
            with contextlib.suppress(orjson.JSONDecodeError):
                keys.update(_keys_in(orjson.loads(raw)))
        elif "payload_hex" in d:
            payloads.append(bytes.fromhex(str(d["payload_hex"])))
    return sorted(keys), topics, payloads


# ----------------------------------------------------------------------------- strategies

HOSTILE_TEXT = st.sampled_from([
    "", " ", "NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "-inf", "1e999", "-1e999", "1e308",
    "0x10", "1_000", "\u0663", "\uff11\uff12", "12%", "%", "-0", "+5", "true", "ON", "offline", "null", "None",
    "\x00", "\n", "a\r\nb", "\ud7ff", "\u00e9", "\U0001f6a6", "\u202e", "Z",
    "2024-13-45T25:61:00Z", "1970-01-01T00:00:00Z", "2024-06-01T12:00:00", "2024-06-01", "9" * 400, "x" * 5000,
])
HUGE_NUMBERS = st.sampled_from([
    1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 2**63 - 1, -(2**63), 2**64 - 1, 10**18,
    4_102_444_801, 946_684_799, 4_102_444_800_001, 1e20, -1,
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), HUGE_NUMBERS, st.text(max_size=30), HOSTILE_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


PLAUSIBLE = st.one_of(
    st.floats(0, 120), st.integers(0, 30), st.booleans(), st.floats(0, 120).map(repr),
    st.sampled_from(["ON", "off", "online", "1", "0", "LEAK", "OK", "motion", "1764115200", "2025-11-26T00:00:00Z"]),
)


def hostile_values(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        PLAUSIBLE, PLAUSIBLE, SCALARS, SCALARS, JSON_VALUES,
        st.builds(_nested, st.integers(1, 300), SCALARS),
        st.lists(st.dictionaries(st.sampled_from(keys), SCALARS, max_size=6), max_size=6),
    )


NAN_MARK = "__fuzz_raw__"
RAW_TEXT = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 30, "-" + "9" * 25, "0.1e-99999", "01",
            ".5", "+1", "[" * 2000 + "]" * 2000, "{}", "[]", "nul", "tru"]


@st.composite
def field_objects(draw: st.DrawFn, keys: list[str]) -> bytes:
    """A JSON object of the driver's field names with hostile values; some values as raw JSON text."""
    obj: dict[str, Any] = draw(st.dictionaries(
        st.sampled_from(keys) | st.text(max_size=8), hostile_values(keys), min_size=1, max_size=8))
    raws: dict[str, str] = {}
    raw_keys = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if draw(st.integers(0, 3)) == 0 else []
    for key in raw_keys:
        token = f"{NAN_MARK}{len(raws)}"
        obj[key] = token
        raws[f'"{token}"'] = draw(st.sampled_from(RAW_TEXT))
    text = _dumps(obj)
    for token, raw in raws.items():
        text = text.replace(token, raw)
    return text.encode("utf-8", "surrogatepass")


def _dumps(value: Any) -> str:
    """JSON text of any generated value: ints beyond 64 bits, deep nesting, lone surrogates."""
    return json.dumps(value, ensure_ascii=False)


HOSTILE_SEGMENTS = st.one_of(
    st.sampled_from(["", "+", "#", "a+b", "a#", "..", ".", "$SYS", " ", "a b", "a/b", "\x00", "\x7f",
                     "\u00e9", "\U0001f6a6", "x" * 300,
                     "dev\n1", "dev\t", "dev,1", "dev=1", "dev\\", '"q"', "null", "-", "telemetry"]),
    st.text(min_size=0, max_size=20),
    st.from_regex(r"[A-Za-z0-9_.:-]{1,16}", fullmatch=True),
)


@st.composite
def topics_for(draw: st.DrawFn, name: str, case_topics: list[str]) -> str:
    """A topic built from one of the driver's filters (or case topics), some segments hostile."""
    cls = DRIVERS[name]
    base = draw(st.sampled_from(list(cls.topics) + case_topics)).split("/")
    out: list[str] = []
    for seg in base:
        if seg == "#":
            out.extend(draw(st.lists(HOSTILE_SEGMENTS, min_size=0, max_size=4)))
        elif seg == "+" or draw(st.integers(0, 9)) == 0:
            out.append(draw(HOSTILE_SEGMENTS))
        else:
            out.append(seg)
    if draw(st.integers(0, 9)) == 0:
        out.append(draw(HOSTILE_SEGMENTS))
    return "/".join(out)


# ----------------------------------------------------------------------------- invariants


def _check_ident(what: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    assert isinstance(value, str) and IDENT.fullmatch(value), f"{what} {value!r} is not an identifier"


def _check_decoded(driver: Driver, topic: str, payload: bytes, result: object) -> None:
    ctx = f"{driver.name}: {topic!r} {payload[:200]!r}"
    assert type(result) is Decoded, f"{ctx}: decode returned {type(result).__name__}"
    assert isinstance(result.readings, list) and isinstance(result.events, list), ctx
    for r in result.readings:
        assert r.family in driver.families, f"{ctx}: family {r.family!r} not declared"
        _check_ident("device", r.device, optional=False)
        _check_ident("zone", r.zone, optional=True)
        _check_ident("channel", r.channel, optional=True)
        assert r.values, f"{ctx}: a reading without values"
        for measure, value in r.values.items():
            spec = CANONICAL[r.family].get(measure)
            assert spec is not None, f"{ctx}: {r.family}.{measure} is not canonical"
            assert type(value) is spec.kind, f"{ctx}: {measure}={value!r} is not {spec.kind.__name__}"
            if spec.kind in (int, float):
                assert math.isfinite(value), f"{ctx}: {measure}={value!r} is not finite"  # type: ignore[arg-type]
                if spec.lo is not None:
                    assert value >= spec.lo, f"{ctx}: {measure}={value!r} below {spec.lo}"  # type: ignore[operator]
                if spec.hi is not None:
                    assert value <= spec.hi, f"{ctx}: {measure}={value!r} above {spec.hi}"  # type: ignore[operator]
                if spec.kind is int:
                    assert -(2**63) <= value < 2**63, f"{ctx}: {measure}={value!r} beyond 64 bits"  # type: ignore[operator]
            elif spec.kind is str:
                assert "\n" not in value and "\r" not in value, f"{ctx}: {measure}={value!r} has a line break"  # type: ignore[operator]
        if r.ts is not None:
            assert type(r.ts) is float and TS_MIN <= r.ts <= TS_MAX, f"{ctx}: ts {r.ts!r}"
        reading_line(r, int((r.ts or TS_MIN) * 1000))  # serialisable as is
    for e in result.events:
        assert e.family in FAMILIES and e.family in driver.families, f"{ctx}: event family {e.family!r}"
        _check_ident("device", e.device, optional=False)
        _check_ident("zone", e.zone, optional=True)
        assert isinstance(e.kind, str) and e.kind and "\n" not in e.kind, f"{ctx}: event kind {e.kind!r}"
        if e.ts is not None:
            assert type(e.ts) is float and TS_MIN <= e.ts <= TS_MAX, f"{ctx}: event ts {e.ts!r}"
        for k, v in e.data.items():
            assert isinstance(k, str), ctx
            assert isinstance(v, (str, bool, int, float)), f"{ctx}: event data {k}={v!r}"
            if isinstance(v, float):
                assert math.isfinite(v), f"{ctx}: event data {k}={v!r}"
        event_line(e, int((e.ts or TS_MIN) * 1000))


def _decode_and_check(driver: Driver, topic: str, payload: bytes) -> None:
    try:
        result = driver.decode(topic, payload)
    except DecodeError as exc:
        assert isinstance(exc.reason, str) and REASON_FORMAT.fullmatch(exc.reason), exc.reason
        if driver.name in NATIVE:
            assert exc.reason in REASONS, exc.reason
        assert isinstance(exc.detail, str)
        return
    # anything else propagates and fails the property: it is a driver bug
    _check_decoded(driver, topic, payload, result)


# ----------------------------------------------------------------------------- properties


@pytest.fixture(scope="module", params=NAMES)
def fuzz_target(request: pytest.FixtureRequest) -> tuple[Driver, list[str], list[str], list[bytes]]:
    name = request.param
    keys, topics, payloads = _seeds(name)
    return _instance(name, DRIVERS[name]), keys, topics, payloads


def test_every_driver_is_fuzzed() -> None:
    assert set(NAMES) >= NATIVE


def test_random_bytes(fuzz_target: tuple[Driver, list[str], list[str], list[bytes]]) -> None:
    driver, _, case_topics, case_payloads = fuzz_target
    topics = list(driver.topics) + case_topics

    @FUZZ
    @given(topic=st.sampled_from(topics) | topics_for(driver.name, case_topics),
           payload=st.binary(max_size=300) | st.sampled_from(case_payloads or [b"{}"]).map(_mutate_bytes))
    def prop(topic: str, payload: bytes) -> None:
        _decode_and_check(driver, topic, payload)

    prop()


def _mutate_bytes(b: bytes) -> bytes:
    """Truncations and byte flips of a real payload (cheap, deterministic per input)."""
    if not b:
        return b"\xff"
    i = (len(b) * 7) % len(b)
    return b[:i] + bytes([b[i] ^ 0x80]) + b[i + 1:]


def test_random_json_values(fuzz_target: tuple[Driver, list[str], list[str], list[bytes]]) -> None:
    driver, _, case_topics, _ = fuzz_target

    @FUZZ
    @given(topic=st.sampled_from(case_topics or list(driver.topics)), value=JSON_VALUES)
    def prop(topic: str, value: Any) -> None:
        payload = _dumps(value).encode("utf-8", "surrogatepass")
        _decode_and_check(driver, topic, payload)

    prop()


def test_objects_of_the_drivers_own_fields(fuzz_target: tuple[Driver, list[str], list[str], list[bytes]]) -> None:
    driver, keys, case_topics, _ = fuzz_target
    if not case_topics:
        pytest.skip(f"{driver.name} has no decode case to take topics from")

    @FUZZ
    @given(topic=st.sampled_from(case_topics), payload=field_objects(keys))
    def prop(topic: str, payload: bytes) -> None:
        _decode_and_check(driver, topic, payload)

    prop()


def test_hostile_topics(fuzz_target: tuple[Driver, list[str], list[str], list[bytes]]) -> None:
    driver, _, case_topics, case_payloads = fuzz_target
    good = [p for p in case_payloads if p.startswith(b"{")] or [b'{"ts": 1764115200.0}']

    @FUZZ
    @given(topic=topics_for(driver.name, case_topics), payload=st.sampled_from(good))
    def prop(topic: str, payload: bytes) -> None:
        _decode_and_check(driver, topic, payload)

    prop()


def test_valid_values_near_the_range_limits_are_canonical(
        fuzz_target: tuple[Driver, list[str], list[str], list[bytes]]) -> None:
    """Numbers around each measure's limits: accepted values stay inside, the rest are refused."""
    driver, _, case_topics, _ = fuzz_target
    measures = sorted(m for _, m in driver.measures)
    if not (case_topics and measures):
        pytest.skip(f"{driver.name} has no decode case or no measure")

    def near(m: str) -> st.SearchStrategy[Any]:
        specs = [CANONICAL[f][m] for f in driver.families if m in CANONICAL[f]]
        edges = [e for s in specs for e in (s.lo, s.hi) if e is not None] or [0.0]
        return st.sampled_from(edges).flatmap(
            lambda e: st.floats(e - 2.0, e + 2.0, allow_nan=False) | st.just(e) | st.integers(int(e) - 2, int(e) + 2)
            | st.floats(e - 2.0, e + 2.0, allow_nan=False).map(repr))

    @FUZZ
    @given(topic=st.sampled_from(case_topics), data=st.data())
    def prop(topic: str, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(measures), min_size=1, max_size=4, unique=True))
        obj = {m: data.draw(near(m)) for m in chosen}
        _decode_and_check(driver, topic, orjson.dumps(obj))

    prop()


# ----------------------------------------------------------------------------- encode

COMMAND_IDENTS = st.one_of(st.none(), HOSTILE_SEGMENTS, st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True))
COMMAND_VALUES = st.one_of(
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
    st.sampled_from([0, 100, 100.0001, -0.0, 50.5]), st.text(max_size=5),
)


def _check_publishes(driver: Driver, cmd: Command, pubs: object) -> None:
    assert isinstance(pubs, list), f"{driver.name}: encode returned {type(pubs).__name__}"
    for p in pubs:
        assert type(p) is Publish, p
        assert p.retain is False, f"{driver.name}: retained command {p}"
        assert p.qos in (0, 1, 2), p
        assert p.topic and "+" not in p.topic and "#" not in p.topic and "\x00" not in p.topic, p.topic
        assert not p.topic.startswith("$"), p.topic
        assert cmd.device in p.topic.split("/"), f"{driver.name}: {p.topic!r} does not name {cmd.device!r}"
        assert isinstance(p.payload, bytes)


@pytest.mark.parametrize("name", NAMES)
def test_encode_never_retains_nor_wildcards(name: str) -> None:
    driver = _instance(name, DRIVERS[name])

    @FUZZ
    @seed(0)
    @given(device=COMMAND_IDENTS, zone=COMMAND_IDENTS, channel=COMMAND_IDENTS,
           action=st.sampled_from(["set_level", "switch", "reboot", ""]), value=COMMAND_VALUES)
    def prop(device: str | None, zone: str | None, channel: str | None, action: str, value: Any) -> None:
        cmd = Command(device or "", action, value, zone, channel)  # type: ignore[arg-type]
        try:
            pubs = driver.encode(cmd)
        except DriverError:
            return
        _check_publishes(driver, cmd, pubs)

    prop()
