"""Test city for the rule engine: a small generated city, its topology, state, sink and driver loop."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers import Command, Event, Reading
from rules import Decision, RuleAlarm, RuleEngine, VirtualClock, load_rules
from simulators.city import generate_city
from supervisor.model import CityModel, city_from_dict
from supervisor.state.registry import StateRegistry

PARIS = ZoneInfo("Europe/Paris")
SEED, SIZE = 3, 100


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    """UTC epoch of a Paris local time."""
    return datetime(y, mo, d, h, mi, tzinfo=PARIS).timestamp()


def city_data() -> dict[str, Any]:
    return generate_city(SEED, SIZE)


def topology() -> CityModel:
    """The real network model of a small generated city (4 streets, 100 devices)."""
    return city_from_dict(city_data())


class Sink:
    def __init__(self) -> None:
        self.sent: list[Command] = []

    def send(self, cmd: Command) -> None:
        self.sent.append(cmd)


@dataclass
class Harness:
    engine: RuleEngine
    clock: VirtualClock
    topo: CityModel
    state: StateRegistry
    sink: Sink
    decisions: list[Decision] = field(default_factory=list)
    alarms: list[RuleAlarm] = field(default_factory=list)
    answer: bool = True  # simulated lamps report the commanded level
    deaf: set[str] = field(default_factory=set)
    answered: int = 0

    @property
    def now(self) -> float:
        return self.clock.now()

    def readings(self, readings: Sequence[Reading]) -> None:
        now = self.now
        for r in readings:
            self.state.update(r, now, r.ts if r.ts is not None else now)
        self.engine.on_readings(readings, now)

    def flow(self, sensors: Sequence[str], flow: float) -> None:
        self.readings([Reading(s, "traffic", {"flow": flow, "speed": 40.0}, ts=self.now) for s in sensors])

    def event(self, device: str, kind: str, **data: Any) -> None:
        self.engine.on_events([Event(device, "cctv", kind, ts=self.now, data=data)], self.now)

    def tick(self) -> None:
        self.engine.tick(self.now)
        self._answer()

    def _answer(self) -> None:
        """Lamps that are not deaf report the level they were told (what the simulator does)."""
        if not self.answer:
            return
        todo = self.sink.sent[self.answered:]
        self.answered = len(self.sink.sent)
        if todo:
            self.readings([
                Reading(c.device, "lighting", {"on": float(c.value) > 0, "level": float(c.value)}, ts=self.now,
                        channel=c.channel)
                for c in todo if c.device not in self.deaf
            ])

    def run(self, seconds: float, step: float = 10.0, sensors: Sequence[str] = (), flow: float | None = None,
            feed_every: float = 60.0) -> None:
        """Advance virtual time, ticking every ``step`` s and feeding ``flow`` every ``feed_every`` s."""
        end = self.now + seconds
        next_feed = self.now
        for _ in range(int(seconds / step) + 2):  # bounded
            if self.now >= end - 1e-9:
                break
            if flow is not None and sensors and self.now >= next_feed:
                self.flow(sensors, flow)
                next_feed = self.now + feed_every
            self.clock.advance(min(step, end - self.now))
            self.tick()

    def level(self, device: str) -> float | None:
        return self.engine.level(device)


def camera_with_lamps(h: Harness, radius: float) -> tuple[str, set[str]]:
    """The first camera (by id) with lamps within ``radius`` m, and those lamps."""
    for cam in sorted(d for d, i in h.topo.devices.items() if i.kind == "camera"):
        info = h.topo.devices[cam]
        near = set(h.topo.devices_within(info.lon, info.lat, radius, family="lighting", kind="lamp"))
        if near:
            return cam, near
    raise AssertionError("no camera with lamps around it")


def write_rules(directory: Path, text: str, name: str = "rules.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def harness(tmp_path: Path, rules_yaml: str, start: float, topo: CityModel | None = None, **opts: Any) -> Harness:
    topo = topo if topo is not None else topology()
    clock = VirtualClock(start, speed=0.0)
    state = StateRegistry({"traffic": 60.0, "lighting": 300.0, "cctv": 60.0, "water": 900.0})
    sink = Sink()
    decisions: list[Decision] = []
    alarms: list[RuleAlarm] = []
    from rules import EngineOptions
    engine = RuleEngine(topo, state, sink, clock, on_decision=decisions.append, on_alarm=alarms.append,
                        options=EngineOptions(**opts))
    d = tmp_path / "rules"
    write_rules(d, rules_yaml)
    result = engine.load(load_rules(d, topo))
    assert result.ok, result.issues
    return Harness(engine, clock, topo, state, sink, decisions, alarms)


SCHEDULE = """
  - id: night
    kind: schedule
    lights: {family: lighting, kind: lamp}
    profile:
      - {until: "23:00", level: 100}
      - {until: "05:00", level: 50}
    level: 100
"""

ADAPTIVE = """
  - id: traffic-dims-lights
    kind: adaptive_lighting
    sensors: {family: traffic}
    schedule: night
    classes:
      - {name: M3, min_flow: 1000, level: 100}
      - {name: M4, min_flow: 400, level: 75}
      - {name: M5, min_flow: 100, level: 50}
      - {name: M6, min_flow: 0, level: 30}
    hysteresis: 50
    hold_s: 300
    ramp_pct_per_min: 20
    step_pct: 5
    min_level: 30
    stale_factor: 3
"""

ALARM = """
  - id: cctv-light
    kind: alarm_lighting
    cameras: {family: cctv}
    event_kinds: [motion, intrusion]
    radius_m: 40
    duration_s: 300
    schedule: night
"""


def with_air_stations(city: dict[str, Any], n: int = 2) -> dict[str, Any]:
    """``city`` plus ``n`` air stations (ids ``aq-0001``..), placed at water meters' positions.

    The generated city has no air stations yet; they ride the water service's radio gateways
    (the model checks the network path, and the water VLAN is carried there).
    """
    out = dict(city)
    meters = [d for d in city["devices"] if d["family"] == "water"][:n]
    assert len(meters) == n, "the city has too few water meters to place the stations"
    stations = [
        {"id": f"aq-{i + 1:04d}", "family": "air", "kind": "air_station", "driver": "air_quality",
         "service": m["service"], "zone": m["zone"], "geometry": m["geometry"], "gateway": m["gateway"],
         "interval": 600.0}
        for i, m in enumerate(meters)
    ]
    out["devices"] = [*city["devices"], *stations]
    return out


#: a camera's motion lights the lamps within 80 m at 90 % (the control-lane tests' one rule)
MOTION_LIGHTS = """
rules:
  - id: motion-lights
    kind: when_then
    when:
      devices: {family: cctv}
      event: {kinds: [motion]}
    then:
      command: {level: 90, priority: 70, lease_s: 300, radius_m: 80}
"""
