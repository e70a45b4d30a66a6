"""The control lane of a rule set: commanding rules' inputs and actuators, alarm-only rules left out,
a warning when the lane would carry most of the traffic, reload included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rules import LANE_SHARE_WARN, LanePlan, RuleKind, rule_kinds
from tests.rules._city import harness, local, write_rules

NIGHT = local(2025, 1, 15, 21)

EVERY = """
rules:
  - id: every-sensor-dims
    kind: when_then
    when:
      devices: {family: traffic}
      threshold: {measure: flow, op: ">", value: 5000, for_s: 0}
    then:
      command: {level: 100, priority: 70, lease_s: 60, radius_m: 30}
  - id: every-camera-lights
    kind: when_then
    when:
      devices: {family: cctv}
      event: {kinds: [motion]}
    then:
      command: {level: 90, priority: 70, lease_s: 300, radius_m: 60}
"""

CAMERA_LIGHTS = """
rules:
  - id: motion-lights
    kind: when_then
    when:
      devices: {family: cctv}
      event: {kinds: [motion]}
    then:
      command: {level: 90, priority: 70, lease_s: 300, radius_m: 60}
  - id: meters-high
    kind: threshold
    devices: {family: water}
    measure: index
    op: ">"
    value: 1000000
    severity: warning
"""


def get_kind(name: str) -> RuleKind | None:
    return rule_kinds().get(name)


def test_kinds_say_whether_they_command_and_which_selectors_are_inputs() -> None:
    wt = get_kind("when_then")
    assert wt is not None
    assert [s.name for s in wt.inputs()] == ["when.devices"]  # then.command.lights is an actuator
    sched = get_kind("schedule")
    assert sched is not None and sched.inputs() == () and sched.commands is True
    threshold = get_kind("threshold")
    assert threshold is not None and threshold.commands is False


def test_commanding_rules_put_their_inputs_and_lamps_in_the_lane_alarm_only_rules_do_not(tmp_path: Path) -> None:
    h = harness(tmp_path, CAMERA_LIGHTS, NIGHT)
    plan = h.engine.lane
    cams = {d for d, i in h.topo.devices.items() if i.family == "cctv"}
    meters = {d for d, i in h.topo.devices.items() if i.family == "water"}
    assert cams and meters
    assert cams <= plan.devices, "the camera events are the inputs of a commanding rule"
    lamps = {d for d in plan.devices if h.topo.devices[d].kind == "lamp"}
    assert lamps, "the lamps it commands (their confirmations) are on the lane too"
    assert not meters & plan.devices and plan.alarm_only == ("meters-high",)


def test_a_when_then_alarm_is_alarm_only(tmp_path: Path) -> None:
    h = harness(tmp_path, """
    rules:
      - id: cam-alarm
        kind: when_then
        when:
          devices: {family: cctv}
          event: {kinds: [intrusion]}
        then:
          alarm: {severity: major}
    """, NIGHT)
    assert h.engine.lane == LanePlan({}, ("cam-alarm",))


def test_reload_changes_the_lane_and_tells_the_listener(tmp_path: Path) -> None:
    h = harness(tmp_path, CAMERA_LIGHTS, NIGHT)
    seen: list[LanePlan] = []
    h.engine.on_lane = seen.append
    d = tmp_path / "rules2"
    write_rules(d, """
    rules:
      - id: meters-high
        kind: threshold
        devices: {family: water}
        measure: index
        op: ">"
        value: 1000000
        severity: warning
    """)
    assert h.engine.reload(d).ok
    assert seen == [LanePlan({}, ("meters-high",))] and h.engine.lane.devices == frozenset()


def test_a_lane_over_most_traffic_is_reported_with_its_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rules._engine"):
        h = harness(tmp_path, EVERY, NIGHT)
    share = h.engine.lane_share()
    assert share.share > LANE_SHARE_WARN and share.too_large
    assert share.by_rule[0][0] == "every-sensor-dims"
    assert "every-sensor-dims" in share.warning() and "alarm-only" in share.warning()
    assert any("control lane would carry" in r.message for r in caplog.records)


def test_a_small_lane_gives_no_warning(tmp_path: Path) -> None:
    h = harness(tmp_path, CAMERA_LIGHTS.split("  - id: meters-high", maxsplit=1)[0], NIGHT)
    share = h.engine.lane_share()
    assert 0 < share.share < LANE_SHARE_WARN and share.warning() == ""


def test_rules_check_reports_the_lane_and_warns_naming_the_rules(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    from supervisor.cli import main
    from tests.rules._city import city_data

    city = tmp_path / "city.json"
    city.write_bytes(orjson.dumps(city_data()))
    small, big = tmp_path / "small", tmp_path / "big"
    write_rules(small, CAMERA_LIGHTS)
    assert main(["rules", "check", str(small), "--city", str(city)]) == 0
    out = capsys.readouterr().out
    assert "control lane:" in out and "alarm-only, on the bulk path: meters-high" in out
    assert "warning" not in out
    write_rules(big, EVERY)
    assert main(["rules", "check", str(big), "--city", str(city)]) == 0  # a warning, not an error
    warning = capsys.readouterr().out.splitlines()[-1]
    assert warning.startswith("warning: the control lane would carry")
    assert "every-sensor-dims" in warning and "every-camera-lights" in warning


METERS_ALARM = """
rules:
  - id: every-meter-high
    kind: threshold
    devices: {family: water}
    measure: index
    op: ">"
    value: 1000000
    severity: warning
