"""Batch writer: batching by size and time, durability callbacks, backpressure, spool and replay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drivers import Reading
from supervisor.config import StorageConfig
from supervisor.storage import (
    BatchWriter,
    InfluxV1Sink,
    InfluxV2Sink,
    Sink,
    Spool,
    SqliteSink,
    StorageError,
    WriterBusyError,
    WriterStoppedError,
    make_sink,
    make_writer,
    reading_line,
)
from tests.support.services import INFLUX_URL, Influx

TS = 1_764_115_200_000


class Recorder:
    """Wraps a sink (or none) and records every write: what was sent, and whether it was accepted."""

    name = "recorder"

    def __init__(self, inner: Sink | None = None) -> None:
        self.inner = inner
        self.calls: list[tuple[int, bool]] = []  # (count, accepted)
        self.accepted: list[bytes] = []
        self.lock = threading.Lock()

    def ensure_ready(self) -> None:
        if self.inner is not None:
            self.inner.ensure_ready()

    def write(self, body: bytes, count: int) -> None:
        try:
            if self.inner is not None:
                self.inner.write(body, count)
        except StorageError:
            with self.lock:
                self.calls.append((count, False))
            raise
        with self.lock:
            self.calls.append((count, True))
            self.accepted.extend(body.split(b"\n"))

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class Switch:
    """A sink that delegates to ``target``, which the test can change while the writer runs."""

    name = "switch"

    def __init__(self, target: Sink) -> None:
        self.target = target

    def ensure_ready(self) -> None:
        self.target.ensure_ready()

    def write(self, body: bytes, count: int) -> None:
        self.target.write(body, count)

    def close(self) -> None:
        self.target.close()


def _lines(n: int, start: int = 0, device: str = "d") -> list[bytes]:
    return [reading_line(Reading(device, "traffic", {"flow": float(i)}, zone="z"), TS + i)
            for i in range(start, start + n)]


def _wait(pred: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_batches_by_size() -> None:
    rec = Recorder()
    w = BatchWriter(rec, batch_size=100, flush_interval=30.0)
    w.start()
    for i in range(7):
        w.submit(_lines(50, start=i * 50))
    # 350 lines: three full batches go out without waiting for the (long) interval
    assert _wait(lambda: sum(c for c, _ in rec.calls) == 300)
    assert [c for c, _ in rec.calls] == [100, 100, 100]
    assert w.stats().pending == 50
    assert w.stop(5)
    assert [c for c, _ in rec.calls] == [100, 100, 100, 50]
    assert rec.accepted == _lines(350)


def test_batches_by_time() -> None:
    rec = Recorder()
    w = BatchWriter(rec, batch_size=10_000, flush_interval=0.1)
    w.start()
    w.submit(_lines(5))
    assert _wait(lambda: rec.calls == [(5, True)], timeout=5)
    w.submit(_lines(3, start=5))
    assert _wait(lambda: len(rec.calls) == 2, timeout=5)
    assert rec.calls == [(5, True), (3, True)]
    w.stop(5)


def test_large_submit_is_split_and_acknowledged_once_after_the_last_chunk() -> None:
    rec = Recorder()
    durable: list[int] = []
    w = BatchWriter(rec, batch_size=100, flush_interval=0.05)

    def on_durable() -> None:
        durable.append(sum(c for c, ok in rec.calls if ok))

    w.submit(_lines(450), on_durable)
    w.start()
    assert w.flush(5)
    assert [c for c, _ in rec.calls] == [100, 100, 100, 100, 50]
    assert durable == [450]  # called once, after every line was written
    w.stop(5)


def test_flush_and_stats() -> None:
    rec = Recorder()
    w = BatchWriter(rec, batch_size=1000, flush_interval=60.0)
    w.start()
    w.submit(_lines(10))
    assert w.flush(5)
    s = w.stats()
    assert (s.points_written, s.batches, s.pending, s.failures, s.retries) == (10, 1, 0, 0, 0)
    assert s.last_latency_ms >= 0
    assert w.stop(5)
    with pytest.raises(WriterStoppedError):
        w.submit(_lines(1))


class Stuck(Recorder):
    """A sink whose writes wait for ``gate`` (a frozen InfluxDB); ``in_write`` is set once one started."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.in_write = threading.Event()

    def write(self, body: bytes, count: int) -> None:
        self.in_write.set()
        self.gate.wait(10)
        super().write(body, count)


