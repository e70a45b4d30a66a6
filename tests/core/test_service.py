"""The supervisor service split by concern: the points its parts write, refusals, the API facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rules import Decision, RuleAlarm
from supervisor.service.facade import NotFoundError, Service, UnavailableError
from supervisor.storage import parse_line
from tests.api.conftest import make_supervisor, traffic

ROOT = Path(__file__).resolve().parents[2]


class _Lines:
    """Collects what the supervisor submits, in place of the writer's queue."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def __call__(self, lines: list[bytes], *args: object, **kw: object) -> None:
        self.lines.extend(lines)


def test_health_points(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path)
    sup.writer.submit = got = _Lines()  # type: ignore[method-assign]
    sup.pipeline.process([traffic("rs-1"), traffic("rs-2", zone="north")])
    assert [parse_line(line).measurement for line in got.lines] == ["traffic", "traffic"]
    got.lines.clear()
    sup.write_health()
    parsed = [parse_line(line) for line in got.lines]
    assert [p.measurement for p in parsed] == ["supervisor", "fleet", "fleet"]
    assert parsed[0].fields["received"] == 2 and parsed[0].tags == {"instance": sup.instance}
    assert {p.tags["zone"] for p in parsed[1:]} == {"centre", "north"}


def test_a_point_that_does_not_fit_is_counted_not_raised(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path)
    sup.writer.submit = got = _Lines()  # type: ignore[method-assign]
    sup._on_rule_alarm(RuleAlarm(1.0, "r", "day_burning", "lamp-1", "raised", "minor", "two\nlines"))
    sup._on_decision(Decision(1.0, "r", "dimming", "lamp-1", 50.0, "no zone"))
    assert sup.points_refused == 1
    assert sup.summary()["storage"]["points_refused"] == 1
    assert [parse_line(line).tags for line in got.lines] == [{"rule": "r", "device": "lamp-1"}]


def test_facade_refusals(tmp_path: Path) -> None:
    svc = Service(make_supervisor(tmp_path))
    with pytest.raises(NotFoundError, match="not found in the device state"):
        svc.device("nope")
    with pytest.raises(UnavailableError, match="not configured: no rule engine"):
        svc.why("nope", 10)
    with pytest.raises(UnavailableError, match="not configured: no network model"):
        _ = svc.model


def test_routes_go_through_the_facade() -> None:
    """No route takes the supervisor's lock, reaches its parts, or formats a stored point."""
    banned = {"lock", "pipeline", "writer", "mqtt", "point_line", "lineprotocol", "schema"}
    for path in sorted((ROOT / "supervisor" / "api" / "routes").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        used |= {a.name.rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        used |= {(n.module or "").rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not used & banned, f"{path.name} uses {sorted(used & banned)}"


def test_the_api_does_not_load_the_network_model() -> None:
    """The API starts while the pipeline drains the broker's backlog: the model package (numpy,
    shapely, networkx: ~0.25 s of imports holding the GIL) loads only when a city is configured."""
    import subprocess
    import sys

    code = ("import sys, supervisor.runtime, supervisor.api.server; "
            "print(sorted(m for m in ('supervisor.model', 'networkx', 'shapely') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]"
