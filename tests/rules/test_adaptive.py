"""Adaptive lighting: traffic on a street sets its lamps, with hold, ramp, hysteresis and fail-safe."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.rules._city import ADAPTIVE, SCHEDULE, Harness, harness, local

START = local(2025, 1, 15, 19, 0)  # winter evening in Paris: night, profile 100 %
RULES = "rules:" + SCHEDULE + ADAPTIVE


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    h = harness(tmp_path, RULES, START)
    h.tick()
    return h


def sensors_of(h: Harness, street: str) -> list[str]:
    return sorted(d.id for d in h.topo.devices.values() if d.kind == "road_sensor" and d.street == street)


def lamps(h: Harness) -> tuple[list[str], list[str]]:
    along = h.topo.lights_along("st-0001", 25.0)
    others = sorted(d.id for d in h.topo.devices.values() if d.kind == "lamp" and d.id not in along)
    return along, others


def levels(h: Harness, devices: list[str]) -> set[float | None]:
    return {h.level(d) for d in devices}


def test_schedule_lights_everything_at_night(h: Harness) -> None:
    along, others = lamps(h)
    assert along and others
    assert levels(h, along + others) == {100.0}
    assert {c.device for c in h.sink.sent} == set(along + others)


def test_low_traffic_dims_only_its_street_after_hold_within_ramp(h: Harness) -> None:
    along, others = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(200, sensors=s1, flow=50.0)
    assert levels(h, along) == {100.0}, "dimming must wait for the hold time"
    h.run(170, sensors=s1, flow=50.0)  # hold (300 s) over ~60 s ago: ramp 20 %/min
    (lv,) = levels(h, along)
    assert lv is not None and 75.0 <= lv <= 90.0
    h.run(300, sensors=s1, flow=50.0)
    assert levels(h, along) == {30.0}
    assert levels(h, others) == {100.0}
    # the level never dropped below the minimum nor jumped faster than the ramp allows
    seq = [d for d in h.decisions if d.device == along[0]]
    assert min(d.output for d in seq) >= 30.0
    for a, b in itertools.pairwise(seq):
        if b.rule == "traffic-dims-lights" and a.rule == "traffic-dims-lights":
            assert abs(b.output - a.output) <= 20.0 / 60.0 * (b.ts - a.ts) + 5.0 + 1e-6


def test_rising_traffic_raises_immediately_but_ramped(h: Harness) -> None:
    along, others = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    assert levels(h, along) == {30.0}
    h.run(60, sensors=s1, flow=1200.0)
    (lv,) = levels(h, along)
    assert lv is not None and 40.0 <= lv <= 55.0, "raise starts at once, limited by the ramp"
    h.run(240, sensors=s1, flow=1200.0)
    assert levels(h, along) == {100.0}
    assert levels(h, others) == {100.0}


def test_hysteresis_band_keeps_class(h: Harness) -> None:
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=450.0)  # M4
    assert levels(h, along) == {75.0}
    h.run(700, sensors=s1, flow=380.0)  # below 400 but within the 50 veh/h band
    assert levels(h, along) == {75.0}
    h.run(700, sensors=s1, flow=340.0)  # out of the band: M5
    assert levels(h, along) == {50.0}


def test_stale_sensor_falls_back_to_schedule_level(h: Harness) -> None:
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    assert levels(h, along) == {30.0}
    h.run(120)  # silent for 2 intervals: still trusted
    assert levels(h, along) == {30.0}
    h.run(120)  # beyond 3 x 60 s: fail-safe
    assert levels(h, along) == {100.0}
    last = h.engine.why(along[0])[-1]
    assert last.rule == "night"
    assert "sensor stale" in last.text and "fail-safe" in last.text


def test_stale_after_midnight_uses_the_profile_level(tmp_path: Path) -> None:
    h = harness(tmp_path, RULES, local(2025, 1, 16, 1, 0))
    h.tick()
    along, _ = lamps(h)
    assert levels(h, along) == {50.0}
    s1 = sensors_of(h, "st-0001")
    h.run(900, sensors=s1, flow=1500.0)
    assert levels(h, along) == {100.0}
    h.run(300)
    assert levels(h, along) == {50.0}, "stale sensor: schedule level, never dark"


def test_daytime_is_left_to_the_schedule(tmp_path: Path) -> None:
    h = harness(tmp_path, RULES, local(2025, 1, 15, 12, 0))
    h.tick()
    along, _ = lamps(h)
    h.run(900, sensors=sensors_of(h, "st-0001"), flow=1500.0)
    assert levels(h, along) == {0.0}


def test_decision_explains_the_level(h: Harness) -> None:
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(400, sensors=s1, flow=420.0)
    h.run(1000, sensors=s1, flow=20.0)  # below M5 minus the band: M6
    history = h.engine.why(along[0])
    texts = [d.text for d in history]
    assert any("flow 420 veh/h on st-0001 (sensor " in t and "→ class M4 (75 %) → 75 %" in t for t in texts)
    assert any("ramp limited from" in t for t in texts)
    last = history[-1]
    assert last.text.startswith(f"{along[0]} at 30 %: adaptive_lighting 'traffic-dims-lights'")
    assert last.inputs["street"] == "st-0001" and last.inputs["flow"] == 20.0
    point = last.as_point()
    assert point.measurement == "decisions"
    assert point.tags == {"rule": "traffic-dims-lights", "device": along[0], "zone": last.zone}
    assert point.fields["output"] == 30.0 and '"flow":20.0' in str(point.fields["inputs"])


def test_bad_flow_is_counted_not_raised(h: Harness) -> None:
    from drivers import Reading

    s1 = sensors_of(h, "st-0001")
    h.engine.on_readings([Reading(s1[0], "traffic", {"flow": "lots"}), Reading(s1[0], "traffic", {"flow": -3.0})],
                         h.now)
    assert h.engine.errors == {"traffic-dims-lights:bad_type": 1, "traffic-dims-lights:out_of_range": 1}


def test_a_new_flow_class_is_commanded_within_the_batch_not_at_the_next_tick(tmp_path: Path) -> None:
    fast = ADAPTIVE.replace("hold_s: 300", "hold_s: 0").replace("ramp_pct_per_min: 20", "ramp_pct_per_min: 6000")
    h = harness(tmp_path, "rules:" + SCHEDULE + fast, START)
    h.tick()
    along, others = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    assert levels(h, along) == {30.0}
    sent = len(h.sink.sent)
    h.clock.advance(1.0)
    h.flow(s1, 1200.0)  # no tick after it: the rule reacts to the readings themselves
    new = h.sink.sent[sent:]
    assert {c.device for c in new} == set(along), "only the lamps of the sensor's street are commanded"
    assert {float(c.value) for c in new} == {100.0} and levels(h, along) == {100.0}
    assert levels(h, others) == {100.0}
    h.flow(s1, 1200.0)  # the same class again: nothing to say
    assert len(h.sink.sent) == sent + len(new)


def test_a_ramped_move_sends_its_first_step_at_once(h: Harness) -> None:
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    assert levels(h, along) == {30.0}
    sent = len(h.sink.sent)
    h.clock.advance(0.5)
    h.flow(s1, 1200.0)  # at 20 %/min a 5 % step would otherwise wait 15 s
    first = h.sink.sent[sent:]
    assert {c.device for c in first} == set(along) and {float(c.value) for c in first} == {35.0}
    h.run(30, sensors=s1, flow=1200.0, step=1.0)  # then the ramp: 20 %/min, 5 % steps
    (lv,) = levels(h, along)
    assert lv is not None and 40.0 <= lv <= 45.0


def test_a_reversal_mid_ramp_is_commanded_at_once(tmp_path: Path) -> None:
    nohold = ADAPTIVE.replace("hold_s: 300", "hold_s: 0")
    h = harness(tmp_path, "rules:" + SCHEDULE + nohold, START)
    h.tick()
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    h.clock.advance(1.0)
    h.flow(s1, 1200.0)
    assert levels(h, along) == {35.0}
    h.run(10, sensors=s1, flow=1200.0, step=1.0)  # ramping up: 3.3 % more, not yet a 5 % step
    assert levels(h, along) == {35.0}
    sent = len(h.sink.sent)
    h.flow(s1, 0.0)  # traffic drops again (below the hysteresis band): the ramp turns back at once
    assert {float(c.value) for c in h.sink.sent[sent:]} == {30.0}


def test_a_report_that_keeps_the_target_leaves_the_ramp_to_the_ticks(tmp_path: Path) -> None:
    """During a ramp, sensor reports of the same class send nothing; the ticks move the ramp."""
    nohold = ADAPTIVE.replace("hold_s: 300", "hold_s: 0")
    h = harness(tmp_path, "rules:" + SCHEDULE + nohold, START)
    h.tick()
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(700, sensors=s1, flow=50.0)
    h.clock.advance(1.0)
    h.flow(s1, 1200.0)  # a new class: its first step at once
    assert levels(h, along) == {35.0}
    sent = len(h.sink.sent)
    for _ in range(40):  # 40 reports over 20 s, each far past a 5 % step of a 20 %/min ramp
        h.clock.advance(0.5)
        h.flow(s1, 1200.0)
    assert len(h.sink.sent) == sent, "the same target again: the ramp waits for the tick"
    h.tick()  # the tick moves the ramp by the time since the street's last tick, in one step
    (lv,) = levels(h, along)
    assert lv is not None and 35.0 + 20.0 / 60.0 * 20.0 - 1e-6 <= lv <= 35.0 + 20.0 / 60.0 * 21.0 + 1e-6
    assert {c.device for c in h.sink.sent[sent:]} == set(along)


def test_a_tick_past_its_deadline_goes_on_where_it_stopped(tmp_path: Path) -> None:
    """``RuleEngine.tick(now, deadline)``: a long walk over the streets is cut into passes; the next
    call finishes it (nothing skipped, nothing twice), then a new walk starts."""
    nohold = ADAPTIVE.replace("hold_s: 300", "hold_s: 0")
    h = harness(tmp_path, "rules:" + SCHEDULE + nohold, START)
    h.tick()
    streets = sorted({d.street for d in h.topo.devices.values() if d.kind == "road_sensor" and d.street})
    sensors = [s for st in streets for s in sensors_of(h, st)]
    h.run(700, sensors=sensors, flow=50.0)  # every street dimmed to 30 %
    rule = next(r for r in h.engine._rules.values() if r.kind == "adaptive_lighting")
    walked = len(rule.streets)  # type: ignore[attr-defined]
    assert walked >= 3, "the city must have streets enough for a cut"
    h.clock.advance(30.0)
    h.flow(sensors, 1200.0)  # all streets turn up: their first steps at once
    h.clock.advance(20.0)  # 6.7 % of ramp (20 %/min): past a 5 % step on every street
    sent = len(h.sink.sent)
    passes = 0
    while True:
        passes += 1
        before = len(h.sink.sent)
        done = h.engine.tick(h.now, deadline=0.0)  # a deadline already past: one street per pass
        assert len(h.sink.sent) > before, "each pass moves a street's ramp"
        if done:
            break
        assert passes < walked, "the walk must end"
    assert passes == walked
    ticked = [c.device for c in h.sink.sent[sent:]]
    lamps_on_streets = {a for st in rule.streets for a, _ in st.lights}  # type: ignore[attr-defined]
    assert set(ticked) == lamps_on_streets, "every street's lamps got their ramp step"
    assert len(ticked) == len(set(ticked)), "no street twice in one walk"
    h.clock.advance(20.0)
    before = len(h.sink.sent)
    assert h.engine.tick(h.now) is True, "without a deadline a walk is whole"
    assert {c.device for c in h.sink.sent[before:]} == lamps_on_streets


@pytest.mark.parametrize("interval", [0.25, 0.0])
def test_a_fast_ramp_steps_at_most_every_step_interval(tmp_path: Path, interval: float) -> None:
    """``step_interval_s``: at the engine's 50 ms ticks a 100 %/s ramp in 1 % steps would command each
    lamp at every tick; it steps at most every ``step_interval_s`` and still arrives on time."""
    fast = (ADAPTIVE.replace("hold_s: 300", "hold_s: 0").replace("ramp_pct_per_min: 20", "ramp_pct_per_min: 6000")
            .replace("step_pct: 5", f"step_pct: 1\n    step_interval_s: {interval}"))
    h = harness(tmp_path, "rules:" + SCHEDULE + fast, START)
    h.tick()
    along, _ = lamps(h)
    s1 = sensors_of(h, "st-0001")
    h.run(5, sensors=s1, flow=50.0, step=0.05)
    assert levels(h, along) == {30.0}
    h.clock.advance(0.05)
    h.flow(s1, 1200.0)  # M6 -> M3: 30 -> 100 % at 100 %/s, its first step at once
    (first,) = levels(h, along)
    assert first is not None and 31.0 <= first <= 30.0 + 100.0 * (0.05 + interval) + 1e-6
    lamp = along[0]
    start, times = h.now, [h.now]
    for _ in range(20):  # twenty ticks, 50 ms apart, the sensor reporting the same class at each
        before = len(h.sink.sent)
        h.clock.advance(0.05)
        h.flow(s1, 1200.0)
        h.tick()
        times += [h.now for c in h.sink.sent[before:] if c.device == lamp]
    assert levels(h, along) == {100.0}, "the ramp arrives"
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    if interval:
        assert min(gaps) >= interval - 1e-6, gaps
        assert len(times) <= 2 + 0.7 / interval, times
        assert times[-1] - start <= 0.7 + interval + 1e-6, "late by one interval at most"
    else:
        assert len(times) >= 14, "every tick steps when the interval is 0"
