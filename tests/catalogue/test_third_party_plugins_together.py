"""A family, its driver and a rule kind, all from one third-party package in a temporary directory.

Nothing of the project is edited: the package declares one entry point in each of the groups
``urban_supervisor.families``, ``urban_supervisor.drivers`` and ``urban_supervisor.rule_kinds``, as
``pip install`` of it would. Its bins are placed in a city, a rule of its own kind selects them by
family, and raw MQTT payloads go through the real pipeline (router, driver, state, rule engine).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import drivers
from drivers import catalogue
from rules import refresh_kinds, rule_kinds
from supervisor.ingest.pipeline import Pipeline
from supervisor.ingest.router import Router
from supervisor.model import city_from_dict
from tests.catalogue.test_third_party_family import DRIVER_PY, FAMILY_PY
from tests.rules._city import city_data, harness, local

RULE_KIND_PY = '''
"""Alarm when a bin is fuller than a limit (and clear when it is emptied)."""
from typing import Literal

from pydantic import Field

from rules import Decision, RuleAlarm, RuleBase, RuleKind, RuleRuntime, Selector, SelectorField, resolve


class BinFull(RuleBase):
    kind: Literal["bin_full"]
    bins: Selector
    limit: int = Field(ge=1, le=100)


class BinFullRuntime(RuleRuntime):
    kind = "bin_full"

    def __init__(self, spec, ctx) -> None:
        super().__init__(spec.id, ctx)
        self.spec = spec
        self.reading_devices = tuple(resolve(spec.bins, ctx.devices))
        self.full = set()

    def on_reading(self, r, now):
        fill = r.values.get("fill")
        if not isinstance(fill, int):
            return
        full = fill >= self.spec.limit
        text = f"{r.device}: {fill} % full (limit {self.spec.limit} %)"
        self.ctx.decide(Decision(now, self.id, self.kind, r.device, float(fill), text, {"fill": fill}))
        if full != (r.device in self.full):
            (self.full.add if full else self.full.discard)(r.device)
            self.ctx.alarm(RuleAlarm(now, self.id, self.kind, r.device, "raised" if full else "cleared",
                                     "warning", text))


KIND = RuleKind("bin_full", BinFull, BinFullRuntime, (SelectorField("bins", frozenset({"waste"})),))
'''

ENTRY_POINTS = """
[urban_supervisor.families]
waste = toy_city.family:WASTE

[urban_supervisor.drivers]
waste_bin = toy_city.driver:WasteBinDriver

[urban_supervisor.rule_kinds]
bin_full = toy_city.rule_kind:KIND
"""

RULES = """
rules:
  - id: empty-the-bins
    kind: bin_full
    bins: {family: waste}
    limit: 90
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = tmp_path / "site"
    pkg = root / "toy_city"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, text in (("family", FAMILY_PY), ("driver", DRIVER_PY), ("rule_kind", RULE_KIND_PY)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    info = root / "toy_city-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-city\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    catalogue.reload()
    refresh_kinds()
    yield
    monkeypatch.undo()
    for mod in [m for m in sys.modules if m == "toy_city" or m.startswith("toy_city.")]:
        del sys.modules[mod]
    catalogue.reload()
    refresh_kinds()


def _city_with_bins(n: int = 2) -> dict[str, object]:
    """The rules' test city plus ``n`` waste bins, placed (and networked) like its water meters."""
    city = city_data()
    meters = [d for d in city["devices"] if d["family"] == "water"][:n]
    bins = [{"id": f"bin-{i + 1}", "family": "waste", "kind": "waste_bin", "driver": "waste_bin",
             "service": m["service"], "zone": m["zone"], "geometry": m["geometry"], "gateway": m["gateway"],
             "interval": catalogue.family("waste").interval}
            for i, m in enumerate(meters)]
    return {**city, "devices": [*city["devices"], *bins]}


class _Sink:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, lines: list[bytes], on_durable: object = None, *, block: bool = True) -> None:
        self.lines.extend(lines)
        if callable(on_durable):
            on_durable()


def test_a_third_party_family_driver_and_rule_kind_run_together(installed: None, tmp_path: Path) -> None:
    assert "waste" in catalogue.families() and "bin_full" in rule_kinds() and drivers.get("waste_bin")
    topo = city_from_dict(_city_with_bins())
    assert {d for d, dev in topo.devices.items() if dev.family == "waste"} == {"bin-1", "bin-2"}
    h = harness(tmp_path, RULES, local(2025, 1, 15, 21, 0), topo=topo)
    zone = topo.devices["bin-1"].zone
    sink, acked = _Sink(), []
    pipe = Pipeline(Router([drivers.get("waste_bin")({})]), h.state, sink, acked.extend, clock=h.clock.now,
                    rules=h.engine)
    now = h.clock.now()
    pipe.process([
        (f"city/{zone}/waste/bin-1/telemetry", b'{"level": 95}', 1, 1, now),
        (f"city/{zone}/waste/bin-2/telemetry", b'{"level": 40}', 2, 1, now),
        (f"city/{zone}/waste/bin-1/telemetry", b'{"level": 5}', 3, 1, now),
    ])

    assert pipe.counters.decoded == 3 and sorted(acked) == [(1, 1), (2, 1), (3, 1)]
    assert [(a.device, a.state) for a in h.alarms] == [("bin-1", "raised"), ("bin-1", "cleared")]
    assert [d.output for d in h.engine.why("bin-1")] == [95.0, 5.0]
    assert any(line.startswith(b"waste,device=bin-2,") and b"fill=40i" in line for line in sink.lines)
