"""The hot path: a batch of MQTT messages → drivers → device state → rules → line protocol.

One call of :meth:`Pipeline.process` handles a whole batch synchronously: no await and no lock per
message. Bad input never stops the batch: each refused message is counted by (driver, reason),
logged with its topic (rate limited), and a bounded sample is kept in a dead-letter store.
Every message of the batch, good or bad, is acknowledged to the broker only once the batch's
points are durable (the writer calls back), so a crash before that makes the broker redeliver.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers import Decoded, DecodeError, Driver, Event, Reading
from supervisor.ingest.backlog import SessionBacklog
from supervisor.ingest.identity import IdentityMap
from supervisor.ingest.lane import ControlLane
from supervisor.ingest.mqtt import Message
from supervisor.ingest.router import Ignored, Router
from supervisor.state.registry import StateRegistry, StatusChange
from supervisor.storage.lineprotocol import LineProtocolError
from supervisor.storage.schema import event_point, reading_point

_log = logging.getLogger(__name__)

Ack = Callable[[list[tuple[int, int]]], None]


class LineSink(Protocol):
    def submit(self, lines: list[bytes], on_durable: Callable[[], None] | None = None, *,
               block: bool = True) -> None: ...

    def has_room(self, n: int) -> bool: ...


class ReadingConsumer(Protocol):
    """What the rule engine exposes to the pipeline."""

    def on_readings(self, readings: list[Reading], now: float) -> None: ...
    def on_events(self, events: list[Event], now: float, *, stale_before: float | None = None) -> None: ...


@dataclass(slots=True)
class DeadLetter:
    at: float
    topic: str
    driver: str
    reason: str
    detail: str
    size: int
    head: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "topic": self.topic, "driver": self.driver, "reason": self.reason,
                "detail": self.detail, "size": self.size, "head": self.head}


@dataclass
class IngestCounters:
    received: int = 0
    decoded: int = 0  # messages decoded without error
    readings: int = 0
    events: int = 0
    points: int = 0  # lines handed to the writer
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (driver, reason) -> count
    per_family: Counter[str] = field(default_factory=Counter)  # messages decoded per family
    ignored: int = 0  # known topics deliberately skipped (our own commands)
    batches: int = 0
    last_batch_size: int = 0
    lag_ms: float = 0.0  # receive → processed, last batch (oldest message)
    first_received: float = 0.0  # wall time the first message was received (for drain timings)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def errors_by_reason(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, reason), n in self.errors.items():
            out[reason] += n
        return dict(out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received, "decoded": self.decoded, "readings": self.readings,
            "events": self.events, "points": self.points, "errors": self.error_total, "ignored": self.ignored,
            "errors_by_reason": self.errors_by_reason(),
            "errors_by_driver": {f"{d}:{r}": n for (d, r), n in sorted(self.errors.items())},
            "per_family": dict(self.per_family), "batches": self.batches, "lag_ms": round(self.lag_ms, 1),
            "first_received": self.first_received,
        }


@dataclass(slots=True)
class _BatchOut:
    """What one batch produces: lines to store, acknowledgements, rule inputs, status changes."""

    lines: list[bytes] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    #: events stamped before this (UTC epoch s) came from a resumed session's backlog too late to
    #: command anything; None: the batch is live (supervisor/ingest/backlog.py)
    stale_before: float | None = None
    late: int = -1  # with ``stale_before``: how many of ``events`` came before the backlog's marker (-1: all)


class _LogLimiter:
    """At most ``burst`` log lines per reason per ``window`` seconds; the rest are only counted."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        self.burst, self.window = burst, window
        self._seen: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, now: float) -> bool:
        start, n = self._seen.get(key, (now, 0))
        if now - start > self.window:
            start, n = now, 0
        self._seen[key] = (start, n + 1)
        return n < self.burst


def _head(payload: bytes, limit: int = 120) -> str:
    return payload[:limit].decode("utf-8", "backslashreplace")


def _printable_topic(topic: str) -> str:
    return topic.encode("unicode_escape").decode("ascii")[:200]


