"""Batch writer: one thread that batches lines, writes them to a sink, retries, spools.

Life of a submitted line:

1. ``submit`` queues it (blocking while more than ``max_pending`` lines wait: bounded memory,
   backpressure on the pipeline). A submit larger than ``batch_size`` is cut into chunks; its
   ``on_durable`` callback rides on the last chunk.
2. The thread takes a batch of at most ``batch_size`` lines when that many are pending, when the
   oldest line has waited ``flush_interval``, on :meth:`BatchWriter.flush` or on stop.
3. The batch is written; retryable errors are retried with exponential backoff and jitter up to
   ``max_retries`` times, then the batch is appended to the spool. Lines the destination refuses
   for good (:class:`PartialWriteError`) go to ``on_dead_letter`` and are counted.
4. The batch is *durable* when written, spooled (fsync'ed) or dead-lettered; then the callbacks of
   its chunks run, on the writer thread, in submission order. Batches are handled strictly in
   order, so when a submit's last chunk is durable all its earlier chunks are too.

While the spool holds data, new batches go to the spool behind it (order preserved) and the
spool is replayed, oldest first, whenever the sink answers again (probes with backoff). Without a
spool, or with a full spool, a batch that exhausted its retries is retried forever at the maximum
delay: nothing is acknowledged, the queue fills and ``submit`` blocks (see :mod:`.spool`).
``stop`` writes or spools everything pending; what can be neither is reported as ``unsaved``
(it was not acknowledged, so the broker will deliver it again).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.config import StorageConfig

from ._errors import PartialWriteError, Sink, StorageError
from ._influx import InfluxV1Sink, InfluxV2Sink
from ._sqlite import SqliteSink
from .spool import Spool, SpoolError, SpoolFullError

__all__ = [
    "BatchWriter",
    "DeadLetter",
    "WriterBusyError",
    "WriterStats",
    "WriterStoppedError",
    "make_sink",
    "make_writer",
]

log = logging.getLogger(__name__)

SLOW_WRITE_MS = 100.0  # a write slower than this is kept in ``slow_writes`` (diagnostics of a stall)
SLOW_KEPT = 20

DeadLetter = Callable[[list[bytes], str], None]


class WriterStoppedError(RuntimeError):
    """``submit`` after ``stop``."""


class WriterBusyError(TimeoutError):
    """``submit`` waited ``timeout`` seconds for room in the pending queue."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of a writer. ``failures`` counts failed write attempts (each error), ``retries``
    the re-attempts after one; ``points_written`` counts lines the sink accepted, replays included."""

    points_written: int
    batches: int
    retries: int
    failures: int
    dead_letters: int
    last_latency_ms: float
    spool_bytes: int
    spool_records: int
    pending: int
    spooled_lines: int = 0
    replayed_lines: int = 0
    spool_fill_ratio: float = 0.0
    spool_corrupt: int = 0
    unsaved: int = 0
    last_write_at: float = 0.0  # wall time of the last batch the sink accepted


@dataclass(slots=True)
class _Chunk:
    lines: list[bytes]
    on_durable: Callable[[], None] | None
    t: float


class BatchWriter:
    """Writes line-protocol lines to ``sink`` from its own thread (see :meth:`start`).

    The writer owns the sink: :meth:`stop` closes it.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        max_retries: int = 8,
        retry_min_delay: float = 0.2,
        retry_max_delay: float = 10.0,
        spool: Spool | None = None,
        on_dead_letter: DeadLetter | None = None,
        max_pending: int | None = None,
        name: str = "writer",
    ) -> None:
        if batch_size < 1 or flush_interval <= 0 or max_retries < 0:
            raise ValueError("batch_size >= 1, flush_interval > 0 and max_retries >= 0 are required")
        if not 0 < retry_min_delay <= retry_max_delay:
            raise ValueError("0 < retry_min_delay <= retry_max_delay is required")
        self.sink = sink
        self.spool = spool
        self.name = name
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_retries = max_retries
        self._min_delay = retry_min_delay
        self._max_delay = retry_max_delay
        self._max_pending = max_pending if max_pending is not None else max(10 * batch_size, 10_000)
        if self._max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self._on_dead_letter = on_dead_letter
        self._rng = random.Random()

        self._cond = threading.Condition()
        self._queue: deque[_Chunk] = deque()
        self._pending = 0
        self._taken_t = 0.0  # submit time (monotonic) of the batch being written; 0.0: none
        self._seq_submitted = 0
        self._seq_taken = 0
        self._seq_done = 0
        self._flush_target = 0
        self._stopping = False
        self._stop_deadline = 0.0
        self._wake = threading.Event()  # interrupts retry sleeps on stop

        self._stats_lock = threading.Lock()
        self._points_written = 0
        self._batches = 0
        self._retries = 0
        self._failures = 0
        self._dead_letters = 0
        self._last_latency_ms = 0.0
        self._spooled_lines = 0
        self._replayed_lines = 0
        self._unsaved = 0
        self._last_write_at = 0.0
        self._next_probe = 0.0
        self._probe_attempt = 0
        self._full_logged = False
        self.overshoot = 0  # most lines queued past max_pending by submit(block=False)
        #: submits that waited for room (a blocking producer: the pipeline thread must never be one),
        #: with the longest wait; and the slowest writes of the last minutes (wall time, ms, lines)
        self.producer_waits = 0  # submits that found no room (they waited, or went past with block=False)
        self.producer_wait_max_ms = 0.0
        self._slow_writes: list[tuple[float, float, int]] = []  # (ms, wall, lines): the slowest, a min-heap

        self._thread = threading.Thread(target=self._run, name=f"{name}-thread", daemon=True)
        self._started = False

    def __repr__(self) -> str:
        return f"BatchWriter(name={self.name!r}, sink={self.sink!r}, spool={self.spool!r})"

    def start(self) -> None:
        """Start the writer thread (idempotent). Lines submitted before are kept and written."""
        with self._cond:
            if self._started:
                return
            self._started = True
        self._thread.start()

    # -- producer side -----------------------------------------------------------------------------

    def submit(
        self, lines: list[bytes], on_durable: Callable[[], None] | None = None, *, timeout: float | None = None,
        block: bool = True,
    ) -> None:
        """Queue ``lines``; ``on_durable`` runs (on the writer thread) once all of them are durable.

        Blocks while the queue is full; raises :class:`WriterBusyError` after ``timeout`` seconds
        and :class:`WriterStoppedError` once the writer is stopping.

        ``block=False`` queues even past ``max_pending``: for the few points of a rule reaction
        (decisions, commands) and of the periodic work, which run on the pipeline thread between
        control-lane batches and must not wait for the storage. They are never dropped: written, or
        spooled behind the rest, like any line. Their volume is a reaction's, so the overshoot
        (:attr:`overshoot`, the most seen) stays small; bulk telemetry is held back by
        :meth:`has_room` before it is even taken from the inbox.
        """
        n = len(lines)
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        with self._cond:
            if not self._stopping and self._pending > 0 and self._pending + n > self._max_pending:
                self.producer_waits += 1
            while block and not self._stopping and self._pending > 0 and self._pending + n > self._max_pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WriterBusyError(
                        f"{self.name}: {self._pending} lines pending (max {self._max_pending}) "
                        f"after {timeout}s"
                    )
                self._cond.wait(remaining if remaining is not None else 1.0)
            if self._stopping:
                raise WriterStoppedError(f"{self.name}: writer is stopped")
            waited = (time.monotonic() - now) * 1000.0
            self.producer_wait_max_ms = max(self.producer_wait_max_ms, waited)
            bs = self._batch_size
            if n <= bs:
                self._queue.append(_Chunk(list(lines), on_durable, now))
            else:
                for i in range(0, n, bs):
                    last = i + bs >= n
                    self._queue.append(_Chunk(lines[i : i + bs], on_durable if last else None, now))
            self._pending += n
            self._seq_submitted += n
            self.overshoot = max(self.overshoot, self._pending - self._max_pending)
            if self._pending >= bs or n == 0:
                self._cond.notify_all()

    def oldest_unstored(self) -> float:
        """When (``time.monotonic()``) the oldest line not yet durable was submitted: the batch being
        written (a frozen InfluxDB holds it), else the first queued; 0.0 when none. A snapshot read
        without the lock, for health."""
        if self._taken_t:
            return self._taken_t
        try:
            return self._queue[0].t
        except IndexError:
            return 0.0

    def has_room(self, n: int) -> bool:
        """Whether a :meth:`submit` of ``n`` lines would be queued now without waiting."""
        pending = self._pending
        return pending == 0 or pending + n <= self._max_pending

    def kick(self) -> None:
        """Write what is pending without waiting for ``flush_interval`` (the producer has nothing more
        for now). Does not block; while a write is in flight, lines keep gathering into the next batch."""
        with self._cond:
            if self._seq_taken < self._seq_submitted and self._flush_target < self._seq_submitted:
                self._flush_target = self._seq_submitted
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write (or spool) every line submitted before the call; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._seq_submitted
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            while self._seq_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Write or spool everything pending, then close the sink.

        Returns True when nothing was left unsaved (and the thread ended within ``timeout``).
        """
        self.start()  # a never-started writer still drains (or spools) what it was given
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._stop_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._wake.set()
        self._thread.join(timeout + 1.0)
        alive = self._thread.is_alive()
        if alive:
            log.error("%s: writer thread did not end within %.1fs", self.name, timeout)
        else:
            try:
                self.sink.close()
            except Exception:
                log.exception("%s: closing the sink failed", self.name)
        with self._stats_lock:
            unsaved = self._unsaved
        return not alive and unsaved == 0

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> WriterStats:
        sp = self.spool.stats() if self.spool is not None else None
        with self._cond:
            pending = self._seq_submitted - self._seq_done
        with self._stats_lock:
            return WriterStats(
                points_written=self._points_written,
                batches=self._batches,
                retries=self._retries,
                failures=self._failures,
                dead_letters=self._dead_letters,
                last_latency_ms=self._last_latency_ms,
                spool_bytes=sp.bytes if sp else 0,
                spool_records=sp.records if sp else 0,
                pending=pending,
                spooled_lines=self._spooled_lines,
                replayed_lines=self._replayed_lines,
                spool_fill_ratio=sp.fill_ratio if sp else 0.0,
                spool_corrupt=sp.corrupt_records if sp else 0,
                unsaved=self._unsaved,
                last_write_at=self._last_write_at,
            )

    # -- writer thread -------------------------------------------------------------------------------

    def _take(self) -> tuple[list[bytes], list[Callable[[], None]]] | None:
        """Wait for a batch; None when stopping with nothing left."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._queue:
                    due = (
                        self._stopping
                        or self._pending >= self._batch_size
                        or self._seq_taken < self._flush_target
                        or now - self._queue[0].t >= self._flush_interval
                    )
                    if due:
                        break
                    wait = self._queue[0].t + self._flush_interval - now
                elif self._stopping:
                    return None
                else:
                    wait = self._flush_interval
                if self._spool_waiting() and not self._stopping:
                    probe_in = self._next_probe - now
                    if probe_in <= 0:
                        return [], []  # idle: go and replay the spool
                    wait = min(wait, probe_in)
                self._cond.wait(max(0.001, wait))
            lines: list[bytes] = []
            callbacks: list[Callable[[], None]] = []
            self._taken_t = self._queue[0].t if self._queue else 0.0
            while self._queue:
                chunk = self._queue[0]
                if lines and len(lines) + len(chunk.lines) > self._batch_size:
                    break
                self._queue.popleft()
                lines.extend(chunk.lines)
                if chunk.on_durable is not None:
                    callbacks.append(chunk.on_durable)
            self._pending -= len(lines)
            self._seq_taken += len(lines)
            self._cond.notify_all()  # room for blocked submitters
            return lines, callbacks

    def _spool_waiting(self) -> bool:
        return self.spool is not None and self.spool.records > 0

    def _run(self) -> None:
        log.debug("%s: started", self.name)
        while True:
            try:
                taken = self._take()
            except Exception:  # a bug must not kill the writer silently
                log.exception("%s: unexpected error while waiting for work", self.name)
                time.sleep(0.1)
                continue
            if taken is None:
                break
            lines, callbacks = taken
            try:
                durable = self._process(lines) if lines or not callbacks else True
            except Exception:
                log.exception("%s: unexpected error handling a batch of %d lines", self.name, len(lines))
                with self._stats_lock:
                    self._unsaved += len(lines)
                durable = False
            if not durable:
                callbacks = []  # not durable: do not acknowledge
            for cb in callbacks:
                try:
                    cb()
                except Exception:
                    log.exception("%s: on_durable callback failed", self.name)
            with self._cond:
                self._seq_done += len(lines)
                self._taken_t = 0.0
                self._cond.notify_all()
        log.debug("%s: stopped", self.name)

    def _process(self, lines: list[bytes]) -> bool:
        """Make ``lines`` durable; False only when stopping left them neither written nor spooled."""
        if self._spool_waiting() and not self._stopping:
            self._replay()
        if not lines:
            return True
        n = len(lines)
        body = b"\n".join(lines)
        # older data waits in the spool: keep order by queuing behind it
        if self._spool_waiting() and self._spool_append(body, n):
            return True
        return self._write_with_retries(body, n)

    def _delay(self, attempt: int, retry_after: float | None = None) -> float:
        d = min(self._max_delay, self._min_delay * float(1 << min(attempt - 1, 30)))
        d *= self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            d = max(d, min(retry_after, self._max_delay))
        return d

    def _sleep(self, seconds: float) -> None:
        if self._stopping:
            seconds = min(seconds, max(0.0, self._stop_deadline - time.monotonic()), 0.05)
        self._wake.wait(seconds)

    def _dead_letter(self, rejected: list[bytes], detail: str) -> None:
        with self._stats_lock:
            self._dead_letters += len(rejected)
        log.warning("%s: %d line(s) dead-lettered: %s", self.name, len(rejected), detail)
        if self._on_dead_letter is not None:
            try:
                self._on_dead_letter(rejected, detail)
            except Exception:
                log.exception("%s: dead-letter callback failed", self.name)

    def _attempt(self, body: bytes, n: int) -> StorageError | None:
        """One write; None when the batch is done (stored, or stored but for dead letters)."""
        t0 = time.perf_counter()
        try:
            self.sink.write(body, n)
        except PartialWriteError as exc:
            with self._stats_lock:
                self._points_written += exc.written
                self._batches += 1
            self._dead_letter(exc.rejected, exc.detail)
            return None
        except StorageError as exc:
            with self._stats_lock:
                self._failures += 1
            self._note_slow(t0, n)
            return exc
        except Exception as exc:  # a sink bug: treat as a retryable failure, keep the data
            log.exception("%s: sink raised an unexpected error", self.name)
            with self._stats_lock:
                self._failures += 1
            return StorageError(True, None, f"{type(exc).__name__}: {exc}")
        with self._stats_lock:
            self._points_written += n
            self._batches += 1
            self._last_latency_ms = (time.perf_counter() - t0) * 1000.0
            self._last_write_at = time.time()
        self._note_slow(t0, n)
        return None

    def _note_slow(self, t0: float, n: int) -> None:
        ms = (time.perf_counter() - t0) * 1000.0
        if ms >= SLOW_WRITE_MS:
            item = (round(ms, 1), round(time.time() - ms / 1000.0, 3), n)
            with self._stats_lock:
                if len(self._slow_writes) < SLOW_KEPT:
                    heapq.heappush(self._slow_writes, item)
                elif item > self._slow_writes[0]:
                    heapq.heapreplace(self._slow_writes, item)

    def slow_writes(self) -> list[tuple[float, float, int]]:
        """The slowest write attempts (failed ones too) as (wall time, ms, lines), in time order."""
        with self._stats_lock:
            return sorted(((a, m, n) for m, a, n in self._slow_writes))

    def _write_with_retries(self, body: bytes, n: int) -> bool:
        attempt = 0
        while True:
            err = self._attempt(body, n)
            if err is None:
                self._probe_attempt = 0
                return True
            attempt += 1
            give_up_retrying = self._stopping or not err.retryable or attempt > self._max_retries
            if not give_up_retrying:
                log.warning("%s: write of %d lines failed (attempt %d/%d): %s",
                            self.name, n, attempt, self._max_retries + 1, err)
                with self._stats_lock:
                    self._retries += 1
                self._sleep(self._delay(attempt, err.retry_after))
                continue
            log.error("%s: write of %d lines failed after %d attempt(s): %s", self.name, n, attempt, err)
            if self.spool is not None and self._spool_append(body, n):
                self._next_probe = time.monotonic() + self._delay(1, err.retry_after)
                return True
            return self._hold(body, n)

    def _hold(self, body: bytes, n: int) -> bool:
        """No spool room (or no spool): keep the batch and retry forever (backpressure), never drop it.

        Each round replays the spool when a probe is due, then tries the spool, then the sink.
        Ends only with the batch durable, or unsaved when the stop deadline passes.
        """
        log.error("%s: holding %d lines until the sink or the spool takes them", self.name, n)
        rounds = 0
        while True:
            if self._stopping and time.monotonic() >= self._stop_deadline:
                with self._stats_lock:
                    self._unsaved += n
                log.error("%s: stop deadline passed; %d lines neither written nor spooled", self.name, n)
                return False
            rounds += 1
            self._sleep(self._delay(rounds))
            with self._stats_lock:
                self._retries += 1
            if self._spool_waiting() and not self._stopping:
                self._replay()
            if self.spool is not None and self._spool_append(body, n):
                return True
            err = self._attempt(body, n)
            if err is None:
                log.info("%s: held batch of %d lines written after %d round(s)", self.name, n, rounds)
                return True
            log.debug("%s: held batch still refused (round %d): %s", self.name, rounds, err)

    def _spool_append(self, body: bytes, n: int) -> bool:
        assert self.spool is not None
        try:
            self.spool.append(body, n)
        except SpoolFullError as exc:
            if not self._full_logged:
                log.error("%s: %s; holding data and retrying (backpressure)", self.name, exc)
                self._full_logged = True
            return False
        except SpoolError as exc:
            log.error("%s: spool append failed: %s", self.name, exc)
            return False
        self._full_logged = False
        with self._stats_lock:
            self._spooled_lines += n
        return True

    def _replay(self) -> None:
        """Replay the spool while the sink takes it; on error, schedule the next probe."""
        assert self.spool is not None
        if time.monotonic() < self._next_probe or self._stopping:
            return
        t_last = time.perf_counter()

        def on_sent(n: int, refused: list[bytes]) -> None:
            nonlocal t_last
            now = time.perf_counter()
            with self._stats_lock:
                self._replayed_lines += n
                self._points_written += n - len(refused)
                self._batches += 1
                self._last_latency_ms = (now - t_last) * 1000.0
            t_last = now
            if refused:
                self._dead_letter(refused, "refused during spool replay")

        try:
            res = self.spool.replay(self.sink, stop=lambda: self._stopping, on_sent=on_sent)
        except SpoolError as exc:
            log.error("%s: spool replay failed: %s", self.name, exc)
            res = None
        if res is not None and res.records:
            log.info("%s: replayed %d spooled line(s) in %d batch(es)", self.name, res.lines, res.records)
        if res is not None and res.error is None:
            self._probe_attempt = 0
            return
        with self._stats_lock:
            self._failures += 1
        self._probe_attempt += 1
        retry_after = res.error.retry_after if res is not None and res.error is not None else None
        self._next_probe = time.monotonic() + self._delay(self._probe_attempt, retry_after)
        if res is not None and res.error is not None:
            log.warning("%s: spool replay paused (%d record(s) left): %s",
                        self.name, self.spool.records, res.error)


