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
from supervisor.config import Settings, StorageConfig, duration_seconds
from supervisor.ingest.backlog import SessionBacklog, marker_topic
from supervisor.ingest.identity import IdentityMap
from supervisor.ingest.lane import BULK_SLICE, CommandPublisher, ControlLane, LoopWatch, SliceSize
from supervisor.ingest.mqtt import Inbox, Message, MqttIngest
from supervisor.ingest.pipeline import Pipeline
from supervisor.ingest.router import Router
from supervisor.service.commands import CommandSender, RuleCommandSink, TokenBucket
from supervisor.service.errors import SupervisorError
from supervisor.service.health import Health
from supervisor.service.live import CommandLog, LiveFeed
from supervisor.service.periodic import PeriodicWork
from supervisor.service.reload import ModelReloader, ReloadOutcome
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
from supervisor.storage import LineProtocolError, StorageError, retention, schema
from supervisor.storage.writer import BatchWriter, make_sink, make_writer

if TYPE_CHECKING:
    from rules import CommandState, Decision, LanePlan, RuleAlarm, RuleEngine, RuleSet
    from supervisor.alarms import AlarmManager
    from supervisor.model import CityModel
    from supervisor.notify import Notifier
    from supervisor.snmp.drift import Drift
    from supervisor.snmp.service import SnmpService
    from supervisor.state.radio import RadioGateways

_log = logging.getLogger(__name__)