def test_submit_blocks_when_pending_is_full() -> None:
    rec = Stuck()
    gate, in_write = rec.gate, rec.in_write
    w = BatchWriter(rec, batch_size=10, flush_interval=0.01, max_pending=20)
    w.start()
    w.submit(_lines(10))  # taken by the thread, stuck in write
    assert in_write.wait(10)
    w.submit(_lines(20, start=10))  # fills the queue
    with pytest.raises(WriterBusyError):
        w.submit(_lines(1, start=30), timeout=0.2)
    gate.set()
    w.submit(_lines(1, start=30), timeout=10)  # room again
    assert w.stop(10)
    assert rec.accepted == _lines(31)


def test_oldest_unstored_is_the_batch_being_written_then_the_queue_then_none() -> None:
    rec = Stuck()
    gate, in_write = rec.gate, rec.in_write
    w = BatchWriter(rec, batch_size=10, flush_interval=0.01, max_pending=100)
    assert w.oldest_unstored() == 0.0
    w.start()
    t0 = time.monotonic()
    w.submit(_lines(10))  # taken by the thread, stuck in write (a frozen InfluxDB)
    assert in_write.wait(10)
    time.sleep(0.05)
    w.submit(_lines(5, start=10))  # queued behind it
    assert t0 <= w.oldest_unstored() < t0 + 0.05, "the batch being written is the oldest"
    gate.set()
    assert _wait(lambda: w.stats().points_written == 15)
    assert _wait(lambda: w.oldest_unstored() == 0.0), "everything stored: nothing waits"
    assert w.stop(10)


def test_retries_then_succeeds_without_spool() -> None:
    fails = {"n": 3}

    class Flaky(Recorder):
        def write(self, body: bytes, count: int) -> None:
            if fails["n"] > 0:
                fails["n"] -= 1
                with self.lock:
                    self.calls.append((count, False))
                raise StorageError(True, 500, "engine: error syncing wal")
            super().write(body, count)

    rec = Flaky()
    acked: list[bool] = []
    w = BatchWriter(rec, batch_size=100, flush_interval=0.01, max_retries=5,
                    retry_min_delay=0.01, retry_max_delay=0.02)
    w.start()
    w.submit(_lines(20), lambda: acked.append(True))
    assert w.flush(10)
    s = w.stats()
    assert (s.retries, s.failures, s.points_written) == (3, 3, 20)
    assert acked == [True]
    w.stop(5)


@pytest.mark.integration
def test_sink_down_spools_then_replays_exactly_once(tmp_path: Path, closed_port: int, influx: Influx,
                                                    influx_db: str) -> None:
    """v1 sink on a closed port → everything spooled and acknowledged; then the real InfluxDB
    comes in: the spool is replayed oldest first, before new data, with exact counts."""
    down = InfluxV1Sink(f"http://127.0.0.1:{closed_port}", influx_db, timeout=1, create_database=False)
    up = InfluxV1Sink(INFLUX_URL, influx_db, create_database=False)
    switch = Switch(down)
    rec = Recorder(switch)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 24)
    w = BatchWriter(rec, batch_size=200, flush_interval=0.02, max_retries=2, retry_min_delay=0.01,
                    retry_max_delay=0.05, spool=spool)
    w.start()
    acked: list[int] = []
    for i in range(10):
        w.submit(_lines(100, start=i * 100), lambda i=i: acked.append(i))
    assert w.flush(20)
    assert acked == list(range(10))  # durable in the spool, in order
    s = w.stats()
    assert s.points_written == 0 and s.spooled_lines == 1000 and s.spool_records > 0
    assert s.failures >= 3 and s.retries >= 2

    switch.target = up
    w.submit(_lines(100, start=1000), lambda: acked.append(10))
    assert w.flush(20)
    assert _wait(lambda: w.stats().spool_records == 0, timeout=20)
    assert w.stop(10)
    s = w.stats()
    assert s.points_written == 1100 and s.spool_bytes == 0
    # the new batch was written directly or queued behind the spool (if no probe was due): both keep order
    assert s.replayed_lines in (1000, 1100)
    assert acked == list(range(11))
    # every line was accepted exactly once, the spooled ones before the new ones
    assert rec.accepted == _lines(1100)
    assert int(influx.scalar('SELECT COUNT("flow") FROM "traffic"', influx_db)) == 1100  # type: ignore[call-overload]


