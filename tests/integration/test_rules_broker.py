"""The rule engine end to end: real Mosquitto, real InfluxDB, the example rules, lamps answering.

The supervisor runs ``rules/examples`` (copied to tmp_path) on a generated city; the simulator's
lamps obey the commands the supervisor publishes on ``city/<zone>/lighting/<lamp>/cmd`` and report
the level they were told, which confirms the commands. Virtual time (stepped, shared clock) is a
winter night in Paris.

Every simulated road sensor is silenced (their lamps fall back to the schedule) and the test
publishes the telemetry of one sensor itself, with the flows it chooses. Random motion events of
the simulated cameras are switched off: the test sends the camera event it wants.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulators.city import generate_city
from simulators.telemetry import Leak
from tests.integration._rig import Recorder, Rig, local, with_intervals
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
EVENING = local(2025, 1, 15, 20, 0)  # dark; the schedule asks 100 % until 23:00
HOLD, RAMP = 600.0, 20.0  # traffic-dims-lights: hold_s, ramp_pct_per_min
LOW, HIGH = 20.0, 1200.0  # veh/h: class M6 (30 %, below M5 minus the 50 veh/h band), class M3 (100 %)


def _rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    shutil.copytree(EXAMPLES, d)
    return d


class Lights:
    """The rig, the command recorder and the one sensor the test drives."""

    def __init__(self, rig: Rig, recorder: Recorder) -> None:
        self.rig = rig
        self.rec = recorder
        model = rig.model
        streets: dict[str, list[str]] = {}
        for d, info in model.devices.items():
            if info.kind == "road_sensor" and info.street:
                streets.setdefault(info.street, []).append(d)
        cams = {info.street for info in model.devices.values() if info.kind == "camera"}
        self.street = min(s for s in streets if s in cams and model.lights_along(s, 25.0))
        self.sensor = min(streets[self.street])
        self.zone = model.devices[self.sensor].zone
        self.along = set(model.lights_along(self.street, 25.0))
        self.lamps = {d for d, info in model.devices.items() if info.kind == "lamp"}
        self.others = self.lamps - self.along
        self.flow: float | None = None
        self._next_feed = 0.0

    @property
    def sup(self) -> Any:
        return self.rig.sup

    def feed(self) -> None:
        """Publish the driven sensor's telemetry once a minute (virtual) while ``flow`` is set."""
        now = self.rig.now
        if self.flow is None or now < self._next_feed:
            return
        self._next_feed = now + 60.0
        self.rig.publish(f"city/{self.zone}/traffic/{self.sensor}/telemetry",
                         {"ts": round(now, 3), "flow": self.flow, "speed": 45.0, "occupancy": 3.0})

    def run(self, seconds: float, chunk: float = 30.0) -> None:
        self.rig.advance(seconds, chunk=chunk, each=self.feed)

    def level(self, lamp: str) -> float | None:
        with self.sup.lock:
            return self.sup.rules.level(lamp)  # type: ignore[no-any-return]

    def levels(self, lamps: set[str]) -> set[float | None]:
        return {self.level(x) for x in lamps}

    def commanded(self, since: int) -> dict[str, list[float]]:
        """Levels commanded per lamp on the broker since recorder position ``since``."""
        out: dict[str, list[float]] = {}
        for topic, body in self.rec.since(since):
            out.setdefault(topic.split("/")[3], []).append(float(body["level"]))
        return out

    def confirmed(self, lamps: set[str], level: float) -> bool:
        with self.sup.lock:
            cmds = self.sup.rules.commands()
        return all(cmds[x]["state"] == "confirmed" and cmds[x]["level"] == level for x in lamps)

    def dim_street(self) -> None:
        """Low traffic on the street: its lamps at 30 % after the hold time and the ramp."""
        self.flow = LOW
        self.run(HOLD + 300)
        assert self.levels(self.along) == {30.0}


