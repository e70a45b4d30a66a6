"""The supervisor process: wires MQTT, drivers, state, model, alarms, rules and storage together.

Threads, each with one job:

- paho's network thread receives messages into the :class:`~supervisor.ingest.mqtt.Inbox`;
- the *pipeline* thread takes batches, runs the pipeline, and between batches runs the periodic
  work (staleness, alarm correlation, rule ticks, health points); it holds ``lock`` while it
  touches shared state, and the API takes the same lock for its short reads and writes;
- the writer thread posts line protocol to InfluxDB (or the SQLite store) and acknowledges.

The asyncio loop (API server) never sees a message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from drivers import Command, Driver, DriverError
from drivers import get as get_driver
from supervisor.config import Settings
from supervisor.ingest.identity import IdentityMap
from supervisor.ingest.mqtt import Inbox, MqttIngest
from supervisor.ingest.pipeline import Pipeline
from supervisor.ingest.router import Router
from supervisor.state.registry import STALE, STATUS_CODE, StateRegistry, StatusChange
from supervisor.storage import StorageError
from supervisor.storage.lineprotocol import point_line
from supervisor.storage.writer import BatchWriter, make_sink, make_writer

_log = logging.getLogger(__name__)

BATCH_LIMIT = 5000
HEALTH_INTERVAL = 5.0
RULE_TICK = 0.05  # s between rule-engine ticks (schedules, leases, ramps, retries)
SPOOL_ALARM = 0.8  # fill ratio that raises the spool alarm
SPOOL_CLEAR = 0.5


class SupervisorError(Exception):
    """The supervisor cannot start with this configuration (message says why and where)."""


class CommandRefusedError(SupervisorError):
    """A command the supervisor will not publish (unknown device, foreign topic, rate limit)."""


class _TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


def build_drivers(settings: Settings) -> dict[str, Driver]:
    out: dict[str, Driver] = {}
    for name, dcfg in settings.drivers.items():
        if not dcfg.enabled:
            continue
        try:
            cls = get_driver(name)
        except KeyError as exc:
            raise SupervisorError(f"drivers.{name}: {exc}") from None
        try:
            out[name] = cls(dcfg.options)
        except DriverError as exc:
            raise SupervisorError(f"drivers.{name}.options: {exc}") from None
    if not out:
        raise SupervisorError("drivers: no driver enabled")
    return out


def subscription_roots(filters: list[str]) -> list[str]:
    """``root/#`` for each filter whose first level is literal, the filter itself otherwise."""
    out: list[str] = []
    for flt in filters:
        first = flt.split("/", 1)[0]
        sub = flt if first in ("+", "#") or "/" not in flt else f"{first}/#"
        if sub not in out:
            out.append(sub)
    return out


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        writer: BatchWriter | None = None,
        model: Any = None,
        rule_set: Any = None,
        instance: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.drivers = build_drivers(settings)
        self.router = Router(list(self.drivers.values()))
        topics = settings.mqtt.subscriptions or subscription_roots([flt for flt, _ in self.router.filters])
        self.inbox = Inbox(settings.mqtt.inbox_max)
        self.mqtt = MqttIngest(settings.mqtt, topics, self.inbox)
        self.writer = writer if writer is not None else make_writer(self._storage_config(settings))
        self._own_writer = writer is None
        intervals = {fam: fs.interval for fam, fs in settings.state.families.items()}
        self.state = StateRegistry(intervals, settings.state.stale_factor)
        self.model = model
        self.alarms: Any = None
        if model is not None:
            from supervisor.alarms import AlarmManager

            self.alarms = AlarmManager(model)
        self.rules: Any = None
        self.lock = threading.RLock()
        self.pipeline = Pipeline(
            self.router, self.state, self.writer, self.mqtt.ack, clock=clock,
            max_payload_bytes=settings.mqtt.max_payload_bytes, on_status=self._on_status,
            identity=IdentityMap(settings.identity.map, model.devices if model is not None else None,
                                 settings.identity.unknown),
            broker_counter=(settings.mqtt.broker_drop_counter, self._on_broker_dropped)
            if settings.mqtt.broker_drop_counter else None,
        )
        self.device_driver = self.pipeline.device_driver
        if rule_set is None and settings.rules_dir is not None:
            if model is None:
                raise SupervisorError(f"rules_dir {settings.rules_dir}: rules need a city model (set `city`)")
            from rules import load_rules

            rule_set = load_rules(settings.rules_dir, model)
        if rule_set is not None:
            self.attach_rules(rule_set)
        self._pending_status: list[StatusChange] = []
        self._buckets: dict[str, _TokenBucket] = {}
        self.commands_refused = 0
        self.spool_alarm = False
        self._sessions_lost_reported = 0
        self.broker_dropped: int | None = None  # the broker's drop counter, last value read
        self._broker_dropped_file = settings.data_dir / "broker-dropped.json"
        self._next_save = 0.0
        self._next_tick = 0.0
        self._saver: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_check = 0.0
        self._next_health = 0.0
        self._last_health: tuple[float, int] = (time.monotonic(), 0)
        self.msg_rate = 0.0
        self.started_at = 0.0

    @staticmethod
    def _storage_config(settings: Settings) -> Any:
        """Relative spool and SQLite paths live under ``data_dir``."""
        st = settings.storage
        update = {}
        for key in ("spool_dir", "sqlite_path"):
            path = getattr(st, key)
            if not path.is_absolute():
                update[key] = settings.data_dir / path
        return st.model_copy(update=update)

    def attach_rules(self, rule_set: Any) -> Any:
        """Run ``rule_set`` on this supervisor: commands go out through the devices' drivers."""
        from rules import RuleEngine

        if self.model is None:
            raise SupervisorError("rules need a city model")
        engine = RuleEngine(self.model, self.state, _CommandPublisher(self), _Clock(self.clock),
                            on_decision=self._on_decision, on_alarm=self._on_rule_alarm,
                            on_command=self._on_command)
        result = engine.load(rule_set)
        if not result.ok:
            raise SupervisorError("; ".join(str(i) for i in result.issues))
        self.rules = engine
        self.pipeline.rules = engine
        return engine

    def _on_decision(self, decision: Any) -> None:
        p = decision.as_point()
        self.writer.submit([point_line(p.measurement, p.tags, p.fields, int(p.ts * 1000))])

    def _on_rule_alarm(self, alarm: Any) -> None:
        tags = {"kind": f"rule:{alarm.kind}", "severity": alarm.severity, "element": alarm.device,
                "state": alarm.state}
        fields = {"id": alarm.key, "devices": 1, "services": "", "text": alarm.text,
                  "affected": f'["{alarm.device}"]'}
        self.writer.submit([point_line("alarms", tags, fields, int(alarm.ts * 1000))])
        log = _log.warning if alarm.state == "raised" else _log.info
        log("rule alarm %s %s: %s", alarm.key, alarm.state, alarm.text)

    def _on_command(self, cs: Any) -> None:
        self.writer.submit([point_line("commands", {"device": cs.device, "state": cs.state},
                                       {"level": float(cs.level), "attempts": int(cs.attempts)},
                                       int(cs.since * 1000))])

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.clock()
        self.started_at = time.time()
        if self.model is not None:
            for dev in self.model.devices.values():
                self.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
                self.device_driver[dev.id] = dev.driver
        self._restore_rules()
        self._prepare_storage()
        self.writer.start()
        self.mqtt.start()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def _prepare_storage(self) -> None:
        """Create the database; when the storage does not answer, start anyway and retry in the background.

        Refusing to start while InfluxDB is down would leave the backlog at the broker (whose queue
        is bounded) instead of the spool, which exists for exactly that outage.
        """
        try:
            self.writer.sink.ensure_ready()
        except StorageError as exc:
            if not exc.retryable:
                raise
            _log.error("storage not ready, starting anyway (batches are retried, then spooled): %s", exc)
            if self._own_writer:
                threading.Thread(target=self._retry_storage, name="storage-ready", daemon=True).start()

    def _retry_storage(self) -> None:
        """Retry the storage set-up on a sink of its own (the writer's is not shared across threads)."""
        delay = 1.0
        while not self._stop.wait(delay):
            sink = make_sink(self._storage_config(self.settings))
            try:
                sink.ensure_ready()
                _log.info("storage ready")
                return
            except StorageError as exc:
                if not exc.retryable:
                    _log.error("storage set-up refused: %s", exc)
                    return
                delay = min(delay * 2, 30.0)
            finally:
                sink.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving, process what was received, flush the writer, then disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.lock:
            while len(self.inbox):
                self.pipeline.process(self.inbox.take(BATCH_LIMIT))
        self._save_rules()
        self.writer.stop(timeout)
        self.mqtt.stop()

    # -- rule state that survives restarts (overrides, leases, leak counters) ----------------------
    @property
    def state_path(self) -> Any:
        p = self.settings.state_file
        return p if p.is_absolute() else self.settings.data_dir / p

    def _save_rules(self, background: bool = False) -> None:
        """Write the rule engine's snapshot atomically (temp file, fsync, rename).

        The snapshot is taken here (under the lock, cheap); with ``background`` the file is
        written and fsynced by a short-lived thread, so a slow disk never stalls the pipeline.
        """
        if self.rules is None:
            return
        data = orjson.dumps(self.rules.snapshot())
        if background:
            if self._saver is not None and self._saver.is_alive():
                return  # the previous save is still on its way; the next period catches up
            self._saver = threading.Thread(target=self._write_state, args=(data,), name="rule-state", daemon=True)
            self._saver.start()
        else:
            if self._saver is not None:
                self._saver.join(10)
            self._write_state(data)

    def _write_state(self, data: bytes) -> None:
        path = self.state_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            _log.error("cannot save rule state to %s: %s", path, exc)

    def _restore_rules(self) -> None:
        if self.rules is None:
            return
        path = self.state_path
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            _log.error("rule state %s unreadable, starting without it: %s", path, exc)
            return
        try:
            n = self.rules.restore(data)
        except ValueError as exc:
            _log.error("rule state %s refused: %s", path, exc)
            return
        _log.info("restored %d leased rule requests from %s", n, path)

    def _run(self) -> None:
        take = self.inbox.take
        process = self.pipeline.process
        while not self._stop.is_set():
            batch = take(BATCH_LIMIT, 0.05)
            with self.lock:
                if batch:
                    process(batch)
                self._periodic()
            if batch and not len(self.inbox):
                self.writer.kick()  # caught up: store now rather than after the flush interval

    # -- periodic work (pipeline thread) --------------------------------------------------------
    def _on_status(self, changes: list[StatusChange]) -> None:
        self._pending_status.extend(changes)

    def _periodic(self) -> None:
        now = self.clock()
        mono = time.monotonic()
        if self.rules is not None and mono >= self._next_tick:
            # bounded cadence: under load a batch arrives every few ms, and a tick walks every rule
            self._next_tick = mono + RULE_TICK
            try:
                self.rules.tick(now)
            except Exception:
                _log.exception("rule engine tick failed")
        if now >= self._next_check:
            self._next_check = now + self.settings.state.check_interval
            self._pending_status.extend(self.state.check(now))
            lines = [self._status_line(ch) for ch in self._pending_status]
            changed = bool(self._pending_status)
            self._pending_status.clear()
            if self.alarms is not None and changed:
                failing = self.state.not_ok()
                stale = {d for d in failing if self.state.status(d) == STALE}
                for change in self.alarms.update(failing, now, stale=stale, last_seen=self.state.last_seen):
                    m, tags, fields, ts = change.as_point()
                    lines.append(point_line(m, tags, fields, int(ts * 1000)))
            if lines:
                self.writer.submit(lines)
        if self.rules is not None and mono >= self._next_save:
            self._next_save = mono + self.settings.state_save_interval
            self._save_rules(background=True)
        if mono >= self._next_health:
            self._next_health = mono + HEALTH_INTERVAL
            lines = self._health_lines(now, mono)
            alarm = self._spool_alarm(now)
            if alarm is not None:
                lines.append(alarm)
            lost = self.mqtt.stats.sessions_lost
            if lost > self._sessions_lost_reported:
                self._sessions_lost_reported = lost
                lines.append(self._supervisor_alarm(
                    "critical", "mqtt-session", "raised", f"mqtt-session:{self.instance}:{lost}",
                    "the broker lost the supervisor's persistent session; messages may be lost", now))
            self.writer.submit(lines)

    def write_health(self) -> None:
        """Submit the health, fleet and error-count points now (also done every HEALTH_INTERVAL)."""
        with self.lock:
            self.writer.submit(self._health_lines(self.clock(), time.monotonic()))

    def _on_broker_dropped(self, payload: bytes, received: float) -> None:
        """The broker's count of dropped messages (pipeline thread): alarm on any increase.

        The count is the broker's, for every client since it started; the last value seen is kept
        in ``data_dir`` so that drops while the supervisor was down (its own queue overflowing,
        the likeliest case) are reported once it is back, and not again after a restart.
        """
        try:
            value = int(payload.strip())
        except ValueError:
            _log.warning("broker drop counter %s: not an integer: %r", self.settings.mqtt.broker_drop_counter,
                         payload[:40])
            return
        last = self.broker_dropped
        if last is None:
            try:
                last = int(orjson.loads(self._broker_dropped_file.read_bytes())["dropped"])
            except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                last = None
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
        _log.error("%s (counter %s = %d)", text, self.settings.mqtt.broker_drop_counter, value)
        self.writer.submit([self._supervisor_alarm("critical", "broker-queue", "raised",
                                                   f"broker-dropped:{self.instance}:{value}", text, received)])

    @staticmethod
    def _supervisor_alarm(severity: str, element: str, state: str, alarm_id: str, text: str, ts: float) -> bytes:  # noqa: PLR0917
        """An ``alarms`` point about the supervisor itself (no device, no service affected)."""
        return point_line("alarms", {"kind": "supervisor", "severity": severity, "element": element, "state": state},
                          {"id": alarm_id, "devices": 0, "services": "", "text": text, "affected": "[]"},
                          int(ts * 1000))

    def _spool_alarm(self, now: float) -> bytes | None:
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
        if state is None:
            return None
        return self._supervisor_alarm("major", "spool", state, f"spool:{self.instance}", f"spool {ratio:.0%} full", now)

    def _status_line(self, ch: StatusChange) -> bytes:
        return point_line("device_status", {"family": ch.family, "zone": ch.zone, "device": ch.device},
                          {"status": ch.new, "code": STATUS_CODE[ch.new], "reason": ch.reason}, int(ch.at * 1000))

    def _health_lines(self, now: float, mono: float) -> list[bytes]:
        c = self.pipeline.counters
        t0, n0 = self._last_health
        self.msg_rate = (c.received - n0) / max(mono - t0, 1e-6)
        self._last_health = (mono, c.received)
        ws = self.writer.stats()
        ts = int(now * 1000)
        lines = [point_line("supervisor", {"instance": self.instance}, {
            "received": c.received, "decoded": c.decoded, "errors": c.error_total, "points_written": ws.points_written,
            "write_latency_ms": float(ws.last_latency_ms), "spool_bytes": ws.spool_bytes, "lag_ms": float(c.lag_ms),
            "msg_rate": float(self.msg_rate), "devices": len(self.state), "dead_letters": ws.dead_letters,
            "commands_refused": self.commands_refused, "sessions_lost": self.mqtt.stats.sessions_lost,
            **({"broker_dropped": self.broker_dropped} if self.broker_dropped is not None else {}),
        }, ts)]
        for (driver, reason), n in sorted(c.errors.items()):
            lines.append(point_line("ingest_errors", {"instance": self.instance, "reason": reason, "driver": driver},
                                    {"count": n}, ts))
        for (family, zone), counts in sorted(self.state.counts().items()):
            lines.append(point_line("fleet", {"family": family, "zone": zone or "-"}, {
                "total": sum(counts.values()), "ok": counts.get("ok", 0), "stale": counts.get("stale", 0),
                "fault": counts.get("fault", 0)}, ts))
        return lines

    # -- commands -------------------------------------------------------------------------------------
    def send_command(self, cmd: Command) -> list[str]:
        """Encode ``cmd`` with the device's driver and publish it; returns the topics published.

        Commands go only to devices of the city model (unless configured otherwise), only on
        topics that name the device, never retained, and at most ``commands.rate_per_device`` per
        second per device (token bucket with ``commands.burst``).
        """
        ccfg = self.settings.commands
        name = self.device_driver.get(cmd.device)
        in_model = self.model is None or cmd.device in self.model.devices
        if name is None or (ccfg.only_known_devices and not in_model):
            self._refuse(cmd, "unknown device: commands go only to devices of the city model")
        driver = self.drivers.get(name)
        if driver is None:
            self._refuse(cmd, f"driver {name!r} is not enabled")
        zone = cmd.zone
        if zone is None:
            st = self.state.get(cmd.device)
            zone = st.zone if st is not None and st.zone else None
        source = self.pipeline.identity.source_of(name, cmd.device) if self.pipeline.identity else cmd.device
        publishes = driver.encode(Command(source, cmd.action, cmd.value, zone, cmd.channel))
        for pub in publishes:
            if not _names_device(pub.topic, source) or "+" in pub.topic or "#" in pub.topic:
                self._refuse(cmd, f"driver {name!r} produced topic {pub.topic!r}, which does not name the device")
        now = self.clock()  # the supervisor's clock: a virtual night is rate limited in its own time
        b = self._buckets.get(cmd.device)
        if b is None:
            b = self._buckets[cmd.device] = _TokenBucket(float(ccfg.burst), now)
        b.tokens = min(float(ccfg.burst), b.tokens + (now - b.stamp) * ccfg.rate_per_device)
        b.stamp = now
        if b.tokens < 1.0:
            self._refuse(cmd, f"rate limit: more than {ccfg.rate_per_device}/s (burst {ccfg.burst})")
        b.tokens -= 1.0
        topics = []
        for pub in publishes:
            self.mqtt.publish(pub.topic, pub.payload, pub.qos, retain=False)
            topics.append(pub.topic)
        return topics

    def _refuse(self, cmd: Command, why: str) -> NoReturn:
        self.commands_refused += 1
        raise CommandRefusedError(f"command {cmd.action} to {cmd.device!r} refused: {why}")

    # -- reporting ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        c = self.pipeline.counters
        ws = self.writer.stats()
        return {
            "instance": self.instance,
            "uptime_s": round(time.time() - self.started_at, 1) if self.started_at else 0.0,
            "mqtt": {"host": self.settings.mqtt.host, "port": self.settings.mqtt.port,
                     "connected": self.mqtt.stats.connected, "connects": self.mqtt.stats.connects,
                     "received": self.mqtt.stats.received, "acked": self.mqtt.stats.acked,
                     "inbox": len(self.inbox), "inbox_full_waits": self.inbox.full_waits,
                     "broker_dropped": self.broker_dropped},
            "ingest": c.as_dict(),
            "storage": {"backend": self.settings.storage.backend, "points_written": ws.points_written,
                        "batches": ws.batches, "retries": ws.retries, "failures": ws.failures,
                        "pending": ws.pending, "dead_letters": ws.dead_letters,
                        "spool_bytes": ws.spool_bytes, "last_latency_ms": ws.last_latency_ms,
                        "last_write_at": ws.last_write_at,
                        "spool_alarm": self.spool_alarm},
            "devices": {"total": len(self.state),
                        "by_status": {s: sum(1 for d in self.state if d.status == s) for s in STATUS_CODE}},
            "alarms": None if self.alarms is None else len(self.alarms.active()),
            "identity": {"unknown": (self.pipeline.identity.report()[:20] if self.pipeline.identity else []),
                         "unplaced": len(self.pipeline.identity.unplaced) if self.pipeline.identity else 0},
            "commands_refused": self.commands_refused,
        }


def _names_device(topic: str, source: str) -> bool:
    """Whether the topic's levels contain the device's identifier (``a:b`` may stand for ``a/b``)."""
    levels = topic.split("/")
    want = source.replace(":", "/").split("/")
    n = len(want)
    return source in levels or any(levels[i:i + n] == want for i in range(len(levels) - n + 1))


class _Clock:
    """Adapts the supervisor's clock function to the rule engine's Clock protocol."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now(self) -> float:
        return self._fn()


class _CommandPublisher:
    """The rule engine's CommandSink: encode with the device's driver, publish over MQTT."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup

    def send(self, cmd: Command) -> None:
        try:
            self._sup.send_command(cmd)
        except (SupervisorError, DriverError) as exc:
            _log.warning("command to %s not sent: %s", cmd.device, exc)