class Pipeline:
    def __init__(
        self,
        router: Router,
        state: StateRegistry,
        writer: LineSink,
        ack: Ack,
        *,
        clock: Callable[[], float] = time.time,
        max_payload_bytes: int = 256 * 1024,
        max_future_s: float = 24 * 3600,
        max_past_s: float = 10 * 365 * 24 * 3600,
        dead_letters: int = 1000,
        identity: IdentityMap | None = None,
        rules: ReadingConsumer | None = None,
        on_status: Callable[[list[StatusChange]], None] | None = None,
        broker_counter: tuple[str, Callable[[bytes, float], None]] | None = None,
        lane: ControlLane | None = None,
        store: bool = True,
        backlog: SessionBacklog | None = None,
        backlog_max_age: float = 120.0,
    ) -> None:
        self.router = router
        self.state = state
        self.writer = writer
        self.ack = ack
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes
        self.max_future_s = max_future_s
        self.max_past_s = max_past_s
        self.identity = identity
        #: the control lane: the pipeline tells it which topics carry which devices
        self.lane = lane
        #: the newest reading timestamp processed: while a backlog drains, how far behind the city the
        #: pipeline is (see :meth:`PeriodicWork._check`)
        self.watermark = 0.0
        #: False for the lane's pipeline: it decodes, updates state and feeds the rules; the bulk stores
        self.store = store
        #: False when the caller took the batch only because the writer had room for it
        #: (:meth:`BatchWriter.has_room`): the lines are then queued without waiting, so the thread
        #: that also runs the control lane never blocks in the writer (the overshoot past
        #: ``max_pending`` is one batch's lines at most; see docs/architecture.md, the stall)
        self.submit_block = True
        self.slices_past_room = 0  # batches queued past the writer's room (each would have waited)
        self.device_driver: dict[str, str] = {}  # device -> the driver that decodes it (for commands)
        self.rules = rules
        #: the radio gateways observed (supervisor/state/radio.py): every reading taken into the state
        self.radio: Callable[[list[Reading], float], None] | None = None
        self.on_status = on_status
        # (topic, handler): a broker statistic taken aside before routing (no driver claims $SYS)
        self.broker_counter = broker_counter
        #: where the bulk session's backlog ends (its marker), and how old a backlog event may be and
        #: still command (by the device's clock; supervisor/ingest/backlog.py)
        self.backlog = backlog
        self.backlog_max_age = backlog_max_age
        self.counters = IngestCounters()
        self.dead_letters: deque[DeadLetter] = deque(maxlen=dead_letters)
        self._limiter = _LogLimiter()

    def _reject(self, topic: str, driver: str, reason: str, detail: str, payload: bytes, now: float) -> None:  # noqa: PLR0917
        self.counters.errors[(driver, reason)] += 1
        self.dead_letters.append(DeadLetter(now, _printable_topic(topic), driver, reason, detail[:300],
                                            len(payload), _head(payload)))
        if self._limiter.allow(reason, now):
            _log.warning("refused message on %s (driver %s): %s: %s", _printable_topic(topic), driver, reason,
                         detail[:300])

    def process(self, batch: list[Message]) -> None:
        """Decode, update state, feed rules, serialise and hand over one batch."""
        if not batch:
            return
        c = self.counters
        now = self.clock()
        wall = time.time()
        out = _BatchOut()
        oldest = batch[0][4]
        if not c.received:
            c.first_received = oldest
        markers = 0  # the session's own backlog markers: not telemetry, never counted as received
        lane = self.lane
        # topics the control lane carries: it updated the state and fed the rules; here only storage
        leave: AbstractSet[str] = lane.active_topics() if lane is not None and self.store else frozenset()
        # topics of this batch an override names, seen for the first time (not a copy of ``leave``:
        # that set holds every lane topic, 54,640 in a 100,000-device storm drain, and copying it
        # for each camera's first event cost the drain most of its time)
        left: set[str] = set()
        acks = out.acks
        backlog = self.backlog
        marker = None
        if backlog is not None:
            marker = backlog.topic
            if backlog.active and not backlog.settled() and not backlog.expired():
                out.stale_before = wall - self.backlog_max_age
        for topic, payload, mid, qos, received in batch:
            if qos:
                acks.append((mid, qos))
            if topic == marker and backlog is not None:
                markers += 1
                if backlog.marker(payload) and out.stale_before is not None and out.late < 0:
                    out.late = len(out.events)
                continue
            driver = self._driver_for(topic, payload, received, now)
            if driver is None:
                continue
            decoded = self._decode(driver, topic, payload, now)
            if decoded is None or not self._points(driver, topic, payload, decoded, (received, now, wall), out):
                continue
            c.decoded += 1
            first = decoded.readings[0] if decoded.readings else (decoded.events[0] if decoded.events else None)
            if first is not None:
                c.per_family[first.family] += 1
                if lane is not None and not lane.seen(topic):
                    lane.learn(topic, [r.device for r in decoded.readings] + [e.device for e in decoded.events])
                    if self.store and topic in lane.active_topics():
                        # an override filter names it: the lane session has (or had) this very message,
                        # from the first one; feeding it here too reacted twice to a camera's first event
                        # (and to a backlog's first event of each camera: 6,091 lamps lit during a
                        # 200k-message storm drain)
                        left.add(topic)
            c.readings += len(decoded.readings)
            c.events += len(decoded.events)
            if topic not in leave and topic not in left:
                self._update_state(driver.name, decoded, received, now, out)
        # counted once the batch is through (a reader waiting for ``received`` then sees its effects,
        # and never a marker counted then taken back)
        c.received += len(batch) - markers
        self._finish(batch, out, now, oldest)

    @staticmethod
    def _feed_events(rules: ReadingConsumer, out: _BatchOut, now: float) -> None:
        """The batch's events to the rules; those before the backlog's marker with their age limit."""
        events = out.events
        if out.stale_before is None:
            rules.on_events(events, now)
            return
        k = len(events) if out.late < 0 else out.late
        if k:
            rules.on_events(events[:k], now, stale_before=out.stale_before)
        if k < len(events):
            rules.on_events(events[k:], now)

    def _driver_for(self, topic: str, payload: bytes, received: float, now: float) -> Driver | None:
        """The driver of ``topic``; None (counted) for broker statistics, oversized, ignored, unclaimed."""
        c = self.counters
        if self.broker_counter is not None and topic == self.broker_counter[0]:
            c.received -= 1  # broker statistics are not telemetry
            self.broker_counter[1](payload, received)
            return None
        if len(payload) > self.max_payload_bytes:
            self._reject(topic, "-", "too_large", f"{len(payload)} bytes > limit {self.max_payload_bytes}", b"", now)
            return None
        driver = self.router.route(topic)
        if isinstance(driver, Ignored):
            c.ignored += 1
            return None
        if driver is None:
            reason = "bad_topic" if ("+" in topic or "#" in topic or not topic.isprintable()) else "unknown_topic"
            self._reject(topic, "-", reason, "no driver claims this topic", payload, now)
        return driver

    def _decode(self, driver: Driver, topic: str, payload: bytes, now: float) -> Decoded | None:
        try:
            return driver.decode(topic, payload)
        except DecodeError as exc:
            self._reject(topic, driver.name, exc.reason, exc.detail, payload, now)
        except Exception as exc:  # a driver bug must not stop the pipeline
            self._reject(topic, driver.name, "driver_error", f"{type(exc).__name__}: {exc}", payload, now)
        return None

    def _points(self, driver: Driver, topic: str, payload: bytes, decoded: Decoded,  # noqa: PLR0917
                times: tuple[float, float, float], out: _BatchOut) -> bool:
        """Resolve identities, check timestamps, serialise; False (message refused, counted) on bad readings."""
        received, now, wall = times
        identity = self.identity
        resolve = identity.resolve if identity is not None and not identity.passthrough else None
        lo_ts, hi_ts = wall - self.max_past_s, wall + self.max_future_s
        # the lane's pipeline stores nothing, so it formats no point (formatting was 17 % of the pipeline
        # thread in ``bench rules`` under py-spy, lane and bulk together); the bulk session's copy of
        # the same message is formatted, and refused there if a value cannot be stored (the drivers'
        # ranges keep such values out of both)
        store = self.store
        good: list[bytes] = []
        bad = ""
        for r in decoded.readings:
            if resolve is not None:
                who = resolve(driver.name, r.device)
                if who is None:
                    bad = f"unknown_device:{r.device} is not in the city model (see identity.map, identity.unknown)"
                    break
                r.device = who[0]
                if who[1] is not None:
                    r.zone = who[1]
            ts = r.ts if r.ts is not None else received
            if not (lo_ts <= ts <= hi_ts):  # NaN too: every comparison with it is false
                bad = f"bad_timestamp:{ts!r} outside [now-{self.max_past_s:.0f}s, now+{self.max_future_s:.0f}s]"
                break
            r.ts = ts
            if ts > self.watermark:  # noqa: PLR1730 (hot path: a comparison, not a call to max())
                self.watermark = ts
            if not store:
                continue
            try:
                good.append(reading_point(r, ts))
            except LineProtocolError as exc:
                bad = f"{exc.reason}:{exc}"
                break
        if bad:
            reason, _, detail = bad.partition(":")
            self._reject(topic, driver.name, reason, detail, payload, now)
            return False
        if decoded.events:
            self._event_points(driver, topic, payload, decoded, (received, now, lo_ts, hi_ts), good)
        out.lines.extend(good)
        return True

    def _event_points(self, driver: Driver, topic: str, payload: bytes, decoded: Decoded,  # noqa: PLR0917
                      times: tuple[float, float, float, float], good: list[bytes]) -> None:
        """Events: resolve, keep those within the time window, serialise (bulk); a bad one is refused alone."""
        received, now, lo_ts, hi_ts = times
        identity = self.identity
        resolve = identity.resolve if identity is not None and not identity.passthrough else None
        store = self.store
        kept: list[Event] = []
        for e in decoded.events:
            if resolve is not None:
                who = resolve(driver.name, e.device)
                if who is None:
                    self._reject(topic, driver.name, "unknown_device", f"{e.device} (event)", payload, now)
                    continue
                e.device = who[0]
                if who[1] is not None:
                    e.zone = who[1]
            ets = e.ts if e.ts is not None else received
            if not (lo_ts <= ets <= hi_ts):
                continue
            e.ts = ets
            if store:
                try:
                    good.append(event_point(e, ets))
                except LineProtocolError as exc:
                    self._reject(topic, driver.name, exc.reason, str(exc), payload, now)
                    continue
            kept.append(e)
        decoded.events[:] = kept

    def _update_state(self, driver: str, decoded: Decoded, received: float, now: float, out: _BatchOut) -> None:
        dd = self.device_driver
        state_update = self.state.update
        for r in decoded.readings:
            dd[r.device] = driver
            ch = state_update(r, now, r.ts or received)
            if ch is not None:
                out.changes.append(ch)
        out.readings.extend(decoded.readings)
        out.events.extend(decoded.events)

    def _finish(self, batch: list[Message], out: _BatchOut, now: float, oldest: float) -> None:
        """Feed the rules, report status changes, hand the lines to the writer with the acknowledgement."""
        c = self.counters
        if self.rules is not None:
            try:
                if out.readings:
                    self.rules.on_readings(out.readings, now)
                if out.events:
                    self._feed_events(self.rules, out, now)
            except Exception:  # the rules must never cost telemetry
                _log.exception("rule engine failed on a batch; telemetry is stored regardless")
        if self.radio is not None and out.readings:
            self.radio(out.readings, now)
        if self.lane is not None and not self.store:
            self.lane.reacted(batch)
        if out.changes and self.on_status is not None:
            self.on_status(out.changes)
        c.batches += 1
        c.last_batch_size = len(batch)
        c.lag_ms = (time.time() - oldest) * 1000.0
        acks = out.acks
        if not self.store or not out.lines:
            # the lane stores nothing (the bulk session stores the same messages); or nothing to store
            # (all refused, or events out of range): acknowledge now
            if acks:
                self.ack(acks)
            return
        c.points += len(out.lines)
        ack = self.ack
        if not self.submit_block and not self.writer.has_room(len(out.lines)):
            self.slices_past_room += 1
        self.writer.submit(out.lines, (lambda: ack(acks)) if acks else None, block=self.submit_block)
