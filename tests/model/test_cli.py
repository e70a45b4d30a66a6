"""``urban-supervisor model`` sub-commands."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from supervisor.cli import main
from tests.model._small import small_city


def test_generate_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "city.json"
    assert main(["model", "generate", "--devices", "400", "--seed", "5", str(out)]) == 0
    assert len(orjson.loads(out.read_bytes())["devices"]) == 400
    capsys.readouterr()
    assert main(["model", "check", str(out)]) == 0
    assert capsys.readouterr().out == ""


def test_check_prints_problems_one_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    city = small_city()
    city["devices"][-1]["gateway"] = "rg-9"
    city["devices"][-2]["interval"] = -5
    p = tmp_path / "bad.json"
    p.write_bytes(orjson.dumps(city))
    assert main(["model", "check", str(p)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{p}: wm-1: interval must be a positive number of seconds, got -5",
        f"{p}: wm-2: gateway 'rg-9' does not exist",
    ]


def test_impact_and_shared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "small.json"
    p.write_bytes(orjson.dumps(small_city()))
    assert main(["model", "impact", str(p), "rg-1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == 2 and out["services"] == {"water": {"count": 2, "devices": ["wm-1", "wm-2"]}}
    assert main(["model", "shared", str(p)]) == 0
    shared = {s["element"]: s for s in json.loads(capsys.readouterr().out)}
    assert shared["lc-1"]["services"] == {"lighting": 6, "cctv": 1}
    assert main(["model", "impact", str(p), "nope"]) == 2
    assert "nope: unknown element" in capsys.readouterr().err


def test_generate_refuses_too_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "generate", "--devices", "2", str(tmp_path / "c.json")]) == 2
    assert "at least 5 devices" in capsys.readouterr().err
