"""Storage: line protocol, the batch writer (retries, spool) and the sinks (InfluxDB v1/v2, SQLite).

Typical use::

    writer = make_writer(settings.storage, on_dead_letter=...)
    writer.sink.ensure_ready()
    writer.start()
    writer.submit([reading_line(r, ts_ms) for r in readings], on_durable=ack_batch)
    ...
    writer.stop(timeout=30)
"""

from ._errors import PartialWriteError, Sink, StorageConfigError, StorageError
from ._influx import InfluxV1Sink, InfluxV2Sink
from ._sqlite import SqliteSink, StoredPoint
from .lineprotocol import (
    LineProtocolError,
    ParsedPoint,
    event_line,
    parse_line,
    point_line,
    reading_line,
)
from .spool import ReplayResult, Spool, SpoolError, SpoolFullError, SpoolStats
from .writer import (
    BatchWriter,
    DeadLetter,
    WriterBusyError,
    WriterStats,
    WriterStoppedError,
    make_sink,
    make_writer,
)

__all__ = [
    "BatchWriter",
    "DeadLetter",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "LineProtocolError",
    "ParsedPoint",
    "PartialWriteError",
    "ReplayResult",
    "Sink",
    "Spool",
    "SpoolError",
    "SpoolFullError",
    "SpoolStats",
    "SqliteSink",
    "StorageConfigError",
    "StorageError",
    "StoredPoint",
    "WriterBusyError",
    "WriterStats",
    "WriterStoppedError",
    "event_line",
    "make_sink",
    "make_writer",
    "parse_line",
    "point_line",
    "reading_line",
]
