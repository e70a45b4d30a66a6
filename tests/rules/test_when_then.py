"""The general ``when_then`` kind: triggers (event, threshold held, status), actions (command, alarm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import Reading
from rules import PRIORITY_SAFETY, RuleFileError, load_rules
from supervisor.model import CityModel, city_from_dict
from tests.rules._city import Harness, camera_with_lamps, city_data, harness, local, with_air_stations, write_rules

NIGHT = local(2025, 1, 15, 21, 0)


def air_city() -> CityModel:
    return city_from_dict(with_air_stations(city_data()))


def no2(h: Harness, station: str, value: float) -> None:
    h.readings([Reading(station, "air", {"no2": value, "pm10": 20.0}, ts=h.now)])


NO2_ALARM = """
rules:
  - id: no2-alarm
    kind: when_then
    when:
      devices: {family: air}
      threshold: {measure: no2, op: ">", value: 200, for_s: 600}
    then:
      alarm: {severity: major}
"""


def test_threshold_held_raises_then_clears_an_alarm(tmp_path: Path) -> None:
    h = harness(tmp_path, NO2_ALARM, NIGHT, topo=air_city())
    no2(h, "aq-0001", 250.0)
    h.run(300)
    assert h.alarms == [], "not yet held for 600 s"
    no2(h, "aq-0001", 260.0)
    h.run(320)
    (a,) = h.alarms
    assert (a.rule, a.kind, a.device, a.state, a.severity) == ("no2-alarm", "when_then", "aq-0001", "raised", "major")
    assert "aq-0001: no2 = 260.0 > 200" in a.text and "for 6" in a.text
    no2(h, "aq-0002", 150.0)
    no2(h, "aq-0001", 90.0)
    assert [x.state for x in h.alarms] == ["raised", "cleared"]
    assert "no longer >" in h.alarms[-1].text
    why = h.engine.why("aq-0001")
    assert [d.output for d in why] == [1.0, 0.0] and all(d.rule == "no2-alarm" for d in why)
    assert why[0].inputs["measure"] == "no2" and why[0].inputs["value"] == 260.0


def test_bad_reading_is_counted_not_raised(tmp_path: Path) -> None:
    h = harness(tmp_path, NO2_ALARM, NIGHT, topo=air_city())
    h.readings([Reading("aq-0001", "air", {"no2": "high"}, ts=h.now)])
    assert h.engine.errors == {"no2-alarm:bad_type": 1}
    assert h.alarms == []


def test_event_commands_lamps_with_priority_and_lease(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: motion-lights
        kind: when_then
        when:
          devices: {family: cctv}
          event: {kinds: [motion]}
        then:
          command: {level: 90, priority: 70, lease_s: 300, radius_m: 60}
    """
    h = harness(tmp_path, rules, NIGHT)
    cam, lamps = camera_with_lamps(h, 60.0)
    h.event(cam, "tamper")
    assert {h.level(x) for x in lamps} == {None}, "other event kinds do nothing"
    h.event(cam, "motion", score=0.9)
    assert {h.level(x) for x in lamps} == {90.0}
    lamp = min(lamps)
    (req,) = h.engine.requests(lamp)
    assert (req["priority"], req["rule"], req["kind"], req["until"]) == (70, "motion-lights", "when_then", h.now + 300)
    assert {c.device for c in h.sink.sent} == lamps and {c.value for c in h.sink.sent} == {90.0}
    text = h.engine.why(lamp)[-1].text
    assert f"motion (score 0.9) on {cam}" in text and "priority 70" in text
    assert h.engine.why(cam)[-1].rule == "motion-lights"
    h.run(310)
    assert {h.level(x) for x in lamps} == {None}, "the lease ended"
    assert "lease ended" in h.engine.why(lamp)[-1].text


