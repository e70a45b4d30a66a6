"""The control lane, without a broker: the inbox's two sides, the writer that never blocks a
reaction, and the two pipelines (lane: state and rules, no storage; bulk: storage, and state and
rules only for the topics the lane does not carry)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules import Decision, load_rules
from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.ingest.mqtt import Inbox
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from supervisor.storage import SqliteSink
from supervisor.storage.writer import BatchWriter
from tests.rules._city import MOTION_LIGHTS, write_rules

RULES = MOTION_LIGHTS


def _msgs(topic: str, n: int, start: int = 0) -> list[tuple[str, bytes, int, int, float]]:
    return [(topic, b"x", start + i, 1, float(start + i)) for i in range(n)]


def test_take_lanes_hands_the_lane_over_whole_before_a_bulk_slice() -> None:
    box = Inbox(max_items=1000)
    box.put_many(_msgs("bulk", 700))
    box.lane.put_many(_msgs("lane", 3, 1000))
    lane, bulk = box.take_lanes(5000, 500)
    assert [m[2] for m in lane] == [1000, 1001, 1002] and [m[2] for m in bulk] == list(range(500))
    assert box.depths()[:2] == (0, 200)
    lane, bulk = box.take_lanes(5000, 500, bulk=False)  # the writer is full: the bulk waits
    assert lane == bulk == [] and len(box) == 200
    box.lane.put(("lane", b"x", 9, 1, 9.0))
    lane, bulk = box.take_lanes(2, 500)
    assert [m[2] for m in lane] == [9] and len(bulk) == 1, "the batch limit counts both sides"


def test_a_lane_message_wakes_a_consumer_that_cannot_take_bulk() -> None:
    box = Inbox(max_items=10)
    box.put_many(_msgs("bulk", 10))
    threading.Timer(0.05, lambda: box.lane.put(("lane", b"x", 1, 1, 0.0))).start()
    t0 = time.monotonic()
    lane, bulk = box.take_lanes(100, 100, timeout=5.0, bulk=False)
    assert len(lane) == 1 and bulk == [] and time.monotonic() - t0 < 2.0


def test_a_reaction_never_waits_for_a_full_writer_and_is_never_dropped(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "w.sqlite3")
    writer = BatchWriter(sink, batch_size=10, max_pending=20, flush_interval=0.05)
    writer.submit([b"m,device=a v=1 %d" % i for i in range(20)])  # not started: the queue is full
    assert not writer.has_room(1)
    with pytest.raises(TimeoutError):
        writer.submit([b"m,device=b v=1 1"], timeout=0.05)
    t0 = time.monotonic()
    writer.submit([b"m,device=c v=1 %d" % i for i in range(5)], block=False)
    assert time.monotonic() - t0 < 0.05 and writer.overshoot == 5
    writer.start()
    assert writer.flush(10.0) and writer.stop()
    assert writer.stats().points_written == 25


@pytest.fixture(scope="module")
def model() -> CityModel:
    return city_from_dict(generate_city(seed=4, devices=120))


def _sup(tmp_path: Path, model: CityModel) -> Supervisor:
    settings = load_settings(None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
                             storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3")})
    write_rules(tmp_path / "rules", RULES)
    return Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))


def _camera_with_lamps(sup: Supervisor, model: CityModel) -> tuple[str, str, set[str]]:
    for cam in sorted(d for d, i in model.devices.items() if i.kind == "camera"):
        info = model.devices[cam]
        lamps = set(model.devices_within(info.lon, info.lat, 80.0, family="lighting", kind="lamp"))
        if lamps:
            return cam, f"city/{info.zone}/cctv/{cam}/event", lamps
    raise AssertionError("no camera with lamps")


def _event(topic: str, mid: int) -> tuple[str, bytes, int, int, float]:
    now = time.time()
    return topic, orjson.dumps({"type": "motion", "ts": now, "score": 0.9}), mid, 1, now


def test_the_bulk_path_stores_what_the_lane_carries_and_leaves_it_the_rules(tmp_path: Path,
                                                                             model: CityModel) -> None:
    sup = _sup(tmp_path, model)
    engine = sup.rules
    assert engine is not None
    cam, topic, lamps = _camera_with_lamps(sup, model)
    assert cam in sup.lane.devices and lamps <= sup.lane.devices
    sup.writer.start()
    # first sight, on the bulk path: stored, reacted to, and the lane session asks for the topic
    sup.pipeline.process([_event(topic, 1)])
    assert {engine.level(x) for x in lamps} == {90.0}
    sup.lane.subscribe_learned(time.monotonic())  # the pipeline thread's next iteration
    assert topic in sup.lane.mqtt.subscriptions and sup.lane.active_topics() == frozenset()
    # the broker granted the subscription and the lane session is up: the bulk copy is only stored
    sup.lane._granted_now([topic])
    sup.lane.mqtt.stats.connected = True
    assert sup.lane.active_topics() == {topic}
    acked: list[list[tuple[int, int]]] = []
    sup.lane_pipeline.ack = acked.append
    decisions = engine.decisions
    sup.pipeline.process([_event(topic, 2)])
    assert engine.decisions == decisions, "the bulk copy does not feed the rules"
    # the lane copy feeds the rules, stores nothing and is acknowledged at once
    points = sup.pipeline.counters.points
    sup.lane_pipeline.process([_event(topic, 3)])
    assert engine.decisions > decisions and {engine.level(x) for x in lamps} == {90.0}
    assert acked == [[(3, 1)]] and sup.lane_pipeline.counters.points == 0
    assert sup.pipeline.counters.points == points
    p50, p99, n = sup.lane.latency.quantiles(time.time())
    assert n == 1 and 0 <= p50 <= p99 < 5000
    fields = sup.lane_fields()
    assert fields["lane_received"] == 1 and fields["lane_topics"] == 1 and fields["reaction_p99_ms"] == round(p99, 2)
    # the lane session lost: the bulk path takes the rules back
    sup.lane.mqtt.stats.connected = False
    assert sup.lane.active_topics() == frozenset()
    sup.writer.stop()


def test_a_reload_without_the_rule_empties_the_lane(tmp_path: Path, model: CityModel) -> None:
    sup = _sup(tmp_path, model)
    _cam, topic, _lamps = _camera_with_lamps(sup, model)
    sup.pipeline.process([_event(topic, 1)])
    sup.lane.subscribe_learned(time.monotonic())
    assert topic in sup.lane.mqtt.subscriptions
    write_rules(tmp_path / "empty", "rules: []\n")
    assert sup.rules is not None and sup.rules.reload(tmp_path / "empty").ok
    assert sup.lane.devices == frozenset() and topic not in sup.lane.mqtt.subscriptions


def test_a_bulk_slice_past_the_writers_room_is_queued_without_holding_the_pipeline_thread(
        tmp_path: Path, model: CityModel) -> None:
    """``has_room`` counts messages and a slice makes more lines: the loop's bulk pipeline queues the
    rest anyway (the thread also runs the lane), the overshoot is counted, and nothing is lost."""
    sup = _sup(tmp_path, model)
    _cam, topic, _lamps = _camera_with_lamps(sup, model)
    w = sup.writer
    room = w._max_pending - 1
    w.submit([b"m,device=x v=1 %d" % i for i in range(room)])  # not started: one line of room left
    assert w.has_room(1) and not w.has_room(2)
    t0 = time.monotonic()
    sup.pipeline.process([_event(topic, 1), _event(topic, 2), _event(topic, 3)])  # three lines
    assert time.monotonic() - t0 < 1.0, "the bulk slice waited for the writer"
    assert sup.pipeline.slices_past_room == 1 and w.overshoot >= 2  # (the reaction's points went past too)
    w.start()
    assert w.flush(30.0) and w.stop()
    st = w.stats()  # everything written: the filler, the slice's 3 lines, the reaction's decisions and commands
    assert st.pending == 0 and st.unsaved == 0 and st.points_written > room + sup.pipeline.counters.points == room + 3


def test_commands_go_out_on_the_lane_session_while_it_is_connected(tmp_path: Path, model: CityModel) -> None:
    sup = _sup(tmp_path, model)
    publish = sup.commands.mqtt.publish
    publish("city/z1/lighting/l1/cmd", b'{"level": 50}', 1)
    assert sup.mqtt.stats.published == 1 and sup.lane.mqtt.stats.published == 0  # the lane is down: bulk
    sup.lane.mqtt.stats.connected = True
    publish("city/z1/lighting/l1/cmd", b'{"level": 60}', 1)
    assert sup.lane.mqtt.stats.published == 1  # the lane session sent it...
    assert sup.mqtt.stats.published == 2  # ...and mqtt_published_total still counts every command
    sup.lane.enabled = False  # mqtt.lane: false (or a shared subscription)
    publish("city/z1/lighting/l1/cmd", b'{"level": 70}', 1)
    assert sup.mqtt.stats.published == 3 and sup.lane.mqtt.stats.published == 1


def test_a_slow_iteration_keeps_the_periodic_work_parts_read_only_then(tmp_path: Path, model: CityModel) -> None:
    from supervisor.ingest.lane import LoopWatch

    sup = _sup(tmp_path, model)
    sup.periodic.run()
    asked: list[int] = []

    def parts() -> dict[str, float]:
        asked.append(1)
        return sup.periodic.last_parts()

    watch = LoopWatch()
    t0 = time.perf_counter()
    watch.note(t0, t0, t0, t0 + 0.001, 1, 1, None, parts)  # 1 ms: not slow, parts not read
    assert asked == []
    watch.note(t0, t0, t0, t0 + 0.05, 1, 1, None, parts)
    kept = watch.report()["slowest"]
    assert isinstance(kept, list) and len(kept) == 1
    slow: dict[str, float] = kept[0]
    assert asked == [1] and {"tick_ms", "check_ms", "save_health_ms"} <= set(slow)
    assert all(slow[k] >= 0.0 for k in ("tick_ms", "check_ms", "save_health_ms"))


def test_the_loop_watch_keeps_the_slowest_iterations_in_time_order_and_the_collections() -> None:
    import gc

    from supervisor.ingest.lane import SLOW_LOOP_MS, LoopWatch

    watch = LoopWatch()
    base = time.perf_counter()
    for i in range(60):  # iteration i lasts i ms
        t0 = base + i
        watch.note(t0, t0 + i / 3000.0, t0 + 2 * i / 3000.0, t0 + i / 1000.0, 1, 500)
    report = watch.report()
    slow = report["slowest"]
    assert isinstance(slow, list) and len(slow) == 20
    assert sorted(round(d["ms"]) for d in slow) == list(range(40, 60))  # the 20 slowest, all >= 20 ms
    assert [d["at"] for d in slow] == sorted(d["at"] for d in slow)
    assert report["iterations"] == 60 and report["max_ms"] == 59.0 and min(d["ms"] for d in slow) >= SLOW_LOOP_MS
    watch.watch_gc()
    try:
        gc.collect()
    finally:
        watch.unwatch_gc()
    assert watch.gc_collections >= 1
    n = watch.gc_collections
    gc.collect()
    assert watch.gc_collections == n  # unwatched


def test_the_bulk_slice_shrinks_when_a_message_costs_more_and_grows_back() -> None:
    from supervisor.ingest.lane import BULK_SLICE, MIN_SLICE, SLICE_BUDGET_S, SliceSize

    s = SliceSize()
    assert s.size == BULK_SLICE
    cheap = SLICE_BUDGET_S / BULK_SLICE / 2  # half the budget's share: a whole slice fits
    assert s.took(500, 500 * cheap) == BULK_SLICE
    for _ in range(30):
        s.took(s.size, s.size * 80e-6)  # a loaded machine: 80 us a message
    fit = SLICE_BUDGET_S / 80e-6
    assert s.size == round(SLICE_BUDGET_S / s.per_message) and 0.9 * fit <= s.size <= 1.1 * fit
    for _ in range(30):
        s.took(s.size, s.size * 1e-3)
    assert s.size == MIN_SLICE  # never below the floor (the drain must go on)
    for _ in range(60):
        s.took(s.size, s.size * 2e-6)
    assert s.size == BULK_SLICE
    assert s.took(0, 1.0) == BULK_SLICE  # an empty slice says nothing


def test_the_reaction_latency_histogram_is_within_its_bucket_and_forgets_after_a_minute() -> None:
    import random

    from supervisor.ingest.lane import ReactionLatency

    r = ReactionLatency()
    now = 1_000_000.0
    assert r.quantiles(now) == (0.0, 0.0, 0)
    rng = random.Random(3)
    samples = sorted(rng.uniform(0.5, 40.0) for _ in range(10_000))
    r.add((now - ms / 1000.0 for ms in samples), now)
    p50, p99, n = r.quantiles(now)
    true50, true99 = samples[4999], samples[9899]
    assert n == 10_000
    assert true50 <= p50 <= true50 * 1.051 and true99 <= p99 <= true99 * 1.051
    r.add([now + 30.0 - 0.002], now + 30.0)  # 2 ms, half a minute later
    assert r.quantiles(now + 30.0)[2] == 10_001
    p50, p99, n = r.quantiles(now + 62.0)  # the first second left the window
    assert n == 1 and 2.0 <= p50 == p99 <= 2.0 * 1.051
    assert r.quantiles(now + 200.0) == (0.0, 0.0, 0)


def test_a_topic_an_override_names_is_left_to_the_lane_from_its_first_message(tmp_path: Path,
                                                                              model: CityModel) -> None:
    """With ``mqtt.lane_topics`` the lane session has a camera's events from the first one: the bulk
    copy of that first event is stored only (it used to be fed to the rules too: two reactions)."""
    settings = load_settings(None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
                             mqtt={"lane_topics": ["city/+/cctv/+/event"]},
                             storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3")})
    write_rules(tmp_path / "rules", RULES)
    sup = Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))
    engine = sup.rules
    assert engine is not None
    _cam, topic, lamps = _camera_with_lamps(sup, model)
    sup.lane._granted_now(["city/+/cctv/+/event"])
    sup.lane.mqtt.stats.connected = True
    sup.writer.start()
    decisions = engine.decisions
    sup.pipeline.process([_event(topic, 1)])
    assert sup.pipeline.counters.points == 1 and engine.decisions == decisions
    assert {engine.level(x) for x in lamps} != {90.0}
    sup.lane_pipeline.process([_event(topic, 1)])  # the lane's copy reacts, once
    assert engine.decisions > decisions and {engine.level(x) for x in lamps} == {90.0}
    sup.writer.stop()


def test_the_lane_is_ready_once_connected_and_its_override_filters_granted(tmp_path: Path,
                                                                         model: CityModel) -> None:
    """``lane_ready`` in the summary: an event published between the lane's connection and the grant
    of its filters reaches only the bulk session, behind its backlog (bench storm's first probe)."""
    settings = load_settings(None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
                             mqtt={"lane_topics": ["city/+/cctv/+/event"]},
                             storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3")})
    write_rules(tmp_path / "rules", RULES)
    sup = Supervisor(settings, model=model, rule_set=load_rules(tmp_path / "rules", model))
    assert not sup.lane.ready
    sup.lane.mqtt.stats.connected = True
    assert not sup.lane.ready and sup.summary()["mqtt"]["lane_connected"]
    sup.lane._granted_now(["city/+/cctv/+/event"])
    assert sup.lane.ready and sup.summary()["mqtt"]["lane_ready"]
    sup.lane.mqtt.stats.connected = False
    assert not sup.lane.ready


def test_the_lanes_inputs_go_before_its_confirmations_and_a_topic_that_changes_side_keeps_its_order() -> None:
    box = Inbox(max_items=1000)
    box.set_confirm_topics(frozenset({"lamp"}))
    box.put_many(_msgs("bulk", 50))
    box.lane.put_many(_msgs("lamp", 5) + _msgs("sensor", 2, 100) + _msgs("lamp", 5, 5))
    inputs, confirm, bulk = box.take_three(5000, 4, 10)
    assert [m[2] for m in inputs] == [100, 101], "a sensor reading never waits behind lamp reports"
    assert [m[2] for m in confirm] == [0, 1, 2, 3] and [m[2] for m in bulk] == list(range(10))
    assert box.depths()[0] == 6 and box.confirm_depth() == 6 and box.lane_waiting() is False
    # the plan changes: "lamp" is now an input; its 6 waiting reports go first, then its new ones
    box.set_confirm_topics(frozenset())
    box.lane.put_many(_msgs("lamp", 2, 200))
    inputs, confirm, _ = box.take_three(5000, 4, 0)
    assert [m[2] for m in inputs] == [4, 5, 6, 7, 8, 9, 200, 201] and confirm == []
    # take_lanes (the drain at stop) hands both over, inputs first
    box.set_confirm_topics(frozenset({"lamp"}))
    box.lane.put_many(_msgs("lamp", 1, 300) + _msgs("sensor", 1, 400))
    lane, _ = box.take_lanes(5000, 0)
    assert [m[2] for m in lane] == [400, 300]


def test_a_commanded_lamp_no_rule_reads_is_a_confirmation_and_its_latency_is_not_a_reaction(
        tmp_path: Path, model: CityModel) -> None:
    sup = _sup(tmp_path, model)
    assert sup.rules is not None
    plan = sup.rules.lane
    cam, cam_topic, lamps = _camera_with_lamps(sup, model)
    assert cam in plan.inputs and lamps <= plan.confirmations and not (plan.confirmations & plan.inputs)
    assert sup.lane.confirmations == plan.confirmations
    lamp = sorted(lamps)[0]
    lamp_topic = f"city/{model.devices[lamp].zone}/lighting/{lamp}/telemetry"
    sup.lane.learn(lamp_topic, [lamp])
    sup.lane.learn(cam_topic, [cam])
    assert sup.inbox.confirm_topics == frozenset({lamp_topic})
    sup.inbox.lane.put_many([(lamp_topic, b"{}", 1, 1, time.time() - 5.0), (cam_topic, b"{}", 2, 1, time.time())])
    inputs, confirm, _ = sup.inbox.take_three(100, 100, 0)
    assert [m[0] for m in inputs] == [cam_topic] and [m[0] for m in confirm] == [lamp_topic]
    sup.lane.reacted(confirm + inputs)
    _, p99, n = sup.lane.latency.quantiles(time.time())
    assert n == 1 and p99 < 1000, "the lamp report that waited 5 s is no reaction"
    (slowest,) = sup.lane.slowest
    assert slowest[3] == cam_topic and slowest[0] < 1000, "the slowest reactions name the input, not the lamp"
    old = time.time() - 2.0
    sup.lane.reacted([(cam_topic, b"{}", 3, 1, old)])
    worst = max(sup.lane.slowest)
    assert worst[0] >= 2000 and worst[2] == round(old, 3)


def test_commands_held_by_the_pipeline_thread_leave_together_and_other_threads_publish_at_once(
        tmp_path: Path, model: CityModel) -> None:
    sup = _sup(tmp_path, model)
    held = sup.command_publisher
    with held:
        held.publish("city/z1/lighting/l1/cmd", b'{"level": 50}', 1)
        held.publish("city/z1/lighting/l2/cmd", b'{"level": 50}', 1)
        other = threading.Thread(target=held.publish, args=("city/z1/lighting/l3/cmd", b'{"level": 9}', 1))
        other.start()
        other.join()
        assert sup.mqtt.stats.published == 1, "the API's command is not held by the pipeline's block"
    assert sup.mqtt.stats.published == 3, "the held commands left at the end of the block"
    with held:
        pass
    assert sup.mqtt.stats.published == 3


def test_a_stage_queues_its_points_in_one_submit_and_other_threads_at_once(tmp_path: Path,
                                                                          model: CityModel) -> None:
    """``Supervisor.stage``: the decisions and command states of a stage reach the writer in one
    submit at its end (with its commands); a point from another thread (the API's) goes at once."""
    sup = _sup(tmp_path, model)
    submits: list[list[bytes]] = []
    real = sup.writer.submit

    def spy(lines: list[bytes], *args: Any, **kw: Any) -> None:
        submits.append(list(lines))
        real(lines, *args, **kw)

    sup.writer.submit = spy  # type: ignore[method-assign]
    with sup.stage:
        sup._on_decision(Decision(1.0, "r", "dimming", "lamp-1", 50.0, "first"))
        sup._on_decision(Decision(1.0, "r", "dimming", "lamp-2", 50.0, "second"))
        sup.command_publisher.publish("city/z1/lighting/l1/cmd", b'{"level": 50}', 1)
        other = threading.Thread(target=sup._on_decision, args=(Decision(1.0, "api", "manual", "lamp-3", 9.0, "api"),))
        other.start()
        other.join()
        assert len(submits) == 1 and b"lamp-3" in submits[0][0], "another thread's point is not held"
        assert sup.mqtt.stats.published == 0
    assert len(submits) == 2 and len(submits[1]) == 2, "the stage's two points in one submit, at its end"
    assert [b"lamp-1" in submits[1][0], b"lamp-2" in submits[1][1]] == [True, True], "in their order"
    assert sup.mqtt.stats.published == 1, "and its command left with them"
    with sup.stage:
        pass
    assert len(submits) == 2, "an empty stage submits nothing"


def test_lane_inputs_go_in_chunks_whose_commands_leave_before_the_next_chunk(tmp_path: Path,
                                                                             model: CityModel) -> None:
    """A burst of lane inputs is processed ``LANE_CHUNK`` at a time: a reaction in the first chunk
    is published before the second chunk is processed, not after the whole burst."""
    from supervisor.service.supervisor import LANE_CHUNK

    sup = _sup(tmp_path, model)
    chunks: list[tuple[int, int]] = []  # (size, commands published before it was processed)

    def process(batch: list[Any]) -> None:
        chunks.append((len(batch), sup.mqtt.stats.published))
        if len(chunks) == 1:
            sup.command_publisher.publish("city/z1/lighting/l1/cmd", b'{"level": 100}', 1)

    sup.lane_pipeline.process = process  # type: ignore[method-assign]
    burst = [(f"city/z1/traffic/rs-{i}/telemetry", b"{}", i, 1, time.time()) for i in range(2 * LANE_CHUNK + 5)]
    sup._react(burst)
    assert [n for n, _ in chunks] == [LANE_CHUNK, LANE_CHUNK, 5]
    assert [p for _, p in chunks] == [0, 1, 1], "the first chunk's command left before the second chunk"


def test_a_rule_tick_past_its_slice_goes_on_at_the_next_pass_not_at_the_next_period(tmp_path: Path,
                                                                                    model: CityModel) -> None:
    """The loop gives a rule tick ``TICK_SLICE_S`` per pass: an unfinished tick is resumed at the very
    next pass (after the lane), not ``RULE_TICK`` later; a finished one waits for the next period."""
    from supervisor.service.periodic import RULE_TICK, TICK_SLICE_S

    sup = _sup(tmp_path, model)
    calls: list[float | None] = []

    class Walk:  # a rule engine whose tick takes three passes
        def tick(self, now: float, deadline: float | None = None) -> bool:
            calls.append(deadline)
            return len(calls) % 3 == 0

        def snapshot(self) -> dict[str, object]:  # the rule-state file's save
            return {}

    sup.periodic.rules = Walk()  # type: ignore[assignment]
    for _ in range(3):
        t0 = time.perf_counter()
        sup.periodic.run()
        assert calls[-1] is not None and t0 < calls[-1] <= time.perf_counter() + TICK_SLICE_S
    assert len(calls) == 3, "each pass resumed the unfinished tick"
    sup.periodic.run()
    assert len(calls) == 3, "a finished tick waits for the next period"
    time.sleep(RULE_TICK)
    sup.periodic.run()
    assert len(calls) == 4


def test_inputs_that_arrive_during_a_stage_are_taken_alone_before_the_next_one() -> None:
    """``take_inputs``: what the loop takes between its stages; the confirmations and the bulk stay."""
    box = Inbox(max_items=1000)
    box.set_confirm_topics(frozenset({"lamp"}))
    assert box.take_inputs(10) == [] and box.lane_waiting() is False
    box.put_many(_msgs("bulk", 5))
    box.lane.put_many(_msgs("lamp", 3) + _msgs("sensor", 4, 100))
    assert box.lane_waiting() is True
    assert [m[2] for m in box.take_inputs(3)] == [100, 101, 102], "in order, up to the limit"
    assert [m[2] for m in box.take_inputs(10)] == [103] and box.lane_waiting() is False
    assert box.confirm_depth() == 3 and box.depths()[:2] == (3, 5)


def test_learned_lane_topics_go_out_in_one_subscribe_per_interval_or_per_full_chunk(
        tmp_path: Path, model: CityModel, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.ingest import lane as lane_mod

    sup = _sup(tmp_path, model)
    sent: list[list[str]] = []
    monkeypatch.setattr(sup.lane.mqtt, "subscribe_more", lambda topics: sent.append(list(topics)))
    cam, cam_topic, _ = _camera_with_lamps(sup, model)
    sup.lane.subscribe_learned(100.0)
    assert sent == [], "nothing learned, nothing sent"
    sup.lane.learn(cam_topic, [cam])
    sup.lane.subscribe_learned(100.0)
    assert sent == [[cam_topic]], "the first learned topic goes at once"
    # one pipeline batch after another learns a topic or two: they wait for the interval, then go
    # together (a SUBSCRIBE per batch flooded the broker at a storm drain's start)
    topics = [f"city/z/cctv/{cam}/t{i}" for i in range(10)]
    for i, topic in enumerate(topics):
        sup.lane.learn(topic, [cam])
        sup.lane.subscribe_learned(100.0 + 0.02 * (i + 1))
    assert sent == [[cam_topic]]
    sup.lane.subscribe_learned(100.0 + lane_mod.LEARN_FLUSH_S)
    assert sent == [[cam_topic], topics]
    # a full chunk does not wait
    monkeypatch.setattr(lane_mod, "SUBSCRIBE_CHUNK", 3)
    more = [f"city/z/cctv/{cam}/u{i}" for i in range(3)]
    for topic in more:
        sup.lane.learn(topic, [cam])
    sup.lane.subscribe_learned(100.0 + lane_mod.LEARN_FLUSH_S + 0.01)
    assert sent[-1] == more
    sup.lane.learn("city/z/cctv/late", [cam])
    sup.lane.subscribe_learned(100.0 + lane_mod.LEARN_FLUSH_S + 0.02)
    assert sent[-1] == more, "the next one waits for the interval again"
    # a reload that takes the camera out of the lane drops it from the waiting topics too
    sup.lane.set_devices(frozenset())
    sup.lane.subscribe_learned(1000.0)
    assert sent[-1] == more