def make_sink(cfg: StorageConfig) -> Sink:
    """The sink of ``cfg.backend``; no I/O (call ``ensure_ready`` at start)."""
    from .retention import routes  # the personal measurements' own policy or bucket

    if cfg.backend == "influx-v1":
        return InfluxV1Sink(
            cfg.url,
            cfg.database,
            retention_policy=cfg.retention_policy,
            username=cfg.username,
            password=cfg.password,
            gzip=cfg.gzip,
            timeout=cfg.timeout,
            create_database=cfg.create_database,
            routes=routes(cfg),
        )
    if cfg.backend == "influx-v2":
        assert cfg.org is not None and cfg.bucket is not None and cfg.token is not None  # validated
        return InfluxV2Sink(
            cfg.url,
            org=cfg.org,
            bucket=cfg.bucket,
            token=cfg.token,
            gzip=cfg.gzip,
            timeout=cfg.timeout,
            create_bucket=cfg.create_database,
            routes=routes(cfg),
        )
    return SqliteSink(cfg.sqlite_path, timeout=cfg.timeout)


def make_writer(
    cfg: StorageConfig, on_dead_letter: DeadLetter | None = None, *, name: str = "writer"
) -> BatchWriter:
    """A writer (not yet started) on the configured sink, spooling to ``cfg.spool_dir``.

    The sink's ``ensure_ready`` is not called: do it at start (``writer.sink.ensure_ready()``).
    """
    spool = Spool(cfg.spool_dir, max_bytes=cfg.spool_max_bytes)
    return BatchWriter(
        make_sink(cfg),
        batch_size=cfg.batch_size,
        flush_interval=cfg.flush_interval,
        max_retries=cfg.max_retries,
        retry_min_delay=cfg.retry_min_delay,
        retry_max_delay=cfg.retry_max_delay,
        spool=spool,
        on_dead_letter=on_dead_letter,
        name=name,
    )
