"""Simulated devices that answer commands, and fault injection.

``LightResponder`` subscribes to ``city/+/lighting/+/cmd``, applies ``{"level": x}`` /
``{"on": b}`` (optional ``"circuit"``) to the shared :class:`~simulators.telemetry.CityTelemetry`
state after a configurable delay and publishes the device's new state at once on its telemetry
topic. Devices in ``unresponsive`` (for command-retry tests) and silenced devices ignore commands;
malformed commands are rejected and counted, never raised.

``FaultInjector`` silences every device that depends on a failed element. Which devices depend on
an element is an injected ``resolver(element_id) -> set[str]``; the lead plugs
``CityModel.dependents`` there. :func:`default_resolver` only reads the raw device fields
(``power``, ``gateway``, ``cabinet`` equal to the element, ``port`` equal to it or starting with
``"<element>/"``) and follows them transitively between devices (a feeder's cabinet's lamps). It
does NOT know the network topology: a switch's upstream cascade (core -> zone -> access switch),
fibres, ducts or sites with no device field pointing at them need the model resolver.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from .publisher import Publisher, TlsOptions
from .telemetry import CityTelemetry, CommandError, SimDevice

_log = logging.getLogger(__name__)

Resolver = Callable[[str], set[str]]
Clock = Callable[[], float]
COMMAND_FILTER = "city/+/lighting/+/cmd"


def default_resolver(devices: Iterable[SimDevice]) -> Resolver:
    """Dependents of an element from the raw device fields, transitively (see module doc)."""
    index: dict[str, set[str]] = {}

    def add(key: str | None, dev: str) -> None:
        if key:
            index.setdefault(key, set()).add(dev)

    ids: set[str] = set()
    for d in devices:
        ids.add(d.id)
        add(d.power, d.id)
        add(d.gateway, d.id)
        add(d.cabinet, d.id)
        if d.port:
            add(d.port, d.id)
            for i, ch in enumerate(d.port):
                if ch == "/":
                    add(d.port[:i], d.id)

    def resolve(element: str) -> set[str]:
        out: set[str] = set()
        todo = [element]
        while todo:
            for dev in index.get(todo.pop(), ()):
                if dev not in out and dev != element:
                    out.add(dev)
                    todo.append(dev)
        return out

    return resolve


class FaultInjector:
    """Failed elements and the devices they silence (thread-safe; reads are lock-free)."""

    def __init__(self, telemetry: CityTelemetry, resolver: Resolver | None = None) -> None:
        self.telemetry = telemetry
        self.resolver = resolver or default_resolver(telemetry.devices)
        self._lock = threading.Lock()
        self._failed: dict[str, frozenset[str]] = {}
        self._silenced: frozenset[str] = frozenset()

    def _dependents(self, element: str) -> frozenset[str]:
        deps = set(self.resolver(element))
        if element in self.telemetry.by_id:  # a failed device is silent itself
            deps.add(element)
        return frozenset(deps)

    def fail(self, element: str) -> frozenset[str]:
        """Fail ``element``; return the devices it silences (those already silent included)."""
        deps = self._dependents(element)
        if not deps:
            _log.warning("fault on %r silences no simulated device", element)
        with self._lock:
            self._failed[element] = deps
            self._silenced = frozenset().union(*self._failed.values())
        _log.info("fault injected on %s: %d devices silent", element, len(deps))
        return deps

    def restore(self, element: str) -> frozenset[str]:
        """Repair ``element``; return the devices that speak again (not held by another fault)."""
        with self._lock:
            deps = self._failed.pop(element, frozenset())
            self._silenced = frozenset().union(*self._failed.values())
            return deps - self._silenced

    def restore_all(self) -> None:
        with self._lock:
            self._failed.clear()
            self._silenced = frozenset()

    @property
    def silenced(self) -> frozenset[str]:
        return self._silenced

    @property
    def failed(self) -> frozenset[str]:
        return frozenset(self._failed)

    def is_silenced(self, device: str) -> bool:
        return device in self._silenced

    def fail_lamps(self, cabinet: str, k: int) -> list[str | None]:
        """Mark ``k`` lamps of ``cabinet`` failed: its power drops and ``lamp_failures`` reports k."""
        return self.telemetry.set_lamp_failures(cabinet, k)


@dataclass(slots=True)
class ResponderStats:
    received: int = 0
    applied: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    ignored_unresponsive: int = 0
    ignored_silenced: int = 0
    dropped_overload: int = 0
    published: int = 0
    expected_points: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "applied": self.applied, "rejected": dict(self.rejected),
                "ignored_unresponsive": self.ignored_unresponsive, "ignored_silenced": self.ignored_silenced,
                "dropped_overload": self.dropped_overload, "published": self.published,
                "expected_points": dict(self.expected_points)}


class LightResponder:
    """Lamps and lighting cabinets that obey native commands over MQTT (see module doc).

    ``clock`` gives the (virtual or real) time used for the state and the ``ts`` of the answers.
    ``delay`` is in real seconds. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        telemetry: CityTelemetry,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        clock: Clock = time.time,
        faults: FaultInjector | None = None,
        delay: float = 0.0,
        unresponsive: Iterable[str] = (),
        protocol: str = "5",
        username: str | None = None,
        password: str | None = None,
        tls: TlsOptions | None = None,
        max_pending: int = 10_000,
    ) -> None:
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.telemetry = telemetry
        self.clock = clock
        self.faults = faults
        self.delay = delay
        self.unresponsive: set[str] = set(unresponsive)
        self.max_pending = max_pending
        self.stats = ResponderStats()
        self._pub = Publisher(host, port, protocol=protocol, username=username, password=password, tls=tls,
                              client_id=None)
        self._pub.subscriptions.append((COMMAND_FILTER, 1))
        self._pub.client.on_message = self._on_message
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, str, dict[str, Any]]] = []
        self._seq = 0
        self._busy = False
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._pub.client.on_subscribe = self._on_subscribe

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LightResponder:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="sim-light-responder", daemon=True)
        self._worker.start()
        self._pub.connect()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"no SUBACK for {COMMAND_FILTER} within {timeout}s")
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(5.0)
            self._worker = None
        self._pub.wait_acked(5.0)
        self._pub.close()

    def __enter__(self) -> LightResponder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client(self) -> mqtt.Client:
        """The paho client the answers are published with (to order a test's sentinel after them)."""
        return self._pub.client

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any = None) -> None:
        self._subscribed.set()

    # -- commands ------------------------------------------------------------------------------

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        _log.warning("command on %s rejected (%s): %s", topic, reason, detail)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        parts = msg.topic.split("/")
        if len(parts) != 5:
            self._reject("unknown_topic", msg.topic, "expected city/<zone>/lighting/<device>/cmd")
            return
        zone, device = parts[1], parts[3]
        dev = self.telemetry.by_id.get(device)
        if dev is None or dev.family != "lighting" or dev.zone != zone:
            self._reject("unknown_device", msg.topic, f"no lighting device {device!r} in zone {zone!r}")
            return
        try:
            body = orjson.loads(msg.payload)
        except orjson.JSONDecodeError as exc:
            self._reject("invalid_json", msg.topic, str(exc))
            return
        if not isinstance(body, dict):
            self._reject("bad_type", msg.topic, f"payload must be an object, got {type(body).__name__}")
            return
        if device in self.unresponsive:
            self.stats.ignored_unresponsive += 1
            return
        if self.faults is not None and self.faults.is_silenced(device):
            self.stats.ignored_silenced += 1
            return
        with self._cond:
            if len(self._queue) >= self.max_pending:
                self.stats.dropped_overload += 1
                return
            self._seq += 1
            heapq.heappush(self._queue, (time.monotonic() + self.delay, self._seq, device, body))
            self._cond.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(0.2)
                    continue
                due, _, device, body = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 0.2))
                    continue
                heapq.heappop(self._queue)
                self._busy = True
            try:
                self._apply(device, body)
            finally:
                with self._cond:
                    self._busy = False

    def _apply(self, device: str, body: dict[str, Any]) -> None:
        t = self.clock()
        try:
            self.telemetry.apply_command(device, body, t)
        except CommandError as exc:
            self._reject("bad_command", device, exc.detail)
            return
        self.stats.applied += 1
        if self.faults is not None and self.faults.is_silenced(device):
            return  # failed while the command was pending
        for m in self.telemetry.snapshot(device, t):
            if self._pub.publish(m.topic, m.payload):
                self.stats.published += 1
                pts = self.stats.expected_points
                pts[m.measurement] = pts.get(m.measurement, 0) + m.points
                if m.events:
                    pts["events"] = pts.get("events", 0) + m.events

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no command is pending and every answer is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                empty = not self._queue and not self._busy
            if empty:
                return self._pub.wait_acked(max(0.0, deadline - time.monotonic()))
            time.sleep(0.01)
        return False
