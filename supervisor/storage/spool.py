"""On-disk append-only spool: batches the sink could not take, kept until it can.

Layout: a directory of segment files ``seg-<16 digits>.spool``, numbered in append order. Each
record is ``MAGIC(4) | length(u32) | count(u32) | crc32(u32) | body``, little endian, where the
CRC covers length, count and body. A segment is rotated when it passes ``segment_bytes``.

Durability: :meth:`Spool.append` writes the whole record, flushes and ``fsync``\\ s the file (and the
directory when it created a segment) *before* returning, so that a batch reported as spooled
survives a process kill or power loss; only then does the writer acknowledge the batch upstream.

Crash recovery: a record cut by a kill (short header, length past the end of file) or damaged on
disk (bad magic, bad CRC) is detected, counted in ``corrupt_records`` and skipped, never raised:
a damaged tail of the newest segment is truncated at start so appends continue cleanly; damage in
the middle of a segment is skipped by searching the next valid record.

Replay: :meth:`Spool.replay` sends records oldest first and deletes a segment only after the sink
accepted every record in it. The position inside the oldest segment is kept in memory only: after
a crash, records of a partly replayed segment are sent again, which is harmless because InfluxDB
overwrites a point with the same series and timestamp.

Bound and backpressure: the spool never grows past ``max_bytes``. When a record does not fit,
:meth:`append` raises :class:`SpoolFullError` and the caller keeps the batch. The batch writer then
keeps retrying the sink and stops acknowledging, so the pending queue fills, ``submit`` blocks and
the MQTT client stops acknowledging messages: the broker keeps them (persistent session) instead
of this process losing data or filling the disk.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._errors import PartialWriteError, Sink, StorageError

__all__ = ["ReplayResult", "Spool", "SpoolError", "SpoolFullError", "SpoolStats"]

log = logging.getLogger(__name__)

MAGIC = b"USP1"
_HEADER = struct.Struct("<4sIII")
_LEN_COUNT = struct.Struct("<II")
_SEG_RE = re.compile(r"^seg-(\d{16})\.spool$")
_MAX_RECORD = 1 << 30


class SpoolError(Exception):
    """The spool directory cannot be used (permissions, disk); carries the path and cause."""


class SpoolFullError(SpoolError):
    """The record does not fit under ``max_bytes``; nothing was written."""

    def __init__(self, needed: int, used: int, limit: int) -> None:
        super().__init__(f"spool full: record of {needed} bytes, {used} of {limit} bytes used")
        self.needed = needed
        self.used = used
        self.limit = limit


@dataclass(frozen=True, slots=True)
class SpoolStats:
    bytes: int
    records: int
    lines: int
    segments: int
    fill_ratio: float
    corrupt_records: int
    appended: int
    replayed: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one :meth:`Spool.replay` call did; ``error`` is the sink error that stopped it."""

    records: int
    lines: int
    rejected: list[bytes]
    error: StorageError | None


def _crc(length: int, count: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_LEN_COUNT.pack(length, count)))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Record:
    offset: int
    end: int
    count: int
    body: bytes


def _scan(data: bytes, start: int = 0) -> tuple[list[_Record], list[int], int]:
    """Valid records of a segment from ``start``; returns (records, corrupt_offsets, end_of_valid)."""
    records: list[_Record] = []
    corrupt: list[int] = []
    pos = start
    n = len(data)
    valid_end = start
    while pos < n:
        rec = _record_at(data, pos)
        if rec is not None:
            records.append(rec)
            pos = valid_end = rec.end
            continue
        corrupt.append(pos)
        # resynchronise on the next valid record, if any
        nxt = data.find(MAGIC, pos + 1)
        while nxt != -1 and _record_at(data, nxt) is None:
            nxt = data.find(MAGIC, nxt + 1)
        if nxt == -1:
            break
        pos = nxt
    return records, corrupt, valid_end


