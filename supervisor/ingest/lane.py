"""The control lane: a second MQTT session that carries, ahead of any backlog, what the rules react to.

Why a session of its own, not a priority inside the inbox. The broker sends one session's messages
over one TCP stream, in order, at most Receive Maximum unacknowledged at a time. When the load is
above the supervisor's drain rate (a burst, a reconnect storm, a frozen InfluxDB), the backlog
waits *at the broker*, in front of the camera event that was published after it; no priority in
our inbox can overtake messages we have not read (issue 18 measured reactions > 5 s so). A second
session has its own queue at the broker, which holds only the lane's few messages.

How it works:

- The rule engine says which devices the lane carries (:class:`rules.LanePlan`: the inputs of
  commanding rules, and the lamps they command, for the confirmations). The pipeline learns which
  topics those devices publish on (:meth:`ControlLane.learn`) and the lane session subscribes to
  those exact topics, plus the filters of ``mqtt.lane_topics`` (the explicit override, e.g.
  ``city/+/cctv/+/event`` so that a camera's first event is already on the lane).
- The lane session is a clean one (``<client_id>-lane``): the bulk session keeps everything for
  storage, so the lane never has a backlog to drain after a restart.
- It subscribes at the configured QoS (1), although it stores nothing. QoS 0 was measured (4 Dec
  2026, ``bench rules`` at 3k msg/s, two runs each): p50 6.1-7.1 ms against 2.3-2.5 ms at QoS 1.
  With nothing sent back, the broker's small PUBLISH packets wait on TCP (Nagle against our
  delayed ACK) where our PUBACKs released them.
- The lane pipeline decodes, updates the device state and feeds the rules, and stores nothing:
  the bulk session receives the same message and stores its points (once: the same point).
  The bulk pipeline leaves the state and the rules alone for the topics the lane carries
  (:attr:`ControlLane.active`, granted by the broker and while the lane session is connected), so
  every reading reaches the rules once and in order per topic (see docs/architecture.md).
"""

from __future__ import annotations

import gc
import heapq
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from supervisor.config import MqttConfig
from supervisor.ingest.mqtt import SUBSCRIBE_CHUNK, Inbox, LaneInbox, MqttError, MqttIngest

_log = logging.getLogger(__name__)

#: bulk messages processed between two looks at the lane (at most)
BULK_SLICE = 500
#: ... and a slice (of bulk, or of the lane's confirmations) is kept within this much wall time, by
#: the measured cost of a message (:class:`SliceSize`): an input that arrives waits about one slice
#: of each before its reaction. 10 ms slices held ``bench rules`` probes up to ~20 ms at each look
#: (p50 8-10 ms at 10k msg/s); at 2 ms the iteration's fixed cost (one take, one lock, ~30 us)
#: stays under 2 % of the slice. 4 -> 2 ms (5 Dec 2026, `bench rules` 10k, one sitting, three
#: runs each): p99 15.4/17.0/17.1 -> 14.4/12.5/15.5 ms, p50 4.6-5.2 -> 4.4-4.9 ms; `bench storm`
#: then drained at 1.39x bare paho (30.5k msg/s)
SLICE_BUDGET_S = 0.002
MIN_SLICE = 20
#: topics learned for the lane wait this long for one SUBSCRIBE (or until ``SUBSCRIBE_CHUNK`` of them).
#: Mosquitto reads one packet of a client per pass of its loop, and a storm drain's first seconds
#: make that loop slow: a loopback capture (5 Dec 2026, `bench storm`, 3M messages) showed the lane
#: session sending a SUBSCRIBE of one to a few topics per pipeline batch, 150-390 a second, while
#: the broker answered 48-134 a second in the drain's first three seconds; the probes' commands
#: queued behind them on the lane's socket (one written at +0 ms reached a watcher at +1,577 ms).
#: A learned topic is carried by the bulk path until the broker grants it, so the wait costs nothing
LEARN_FLUSH_S = 0.25
LATENCY_WINDOW_S = 60.0  # reaction latencies kept for the p50/p99 of health and /metrics
_MIN_MS = 0.01  # the latency histogram's first bucket: up to 0.01 ms
_LOG_RATIO = math.log(1.05)  # its buckets are 5 % wide
_BUCKETS = int(math.log(1e6 / _MIN_MS) / _LOG_RATIO) + 2  # up to 1000 s


