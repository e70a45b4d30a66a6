"""Health points (``supervisor``, ``ingest_errors``, ``fleet``) and the supervisor's own alarms
(spool filling up, persistent session lost, broker dropping messages)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from supervisor.ingest.mqtt import MqttIngest
from supervisor.ingest.pipeline import Pipeline
from supervisor.state.registry import StateRegistry
from supervisor.storage import schema
from supervisor.storage.writer import BatchWriter

_log = logging.getLogger(__name__)

SPOOL_ALARM = 0.8  # fill ratio that raises the spool alarm
SPOOL_CLEAR = 0.5
STORAGE_UNREACHABLE_S = 120.0  # storage failing this long (no batch accepted) raises the storage alarm

#: how the supervisor raises or clears one of its own alarms: (element, severity, state, text, ts)
AlarmSink = Callable[[str, str, str, str, float], None]


class Health:
    """What the supervisor reports about itself; every method runs on the pipeline thread."""

    def __init__(self, instance: str, pipeline: Pipeline, writer: BatchWriter, state: StateRegistry,
                 mqtt: MqttIngest, *, commands_refused: Callable[[], int], broker_counter: str | None,
                 data_dir: Path, alarm: AlarmSink, notify_stats: Callable[[], dict[str, object]] | None = None,
                 storage_unreachable_s: float = STORAGE_UNREACHABLE_S,
                 lane_fields: Callable[[], dict[str, float | int]] | None = None,
                 reload_fields: Callable[[], dict[str, int]] | None = None) -> None:
        self.instance = instance
        self.pipeline = pipeline
        self.writer = writer
        self.state = state
        self.mqtt = mqtt
        self.broker_counter = broker_counter
        self.commands_refused = commands_refused
        self.lane_fields = lane_fields
        self.reload_fields = reload_fields
        self.alarm = alarm
        self.notify_stats = notify_stats
        self.storage_unreachable_s = storage_unreachable_s
        self.storage_alarm = False
        self._failing_since: float | None = None
        self._failures_seen = 0
        self.spool_alarm = False
        self.msg_rate = 0.0
        self.broker_dropped: int | None = None  # the broker's drop counter, last value read
        self._broker_dropped_file = data_dir / "broker-dropped.json"
        self._sessions_lost_reported = 0
        self._last: tuple[float, int] = (time.monotonic(), 0)
        self.snmp_fields: Callable[[], dict[str, float | int]] | None = None  # supervisor/snmp/service.py

    def lines(self, now: float, mono: float) -> list[bytes]:
        """The ``supervisor``, ``ingest_errors`` and ``fleet`` points now."""
        c = self.pipeline.counters
        t0, n0 = self._last
        self.msg_rate = (c.received - n0) / max(mono - t0, 1e-6)
        self._last = (mono, c.received)
        ws = self.writer.stats()
        fields: dict[str, float | int] = {
            "received": c.received, "decoded": c.decoded, "errors": c.error_total, "points_written": ws.points_written,
            "write_latency_ms": ws.last_latency_ms, "spool_bytes": ws.spool_bytes, "lag_ms": c.lag_ms,
            "msg_rate": self.msg_rate, "devices": len(self.state), "dead_letters": ws.dead_letters,
            "commands_refused": self.commands_refused(), "sessions_lost": self.mqtt.stats.sessions_lost,
        }
        if self.broker_dropped is not None:
            fields["broker_dropped"] = self.broker_dropped
        if self.lane_fields is not None:
            fields.update(self.lane_fields())
        if self.reload_fields is not None:
            fields.update(self.reload_fields())
        if self.snmp_fields is not None:
            fields.update(self.snmp_fields())
        if self.notify_stats is not None:
            ns = self.notify_stats()
            for name in ("sent", "retried", "failed"):
                value = ns.get(name, 0)
                fields[f"notify_{name}"] = value if isinstance(value, int) else 0
        lines = [schema.supervisor_line(self.instance, fields, now)]
        lines += schema.ingest_error_lines(self.instance, c.errors, now)
        lines += schema.fleet_lines(self.state.counts(), now)
        return lines

    def alarms(self, now: float) -> None:
        """Raise or clear the supervisor alarms due now: the spool's, the storage's, a lost session."""
        self._spool_alarm(now)
        self._storage_alarm(now)
        lost = self.mqtt.stats.sessions_lost
        if lost > self._sessions_lost_reported:
            self._sessions_lost_reported = lost
            self.alarm("mqtt-session", "critical", "raised",
                       f"the broker lost the supervisor's persistent session ({lost} time(s) since start); "
                       "messages may be lost", now)

    def _storage_alarm(self, now: float) -> None:
        """Raise when the storage has refused every batch for ``storage_unreachable_s``; clear on the next one."""
        ws = self.writer.stats()
        failing = ws.failures > self._failures_seen and ws.last_write_at < now - self.storage_unreachable_s / 2
        self._failures_seen = ws.failures
        if failing:
            if self._failing_since is None:
                self._failing_since = now
        elif ws.last_write_at >= (self._failing_since or now):
            self._failing_since = None
        if self._failing_since is not None and not self.storage_alarm \
                and now - self._failing_since >= self.storage_unreachable_s:
            self.storage_alarm = True
            self.alarm("storage", "critical", "raised", f"storage unreachable for {now - self._failing_since:.0f} s "
                       f"({ws.spool_bytes} bytes spooled)", now)
        elif self._failing_since is None and self.storage_alarm:
            self.storage_alarm = False
            self.alarm("storage", "critical", "cleared", "storage reachable again", now)

    def _spool_alarm(self, now: float) -> None:
        """Raise one alarm when the spool passes SPOOL_ALARM of its bound, clear it below SPOOL_CLEAR."""
        ws = self.writer.stats()
        ratio = float(getattr(ws, "spool_fill_ratio", 0.0))
        state = None
        if ratio >= SPOOL_ALARM and not self.spool_alarm:
            self.spool_alarm, state = True, "raised"
            _log.error("spool %.0f%% full (%d bytes): InfluxDB has been unreachable; when it is full the "
                       "supervisor stops acknowledging and the broker keeps the messages", ratio * 100,
                       ws.spool_bytes)
        elif ratio < SPOOL_CLEAR and self.spool_alarm:
            self.spool_alarm, state = False, "cleared"
            _log.warning("spool back to %.0f%%: alarm cleared", ratio * 100)
        if state is not None:
            self.alarm("spool", "major", state, f"spool {ratio:.0%} full", now)

    def on_broker_dropped(self, payload: bytes, received: float) -> None:
        """The broker's count of dropped messages (pipeline thread): alarm on any increase.

        The count is the broker's, for every client since it started; the last value seen is kept
        in ``data_dir`` so that drops while the supervisor was down (its own queue overflowing,
        the likeliest case) are reported once it is back, and not again after a restart.
        """
        try:
            value = int(payload.strip())
        except ValueError:
            _log.warning("broker drop counter %s: not an integer: %r", self.broker_counter, payload[:40])
            return
        last = self.broker_dropped if self.broker_dropped is not None else self._last_dropped_on_disk()
        self.broker_dropped = value
        if last is not None and value == last:
            return
        if last is None or value < last:  # never seen, or the broker restarted (its counters too)
            new, since = value, "since the broker started"
        else:
            new, since = value - last, f"since the last reading ({last})"
        try:
            self._broker_dropped_file.parent.mkdir(parents=True, exist_ok=True)
            self._broker_dropped_file.write_bytes(orjson.dumps({"dropped": value, "at": received}))
        except OSError as exc:
            _log.warning("cannot keep the broker drop counter in %s: %s", self._broker_dropped_file, exc)
        if new <= 0:
            return
        text = (f"the broker dropped {new} messages {since}: a queue reached max_queued_messages or "
                "max_queued_bytes; messages of the supervisor's session may be lost")
        _log.error("%s (counter %s = %d)", text, self.broker_counter, value)
        self.alarm("broker-queue", "critical", "raised", text, received)

    def _last_dropped_on_disk(self) -> int | None:
        try:
            return int(orjson.loads(self._broker_dropped_file.read_bytes())["dropped"])
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
