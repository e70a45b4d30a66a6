"""Line protocol: escaping, typing, refusals, and a round trip through the real InfluxDB."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import Event, Reading
from supervisor.storage import (
    InfluxV1Sink,
    LineProtocolError,
    event_line,
    parse_line,
    point_line,
    reading_line,
)
from supervisor.storage.schema import ms, reading_point
from tests.support.services import INFLUX_URL, Influx

TS = 1_764_115_200_000


def test_reading_typed_by_schema_and_sorted_tags() -> None:
    r = Reading("cab-1", "lighting", {"level": 70, "lamps": 24.0, "on": True, "power": 1.5}, zone="north",
                channel="2")
    assert reading_line(r, TS) == (
        b"lighting,channel=2,device=cab-1,zone=north level=70.0,lamps=24i,on=true,power=1.5 1764115200000"
    )


def test_reading_without_zone_and_unknown_measures_typed_by_python_type() -> None:
    r = Reading("d", "traffic", {"flow": 1, "extra_i": 7, "extra_b": False, "extra_s": "x", "extra_f": 2.5})
    assert reading_line(r, 1) == (
        b'traffic,device=d flow=1.0,extra_i=7i,extra_b=false,extra_s="x",extra_f=2.5 1'
    )


def test_unknown_family_typed_by_python_type() -> None:
    assert reading_line(Reading("d", "noise", {"db": 61, "ok": True}), 5) == b"noise,device=d db=61i,ok=true 5"


def test_escaping_of_names_tags_and_strings() -> None:
    r = Reading("a b,c=d", "water", {"alarms": 'LEAK,"x" \\ y', "we ird=k,ey": 1.0}, zone="z 1")
    line = reading_line(r, 3)
    assert line == (
        b'water,device=a\\ b\\,c\\=d,zone=z\\ 1 alarms="LEAK,\\"x\\" \\\\ y",we\\ ird\\=k\\,ey=1.0 3'
    )
    p = parse_line(line)
    assert p.tags == {"device": "a b,c=d", "zone": "z 1"}
    assert p.fields == {"alarms": 'LEAK,"x" \\ y', "we ird=k,ey": 1.0}
    assert p.ts_ms == 3


def test_measurement_escaping() -> None:
    assert point_line("my meas,x", {}, {"v": 1}, 1) == b"my\\ meas\\,x v=1i 1"
    assert parse_line(b"my\\ meas\\,x v=1i 1").measurement == "my meas,x"


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (Reading("a\nb", "traffic", {"flow": 1.0}), "bad_tag"),
        (Reading("a\\", "traffic", {"flow": 1.0}), "bad_tag"),
        (Reading("", "traffic", {"flow": 1.0}), "bad_tag"),
        (Reading("d", "traffic", {"flow": 1.0}, zone=""), "bad_tag"),
        (Reading("d", "traffic", {}), "no_fields"),
        (Reading("d", "traffic", {"flow": math.nan}), "bad_value"),
        (Reading("d", "traffic", {"flow": math.inf}), "bad_value"),
        (Reading("d", "traffic", {"flow": "fast"}), "bad_value"),
        (Reading("d", "traffic", {"count": 1.5}), "bad_value"),
        (Reading("d", "traffic", {"x": 2**63}), "bad_value"),
        (Reading("d", "lighting", {"on": 1}), "bad_value"),
        (Reading("d", "water", {"alarms": "A\nB"}), "bad_value"),
        (Reading("d", "water", {"alarms": "A\rB"}), "bad_value"),
        (Reading("d", "water", {"time": 1.0}), "bad_name"),
        (Reading("d", "#comment", {"x": 1.0}), "bad_name"),
        (Reading("d", "traffic", {"a\nb": 1.0}), "bad_name"),
    ],
)
def test_refused_inputs_raise_specific_error(reading: Reading, reason: str) -> None:
    with pytest.raises(LineProtocolError) as info:
        reading_line(reading, 1)
    assert info.value.reason == reason


def test_int_kind_accepts_integral_float_and_bool_is_not_a_number() -> None:
    assert reading_line(Reading("d", "traffic", {"count": 12.0}), 1).endswith(b"count=12i 1")
    with pytest.raises(LineProtocolError):
        reading_line(Reading("d", "traffic", {"flow": True}), 1)


def test_event_line() -> None:
    e = Event("cam-1", "cctv", "motion", zone="z", data={"score": 0.87, "label": 'a "b"'})
    line = event_line(e, 9)
    assert line == (
        b'events,device=cam-1,family=cctv,kind=motion,zone=z value=1i,'
        b'data="{\\"label\\":\\"a \\\\\\"b\\\\\\"\\",\\"score\\":0.87}" 9'
    )
    p = parse_line(line)
    assert p.fields["data"] == '{"label":"a \\"b\\"","score":0.87}'


def test_point_line_sorts_tags_and_types_fields() -> None:
    line = point_line("device_status", {"zone": "z", "family": "cctv", "device": "c"},
                      {"status": "stale", "code": 1}, 42)
    assert line == b'device_status,device=c,family=cctv,zone=z status="stale",code=1i 42'
    with pytest.raises(LineProtocolError):
        point_line("m", {"time": "x"}, {"v": 1}, 1)
    with pytest.raises(LineProtocolError):
        point_line("m", {}, {}, 1)


def test_reading_points_truncate_milliseconds_and_refuse_non_finite_values() -> None:
    """The production formatter (the pipeline's): stored milliseconds are truncated, never rounded."""
    assert reading_point(Reading("a", "traffic", {"flow": 1.0}), 1.2346) == b"traffic,device=a flow=1.0 1234"
    assert ms(1.2349) == 1234
    with pytest.raises(LineProtocolError) as exc:
        reading_point(Reading("b", "traffic", {"flow": math.nan}), 1.0)
    assert exc.value.reason == "bad_value"


def test_series_cache_does_not_mix_devices() -> None:
    lines = [reading_line(Reading(f"d{i % 3}", "traffic", {"flow": float(i)}, zone=f"z{i % 2}"), i)
             for i in range(12)]
    for i, line in enumerate(lines):
        p = parse_line(line)
        assert p.tags == {"device": f"d{i % 3}", "zone": f"z{i % 2}"}


# -- property tests --------------------------------------------------------------------------------

_tag_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\", blacklist_categories=("Cs",)), min_size=1, max_size=30
)
_str_value = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(device=_tag_text, zone=_tag_text, s=_str_value,
       f=st.floats(allow_nan=False, allow_infinity=False), i=st.integers(-(2**63), 2**63 - 1))