class SliceSize:
    """The bulk slice between two looks at the lane: ``BULK_SLICE`` at most, fewer when a message
    costs more, so that a slice takes about ``SLICE_BUDGET_S`` (a moving average of the cost per
    message, in wall time: what a waiting lane message sees)."""

    def __init__(self, budget: float = SLICE_BUDGET_S, largest: int = BULK_SLICE, smallest: int = MIN_SLICE) -> None:
        self.budget, self.largest, self.smallest = budget, largest, smallest
        self.per_message = 0.0  # s, moving average
        self.size = largest

    def took(self, n: int, seconds: float) -> int:
        """A slice of ``n`` messages took ``seconds``: the next slice's size."""
        if n <= 0:
            return self.size
        per = seconds / n
        self.per_message = per if self.per_message == 0.0 else 0.8 * self.per_message + 0.2 * per
        self.size = max(self.smallest, min(self.largest, round(self.budget / self.per_message)))
        return self.size


class ReactionLatency:
    """Receive -> reacted latencies of lane messages over the last minute, as a histogram.

    Log-spaced buckets 5 % wide (0.01 ms .. 1000 s), one count array per second of the window and
    their running total: adding is one increment, a quantile walks ~380 buckets. The first version
    kept every sample (up to 100,000) and sorted them at each health point and ``/metrics`` scrape,
    on the pipeline thread: 110 ms at load average 9.6 (16 us now), and the lane waited for it
    (py-spy during ``bench rules``: the sort was most of the health point's cost). A quantile is the
    upper bound of its bucket (at most 5 % above the true value).
    """

    def __init__(self, window: float = LATENCY_WINDOW_S) -> None:
        self.window = window
        self._slots: deque[tuple[int, list[int]]] = deque()  # (second, counts by bucket)
        self._total = [0] * _BUCKETS
        self._n = 0

    @staticmethod
    def _bucket(ms: float) -> int:
        if ms <= _MIN_MS:
            return 0
        return min(_BUCKETS - 1, int(math.log(ms / _MIN_MS) / _LOG_RATIO) + 1)

    def _expire(self, now: float) -> None:
        cut = now - self.window
        slots, total = self._slots, self._total
        while slots and slots[0][0] + 1 <= cut:
            _, counts = slots.popleft()
            for i, c in enumerate(counts):
                if c:
                    total[i] -= c
                    self._n -= c

    def add(self, received: Iterable[float], now: float) -> None:
        self._expire(now)
        sec = int(now)
        if not self._slots or self._slots[-1][0] != sec:
            self._slots.append((sec, [0] * _BUCKETS))
        counts, total, bucket = self._slots[-1][1], self._total, self._bucket
        for t in received:
            b = bucket((now - t) * 1000.0)
            counts[b] += 1
            total[b] += 1
            self._n += 1

    def quantiles(self, now: float) -> tuple[float, float, int]:
        """(p50 ms, p99 ms, samples) over the window; (0, 0, 0) without samples."""
        self._expire(now)
        n = self._n
        if n <= 0:
            return 0.0, 0.0, 0
        want = [max(1, math.ceil(n * q)) for q in (0.5, 0.99)]
        out: list[float] = []
        seen = 0
        for b, c in enumerate(self._total):
            seen += c
            while len(out) < 2 and seen >= want[len(out)]:
                out.append(_MIN_MS * math.exp(_LOG_RATIO * b))
            if len(out) == 2:
                break
        return out[0], out[1], n


_NONE: frozenset[str] = frozenset()
SLOW_LOOP_MS = 20.0  # a pipeline-thread iteration longer than this is kept (with what it did)
GC_PAUSE_MS = 5.0  # a collection longer than this is kept
_KEPT = 20


