"""Spool: order, deletion after confirmation, bound, and recovery from torn or damaged records."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from supervisor.storage import PartialWriteError, Spool, SpoolFullError, StorageError


class RecordingSink:
    """Accepts writes and records them; can be told to fail from the n-th call on."""

    name = "recording"

    def __init__(self, fail_after: int | None = None, reject: bytes | None = None) -> None:
        self.bodies: list[bytes] = []
        self.fail_after = fail_after
        self.reject = reject

    def ensure_ready(self) -> None:
        pass

    def write(self, body: bytes, count: int) -> None:
        if self.fail_after is not None and len(self.bodies) >= self.fail_after:
            raise StorageError(True, None, "down")
        if self.reject is not None and self.reject in body:
            lines = body.split(b"\n")
            bad = [ln for ln in lines if self.reject in ln]
            self.bodies.append(b"\n".join(ln for ln in lines if self.reject not in ln))
            raise PartialWriteError(400, "refused", bad, len(lines) - len(bad))
        self.bodies.append(body)

    def close(self) -> None:
        pass


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("seg-*.spool"))


def test_append_and_replay_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1024)
    bodies = [f"m v={i}i {i}".encode() * 20 for i in range(30)]
    for b in bodies:
        spool.append(b, 20)
    assert spool.records == 30 and len(_segments(tmp_path)) > 3
    st = spool.stats()
    assert st.lines == 600 and 0 < st.fill_ratio < 1 and st.bytes == sum(p.stat().st_size for p in _segments(tmp_path))
    sink = RecordingSink()
    res = spool.replay(sink)
    assert res.error is None and res.records == 30 and res.lines == 600
    assert sink.bodies == bodies
    assert spool.records == 0 and spool.size_bytes == 0 and _segments(tmp_path) == []


def test_replay_stops_at_error_and_resumes_without_duplicates(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    bodies = [f"m v={i}i {i}".encode() for i in range(25)]
    for b in bodies:
        spool.append(b, 1)
    first = RecordingSink(fail_after=11)
    res = spool.replay(first)
    assert res.records == 11 and res.error is not None and res.error.retryable
    assert spool.records == 14
    # a segment is only deleted once every record in it was confirmed
    remaining = b"".join(p.read_bytes() for p in _segments(tmp_path))
    assert bodies[11] in remaining
    second = RecordingSink()
    assert spool.replay(second).records == 14
    assert first.bodies + second.bodies == bodies


def test_refused_lines_during_replay_are_returned_not_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(b"a v=1i 1\nBAD v=1i 2\nc v=1i 3", 3)
    spool.append(b"d v=1i 4", 1)
    res = spool.replay(RecordingSink(reject=b"BAD"))
    assert res.error is None and res.records == 2 and res.rejected == [b"BAD v=1i 2"]
    assert spool.records == 0


def test_full_spool_refuses_append(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2048)
    body = b"x" * 500
    for _ in range(3):
        spool.append(body, 1)
    with pytest.raises(SpoolFullError) as info:
        spool.append(body, 1)
    assert info.value.limit == 2048 and info.value.used == spool.size_bytes
    assert spool.records == 3 and spool.fill_ratio > 0.7
    spool.replay(RecordingSink())
    spool.append(body, 1)  # room again after replay
    assert spool.records == 1


def test_truncated_tail_is_detected_skipped_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append(f"line {i}".encode(), 1)
    seg = _segments(tmp_path)[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 3)  # a kill in the middle of the last record
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.records == 4
    assert reopened.stats().corrupt_records == 1
    reopened.append(b"after crash", 1)
    sink = RecordingSink()
    assert reopened.replay(sink).error is None
    assert sink.bodies == [b"line 0", b"line 1", b"line 2", b"line 3", b"after crash"]


def test_damaged_record_in_the_middle_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append(f"record-{i}".encode(), 1)
    seg = _segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    pos = data.index(b"record-2")
    data[pos] ^= 0xFF  # bit rot: the CRC no longer matches
    seg.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    sink = RecordingSink()
    res = reopened.replay(sink)
    assert res.error is None
    assert sink.bodies == [b"record-0", b"record-1", b"record-3", b"record-4"]
    assert reopened.stats().corrupt_records == 1


def test_garbage_only_segment_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "seg-0000000000000001.spool").write_bytes(os.urandom(100))
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert spool.records == 0 and spool.stats().corrupt_records == 1
    spool.append(b"ok", 1)
    sink = RecordingSink()
    spool.replay(sink)
    assert sink.bodies == [b"ok"]


def test_survives_sigkill_during_appends(tmp_path: Path) -> None:
    """Every append that returned before the kill is replayed; the torn one is skipped."""
    script = textwrap.dedent(f"""
        import sys
        from supervisor.storage.spool import Spool
        s = Spool({str(tmp_path)!r}, max_bytes=1 << 26, segment_bytes=1 << 16)
        for i in range(100000):
            s.append((b"%08d " % i) * 50, 1)
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    acked = -1
    for _ in range(200):
        line = proc.stdout.readline()
        if not line:
            break
        acked = int(line)
        if acked >= 150:
            break
    proc.kill()
    proc.wait(10)
    proc.stdout.close()
    assert acked >= 150
    spool = Spool(tmp_path, max_bytes=1 << 26, segment_bytes=1 << 16)
    sink = RecordingSink()
    assert spool.replay(sink).error is None
    got = [int(b[:8]) for b in sink.bodies]
    assert got == list(range(len(got)))  # in order, no gap, no duplicate
    assert len(got) >= acked + 1
    assert spool.stats().corrupt_records <= 1


def test_append_during_replay_is_not_lost(tmp_path: Path) -> None:
    """Records appended to the segment being replayed are kept (the segment is not deleted)."""
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(b"r0", 1)
    spool.append(b"r1", 1)
    seen: list[bytes] = []

    class AppendingSink(RecordingSink):
        def write(self, body: bytes, count: int) -> None:
            super().write(body, count)
            if body == b"r0":
                spool.append(b"late", 1)  # another thread appending while the sink works

    sink = AppendingSink()
    res = spool.replay(sink, on_sent=lambda n, refused: seen.append(b"%d" % n))
    assert res.error is None
    assert sink.bodies == [b"r0", b"r1", b"late"]
    assert seen == [b"1", b"1", b"1"]
    assert spool.records == 0 and _segments(tmp_path) == []


def test_replay_honours_stop(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append(b"r%d" % i, 1)
    sink = RecordingSink()
    res = spool.replay(sink, stop=lambda: len(sink.bodies) >= 2)
    assert res.records == 2 and res.error is None and spool.records == 3
    spool.replay(sink)
    assert sink.bodies == [b"r0", b"r1", b"r2", b"r3", b"r4"]
