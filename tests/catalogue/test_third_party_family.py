"""A third party adds a family without editing the project: catalogue entry + driver, by entry points.

The toy package (waste-bin fill level) is written into a temporary directory with its own
``.dist-info`` declaring one ``urban_supervisor.families`` and one ``urban_supervisor.drivers``
entry point, exactly what ``pip install`` of such a package leaves on ``sys.path``. One message then
goes through the real pipeline: driver, device state (interval from the configuration defaults),
and a storage line typed by the family's measures.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import drivers
from drivers import CANONICAL, FAMILIES, catalogue
from supervisor.alarms._manager import DEVICE_SEVERITY
from supervisor.config import load_settings
from supervisor.ingest.pipeline import Pipeline
from supervisor.ingest.router import Router
from supervisor.state.registry import StateRegistry

FAMILY_PY = """
from drivers.catalogue import DeviceKind, Family, MeasureSpec

WASTE = Family(
    "waste",
    kinds=(DeviceKind("waste_bin", "warning", "underground bin with a fill-level sensor"),),
    measures={
        "fill": MeasureSpec("%", int, 0, 100, "fill level"),
        "temperature": MeasureSpec("°C", float, -40, 90, "temperature inside the bin (fire risk)"),
    },
    driver="waste_bin",
    interval=3600.0,
    title="Waste bins",
)
"""

DRIVER_PY = """
from drivers.kit import DeclarativeDriver, Field


class WasteBinDriver(DeclarativeDriver):
    name = "waste_bin"
    family = "waste"
    pattern = "city/{zone}/waste/{device}/telemetry"
    fields = (Field("fill", key="level"), Field("temperature"))
"""

ENTRY_POINTS = """
[urban_supervisor.families]
waste = toy_waste.family:WASTE

[urban_supervisor.drivers]
waste_bin = toy_waste.driver:WasteBinDriver
"""


def _install(root: Path, entry_points: str) -> None:
    pkg = root / "toy_waste"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "family.py").write_text(textwrap.dedent(FAMILY_PY))
    (pkg / "driver.py").write_text(textwrap.dedent(DRIVER_PY))
    info = root / "toy_waste-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-waste\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def install(entry_points: str = ENTRY_POINTS) -> None:
        _install(tmp_path, entry_points)
        monkeypatch.syspath_prepend(str(tmp_path))
        catalogue.reload()

    yield install
    monkeypatch.undo()
    for mod in [m for m in sys.modules if m == "toy_waste" or m.startswith("toy_waste.")]:
        del sys.modules[mod]
    catalogue.reload()


class _Sink:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, lines: list[bytes], on_durable: Callable[[], None] | None = None, *, block: bool = True) -> None:
        self.lines.extend(lines)
        if on_durable is not None:
            on_durable()


def test_toy_family_through_the_pipeline(installed: Callable[..., None]) -> None:
    assert "waste" not in FAMILIES
    installed()
    assert "waste" in FAMILIES and catalogue.load_errors() == ()
    assert CANONICAL["waste"]["fill"].unit == "%"
    assert catalogue.family_of_kind("waste_bin").title == "Waste bins"
    assert DEVICE_SEVERITY["waste_bin"] == "warning"  # the alarm manager's table is the catalogue's
    assert drivers.get("waste_bin").families == ("waste",)

    settings = load_settings(None, mode="test")  # defaults only: the catalogue enables the family
    assert settings.state.families["waste"].interval == 3600.0
    assert settings.drivers["waste_bin"].enabled
    router = Router([drivers.get(n)(c.options) for n, c in settings.drivers.items() if c.enabled])
    state = StateRegistry({f: s.interval for f, s in settings.state.families.items()})
    sink = _Sink()
    acked: list[tuple[int, int]] = []
    now = 1_764_115_200.0
    pipe = Pipeline(router, state, sink, acked.extend, clock=lambda: now)
    pipe.process([
        ("city/z1/waste/bin-7/telemetry", b'{"ts": 1764115190, "level": 62, "temperature": "11.5"}', 1, 1, now),
        ("city/z1/waste/bin-8/telemetry", b'{"level": 140}', 2, 1, now),  # outside 0..100: refused
    ])

    assert pipe.counters.decoded == 1 and pipe.counters.errors_by_reason() == {"out_of_range": 1}
    st = state.get("bin-7")
    assert st is not None and st.family == "waste" and st.interval == 3600.0 and st.status == "ok"
    assert state.last_value("bin-7", "fill") == 62 and state.last_value("bin-7", "temperature") == 11.5
    assert b"waste,device=bin-7,zone=z1 fill=62i,temperature=11.5 1764115190000" in sink.lines
    assert sorted(acked) == [(1, 1), (2, 1)]  # the bad message too: counted, never redelivered forever


def test_broken_or_clashing_entry_points_are_reported_not_fatal(installed: Callable[..., None]) -> None:
    installed("""
        [urban_supervisor.families]
        missing = toy_waste.nowhere:WASTE
        first = toy_waste.family:WASTE
        again = toy_waste.family:WASTE
    """)
    errors = catalogue.load_errors()
    assert len(errors) == 2, errors
    assert "missing" in errors[0] and "toy_waste.nowhere" in errors[0]
    assert "again" in errors[1] and "already in the catalogue" in errors[1]
    assert {"traffic", "lighting", "cctv", "water", "air", "lorawan", "waste"} == set(FAMILIES)