class LoopWatch:
    """Where the pipeline thread's time went when it was slow: the diagnostics of a stall.

    Each slow iteration is kept with its wall time and its parts (the lane batch, the bulk slice,
    the periodic work), next to the collector's long pauses (:meth:`watch_gc`) and the writer's
    slow writes and producer waits, so that a late reaction can be matched with its cause
    (``summary()["loop"]``, printed by ``bench rules``)."""

    def __init__(self) -> None:
        self._slow: list[tuple[float, int, dict[str, float | int]]] = []  # the slowest kept (a min-heap by ms)
        self.iterations = 0
        self.max_ms = 0.0
        self._gc: list[tuple[float, float, int]] = []  # the longest pauses: (ms, wall, generation), a min-heap
        self.gc_collections = 0
        self.gc_refreezes = 0  # survivors of a slow full collection frozen (supervisor/cli/run.py)
        self._gc_t0 = 0.0

    def note(self, t0: float, t_lane: float, t_bulk: float, t_end: float,  # noqa: PLR0917
             lane_n: int, bulk_n: int, t_locked: float | None = None,
             periodic: Callable[[], dict[str, float]] | None = None) -> None:
        """One iteration's perf_counter stamps: start, lane done, bulk done, periodic done, and when
        the supervisor's lock was taken (``lock_ms``: the wait for an API request holding it);
        ``periodic`` gives the periodic work's parts, read only for a slow iteration; what
        ``periodic_ms`` holds beyond them is the stage's end: its commands published, its points queued."""
        self.iterations += 1
        ms = (t_end - t0) * 1000.0
        self.max_ms = max(self.max_ms, ms)
        if ms >= SLOW_LOOP_MS:
            at = round(time.time() - (time.perf_counter() - t0), 3)
            keep(self._slow, (ms, self.iterations, {
                "at": at, "ms": round(ms, 1),
                "lock_ms": round(((t_locked or t0) - t0) * 1000.0, 1),
                "lane_n": lane_n, "lane_ms": round((t_lane - (t_locked or t0)) * 1000.0, 1),
                "bulk_n": bulk_n, "bulk_ms": round((t_bulk - t_lane) * 1000.0, 1),
                "periodic_ms": round((t_end - t_bulk) * 1000.0, 1),
                **(periodic() if periodic is not None else {})}))

    def watch_gc(self) -> None:
        """Record the collector's long pauses (the process owner calls this: the callback is global)."""
        gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        ms = (time.perf_counter() - self._gc_t0) * 1000.0
        self.gc_collections += 1
        if ms >= GC_PAUSE_MS:
            keep(self._gc, (round(ms, 1), round(time.time() - ms / 1000.0, 3), info.get("generation", -1)))

    def report(self) -> dict[str, object]:
        """The slowest iterations and the longest collections, in time order (wall ``at``)."""
        slow = sorted((d for _, _, d in self._slow), key=lambda d: d["at"])
        return {"iterations": self.iterations, "max_ms": round(self.max_ms, 1), "slowest": slow,
                "gc_collections": self.gc_collections, "gc_refreezes": self.gc_refreezes,
                "gc_pauses": [{"at": a, "ms": m, "gen": g} for m, a, g in sorted(self._gc, key=lambda x: x[1])]}


def keep(heap: list[Any], item: Any, n: int = _KEPT) -> None:
    """Keep the ``n`` largest items in ``heap`` (a min-heap)."""
    if len(heap) < n:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