@pytest.mark.integration
def test_spool_survives_writer_restart(tmp_path: Path, closed_port: int, influx: Influx, influx_db: str) -> None:
    """A writer stopped while the sink is down leaves a spool that the next writer replays."""
    down = InfluxV1Sink(f"http://127.0.0.1:{closed_port}", influx_db, timeout=1, create_database=False)
    w1 = BatchWriter(down, batch_size=500, flush_interval=60.0, max_retries=5, retry_min_delay=0.5,
                     spool=Spool(tmp_path, max_bytes=1 << 24))
    w1.start()
    w1.submit(_lines(1234))
    assert w1.stop(10)  # stop skips the remaining retries and spools
    assert w1.stats().spooled_lines == 1234 and w1.stats().unsaved == 0

    rec = Recorder(InfluxV1Sink(INFLUX_URL, influx_db, create_database=False))
    w2 = BatchWriter(rec, batch_size=500, flush_interval=0.02, spool=Spool(tmp_path, max_bytes=1 << 24))
    assert w2.stats().spool_records == 3
    w2.start()
    assert _wait(lambda: w2.stats().spool_records == 0, timeout=20)
    assert w2.stop(10)
    assert rec.accepted == _lines(1234)
    assert int(influx.scalar('SELECT COUNT("flow") FROM "traffic"', influx_db)) == 1234  # type: ignore[call-overload]


def test_full_spool_applies_backpressure_and_loses_nothing(tmp_path: Path) -> None:
    down = {"on": True}

    class Outage(Recorder):
        def write(self, body: bytes, count: int) -> None:
            if down["on"]:
                with self.lock:
                    self.calls.append((count, False))
                raise StorageError(True, 503, "unavailable")
            super().write(body, count)

    rec = Outage()
    acked: list[int] = []
    w = BatchWriter(rec, batch_size=50, flush_interval=0.01, max_retries=0, retry_min_delay=0.01,
                    retry_max_delay=0.02, spool=Spool(tmp_path, max_bytes=4096), max_pending=100)
    w.start()

    def produce() -> None:
        for i in range(10):
            w.submit(_lines(50, start=i * 50), lambda i=i: acked.append(i), timeout=30)

    producer = threading.Thread(target=produce)
    producer.start()
    # the spool fills up, then nothing more is acknowledged and the producer blocks in submit
    assert _wait(lambda: w.stats().spool_fill_ratio > 0.5 and w.stats().pending >= 100)
    assert producer.is_alive()
    n_acked = len(acked)
    assert 1 <= n_acked < 10
    assert acked == list(range(n_acked))
    down["on"] = False
    producer.join(30)
    assert not producer.is_alive()
    assert w.flush(20)
    assert _wait(lambda: w.stats().spool_records == 0)
    assert w.stop(10)
    assert acked == list(range(10))
    assert sorted(rec.accepted) == sorted(_lines(500)) and len(rec.accepted) == 500


def test_stop_without_spool_reports_unsaved(closed_port: int) -> None:
    down = InfluxV1Sink(f"http://127.0.0.1:{closed_port}", "db", timeout=0.5)
    acked: list[bool] = []
    w = BatchWriter(down, batch_size=10, flush_interval=0.01, max_retries=1, retry_min_delay=0.01,
                    retry_max_delay=0.02)
    w.start()
    w.submit(_lines(5), lambda: acked.append(True))
    assert not w.flush(0.3)
    assert not w.stop(0.5)
    assert w.stats().unsaved == 5 and acked == []


def test_factories(tmp_path: Path) -> None:
    v1 = make_sink(StorageConfig(database="x", username="u", password="p"))  # type: ignore[arg-type]
    assert isinstance(v1, InfluxV1Sink) and "p'" not in repr(v1)
    v2 = make_sink(StorageConfig(backend="influx-v2", org="o", bucket="b", token="t"))  # type: ignore[arg-type]
    assert isinstance(v2, InfluxV2Sink)
    cfg = StorageConfig(backend="sqlite", sqlite_path=tmp_path / "db.sqlite3", spool_dir=tmp_path / "spool",
                        batch_size=10, flush_interval=0.01)
    w = make_writer(cfg)
    assert isinstance(w.sink, SqliteSink)
    w.sink.ensure_ready()
    w.start()
    w.submit(_lines(25))
    assert w.flush(5)
    assert w.sink.count("traffic") == 25
    assert w.stop(5)
