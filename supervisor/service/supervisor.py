"""The supervisor process: wiring and lifecycle.

Threads, each with one job:

- paho's network thread receives messages into the :class:`~supervisor.ingest.mqtt.Inbox`;
- the *pipeline* thread takes batches, runs the pipeline, and between batches runs the periodic
  work (:mod:`supervisor.service.periodic`); it holds ``lock`` while it touches shared state, and
  the API takes the same lock, through :class:`supervisor.service.facade.Service`;
- the writer thread posts line protocol to InfluxDB (or the SQLite store) and acknowledges.

The asyncio loop (API server) never sees a message. The parts: command sending
(:mod:`~supervisor.service.commands`), health and supervisor alarms (:mod:`~supervisor.service.health`),
rule-state persistence (:mod:`~supervisor.service.rulestate`); every point goes through
:mod:`supervisor.storage.schema`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers import Command
from supervisor.alarms.lifecycle import AlarmLifecycle
from supervisor.alarms.store import AlarmStore
from supervisor.config import Settings
from supervisor.ingest.identity import IdentityMap
from supervisor.ingest.lane import BULK_SLICE, ControlLane
from supervisor.ingest.mqtt import Inbox, MqttIngest
from supervisor.ingest.pipeline import Pipeline
from supervisor.ingest.router import Router
from supervisor.service.commands import CommandSender, RuleCommandSink, TokenBucket
from supervisor.service.errors import SupervisorError
from supervisor.service.health import Health
from supervisor.service.live import CommandLog, LiveFeed
from supervisor.service.periodic import PeriodicWork
from supervisor.service.report import summary
from supervisor.service.rulestate import RuleStateFile
from supervisor.service.wiring import (
    build_drivers,
    build_notifier,
    settle_time,
    storage_config,
    subscription_roots,
)
from supervisor.state.registry import StateRegistry, StatusChange
from supervisor.storage import LineProtocolError, StorageError, schema
from supervisor.storage.writer import BatchWriter, make_sink, make_writer

if TYPE_CHECKING:
    from rules import CommandState, Decision, LanePlan, RuleAlarm, RuleEngine, RuleSet
    from supervisor.alarms import AlarmManager
    from supervisor.model import CityModel

_log = logging.getLogger(__name__)

BATCH_LIMIT = 5000


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        writer: BatchWriter | None = None,
        model: CityModel | None = None,
        rule_set: RuleSet | None = None,
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
        self.lane = ControlLane(settings.mqtt, self.inbox.lane, enabled=settings.mqtt.lane)
        self.writer = writer if writer is not None else make_writer(storage_config(settings))
        self._own_writer = writer is None
        intervals = {fam: fs.interval for fam, fs in settings.state.families.items()}
        self.state = StateRegistry(intervals, settings.state.stale_factor)
        self.model = model
        self.points_refused = 0  # points (rules, alarms) that did not fit the stored schema
        self.lifecycle = AlarmLifecycle(AlarmStore(self.alarms_path), model=model, write=self._store,
                                        clock=clock, settle_s=settle_time(settings), zone_of=self._zone_of)
        self.alarms: AlarmManager | None = None
        if model is not None:
            from supervisor.alarms import AlarmManager

            self.alarms = AlarmManager(model, flap_window=settings.alarms.flap_window,
                                       recovery_grace_intervals=settings.alarms.recovery_grace_intervals,
                                       id_for=self.lifecycle.id_for, on_change=self.lifecycle.on_manager_change)
            self.lifecycle.manager_ack = self.alarms.acknowledge
        self.notifier = build_notifier(settings)
        if self.notifier is not None:
            self.lifecycle.notify = self.notifier.submit
            self.lifecycle.cancel_notify = self.notifier.cancel
        self.rules: RuleEngine | None = None
        self.lock = threading.RLock()
        self.pipeline = self._pipeline()
        self.lane_pipeline = self._pipeline(lane=True)
        self.device_driver = self.lane_pipeline.device_driver = self.pipeline.device_driver
        self.commands = CommandSender(settings.commands, self.drivers, self.device_driver, model=model,
                                      state=self.state, identity=self.pipeline.identity, mqtt=self.mqtt, clock=clock)
        self.health = Health(self.instance, self.pipeline, self.writer, self.state, self.mqtt,
                             commands_refused=lambda: self.commands.refused,
                             broker_counter=settings.mqtt.broker_drop_counter, data_dir=settings.data_dir,
                             lane_fields=self.lane_fields, alarm=self.lifecycle.supervisor_alarm,
                             notify_stats=self.notifier.stats if self.notifier is not None else None)
        self.rule_state = RuleStateFile(self.state_path)
        self.periodic = PeriodicWork(settings, self.state, self.writer, health=self.health,
                                     rule_state=self.rule_state, clock=clock)
        self.periodic.alarms = self.alarms
        self.periodic.lifecycle = self.lifecycle
        self.live = LiveFeed()  # what the console's event stream reads
        self.command_log = CommandLog()  # each device's latest command states (the console's device panel)
        self.periodic.live = self.live.status
        self.lifecycle.on_commit = self.live.alarm
        if rule_set is None and settings.rules_dir is not None:
            if model is None:
                raise SupervisorError(f"rules_dir {settings.rules_dir}: rules need a city model (set `city`)")
            from rules import load_rules

            rule_set = load_rules(settings.rules_dir, model)
        if rule_set is not None:
            self.attach_rules(rule_set)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0

    def _pipeline(self, *, lane: bool = False) -> Pipeline:
        """The bulk pipeline, or (``lane``) the control lane's: no storage, acknowledged to the lane session."""
        settings = self.settings
        counter = settings.mqtt.broker_drop_counter
        return Pipeline(
            self.router, self.state, self.writer, self.lane.mqtt.ack if lane else self.mqtt.ack, clock=self.clock,
            max_payload_bytes=settings.mqtt.max_payload_bytes, on_status=self._on_status,
            identity=IdentityMap(settings.identity.map, self.model.devices if self.model is not None else None,
                                 settings.identity.unknown),
            broker_counter=(counter, self._on_broker_dropped) if counter and not lane else None,
            lane=self.lane, store=not lane,
        )

    def _zone_of(self, device: str) -> str | None:
        st = self.state.get(device)
        if st is not None:
            return st.zone or None
        model = self.model
        return model.devices[device].zone if model is not None and device in model.devices else None

    def _on_status(self, changes: list[StatusChange]) -> None:
        self.periodic.on_status(changes)

    def _on_broker_dropped(self, payload: bytes, received: float) -> None:
        self.health.on_broker_dropped(payload, received)

    # -- rules ----------------------------------------------------------------------------------
    def attach_rules(self, rule_set: RuleSet) -> RuleEngine:
        """Run ``rule_set`` on this supervisor: commands go out through the devices' drivers."""
        from rules import RuleEngine

        if self.model is None:
            raise SupervisorError("rules need a city model")
        engine = RuleEngine(self.model, self.state, RuleCommandSink(self.send_command), _Clock(self.clock),
                            on_decision=self._on_decision, on_alarm=self._on_rule_alarm,
                            on_command=self._on_command)
        result = engine.load(rule_set)
        if not result.ok:
            raise SupervisorError("; ".join(str(i) for i in result.issues))
        self.rules = engine
        self.pipeline.rules = self.lane_pipeline.rules = engine
        engine.on_lane = self._on_lane
        self._on_lane(engine.lane)
        self.periodic.rules = engine
        return engine

    def _on_lane(self, plan: LanePlan) -> None:
        self.lane.set_devices(plan.devices if self.settings.mqtt.lane_confirmations else plan.inputs)

    def _store(self, what: str, make: Callable[[], bytes]) -> None:
        """Submit one point; one that does not fit the schema is logged and counted, never raised
        into the rule engine (which would abandon the rest of its tick)."""
        try:
            line = make()
        except LineProtocolError as exc:
            self.points_refused += 1
            _log.error("%s not stored: %s", what, exc)
            return
        self.writer.submit([line], block=False)  # a reaction never waits for the storage

    def _on_decision(self, decision: Decision) -> None:
        self._store("rule decision", lambda: schema.decision_line(decision))
        self.live.decision(decision)

    def _on_rule_alarm(self, alarm: RuleAlarm) -> None:
        log = _log.warning if alarm.state == "raised" else _log.info
        log("rule alarm %s %s: %s", alarm.key, alarm.state, alarm.text)
        self.lifecycle.on_rule_alarm(alarm)

    def _on_command(self, cs: CommandState) -> None:
        self._store("command state", lambda: schema.command_line(cs))
        self.command_log.add(cs)
        self.lifecycle.on_command(cs)

    @property
    def alarms_path(self) -> Path:
        """The durable alarm list (supervisor/alarms/store.py)."""
        return self.settings.data_dir / "alarms.sqlite3"

    @property
    def state_path(self) -> Path:
        p = self.settings.state_file
        return p if p.is_absolute() else self.settings.data_dir / p

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.clock()
        self.started_at = time.time()
        if self.model is not None:
            for dev in self.model.devices.values():
                self.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
                self.device_driver[dev.id] = dev.driver
        self.lifecycle.started_at = self.clock()  # restored alarms wait for reports after this
        if self.rules is not None:
            self.rule_state.restore(self.rules)
        self._prepare_storage()
        if self.notifier is not None:
            self.notifier.start()
        self.writer.start()
        self.mqtt.start()
        self.lane.start()
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
            sink = make_sink(storage_config(self.settings))
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
            while len(self.inbox) or len(self.inbox.lane):
                lane, bulk = self.inbox.take_lanes(BATCH_LIMIT, BATCH_LIMIT)
                self.lane_pipeline.process(lane)
                self.pipeline.process(bulk)
        if self.rules is not None:
            self.rule_state.save(self.rules)
        self.writer.stop(timeout)
        self.lane.stop()
        self.mqtt.stop()
        if self.notifier is not None:
            self.notifier.close(timeout)
        self.lifecycle.store.close()

    def _run(self) -> None:
        """The lane whole, then a slice of bulk (small while the lane carries devices, so that a lane
        message waits at most one slice); no bulk while the writer is full (it waits in the inbox,
        then at the broker), so the lane never blocks on the storage."""
        take = self.inbox.take_lanes
        process, lane_process = self.pipeline.process, self.lane_pipeline.process
        periodic = self.periodic.run
        has_room = self.writer.has_room
        while not self._stop.is_set():
            bulk_limit = BULK_SLICE if self.lane.devices or self.lane.overrides else BATCH_LIMIT
            lane, bulk = take(BATCH_LIMIT, bulk_limit, 0.05, has_room(bulk_limit))
            with self.lock:
                if lane:
                    lane_process(lane)
                if bulk:
                    process(bulk)
                periodic()
            if bulk and not len(self.inbox):
                self.writer.kick()  # caught up: store now rather than after the flush interval

    # -- what the API, the CLI and the tests use ---------------------------------------------------
    def write_health(self) -> None:
        """Submit the health, fleet and error-count points now (also done every health period)."""
        with self.lock:
            self.writer.submit(self.health.lines(self.clock(), time.monotonic()))

    def lane_fields(self) -> dict[str, float | int]:
        """The control lane's and the bulk inbox's figures (health points, ``/metrics``, summary)."""
        return self.lane.fields(self.inbox, self.lane_pipeline.counters.received)

    def send_command(self, cmd: Command) -> list[str]:
        """Encode ``cmd`` with the device's driver and publish it (see :class:`CommandSender`)."""
        return self.commands.send(cmd)

    @property
    def _buckets(self) -> dict[str, TokenBucket]:
        """The command sender's token buckets, by device (tests shift their stamps instead of sleeping)."""
        return self.commands.buckets

    @property
    def commands_refused(self) -> int:
        return self.commands.refused

    @property
    def spool_alarm(self) -> bool:
        return self.health.spool_alarm

    @property
    def broker_dropped(self) -> int | None:
        return self.health.broker_dropped

    @property
    def msg_rate(self) -> float:
        return self.health.msg_rate

    def summary(self) -> dict[str, Any]:
        return summary(self)


class _Clock:
    """Adapts the supervisor's clock function to the rule engine's Clock protocol."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now(self) -> float:
        return self._fn()