class ControlLane:
    """The lane's devices, its topics (wanted, granted), its MQTT session and its latency."""

    def __init__(self, cfg: MqttConfig, inbox: LaneInbox, *, enabled: bool = True) -> None:
        # with a shared subscription (scale-out) every instance's lane would get every lane message and
        # react to it: the lane is off there (the rules then run on the bulk path, as before)
        self.enabled = enabled and not cfg.share_group
        self.overrides = tuple(cfg.lane_topics)
        self.devices: frozenset[str] = frozenset()
        #: the lane's devices that are only there for their confirmations (commanded lamps that no
        #: commanding rule reads): their topics queue behind the inputs (:meth:`Inbox.take_three`)
        self.confirmations: frozenset[str] = frozenset()
        self._inbox = inbox
        self._confirm_topics: set[str] = set()
        self._to_subscribe: list[str] = []  # learned, not subscribed yet (:meth:`subscribe_learned`)
        self._subscribed_at = -math.inf  # when the last learned topics were subscribed (monotonic)
        self._seen: dict[str, bool] = {}  # topic -> whether it carries a lane device (learned)
        self._granted: set[str] = set()  # exact topics the broker granted to the lane session
        self._covered: set[str] = set()  # topics seen that an override filter names
        self._lane_topics: dict[str, tuple[str, ...]] = {}  # topic the lane subscribed -> its devices
        self._filters_granted = False
        self._lock = threading.Lock()
        self.latency = ReactionLatency()
        #: the slowest lane inputs, received -> reacted: (ms, wall time reacted, receive time, topic).
        #: A slow probe of ``bench storm`` either is here (the supervisor held it) or is not (it waited
        #: before the lane session read it, or after its command left)
        self.slowest: list[tuple[float, float, float, str]] = []
        self.learned = 0
        lane_cfg = cfg.model_copy(update={
            "client_id": f"{cfg.client_id}-lane"[:128], "clean_start": True, "session_expiry": 0,
            "broker_drop_counter": None, "share_group": None,
        })
        self.mqtt = MqttIngest(lane_cfg, list(self.overrides) if enabled else [], inbox)
        self.mqtt.on_subscribed = self._granted_now
        #: topics the bulk path leaves to the lane: only ever tested for membership by the readers, so a
        #: topic an override names is added in place (a copy per camera's first event was O(n) in the
        #: lane's tens of thousands of topics); a change of the granted set replaces it
        self.active: set[str] = set()

    # -- the rule set (pipeline thread, under the supervisor lock) ------------------------------------
    def set_devices(self, devices: frozenset[str], confirmations: frozenset[str] = frozenset()) -> None:
        """A new lane plan: forget what was learned, subscribe again as topics are seen.
        ``confirmations``: those of ``devices`` that are there only for their confirmations."""
        confirmations = confirmations & devices
        if not self.enabled or (devices == self.devices and confirmations == self.confirmations):
            return
        self.devices = devices
        self.confirmations = confirmations
        left = [t for t, devs in self._lane_topics.items() if not any(d in devices for d in devs)]
        for t in left:
            del self._lane_topics[t]
        if left:  # learned, not subscribed yet (:meth:`subscribe_learned`), and no longer the lane's
            self._to_subscribe = [t for t in self._to_subscribe if t in self._lane_topics]
        self._confirm_topics = {t for t, devs in self._lane_topics.items() if self._confirms_only(devs)}
        self._inbox.set_confirm_topics(self._confirm_topics)
        self._seen = {t: True for t in self._covered}
        if left:
            with self._lock:
                self._granted.difference_update(left)
                self._publish_active()
            self.mqtt.unsubscribe(left)
        _log.info("control lane: %d devices, %d of them for their confirmations (%d topics left the lane)",
                  len(devices), len(confirmations), len(left))

    def _confirms_only(self, devices: Sequence[str]) -> bool:
        conf = self.confirmations
        return bool(conf) and all(d in conf or d not in self.devices for d in devices)

    def learn(self, topic: str, devices: Sequence[str]) -> None:
        """The pipeline decoded ``devices`` from ``topic`` (first time it sees the topic)."""
        if not self.enabled:
            self._seen[topic] = False
            return
        if self.overrides and self.carries(topic):
            self._seen[topic] = True
            with self._lock:
                self._covered.add(topic)
                if self._filters_granted:
                    self.active.add(topic)
            return
        lane = any(d in self.devices for d in devices)
        self._seen[topic] = lane
        if lane:
            self.learned += 1
            self._lane_topics[topic] = tuple(devices)
            if self._confirms_only(devices):
                self._confirm_topics.add(topic)
                self._inbox.add_confirm_topics((topic,))
            self._to_subscribe.append(topic)

    def subscribe_learned(self, now: float) -> None:
        """Subscribe the lane session to the topics learned since the last SUBSCRIBE, in one packet
        (per ``SUBSCRIBE_CHUNK``), once ``LEARN_FLUSH_S`` has passed since it or a chunk is full; the
        pipeline thread calls it at every iteration (``now``: ``time.monotonic()``)."""
        pending = self._to_subscribe
        if not pending or (len(pending) < SUBSCRIBE_CHUNK and now - self._subscribed_at < LEARN_FLUSH_S):
            return
        self._subscribed_at = now
        self._to_subscribe = []
        self.mqtt.subscribe_more(pending)

    def seen(self, topic: str) -> bool:
        return topic in self._seen

    # -- the session (network thread) ---------------------------------------------------------------
    def _granted_now(self, topics: list[str]) -> None:
        exact = [t for t in topics if "+" not in t and "#" not in t]
        with self._lock:
            self._granted.update(exact)
            if any(t in self.overrides for t in topics):
                self._filters_granted = True
            self._publish_active()

    def _publish_active(self) -> None:
        self.active = self._granted | self._covered if self._filters_granted else set(self._granted)

    def active_topics(self) -> AbstractSet[str]:
        """The topics the bulk path must leave to the lane: none while the lane session is down."""
        return self.active if self.mqtt.stats.connected else _NONE

    @property
    def ready(self) -> bool:
        """Connected, and the broker granted the override filters (an event published before that
        reaches only the bulk session, behind its backlog)."""
        return self.enabled and self.mqtt.stats.connected and (self._filters_granted or not self.overrides)

    def carries(self, topic: str) -> bool:
        """Whether an override filter names ``topic`` (those are carried from the first message)."""
        from supervisor.ingest.router import topic_matches

        return any(topic_matches(f, topic) for f in self.overrides)

    def start(self) -> None:
        if self.enabled:
            self.mqtt.start()

    def stop(self) -> None:
        self.mqtt.stop()

    def reacted(self, batch: Sequence[tuple[str, bytes, int, int, float]]) -> None:
        """The lane pipeline processed ``batch``: the reaction latency of its inputs (a confirmation
        is no reaction: it waits behind the inputs by design)."""
        confirm = self._confirm_topics
        now = time.time()
        inputs = [m for m in batch if m[0] not in confirm]
        if inputs:
            self.latency.add((m[4] for m in inputs), now)
            first = min(inputs, key=lambda m: m[4])
            keep(self.slowest, (round((now - first[4]) * 1000.0, 1), round(now, 3), round(first[4], 3), first[0]))

    def fields(self, inbox: Inbox, received: int, unstored_since: float = 0.0) -> dict[str, float | int]:
        """Overload made visible (health points, ``/metrics``): both inboxes' depths, the age of their
        oldest waiting message, the lane's reaction latency over the last minute, ``received`` by it.

        The bulk side's oldest is also the writer's oldest line not yet stored (``unstored_since``,
        ``time.monotonic()``; 0.0: none): with the Receive Maximum (2,000) below the writer's room
        (10,000 lines), a frozen InfluxDB holds the bulk at the broker and in the writer, not in the
        inbox, and it is still data waiting."""
        lane_n, bulk_n, lane_t, bulk_t = inbox.depths()
        now = time.time()
        p50, p99, _ = self.latency.quantiles(now)
        bulk_ms = (now - bulk_t) * 1000.0 if bulk_t else 0.0
        if unstored_since:
            bulk_ms = max(bulk_ms, (time.monotonic() - unstored_since) * 1000.0)
        return {
            "lane_depth": lane_n, "bulk_depth": bulk_n,
            "lane_oldest_ms": round((now - lane_t) * 1000.0, 1) if lane_t else 0.0,
            "bulk_oldest_ms": round(bulk_ms, 1),
            "reaction_p50_ms": round(p50, 2), "reaction_p99_ms": round(p99, 2),
            "lane_received": received, "lane_topics": len(self.active),
        }