"""

METERS_COMMAND = """
rules:
  - id: every-meter-lights
    kind: when_then
    when:
      devices: {family: water}
      threshold: {measure: index, op: ">", value: 1000000, for_s: 0}
    then:
      command: {level: 100, priority: 70, lease_s: 60, radius_m: 200}
  - id: every-sensor-dims
    kind: when_then
    when:
      devices: {family: traffic}
      threshold: {measure: flow, op: ">", value: 5000, for_s: 0}
    then:
      command: {level: 100, priority: 70, lease_s: 60, radius_m: 30}
"""


def test_a_threshold_over_every_water_meter_stays_on_the_bulk_path_a_commanding_one_is_warned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's example: a threshold rule over every water meter would put most of the traffic in
    the lane if every rule's inputs went there. It raises alarms only, so it stays on the bulk path
    (no warning, reported as alarm-only); the same meters feeding a rule that commands lamps are
    put in the lane (a third of this city's traffic), and with the road sensors' commanding rule the
    lane passes half of it: ``rules check`` warns with the rules' names and the shares."""
    import orjson

    from supervisor.cli import main
    from tests.rules._city import city_data

    city = tmp_path / "city.json"
    city.write_bytes(orjson.dumps(city_data()))
    alarm, command = tmp_path / "alarm", tmp_path / "command"
    write_rules(alarm, METERS_ALARM)
    assert main(["rules", "check", str(alarm), "--city", str(city)]) == 0
    out = capsys.readouterr().out
    assert "control lane: 0 devices, 0% of the expected traffic" in out, out
    assert "alarm-only, on the bulk path: every-meter-high" in out and "warning" not in out
    h = harness(tmp_path / "h", METERS_COMMAND, NIGHT)
    share = h.engine.lane_share()
    meters = {d for d, i in h.topo.devices.items() if i.family == "water"}
    assert meters <= h.engine.lane.devices
    assert share.too_large and dict(share.by_rule)["every-meter-lights"] > 0.3
    write_rules(command, METERS_COMMAND)
    assert main(["rules", "check", str(command), "--city", str(city)]) == 0  # a warning, not an error
    warning = capsys.readouterr().out.splitlines()[-1]
    assert warning.startswith("warning: the control lane would carry")
    assert f"every-meter-lights ({dict(share.by_rule)['every-meter-lights']:.0%})" in warning
    assert f"carry {share.share:.0%}" in warning and "every-sensor-dims" in warning