def test_stale_sensor_commands_its_street_until_it_reports(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: stale-street
        kind: when_then
        when:
          devices: {family: traffic, streets: [st-0001]}
          status: {becomes: stale}
        then:
          command:
            level: 100
            priority: 60
            lease_s: 3600
            lights: {family: lighting, kind: lamp, streets: [st-0001]}
    """
    h = harness(tmp_path, rules, NIGHT)
    sensors = sorted(d for d, i in h.topo.devices.items() if i.kind == "road_sensor" and i.street == "st-0001")
    lamps = {d for d, i in h.topo.devices.items() if i.kind == "lamp" and i.street == "st-0001"}
    assert sensors and lamps
    h.flow(sensors, 300.0)
    h.run(60)
    h.state.check(h.now)
    h.run(10)
    assert {h.level(x) for x in lamps} == {None}
    h.run(200)  # 3 intervals of 60 s without a reading: stale
    h.state.check(h.now)
    h.run(10)
    assert {h.level(x) for x in lamps} == {100.0}
    assert "status stale" in h.engine.why(sensors[0])[-1].text
    h.flow(sensors, 300.0)
    h.run(10)
    assert {h.level(x) for x in lamps} == {None}, "withdrawn when the sensor reports again"


def test_fault_raises_an_alarm(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: cabinet-faulty
        kind: when_then
        when:
          devices: {family: lighting, kind: lighting_cabinet}
          status: {becomes: fault}
        then:
          alarm: {severity: critical}
    """
    h = harness(tmp_path, rules, NIGHT)
    cab = min(d for d, i in h.topo.devices.items() if i.kind == "lighting_cabinet")
    h.readings([Reading(cab, "lighting", {"online": False}, ts=h.now)])
    h.run(10)
    assert [(a.device, a.state, a.severity) for a in h.alarms] == [(cab, "raised", "critical")]
    h.readings([Reading(cab, "lighting", {"online": True, "power": 100.0}, ts=h.now)])
    h.run(10)
    assert [a.state for a in h.alarms] == ["raised", "cleared"]


def test_event_alarm_clears_after_the_last_event(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: intrusion
        kind: when_then
        when:
          devices: {family: cctv, near: {element: cab-0001, radius_m: 5000}}
          event: {kinds: [intrusion]}
        then:
          alarm: {severity: major, clear_after_s: 120}
    """
    h = harness(tmp_path, rules, NIGHT)
    cam = min(d for d, i in h.topo.devices.items() if i.kind == "camera")
    h.event(cam, "intrusion")
    h.run(60)
    h.event(cam, "intrusion")  # renews, no second raise
    h.run(100)
    assert [a.state for a in h.alarms] == ["raised"]
    h.run(30)
    assert [a.state for a in h.alarms] == ["raised", "cleared"]
    assert f"no intrusion on {cam} for 120 s" in h.alarms[-1].text


def _problems(tmp_path: Path, body: str, topo: CityModel | None = None) -> dict[str, str]:
    write_rules(tmp_path / "r", "rules:\n" + body)
    with pytest.raises(RuleFileError) as exc:
        load_rules(tmp_path / "r", topo)
    out: dict[str, str] = {}
    for i in exc.value.issues:
        if i.rule == "w":
            out[i.path] = f"{out[i.path]}; {i.message}" if i.path in out else i.message
    return out


@pytest.mark.parametrize(("body", "path", "message"), [
    ("  - {id: w, kind: when_then, when: {devices: {family: air}}, then: {alarm: {}}}\n",
     "rules[0].when", "exactly one of event, threshold, status (got none)"),
    ("  - {id: w, kind: when_then, when: {devices: {family: air}, event: {kinds: [x]}, status: {becomes: stale}},"
     " then: {alarm: {}}}\n", "rules[0].when", "(got event, status)"),
    ("  - {id: w, kind: when_then, when: {devices: {family: air}, threshold: {measure: fps, op: '>', value: 1}},"
     " then: {alarm: {}}}\n", "rules[0].when", "measure 'fps' is not a canonical measure of family air"),
    ("  - {id: w, kind: when_then, when: {devices: {family: air}, event: {kinds: [x]}}, then: {}}\n",
     "rules[0].then", "exactly one of command, alarm"),
    ("  - {id: w, kind: when_then, when: {devices: {family: cctv}, event: {kinds: [x]}},"
     " then: {command: {level: 100}}}\n", "rules[0].then.command", "exactly one target"),
    ("  - {id: w, kind: when_then, when: {devices: {family: cctv}, event: {kinds: [x]}},"
     " then: {command: {level: 100, radius_m: 10, priority: 100}}}\n", "rules[0].then.command.priority",
     "less than 100"),
    ("  - {id: w, kind: when_then, when: {devices: {family: lasers}, event: {kinds: [x]}}, then: {alarm: {}}}\n",
     "rules[0].when.devices.family", "unknown family 'lasers'"),
    ("  - {id: w, kind: when_then, when: {devices: {family: air}, threshold: {measure: no2, op: '=~', value: 1}},"
     " then: {alarm: {}}}\n", "rules[0].when.threshold.op", "Input should be"),
    ("  - {id: w, kind: when_then, when: {devices: {near: {radius_m: 10, lon: 2.3}}, event: {kinds: [x]}},"
     " then: {alarm: {}}}\n", "rules[0].when.devices.near", "give both lon and lat"),
])
def test_bad_rules_name_file_rule_and_key(tmp_path: Path, body: str, path: str, message: str) -> None:
    got = _problems(tmp_path, body)
    assert path in got, got
    assert message in got[path]


def test_selectors_are_checked_against_the_city(tmp_path: Path) -> None:
    body = """  - id: w
    kind: when_then
    when:
      devices: {family: traffic, streets: [st-9999], near: {element: nowhere, radius_m: 10}}
      event: {kinds: [x]}
    then:
      command: {level: 50, lights: {family: traffic}}
"""
    got = _problems(tmp_path, body, air_city())
    assert got["when.devices.streets[0]"] == "unknown street 'st-9999'"
    assert got["when.devices.near.element"] == "unknown element 'nowhere'"
    assert "expected family lighting" in got["then.command.lights"]


def test_priority_defaults_to_safety(tmp_path: Path) -> None:
    write_rules(tmp_path, "rules:\n  - {id: w, kind: when_then, when: {devices: {family: cctv}, event: {kinds: [m]}},"
                          " then: {command: {level: 10, radius_m: 5}}}\n")
    (rule,) = load_rules(tmp_path)
    assert rule.then.command.priority == PRIORITY_SAFETY  # type: ignore[attr-defined]