class CommandPublisher:
    """Where the rules' commands go out: the lane session while it is connected, the bulk one otherwise.

    While the bulk inbox is full (a frozen InfluxDB, a backlog), the bulk session's network thread
    waits up to ``FULL_WAIT`` (50 ms) for room at each read and services its socket in between, so a
    command queued on that client waited 50-100 ms before it was written (measured in
    ``tests/integration/test_lane_frozen_influx.py``: reactions of 60-104 ms once the bulk was held
    back, 5-13 ms before). The lane session never waits for room: a reaction leaves at once.
    ``mqtt_published_total`` (the bulk session's ``stats.published``) still counts every command.
    """

    def __init__(self, lane: ControlLane, bulk: MqttIngest) -> None:
        self.lane = lane
        self.bulk = bulk
        self._held: list[tuple[str, bytes, int, bool]] | None = None
        self._holder: int | None = None
        self.flush_errors = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        held = self._held
        if held is not None and self._holder == threading.get_ident():
            held.append((topic, payload, qos, retain))
            return
        lane = self.lane.mqtt
        if self.lane.enabled and lane.stats.connected:
            lane.publish(topic, payload, qos, retain=retain)
            self.bulk.stats.published += 1
        else:
            self.bulk.publish(topic, payload, qos, retain=retain)

    def __enter__(self) -> CommandPublisher:
        """Hold this thread's commands until the block ends, then queue them at once (one wake-up of
        the session's network thread; see :meth:`FastClient.publish_many`). The pipeline thread
        holds them around each stage of its loop: a reaction's commands leave at the stage's end,
        a few ms at most. Other threads (the API's) publish at once."""
        self._held, self._holder = [], threading.get_ident()
        return self

    def __exit__(self, *_: object) -> None:
        held, self._held, self._holder = self._held, None, None
        if not held:
            return
        lane = self.lane.mqtt
        try:
            if self.lane.enabled and lane.stats.connected:
                lane.publish_many(held)
                self.bulk.stats.published += len(held)
            else:
                self.bulk.publish_many(held)
        except MqttError as exc:  # queued but refused by paho (e.g. too large): the tracker retries
            self.flush_errors += 1
            _log.warning("commands not published: %s", exc)
