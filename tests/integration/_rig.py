"""A simulated city and an in-process supervisor on one stepped virtual clock, over a real broker.

The simulator publishes on a private Mosquitto, the supervisor stores in a fresh InfluxDB database.
Time is advanced in bounded chunks (``Rig.advance``): the simulator publishes what is due in the
chunk as fast as it can, then the rig waits (with a deadline) until the supervisor has received
every message published so far, the lamps have answered every command and a periodic pass
(staleness, alarm correlation, rule tick) ran at the current virtual time. No timing assertions:
only waits for conditions, then assertions on outcomes.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.runner import SimulatedCity
from supervisor.config import Settings, load_settings
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from tests.support.services import Influx, Mosquitto

PARIS = ZoneInfo("Europe/Paris")


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    """UTC epoch of a Paris local time (the generated city is in Paris)."""
    return datetime(y, mo, d, h, mi, tzinfo=PARIS).timestamp()


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def with_intervals(city: dict[str, Any], intervals: Mapping[str, float]) -> dict[str, Any]:
    """A copy of ``city`` whose devices report every ``intervals[family]`` seconds."""
    out = copy.deepcopy(city)
    for d in out["devices"]:
        if d["family"] in intervals:
            d["interval"] = float(intervals[d["family"]])
    return out


def settings(broker: Mosquitto, influx: Influx, db: str, client_id: str, *, data_dir: Path,
             check_interval: float = 5.0, **extra: Any) -> Settings:
    return load_settings(
        None,
        mode="test",
        mqtt={"host": broker.host, "port": broker.port, "client_id": client_id},
        storage={"backend": "influx-v1", "url": influx.url, "database": db, "batch_size": 5000,
                 "flush_interval": 0.1, "spool_dir": str(data_dir / "spool")},
        state={"check_interval": check_interval, "stale_factor": 3.0},
        commands={"rate_per_device": 10_000.0, "burst": 10_000},  # virtual time runs fast
        api={"enabled": False},
        data_dir=str(data_dir),
        **extra,
    )


class Recorder:
    """Subscribes to a filter and records (topic, payload) of every message (real broker)."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError(f"no SUBACK for {topic}")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, orjson.loads(msg.payload)))

    def __len__(self) -> int:
        with self._lock:
            return len(self.messages)

    def since(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.messages[n:])

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class Rig:
    """SimulatedCity (stepped clock) + Supervisor sharing the clock, on one broker and database."""

    city: dict[str, Any]
    model: CityModel
    sim: SimulatedCity
    sup: Supervisor
    broker: Mosquitto
    influx: Influx
    db: str
    sim_sent: int = 0
    extra_sent: int = 0  # messages the test published itself
    _pub: mqtt.Client | None = field(default=None, repr=False)

    @classmethod
    def start(cls, city: dict[str, Any], broker: Mosquitto, influx: Influx, db: str, *, tmp_path: Path,
              start: float, responders: bool = False, rules_dir: Path | None = None,
              check_interval: float = 5.0, notifications: dict[str, Any] | None = None, **sim_kw: Any) -> Rig:
        model = city_from_dict(city)
        sim = SimulatedCity(city, host=broker.host, port=broker.port, seed=5, start=start, speed=None,
                            responders=responders, resolver=model.dependents, **sim_kw)
        cid = f"it-{tmp_path.name[-20:]}"
        extra = {"notifications": notifications} if notifications is not None else {}
        st = settings(broker, influx, db, cid, data_dir=tmp_path / "var", check_interval=check_interval, **extra)
        rule_set = None
        if rules_dir is not None:
            from rules import load_rules

            rule_set = load_rules(rules_dir, model)
        sup = Supervisor(st, clock=sim.clock.now, model=model, rule_set=rule_set)
        rig = cls(city, model, sim, sup, broker, influx, db)
        try:
            sim.open()  # the lamps listen before the supervisor's first rule tick commands them
            sup.start()
            assert sup.mqtt.wait_connected(10)
            time.sleep(0.3)  # SUBACK
            sim.clock.begin()
        except BaseException:
            rig.close()
            raise
        return rig

    def close(self) -> None:
        try:
            self.sim.close()
        finally:
            try:
                self.sup.stop()
            finally:
                if self._pub is not None:
                    self._pub.loop_stop()
                    self._pub.disconnect()

    # -- publishing our own telemetry --------------------------------------------------------------
    def publish(self, topic: str, body: Mapping[str, Any]) -> None:
        if self._pub is None:
            self._pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            self._pub.connect(self.broker.host, self.broker.port)
            self._pub.loop_start()
        info = self._pub.publish(topic, orjson.dumps(dict(body)), qos=1)
        info.wait_for_publish(10)
        self.extra_sent += 1

    @property
    def now(self) -> float:
        return self.sim.clock.now()

    # -- time ---------------------------------------------------------------------------------------
    def _expected(self) -> int:
        n = self.sim_sent + self.extra_sent
        resp = self.sim.responder
        if resp is not None:
            n += resp.stats.published
        if self.sup.rules is not None:
            n += int(self.sup.rules.stats()["commands_sent"])  # the supervisor hears its own commands
        return n

    def settle(self, timeout: float = 20.0) -> None:
        """Wait until everything published so far went through the supervisor, then one periodic pass."""
        sup, resp = self.sup, self.sim.responder
        deadline = time.monotonic() + timeout
        for _ in range(50):  # commands -> answers -> maybe commands: a few rounds at most
            if sup.rules is not None and resp is not None:
                sent = int(sup.rules.stats()["commands_sent"])
                wait(lambda s=sent: resp.stats.received >= s, max(0.1, deadline - time.monotonic()),  # type: ignore[misc]
                     "the lamps to receive the commands")
                assert resp.wait_idle(max(0.1, deadline - time.monotonic())), "lamps did not answer"
            want = self._expected()
            wait(lambda w=want: sup.pipeline.counters.received >= w and not len(sup.inbox),  # type: ignore[misc]
                 max(0.1, deadline - time.monotonic()), f"the supervisor to receive {want} messages")
            self._periodic_pass()
            if self._expected() == want:
                return
        raise AssertionError("the command/answer exchange does not settle")

    def _periodic_pass(self) -> None:
        """Let the pipeline thread run its loop (take up to 50 ms, then batch + periodic under the
        lock) a few times, so that staleness, alarms and rules ran at the current virtual time."""
        for _ in range(3):
            with self.sup.lock:
                pass
            time.sleep(0.06)
        with self.sup.lock:
            pass

    def advance(self, seconds: float, chunk: float = 30.0, each: Callable[[], None] | None = None) -> None:
        """Run the city for ``seconds`` of virtual time in chunks, settling after each.

        ``each`` runs after every chunk's publication (the test's own telemetry, faults).
        """
        end = self.now + seconds
        for _ in range(int(seconds / chunk) + 2):  # bounded
            if self.now >= end - 1e-6:
                break
            until = min(end, self.now + chunk)
            rep = self.sim.run(duration=until - self.now, timeout=60)
            self.sim_sent += rep.sent
            self.sim.clock.advance_to(until)  # the stepped clock stops at the last message
            if each is not None:
                each()
            self.settle()

    # -- InfluxDB -----------------------------------------------------------------------------------
    def flush(self) -> None:
        assert self.sup.writer.flush(30), "the writer did not flush"

    def rows(self, q: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in self.influx.series(q, self.db):
            cols: list[str] = s["columns"]  # type: ignore[assignment]
            tags: dict[str, Any] = s.get("tags") or {}  # type: ignore[assignment]
            values: list[list[Any]] = s["values"]  # type: ignore[assignment]
            for v in values:
                row = dict(zip(cols, v, strict=True))
                row.update(tags)
                out.append(row)
        return out
