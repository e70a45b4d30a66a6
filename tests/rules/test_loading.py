"""Rule files: validation errors are precise; a bad reload leaves the running rules untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleFileError, load_rules
from supervisor.cli import main
from tests.rules._city import ADAPTIVE, SCHEDULE, harness, local, topology, write_rules

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def issues(tmp_path: Path, text: str, topo: object = None) -> list[tuple[str | None, str, str]]:
    write_rules(tmp_path, text)
    with pytest.raises(RuleFileError) as exc:
        load_rules(tmp_path, topo)  # type: ignore[arg-type]
    assert all(i.file.endswith("rules.yaml") for i in exc.value.issues)
    return [(i.rule, i.path, i.message) for i in exc.value.issues]


def test_examples_are_valid_for_a_generated_city() -> None:
    rs = load_rules(EXAMPLES, topology())
    assert {r.kind for r in rs} == {"schedule", "adaptive_lighting", "alarm_lighting", "water_leak",
                                     "lamp_faults", "threshold", "no_signal"}


def test_unknown_kind_and_missing_kind(tmp_path: Path) -> None:
    got = issues(tmp_path, """
        rules:
          - {id: a, kind: lasers, lights: {family: lighting}}
          - {id: b}
    """)
    assert got[0][:2] == ("a", "rules[0].kind") and "unknown kind 'lasers'" in got[0][2]
    assert got[1][:2] == ("b", "rules[1].kind") and "missing" in got[1][2]


def test_device_kinds_and_families_come_from_the_catalogue(tmp_path: Path) -> None:
    got = issues(tmp_path, """
        rules:
          - {id: a, kind: threshold, devices: {kind: toaster}, measure: no2, op: ">", value: 1}
          - {id: b, kind: threshold, devices: {family: parking}, measure: no2, op: ">", value: 1}
    """)
    paths = {p: m for _, p, m in got}
    assert "unknown device kind 'toaster'" in paths["rules[0].devices.kind"]
    assert "air_station" in paths["rules[0].devices.kind"]  # the catalogue's kinds are listed
    assert "unknown family 'parking'" in paths["rules[1].devices.family"]
    assert "air" in paths["rules[1].devices.family"]


def test_unknown_field_bad_type_bad_range(tmp_path: Path) -> None:
    got = issues(tmp_path, """
        rules:
          - id: s
            kind: schedule
            lights: {family: lighting, colour: red}
            on_offset_min: soon
            profile:
              - {until: "23:00", level: 140}
              - {until: "25:00", level: 50}
            brightness: 3
    """)
    paths = {p: m for _, p, m in got}
    assert paths["rules[0].lights.colour"] == "unknown field"
    assert "valid number" in paths["rules[0].on_offset_min"]
    assert "less than or equal to 100" in paths["rules[0].profile[0].level"]
    assert "HH:MM" in paths["rules[0].profile[1].until"]
    assert paths["rules[0].brightness"] == "unknown field"
    assert {r for r, _, _ in got} == {"s"}


def test_cross_field_and_reference_errors(tmp_path: Path) -> None:
    got = issues(tmp_path, """
        rules:
          - id: a
            kind: adaptive_lighting
            sensors: {family: traffic}
            schedule: nowhere
            curve: [{flow: 0, level: 30}]
            classes: [{name: M6, min_flow: 0, level: 30}]
          - id: t
            kind: threshold
            devices: {family: water}
            measure: fps
            op: ">"
            value: 3
          - id: t2
            kind: threshold
            devices: {family: lighting}
            measure: door_open
            op: ">"
            value: true
    """)
    msgs = {(r, p): m for r, p, m in got}
    assert "at least 2 items" in msgs[("a", "rules[0].curve")]
    assert "not a canonical measure of family water" in msgs[("t", "rules[1]")]
    assert "use == or != with a bool" in msgs[("t2", "rules[2]")]


def test_duplicate_ids_across_files_and_unknown_schedule(tmp_path: Path) -> None:
    write_rules(tmp_path, "rules:" + SCHEDULE, "a.yaml")
    write_rules(tmp_path, "rules:" + SCHEDULE + ADAPTIVE.replace("schedule: night", "schedule: dusk"), "b.yaml")
    with pytest.raises(RuleFileError) as exc:
        load_rules(tmp_path)
    got = [(Path(i.file).name, i.rule, i.path, i.message) for i in exc.value.issues]
    assert got[0][:3] == ("b.yaml", "night", "id") and "duplicate rule id (first defined in" in got[0][3]
    assert got[1] == ("b.yaml", "traffic-dims-lights", "schedule", "refers to unknown rule 'dusk'")


def test_selectors_must_resolve_against_the_city(tmp_path: Path) -> None:
    got = issues(tmp_path, """
        rules:
          - id: s
            kind: schedule
            lights: {devices: [lamp-000001, lamp-999999]}
          - id: z
            kind: no_signal
            devices: {zones: [z99]}
            after_s: 60
          - id: f
            kind: lamp_faults
            cabinets: {family: lighting}
          - id: w
            kind: water_leak
            meters: {family: traffic}
            threshold_m3h: 1
    """, topology())
    msgs = {(r, p): m for r, p, m in got}
    assert msgs[("s", "lights.devices[1]")] == "unknown device 'lamp-999999'"
    assert msgs[("z", "devices.zones[0]")] == "unknown zone 'z99'"
    assert msgs[("z", "devices")] == "selector matches no device of the city"
    assert "that are not lighting_cabinet" in msgs[("f", "cabinets")]
    assert "expected family water" in msgs[("w", "meters")]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    got = issues(tmp_path, "rules:\n  - id: a\n    kind: [unclosed\n")
    assert got[0][0] is None and got[0][1].startswith("line ") and "invalid YAML" in got[0][2]


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(EXAMPLES)]) == 0
    assert "9 rules OK" in capsys.readouterr().out
    write_rules(tmp_path, "rules:\n  - {id: a, kind: lasers}\n  - {id: b, kind: no_signal, devices: {}}\n")
    assert main(["rules", "check", str(tmp_path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    # the installed kinds, sorted by name (the registry's order; when_then added by issue 16)
    assert lines[0].endswith("rules.yaml: rule a: rules[0].kind: unknown kind 'lasers'; expected one of "
                             "adaptive_lighting, alarm_lighting, lamp_faults, no_signal, schedule, threshold, "
                             "water_leak, when_then")
    assert sorted(x.split(": ", 1)[1] for x in lines[1:]) == [
        "rule b: rules[1].after_s: Field required",
        "rule b: rules[1].devices: Value error, a selector needs at least one of family, kind, zones, devices",
    ]


def test_bad_reload_keeps_running_rules(tmp_path: Path) -> None:
    h = harness(tmp_path, "rules:" + SCHEDULE + ADAPTIVE, local(2025, 1, 15, 19, 0))
    d = tmp_path / "rules"
    h.tick()
    along = h.topo.lights_along("st-0001", 25.0)
    sensors = sorted(x.id for x in h.topo.devices.values() if x.kind == "road_sensor" and x.street == "st-0001")
    write_rules(d, "rules:\n  - {id: broken, kind: schedule, lights: {family: lighting}, level: 300}\n", "z.yaml")
    res = h.engine.reload(d)
    assert not res.ok and res.rules == 2
    assert [(i.rule, i.path) for i in res.issues] == [("broken", "rules[0].level")]
    assert h.engine.rules() == ["night", "traffic-dims-lights"]
    h.run(900, sensors=sensors, flow=20.0)
    assert {h.level(x) for x in along} == {30.0}, "the running rules kept working"
    (d / "z.yaml").unlink()
    write_rules(d, "rules:" + SCHEDULE + ADAPTIVE.replace("min_level: 30", "min_level: 60"))
    res = h.engine.reload(d)
    assert res.ok and res.changed == ("traffic-dims-lights",) and res.added == () and res.removed == ()
    h.run(600, sensors=sensors, flow=20.0)  # a replaced rule starts afresh: hold, then ramp down
    assert {h.level(x) for x in along} == {60.0}
    write_rules(d, "rules:" + SCHEDULE)
    res = h.engine.reload(d)
    assert res.ok and res.removed == ("traffic-dims-lights",)
    h.tick()
    assert {h.level(x) for x in along} == {100.0}