def test_parse_round_trip(device: str, zone: str, s: str, f: float, i: int) -> None:
    line = reading_line(Reading(device, "water", {"alarms": s, "flow": f, "n": i}, zone=zone), 5)
    assert line.count(b"\n") == 0
    p = parse_line(line)
    assert p.measurement == "water"
    assert p.tags == {"device": device, "zone": zone}
    assert p.fields == {"alarms": s, "flow": f, "n": i}


@pytest.mark.integration
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=_tag_text, s=_str_value, f=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_trip_through_real_influxdb(influx_db: str, influx: Influx, device: str, s: str, f: float) -> None:
    """Whatever the device id and string value, InfluxDB stores exactly what we meant."""
    ts = next(_TS_COUNTER)
    sink = InfluxV1Sink(INFLUX_URL, influx_db, gzip=True, create_database=False)
    try:
        sink.write(reading_line(Reading(device, "water", {"alarms": s, "flow": f}, zone="z"), ts), 1)
    finally:
        sink.close()
    series = influx.series(f'SELECT "alarms", "flow", "device" FROM "water" WHERE time = {ts}ms', influx_db)
    assert len(series) == 1
    rows = series[0]["values"]
    assert len(rows) == 1
    got_ts, got_s, got_f, got_device = rows[0]
    # InfluxDB's JSON prints large integral floats without a decimal point: compare as floats
    assert (got_ts, got_s, float(got_f), got_device) == (ts, s, f, device)


_TS_COUNTER = itertools.count(TS)