BATCH_LIMIT = 5000
#: lane inputs processed together, their commands sent at the end of each chunk: a burst of 240
#: inputs (17 ms) held the first input's command until the last was processed (`bench rules`)
LANE_CHUNK = 32
SLOW_STOP_S = 5.0  # a stop slower than this is logged with its steps (Supervisor.stop)


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
        backlog = (SessionBacklog(marker_topic(settings.mqtt.client_id), settings.mqtt.backlog_marker_timeout,
                                  depth=lambda: self.inbox.depths()[1], low_water=BULK_SLICE)
                   if settings.mqtt.backlog_marker else None)
        self.mqtt = MqttIngest(settings.mqtt, topics, self.inbox, backlog=backlog)
        self.lane = ControlLane(settings.mqtt, self.inbox.lane, enabled=settings.mqtt.lane)
        # the pipeline thread's diagnostics, and its bulk slice (whose size follows the cost of a message)
        self.loop_watch, self.bulk_slice = LoopWatch(), SliceSize()
        self._own_writer = writer is None
        self.retention_active = self._retention_applies(settings, clock, self._own_writer)
        self.writer = writer if writer is not None else make_writer(self._storage_config())
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
        self.notifier = self._build_notifier(settings)
        self.rules: RuleEngine | None = None
        self.lock = threading.RLock()
        self.reloader = ModelReloader(self)  # the model reload (its on_model callbacks: Supervisor.on_model)
        self.pipeline = self._pipeline()
        self.lane_pipeline = self._pipeline(lane=True)
        self.device_driver = self.lane_pipeline.device_driver = self.pipeline.device_driver
        self.command_publisher = CommandPublisher(self.lane, self.mqtt)
        #: a stage of the pipeline loop: its commands and its points (decisions, command states) held
        #: until its end, then queued at once (:class:`_Stage`)
        self.stage = _Stage(self.command_publisher, self.writer)
        self.commands = CommandSender(settings.commands, self.drivers, self.device_driver, model=model,
                                      state=self.state, identity=self.pipeline.identity,
                                      mqtt=self.command_publisher, clock=clock)
        self.health = Health(self.instance, self.pipeline, self.writer, self.state, self.mqtt,
                             commands_refused=lambda: self.commands.refused,
                             broker_counter=settings.mqtt.broker_drop_counter, data_dir=settings.data_dir,
                             lane_fields=self.lane_fields, reload_fields=self.reloader.fields,
                             alarm=self.lifecycle.supervisor_alarm,
                             notify_stats=self.notifier.stats if self.notifier is not None else None)
        self.rule_state = RuleStateFile(self.state_path)
        self.periodic = self._build_periodic(model, clock)
        self.snmp = self._build_snmp(model)
        self.radio = self._build_radio(model)
        self._wire_live()
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

    def _build_periodic(self, model: CityModel | None, clock: Callable[[], float]) -> PeriodicWork:
        """The work between batches, with the alarms, the lifecycle and the model's positions."""
        periodic = PeriodicWork(self.settings, self.state, self.writer, health=self.health,
                                rule_state=self.rule_state, clock=clock)
        periodic.alarms = self.alarms
        if model is not None:
            periodic.position_of = model.devices.position
        periodic.lifecycle = self.lifecycle
        periodic.behind = self.behind
        return periodic

    def _build_notifier(self, settings: Settings) -> Notifier | None:
        notifier = build_notifier(settings)
        if notifier is not None:
            self.lifecycle.notify = notifier.submit
            self.lifecycle.cancel_notify = notifier.cancel
        return notifier

    def behind(self) -> float:
        """Seconds the processed stream is behind the city while bulk messages wait (0 otherwise)."""
        mark = self.pipeline.watermark
        return time.time() - mark if mark and len(self.inbox) else 0.0

    def _wire_live(self) -> None:
        """The console's event stream (status changes and alarm transitions as they happen) and each
        device's latest command states (the console's device panel)."""
        self.live = LiveFeed()
        self.command_log = CommandLog()
        self.periodic.live = self.live.status
        self.lifecycle.on_commit = self.live.alarm

    def _pipeline(self, *, lane: bool = False) -> Pipeline:
        """The bulk pipeline, or (``lane``) the control lane's: no storage, acknowledged to the lane session."""
        settings = self.settings
        counter = settings.mqtt.broker_drop_counter
        pipeline = Pipeline(
            self.router, self.state, self.writer, self.lane.mqtt.ack if lane else self.mqtt.ack, clock=self.clock,
            max_payload_bytes=settings.mqtt.max_payload_bytes, on_status=self._on_status,
            identity=IdentityMap(settings.identity.map, self.model.devices if self.model is not None else None,
                                 settings.identity.unknown),
            broker_counter=(counter, self._on_broker_dropped) if counter and not lane else None,
            lane=self.lane, store=not lane,
            backlog=None if lane else self.mqtt.backlog, backlog_max_age=settings.rules_backlog_max_age,
        )
        # the loop takes bulk only while the writer has room for it, so its submit never waits (the
        # thread also runs the lane; the overshoot is one slice's lines at most)
        pipeline.submit_block = False
        return pipeline

    def _zone_of(self, device: str) -> str | None:
        st = self.state.get(device)
        if st is not None:
            return st.zone or None
        model = self.model
        return model.devices[device].zone if model is not None and device in model.devices else None

    def _on_status(self, changes: list[StatusChange]) -> None:
        self.periodic.on_status(changes)

    def _build_snmp(self, model: CityModel | None) -> SnmpService | None:
        """The SNMP poller and trap receiver (docs/network-observed.md), when configured."""
        self._topology: set[str] = set()  # the open topology alarms' keys
        cfg = self.settings.snmp
        if model is None or not (cfg.enabled or cfg.traps.enabled):
            return None
        from supervisor.snmp.poller import CredentialsError
        from supervisor.snmp.service import SnmpService

        try:
            snmp = SnmpService(cfg, model, submit=lambda lines: self.writer.submit(lines, block=False),
                               observe=self._on_observed, on_drift=self._on_drift)
        except CredentialsError as exc:
            raise SupervisorError(f"snmp: {exc}") from None
        self.health.snmp_fields = snmp.fields
        self.on_model.append(snmp.set_model)  # a reload hands the poller, traps and drift check the new switches
        return snmp

    def _build_radio(self, model: CityModel | None) -> RadioGateways | None:
        """The radio gateways observed (supervisor/state/radio.py), fed by both pipelines."""
        if model is None or not self.settings.lorawan.enabled:
            return None
        from supervisor.state.radio import RadioGateways

        radio = RadioGateways(self.settings.lorawan, model, self.clock())
        self.pipeline.radio = self.lane_pipeline.radio = radio.on_readings
        self.periodic.radio = radio

        def set_model(new: CityModel) -> None:
            with self.lock:
                radio.set_model(new, self.clock())

        self.on_model.append(set_model)
        return radio

    def _on_drift(self, found: list[Drift]) -> None:
        """One ``topology`` alarm per drifted link end, cleared when LLDP matches the design again."""
        from supervisor.alarms.lifecycle import Cause

        keys = {f"topology:{d.port}": d for d in found}
        with self.lock:
            for key, d in keys.items():
                self.lifecycle.raise_(Cause(key, "network", "topology", "minor", d.port, f"topology: {d.text}"),
                                      self.clock())
            for key in self._topology - keys.keys():
                self.lifecycle.clear(key, "LLDP matches the design again", self.clock())
            self._topology = set(keys)

    def _on_observed(self, observed: dict[str, str]) -> None:
        """SNMP evidence (poll): element -> what was seen down."""
        with self.lock:
            self.periodic.observe("snmp", observed)

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
        if self.settings.mqtt.lane_confirmations:
            self.lane.set_devices(plan.devices, plan.confirmations)
        else:
            self.lane.set_devices(plan.inputs)

    def _store(self, what: str, make: Callable[[], bytes]) -> None:
        """Submit one point; one that does not fit the schema is logged and counted, never raised
        into the rule engine (which would abandon the rest of its tick)."""
        try:
            line = make()
        except LineProtocolError as exc:
            self.points_refused += 1
            _log.error("%s not stored: %s", what, exc)
            return
        self.stage.submit(line)  # a reaction never waits for the storage

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
    def register_model(self, now: float) -> None:
        """Every device of the city model in the state registry (never seen yet) and in the
        command sender's table of drivers; :meth:`start` does it first."""
        if self.model is not None:
            for dev in self.model.devices.values():
                self.state.register(dev.id, dev.family, dev.zone, dev.interval, now)
                self.device_driver[dev.id] = dev.driver

    def start(self) -> None:
        now = self.clock()
        self.started_at = time.time()
        self.register_model(now)
        self.lifecycle.started_at = self.clock()  # restored alarms wait for reports after this
        if self.radio is not None:
            self.radio.started(now)
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
        if self.snmp is not None:
            self.snmp.start()

    def _prepare_storage(self) -> None:
        """Create the database and provision its retention (supervisor/storage/retention.py); when the
        storage does not answer, start anyway and retry in the background.

        Refusing to start while InfluxDB is down would leave the backlog at the broker (whose queue
        is bounded) instead of the spool, which exists for exactly that outage.
        """
        try:
            self._ready(self.writer.sink)
        except StorageError as exc:
            if not exc.retryable:
                raise
            _log.error("storage not ready, starting anyway (batches are retried, then spooled): %s", exc)
            if self._own_writer:
                threading.Thread(target=self._retry_storage, name="storage-ready", daemon=True).start()

    @staticmethod
    def _retention_applies(settings: Settings, clock: Callable[[], float], own_writer: bool) -> bool:
        """Retention (docs/data-protection.md) is provisioned, and personal data routed to their own
        policy, by a supervisor that owns its writer and whose clock is within half the shortest raw
        retention of wall time: a virtual clock rehearsing a distant past writes points that a
        retention counted from the server's time would refuse, so it leaves the database as it is
        (``urban-supervisor storage provision`` does it by hand)."""
        r = settings.storage.retention
        if not r.enabled or not own_writer:
            return False
        offset = clock() - time.time()
        if abs(offset) > min(duration_seconds(r.raw), duration_seconds(r.personal_raw)) / 2:
            _log.warning("clock %.0f s away from wall time: retention is not provisioned at start", offset)
            return False
        return True

    def _storage_config(self) -> StorageConfig:
        st = storage_config(self.settings)
        if self.retention_active or not st.retention.enabled:
            return st
        return st.model_copy(update={"retention": st.retention.model_copy(update={"enabled": False})})

    def _ready(self, sink: Any) -> None:
        """Create the database, then provision retention policies and rollups (idempotent).

        Provisioning goes first: it creates the database and a configured ``storage.retention_policy``
        that ``ensure_ready`` then checks."""
        cfg = self._storage_config()
        if cfg.create_database:
            self._provision(sink, cfg)
        sink.ensure_ready()
        if not cfg.create_database:
            self._provision(sink, cfg)

    def _provision(self, sink: Any, cfg: StorageConfig) -> None:
        """Provision retention; refused for good (a user without the admin privilege), start anyway
        with household water in the default policy, and say how to fix it."""
        if not self.retention_active or cfg.retention.at_start == "skip":
            return
        try:
            retention.provision(sink, cfg)
        except StorageError as exc:
            if exc.retryable:
                raise
            set_routes = getattr(self.writer.sink, "set_routes", None)
            if set_routes is not None:
                set_routes(None)
            _log.error("retention not provisioned (%s): household water is written to the default policy, kept "
                       "%s instead of %s. Provision with an InfluxDB admin user (urban-supervisor storage "
                       "provision), then set storage.retention.at_start: skip (docs/data-protection.md)",
                       exc, cfg.retention.raw, cfg.retention.personal_raw)

    def _retry_storage(self) -> None:
        """Retry the storage set-up on a sink of its own (the writer's is not shared across threads)."""
        delay = 1.0
        while not self._stop.wait(delay):
            sink = make_sink(self._storage_config())
            try:
                self._ready(sink)
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
        """Stop receiving, process what was received, flush the writer, then disconnect.

        A stop slower than ``SLOW_STOP_S`` is logged with the time of each step: a process manager
        (``--workers``, systemd, Docker) kills what does not stop in time, and then only this line
        says which step held it."""
        steps: list[tuple[str, float]] = []
        t = time.monotonic()

        def step(name: str) -> None:
            nonlocal t
            now = time.monotonic()
            steps.append((name, now - t))
            if now - t > SLOW_STOP_S:  # said at once: a process killed for its slow stop logs no total
                _log.warning("stopping: %s took %.1f s", name, now - t)
            t = now

        self._stop.set()
        if self.snmp is not None:
            self.snmp.stop()
        step("snmp")
        if self._thread is not None:
            self._thread.join(timeout)
        step("pipeline thread")
        with self.lock:
            while len(self.inbox) or len(self.inbox.lane):
                lane, bulk = self.inbox.take_lanes(BATCH_LIMIT, BATCH_LIMIT)
                self.lane_pipeline.process(lane)
                self.pipeline.process(bulk)
            self.periodic.flush_status()
        if self.rules is not None:
            self.rule_state.save(self.rules)
        step("inbox drain")
        self.writer.stop(timeout)
        step("writer")
        self.lane.stop()
        self.mqtt.stop()
        step("mqtt")
        if self.notifier is not None:
            self.notifier.close(timeout)
        self.lifecycle.store.close()
        step("notifier, alarms")
        total = sum(s for _, s in steps)
        (_log.warning if total > SLOW_STOP_S else _log.debug)(
            "stopped in %.1f s (%s)", total, ", ".join(f"{name} {s:.1f} s" for name, s in steps))

    def _run(self) -> None:
        """One iteration: the lane's inputs whole, a slice of its confirmations, a slice of bulk, the
        periodic work; the inputs that arrived meanwhile are taken between these stages (an input
        waits for one stage, not three). Each slice is kept to about ``SLICE_BUDGET_S`` of wall time
        (:class:`~supervisor.ingest.lane.SliceSize`), so that an input (a sensor reading, a camera
        event) waits at most about one slice of each before its reaction; no bulk while the writer
        is full (it waits in the inbox, then at the broker), so the lane never blocks on the
        storage. The commands of each stage leave together at its end (:class:`CommandPublisher`)."""
        take, take_inputs, lane_waiting = self.inbox.take_three, self.inbox.take_inputs, self.inbox.lane_waiting
        process, lane_process = self.pipeline.process, self.lane_pipeline.process
        periodic = self.periodic.run
        has_room = self.writer.has_room
        note, clock = self.loop_watch.note, time.perf_counter
        slices = self.bulk_slice = SliceSize()
        confirm_slices = self.confirm_slice = SliceSize()
        held = self.stage
        parts = self.periodic.last_parts
        subscribe_learned, monotonic = self.lane.subscribe_learned, time.monotonic

        react = self._react
        def late_inputs() -> int:
            """The lane inputs that arrived during a stage, processed before the next one."""
            if not lane_waiting():
                return 0
            inputs = take_inputs(BATCH_LIMIT)
            react(inputs)
            return len(inputs)

        while not self._stop.is_set():
            lane_on = bool(self.lane.devices or self.lane.overrides)
            bulk_limit = slices.size if lane_on else BATCH_LIMIT
            lane, confirm, bulk = take(BATCH_LIMIT, confirm_slices.size, bulk_limit, 0.05, has_room(bulk_limit))
            t0 = clock()
            with self.lock:
                t_locked = clock()  # the API's reads take the same lock: the lane waits for them
                if lane:
                    react(lane)
                t_inputs = clock()
                if confirm:
                    with held:
                        lane_process(confirm)
                t_confirmed = clock()
                late = late_inputs()
                t_lane = clock()
                if bulk:
                    process(bulk)
                t_sliced = clock()
                late += late_inputs()
                t_bulk = clock()
                with held:
                    periodic()
            note(t0, t_lane, t_bulk, clock(), len(lane) + len(confirm) + late, len(bulk), t_locked, parts)
            subscribe_learned(monotonic())  # what the pipelines learned for the lane, in few SUBSCRIBEs
            if confirm:
                confirm_slices.took(len(confirm), t_confirmed - t_inputs)
            if bulk and lane_on:
                slices.took(len(bulk), t_sliced - t_lane)
            if bulk and not len(self.inbox):
                self.writer.kick()  # caught up: store now rather than after the flush interval

    def _react(self, inputs: list[Message]) -> None:
        """Lane inputs, ``LANE_CHUNK`` at a time, each chunk a stage: its commands and points leave
        at its end, before the next chunk is processed."""
        stage, process = self.stage, self.lane_pipeline.process
        for i in range(0, len(inputs), LANE_CHUNK):
            with stage:
                process(inputs[i:i + LANE_CHUNK])

    # -- what the API, the CLI and the tests use ---------------------------------------------------
    def write_health(self) -> None:
        """Submit the health, fleet and error-count points now (also done every health period)."""
        with self.lock:
            self.writer.submit(self.health.lines(self.clock(), time.monotonic()))

    def lane_fields(self) -> dict[str, float | int]:
        """The control lane's and the bulk inbox's figures (health points, ``/metrics``, summary)."""
        return self.lane.fields(self.inbox, self.lane_pipeline.counters.received, self.writer.oldest_unstored())

    @property
    def on_model(self) -> list[Callable[[CityModel], None]]:
        """Called with the new model after each model reload, outside the lock (the NGSI-LD pusher's
        view, the SNMP poller's targets: ``sup.on_model.append(poller.set_targets)``); quick and
        thread-safe; one that raises is logged and the others still run."""
        return self.reloader.on_model

    def reload_model(self, trigger: str = "api", path: str | Path | None = None) -> ReloadOutcome:
        """Reload the city file (default: the configured ``city``) without a restart; a refused file
        leaves the running model in place (see :mod:`supervisor.service.reload`)."""
        return self.reloader.reload(trigger, path)

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


