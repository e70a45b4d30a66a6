"""Rule kinds are plug-ins: a toy kind written to a temporary directory loads, validates and runs."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from drivers import Reading
from rules import (
    RuleFileError,
    RuleKind,
    SelectorField,
    load_rules,
    refresh_kinds,
    register_kind,
    rule_kinds,
    unregister_kind,
)
from supervisor.cli import main
from tests.rules._city import harness, local, write_rules

NIGHT = local(2025, 1, 15, 21, 0)

TOY = '''
"""A toy rule kind living outside the project: count readings, alarm at a limit."""
from typing import Literal

from pydantic import Field

from rules import Context, Decision, RuleAlarm, RuleBase, RuleKind, RuleRuntime, Selector, SelectorField, resolve


class CountRule(RuleBase):
    kind: Literal["toy_count"]
    devices: Selector
    limit: int = Field(ge=1, le=1000)


class CountRuntime(RuleRuntime):
    kind = "toy_count"

    def __init__(self, spec, ctx: Context) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.reading_devices = tuple(resolve(spec.devices, ctx.devices))
        self.seen = {}

    def on_reading(self, r, now):
        n = self.seen[r.device] = self.seen.get(r.device, 0) + 1
        text = f"{r.device}: {n} readings"
        self.ctx.decide(Decision(now, self.id, self.kind, r.device, float(n), text, {"n": n}))
        if n == self.spec.limit:
            self.ctx.alarm(RuleAlarm(now, self.id, self.kind, r.device, "raised", "info", text))


def _one_zone(spec, devices):
    zones = {devices[d].zone for d in resolve(spec.devices, devices)}
    return [] if len(zones) == 1 else [("devices", f"selects {len(zones)} zones; the toy wants one")]


KIND = RuleKind("toy_count", CountRule, CountRuntime, (SelectorField("devices", frozenset({"water"})),),
                city_check=_one_zone)
'''

RULES = """
rules:
  - id: count-meter
    kind: toy_count
    devices: {devices: [wm-000001]}
    limit: 2
"""


def _write_package(root: Path, *, entry_point: bool) -> None:
    (root / "toy_rule_kind.py").write_text(TOY, encoding="utf-8")
    if entry_point:
        info = root / "toy_rule_kind-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-rule-kind\nVersion: 0.1\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(
            "[urban_supervisor.rule_kinds]\ntoy_count = toy_rule_kind:KIND\n", encoding="utf-8")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    _write_package(root, entry_point=request.param)
    monkeypatch.syspath_prepend(str(root))
    if not request.param:
        import toy_rule_kind  # type: ignore[import-not-found]

        register_kind(toy_rule_kind.KIND)
    refresh_kinds()
    try:
        yield root
    finally:
        unregister_kind("toy_count")
        monkeypatch.undo()
        refresh_kinds()
        import sys

        sys.modules.pop("toy_rule_kind", None)


@pytest.mark.parametrize("package", [True, False], ids=["entry_point", "register_kind"], indirect=True)
def test_toy_kind_loads_validates_and_runs(package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "toy_count" in rule_kinds()
    assert main(["rules", "kinds"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert listed["toy_count"] == "toy_rule_kind" and listed["when_then"] == "rules.kinds.when_then"
    h = harness(tmp_path, RULES, NIGHT)
    for _ in range(3):
        h.readings([Reading("wm-000001", "water", {"flow": 0.1}, ts=h.now)])
    h.readings([Reading("wm-000002", "water", {"flow": 0.1}, ts=h.now)])
    assert [d.output for d in h.engine.why("wm-000001")] == [1.0, 2.0, 3.0]
    assert h.engine.why("wm-000002") == [], "not selected"
    assert [(a.rule, a.kind, a.device) for a in h.alarms] == [("count-meter", "toy_count", "wm-000001")]

    # its spec validates, its selector fields are checked against the city, its own check runs
    bad = tmp_path / "bad"
    write_rules(bad, """
    rules:
      - {id: t1, kind: toy_count, devices: {family: water}, limit: 0}
      - {id: t2, kind: toy_count, devices: {family: traffic}, limit: 1}
      - {id: t3, kind: toy_count, devices: {family: water}, limit: 1}
    """)
    from tests.rules._city import topology

    with pytest.raises(RuleFileError) as exc:
        load_rules(bad, topology())
    got = {(i.rule, i.path): i.message for i in exc.value.issues}
    assert "greater than or equal to 1" in got[("t1", "rules[0].limit")]
    assert "expected family water" in got[("t2", "devices")]
    assert got[("t3", "devices")].endswith("the toy wants one")


def test_the_kind_is_gone_once_unregistered(tmp_path: Path) -> None:
    write_rules(tmp_path, RULES)
    with pytest.raises(RuleFileError, match="unknown kind 'toy_count'"):
        load_rules(tmp_path)


def test_a_spec_must_declare_its_kind_and_its_selector_fields() -> None:
    from rules.kinds.threshold import ThresholdRule, ThresholdRuntime

    with pytest.raises(TypeError, match="must declare kind: Literal\\['other'\\]"):
        RuleKind("other", ThresholdRule, ThresholdRuntime, ())
    with pytest.raises(TypeError, match="'lights'"):
        RuleKind("threshold", ThresholdRule, ThresholdRuntime, (SelectorField("lights"),))


def test_a_broken_entry_point_is_logged_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    info = tmp_path / "broken_kind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-kind\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [urban_supervisor.rule_kinds]
        missing = no_such_module_anywhere:KIND
        wrong = json:loads
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh_kinds()
    try:
        with caplog.at_level(logging.ERROR, logger="rules._registry"):
            found = rule_kinds()
        assert "missing" not in found and "wrong" not in found and "when_then" in found
        msgs = " | ".join(r.getMessage() for r in caplog.records)
        assert "missing" in msgs and "failed to load" in msgs and "is not a rules.RuleKind" in msgs
    finally:
        monkeypatch.undo()
        refresh_kinds()


def test_builtin_kinds_come_from_the_entry_points() -> None:
    builtin = {"schedule", "adaptive_lighting", "alarm_lighting", "water_leak", "lamp_faults", "threshold",
               "no_signal", "when_then"}
    assert builtin <= set(rule_kinds())
    assert all(isinstance(k.spec, type) and issubclass(k.spec, BaseModel) for k in rule_kinds().values())


def test_no_installed_kind_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rules._registry as registry

    monkeypatch.setattr(registry, "_load_entry_points", dict)
    refresh_kinds()
    try:
        write_rules(tmp_path, RULES)
        with pytest.raises(RuleFileError, match="no rule kind is installed"):
            load_rules(tmp_path)
    finally:
        monkeypatch.undo()
        refresh_kinds()