def _record_at(data: bytes, pos: int) -> _Record | None:
    if pos + _HEADER.size > len(data):
        return None
    magic, length, count, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if magic != MAGIC or length > _MAX_RECORD or end > len(data):
        return None
    body = data[pos + _HEADER.size : end]
    if _crc(length, count, body) != crc:
        return None
    return _Record(pos, end, count, body)


class Spool:
    """Append-only, CRC-checked, size-bounded spool in ``directory``. Thread-safe."""

    def __init__(self, directory: str | Path, *, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes < 1024:
            raise ValueError(f"spool max_bytes must be >= 1024, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self._lock = threading.RLock()  # metadata and appends
        self._replay_lock = threading.Lock()  # one replay at a time
        self._sizes: dict[int, int] = {}  # segment number -> bytes on disk
        self._records: dict[int, int] = {}  # segment number -> valid records not yet replayed
        self._lines: dict[int, int] = {}
        self._head_offset = 0  # replay position inside the oldest segment
        self._corrupt = 0
        self._corrupt_seen: set[tuple[int, int]] = set()
        self._appended = 0
        self._replayed = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.directory}: {exc.strerror or exc}") from exc
        self._open_existing()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # -- start-up --------------------------------------------------------------------------------

    def _path(self, seg: int) -> Path:
        return self.directory / f"seg-{seg:016d}.spool"

    def _open_existing(self) -> None:
        segs = sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := _SEG_RE.match(p.name))
        )
        for i, seg in enumerate(segs):
            path = self._path(seg)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SpoolError(f"cannot read spool segment {path}: {exc.strerror or exc}") from exc
            records, corrupt, valid_end = _scan(data)
            if corrupt:
                self._note_corrupt(seg, corrupt, "at start")
            newest = i == len(segs) - 1
            if newest and valid_end < len(data):
                # torn tail from a kill: cut it so new appends follow the last good record
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                    f.flush()
                    os.fsync(f.fileno())
                data_len = valid_end
            else:
                data_len = len(data)
            if not records:
                path.unlink(missing_ok=True)
                continue
            self._sizes[seg] = data_len
            self._records[seg] = len(records)
            self._lines[seg] = sum(r.count for r in records)
        if self._sizes:
            log.info("spool: %d record(s), %d byte(s) to replay in %s",
                     self.records, self.size_bytes, self.directory)

    def _note_corrupt(self, seg: int, offsets: list[int], when: str) -> None:
        """Count each damaged place once (it is seen at start and again during replay)."""
        new = [off for off in offsets if (seg, off) not in self._corrupt_seen]
        if new:
            self._corrupt_seen.update((seg, off) for off in new)
            self._corrupt += len(new)
            log.error("spool: %d corrupt record(s) in %s skipped %s", len(new), self._path(seg).name, when)

    # -- metrics ---------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    @property
    def records(self) -> int:
        with self._lock:
            return sum(self._records.values())

    @property
    def fill_ratio(self) -> float:
        return self.size_bytes / self.max_bytes

    def __len__(self) -> int:
        return self.records

    def stats(self) -> SpoolStats:
        with self._lock:
            b = sum(self._sizes.values())
            return SpoolStats(
                bytes=b,
                records=sum(self._records.values()),
                lines=sum(self._lines.values()),
                segments=len(self._sizes),
                fill_ratio=b / self.max_bytes,
                corrupt_records=self._corrupt,
                appended=self._appended,
                replayed=self._replayed,
            )

    # -- append ----------------------------------------------------------------------------------

    def append(self, body: bytes, count: int) -> None:
        """Store one batch durably (fsync) or raise :class:`SpoolFullError` / :class:`SpoolError`."""
        length = len(body)
        if length > _MAX_RECORD:
            raise SpoolError(f"record of {length} bytes is larger than the spool record limit")
        record = _HEADER.pack(MAGIC, length, count, _crc(length, count, body)) + body
        with self._lock:
            used = sum(self._sizes.values())
            if used + len(record) > self.max_bytes:
                raise SpoolFullError(len(record), used, self.max_bytes)
            seg = max(self._sizes) if self._sizes else None
            created = False
            if seg is None or self._sizes[seg] >= self.segment_bytes:
                seg = (seg or self._last_number()) + 1
                created = True
            path = self._path(seg)
            try:
                with open(path, "ab") as f:
                    start = f.tell()
                    try:
                        f.write(record)
                        f.flush()
                        os.fsync(f.fileno())
                    except OSError:
                        f.truncate(start)  # do not leave half a record behind
                        raise
            except OSError as exc:
                raise SpoolError(f"cannot append to {path}: {exc.strerror or exc}") from exc
            if created:
                _fsync_dir(self.directory)
                self._sizes[seg] = 0
                self._records[seg] = 0
                self._lines[seg] = 0
            self._sizes[seg] += len(record)
            self._records[seg] += 1
            self._lines[seg] += count
            self._appended += 1

    def _last_number(self) -> int:
        nums = [int(m.group(1)) for p in self.directory.iterdir() if (m := _SEG_RE.match(p.name))]
        return max(nums, default=0)

    # -- replay ----------------------------------------------------------------------------------

    def replay(
        self,
        sink: Sink,
        *,
        max_records: int | None = None,
        stop: Callable[[], bool] | None = None,
        on_sent: Callable[[int, list[bytes]], None] | None = None,
    ) -> ReplayResult:
        """Send spooled records to ``sink`` oldest first, until empty, an error, ``max_records`` or
        ``stop()`` returns true (checked before each record).

        A retryable or batch-level :class:`StorageError` stops the replay (returned in ``error``;
        the record stays). A :class:`PartialWriteError` counts as done: its refused lines are
        returned in ``rejected`` for the dead-letter path. ``on_sent(lines, rejected)`` is called
        after each confirmed record (live counters). The spool lock is not held while the sink
        works, so appends and metrics from other threads do not wait for the network.
        """
        sent = lines = 0
        rejected: list[bytes] = []
        with self._replay_lock:
            while max_records is None or sent < max_records:
                with self._lock:
                    if not self._sizes:
                        break
                    seg = min(self._sizes)
                    base, size = self._head_offset, self._sizes[seg]
                path = self._path(seg)
                try:
                    with open(path, "rb") as f:
                        f.seek(base)
                        data = f.read(size - base)
                except OSError as exc:
                    raise SpoolError(f"cannot read {path}: {exc.strerror or exc}") from exc
                records, corrupt, _ = _scan(data)
                if corrupt:
                    with self._lock:
                        self._note_corrupt(seg, [base + off for off in corrupt], "during replay")
                for rec in records:
                    if (max_records is not None and sent >= max_records) or (stop is not None and stop()):
                        return ReplayResult(sent, lines, rejected, None)
                    refused: list[bytes] = []
                    try:
                        sink.write(rec.body, rec.count)
                    except PartialWriteError as exc:
                        refused = exc.rejected
                    except StorageError as exc:
                        return ReplayResult(sent, lines, rejected, exc)
                    rejected.extend(refused)
                    sent += 1
                    lines += rec.count
                    with self._lock:
                        self._replayed += 1
                        self._head_offset = base + rec.end
                        self._records[seg] -= 1
                        self._lines[seg] -= rec.count
                    if on_sent is not None:
                        on_sent(rec.count, refused)
                with self._lock:
                    if self._sizes[seg] > size:
                        self._head_offset = size  # appended while we replayed: read the rest
                        continue
                    # every record of the segment is confirmed: delete it
                    path.unlink(missing_ok=True)
                    del self._sizes[seg], self._records[seg], self._lines[seg]
                    self._head_offset = 0
        return ReplayResult(sent, lines, rejected, None)