class _Stage:
    """One stage of the pipeline loop (a lane chunk, a slice of confirmations, the periodic work): its
    commands leave together at its end (:class:`CommandPublisher`), and its points, a decision and
    a command state per command, are queued to the writer in one ``submit``. One ``submit`` per
    point took the writer's lock twice per command, against the writer thread taking it to write:
    ``scripts/bench_reactions.py`` (``bench rules``' city and rules in process, every street
    changing class, the writer running) measured 36.2-45.5 us per command this way against
    41.9-55.3 us (5 Dec 2026, six runs each, interleaved). Points from other threads (the API's)
    are queued at once."""

    def __init__(self, commands: CommandPublisher, writer: BatchWriter) -> None:
        self._commands = commands
        self._writer = writer
        self._held: list[bytes] | None = None
        self._holder: int | None = None

    def submit(self, line: bytes) -> None:
        held = self._held
        if held is not None and self._holder == threading.get_ident():
            held.append(line)
        else:
            self._writer.submit([line], block=False)

    def __enter__(self) -> _Stage:
        self._held, self._holder = [], threading.get_ident()
        self._commands.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        held, self._held, self._holder = self._held, None, None
        try:
            if held:
                self._writer.submit(held, block=False)  # never waits; never dropped (written or spooled)
        finally:
            self._commands.__exit__(*exc)


class _Clock:
    """Adapts the supervisor's clock function to the rule engine's Clock protocol."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now(self) -> float:
        return self._fn()