@pytest.fixture
def lights(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> Iterator[Lights]:
    city = generate_city(seed=3, devices=300)
    rec = Recorder(broker, "city/+/lighting/+/cmd")
    rig = Rig.start(city, broker, influx, influx_db, tmp_path=tmp_path, start=EVENING, responders=True,
                    rules_dir=_rules_dir(tmp_path))
    try:
        rig.sim.telemetry.motion_probability = 0.0
        for d, info in rig.model.devices.items():
            if info.kind == "road_sensor":
                rig.sim.faults.fail(d)
        lt = Lights(rig, rec)
        lt.run(60)  # the schedule lights every lamp at 100 %, the lamps confirm
        assert lt.levels(lt.lamps) == {100.0}
        assert set(lt.commanded(0)) == lt.lamps
        assert lt.confirmed(lt.lamps, 100.0)
        yield lt
    finally:
        rig.close()
        rec.close()


def test_traffic_moves_only_its_street_within_ramp_and_hold(lights: Lights) -> None:
    lt = lights
    lt.dim_street()
    assert lt.levels(lt.others) == {100.0}, "the other streets stay on the schedule"
    assert lt.confirmed(lt.along, 30.0)

    # traffic rises: the street's lamps go up at once, limited by the ramp, and only they do
    n0 = len(lt.rec)
    lt.flow = HIGH
    lt.run(60)
    (lv,) = lt.levels(lt.along)
    assert lv is not None and 30.0 < lv <= 30.0 + RAMP * 1.5 + 5.0, lv
    lt.run(240)
    assert lt.levels(lt.along) == {100.0}
    up = lt.commanded(n0)
    assert set(up) == lt.along, "commands only for the lamps along the street"
    assert all(v[-1] == 100.0 and v == sorted(v) for v in up.values()), up
    assert all(len(v) >= 3 for v in up.values()), "ramped in steps, not one jump"
    assert lt.confirmed(lt.along, 100.0)
    assert lt.levels(lt.others) == {100.0}

    # traffic drops: nothing before the hold time, then the lamps dim
    n1 = len(lt.rec)
    lt.flow = LOW
    lt.run(HOLD - 120)
    assert lt.levels(lt.along) == {100.0} and lt.commanded(n1) == {}
    lt.run(420)
    assert lt.levels(lt.along) == {30.0}
    assert set(lt.commanded(n1)) == lt.along
    assert lt.confirmed(lt.along, 30.0)

    # why the level: the decision in memory and in InfluxDB
    lamp = min(lt.along)
    with lt.sup.lock:
        last = lt.sup.rules.why(lamp)[-1]
    assert last.rule == "traffic-dims-lights" and last.output == 30.0
    assert f"flow 20 veh/h on {lt.street} (sensor {lt.sensor})" in last.text
    lt.rig.flush()
    rows = lt.rig.rows(f"SELECT \"output\", \"inputs\", \"text\" FROM \"decisions\" WHERE \"device\" = '{lamp}' "
                       "GROUP BY \"rule\"")
    mine = [r for r in rows if r["rule"] == "traffic-dims-lights"]
    assert {r["output"] for r in mine} >= {30.0, 100.0}
    assert any(orjson.loads(r["inputs"])["flow"] == HIGH for r in mine)
    assert mine[-1]["text"] == last.text
    assert any(r["rule"] == "night-schedule" for r in rows)


def test_silent_sensor_falls_back_to_the_schedule(lights: Lights) -> None:
    lt = lights
    lt.dim_street()
    lt.flow = None  # the sensor falls silent
    lt.run(120)
    assert lt.levels(lt.along) == {30.0}, "two intervals of silence: still trusted"
    lt.run(150)
    assert lt.levels(lt.along) == {100.0}, "stale sensor: schedule level"
    assert lt.confirmed(lt.along, 100.0)
    with lt.sup.lock:
        last = lt.sup.rules.why(min(lt.along))[-1]
    assert last.rule == "night-schedule" and "sensor stale" in last.text


def _camera_on(lt: Lights) -> tuple[str, set[str]]:
    model = lt.rig.model
    for cam in sorted(d for d, i in model.devices.items() if i.kind == "camera" and i.street == lt.street):
        info = model.devices[cam]
        near = set(model.devices_within(info.lon, info.lat, 60.0, family="lighting", kind="lamp"))
        if near and near <= lt.along:
            return cam, near
    raise AssertionError(f"no camera on {lt.street} with lamps of the street around it")


def test_camera_alarm_overrides_traffic_until_its_lease_expires(lights: Lights) -> None:
    lt = lights
    lt.dim_street()
    cam, near = _camera_on(lt)
    zone = lt.rig.model.devices[cam].zone
    n0 = len(lt.rec)
    lt.rig.publish(f"city/{zone}/cctv/{cam}/event", {"ts": round(lt.rig.now, 3), "type": "motion"})
    lt.run(30)
    assert lt.levels(near) == {100.0}, "safety lighting beats traffic"
    assert lt.levels(lt.along - near) <= {30.0}
    assert set(lt.commanded(n0)) == near
    assert lt.confirmed(near, 100.0)
    lt.run(600 - 90)
    assert lt.levels(near) == {100.0}, "still within the lease"
    lt.run(120)
    assert lt.levels(near) == {30.0}, "lease over: traffic level again"
    assert lt.confirmed(near, 30.0)


def test_manual_override_wins_until_it_expires(lights: Lights) -> None:
    lt = lights
    lt.dim_street()
    cam, near = _camera_on(lt)
    lamp = min(near)
    until = lt.rig.now + 900
    with lt.sup.lock:
        lt.sup.rules.override(lamp, 10.0, until, "alice")
    lt.run(30)
    assert lt.level(lamp) == 10.0 and lt.confirmed({lamp}, 10.0)
    # neither traffic nor a camera alarm takes it back
    lt.flow = HIGH
    zone = lt.rig.model.devices[cam].zone
    lt.rig.publish(f"city/{zone}/cctv/{cam}/event", {"ts": round(lt.rig.now, 3), "type": "motion"})
    lt.run(300)
    assert lt.level(lamp) == 10.0
    assert lt.levels(near - {lamp}) <= {100.0}
    with lt.sup.lock:
        assert "manual override by alice" in lt.sup.rules.why(lamp)[-1].text
    lt.run(until - lt.rig.now + 60)
    assert lt.level(lamp) == 100.0, "override expired: the camera alarm/traffic level again"
    assert lt.confirmed({lamp}, 100.0)


def test_lamp_failures_counted_from_cabinet_power(lights: Lights) -> None:
    lt = lights
    model = lt.rig.model
    cab = min(d for d, i in model.devices.items() if i.kind == "lighting_cabinet")
    lamps = {d for d, i in model.devices.items() if i.kind == "lamp" and i.cabinet == cab}
    assert len(lamps) >= 4
    lt.run(300)  # one cabinet report with every lamp lit: no failure
    k = 3
    lt.rig.sim.faults.fail_lamps(cab, k)
    lt.run(330)  # the next cabinet report carries the power drop
    with lt.sup.lock:
        last = [d for d in lt.sup.rules.why(cab) if d.rule == "lamp-faults"]
    assert last and last[-1].output == float(k), [d.text for d in last]
    assert f"{k} lamp failure(s) estimated" in last[-1].text
    lt.rig.flush()
    pts = lt.rig.rows("SELECT \"text\" FROM \"alarms\" WHERE \"kind\" = 'rule:lamp_failures' GROUP BY \"element\", "
                      "\"state\"")
    assert [(p["element"], p["state"]) for p in pts] == [(cab, "raised")], pts


def test_bad_rule_file_leaves_running_rules_untouched(lights: Lights, tmp_path: Path) -> None:
    lt = lights
    with lt.sup.lock:
        before = lt.sup.rules.rules()
    bad = tmp_path / "bad-rules"
    shutil.copytree(EXAMPLES, bad)
    (bad / "lighting.yaml").write_text((EXAMPLES / "lighting.yaml").read_text().replace("hold_s: 600",
                                                                                       "hold_s: -5"))
    (bad / "broken.yaml").write_text("version: 1\nrules:\n  - id: x\n    kind: [unclosed\n")
    with lt.sup.lock:
        res = lt.sup.rules.reload(bad)
        after = lt.sup.rules.rules()
    assert res.ok is False and res.issues
    assert after == before
    lt.dim_street()  # the previous rules (hold 600 s) still fire
    with lt.sup.lock:
        hist = lt.sup.rules.why(min(lt.along))
    assert any("hold 600 s" in d.text for d in hist)


def test_leak_detected_on_the_expected_night_without_false_alarm(
        broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> None:
    """Leak from night 1 (01-15 00:00 local); 3 consecutive nights → alarm after 04:00 on 01-17."""
    start = local(2025, 1, 13, 12, 0)
    city = with_intervals(generate_city(seed=4, devices=120),
                          {"traffic": 7200.0, "lighting": 7200.0, "cctv": 7200.0, "water": 1200.0})
    meters = sorted(d["id"] for d in city["devices"] if d["kind"] == "water_meter")
    leaky = meters[len(meters) // 2]
    rig = Rig.start(city, broker, influx, influx_db, tmp_path=tmp_path, start=start, responders=False,
                    rules_dir=_rules_dir(tmp_path), leaks={leaky: Leak(0.2, from_night=1)})
    try:
        rig.sim.telemetry.motion_probability = 0.0
        rig.advance(local(2025, 1, 17, 3, 0) - start, chunk=3600.0)
        rig.flush()
        early = rig.rows("SELECT \"text\" FROM \"alarms\" WHERE \"kind\" = 'rule:water_leak' GROUP BY \"element\"")
        assert early == [], "no leak alarm before the third night"
        rig.advance(local(2025, 1, 17, 5, 0) - rig.now, chunk=3600.0)
        rig.flush()
        pts = rig.rows("SELECT \"text\" FROM \"alarms\" WHERE \"kind\" = 'rule:water_leak' "
                       "GROUP BY \"element\", \"state\"")
        with rig.sup.lock:
            why = [d for d in rig.sup.rules.why(leaky) if d.rule == "water-night-flow"]
    finally:
        rig.close()
    assert [(p["element"], p["state"]) for p in pts] == [(leaky, "raised")], pts
    assert why and why[-1].inputs["night"] == date(2025, 1, 17).isoformat()
    assert why[-1].inputs["nights"] == 3
    assert local(2025, 1, 17, 4, 0) <= why[-1].ts < local(2025, 1, 17, 5, 0)
