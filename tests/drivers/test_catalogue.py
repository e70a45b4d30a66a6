"""Every registered driver obeys the contract (ours and installed third-party ones)."""

from __future__ import annotations

import builtins
import io
import itertools
import os
import re
import socket
import subprocess
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers import CANONICAL, FAMILIES, Command, EncodeError, available
from drivers._contract import CommandAction
from drivers.kit import TopicPattern, filters_collide
from supervisor.config import DriverConfig
from tests.drivers.casefiles import Case, case_dir, cases_of, decode_outcome

DRIVERS = available()
NAMES = list(DRIVERS)
REASON = re.compile(r"[a-z][a-z_]{2,31}")


def test_our_drivers_are_registered() -> None:
    assert {"road_sensor", "lighting_cabinet", "cctv", "water_meter"} <= set(DRIVERS)


@pytest.mark.parametrize("name", NAMES)
def test_declarations(name: str) -> None:
    cls = DRIVERS[name]
    assert cls.name == name, "entry-point name and Driver.name differ"
    assert cls.families and set(cls.families) <= set(FAMILIES)
    assert cls.topics, "a driver claims at least one topic filter"
    for filt in cls.topics:
        assert TopicPattern(filt).filter == filt, f"{filt!r} is not a plain MQTT filter"
    assert cls.measures, "a driver declares the measures it may emit"
    for (family, measure), unit in cls.measures.items():
        assert family in cls.families, f"{family}.{measure}: family not declared"
        spec = CANONICAL[family].get(measure)
        assert spec is not None, f"{family}.{measure} is not canonical"
        assert unit == spec.unit, f"{family}.{measure}: unit {unit!r}, canonical {spec.unit!r}"
    allowed = set(typing.get_args(CommandAction))
    assert set(cls.commands) <= allowed, f"unknown command actions {set(cls.commands) - allowed}"


@pytest.mark.parametrize("name", NAMES)
def test_documentation_sample_and_cases(name: str) -> None:
    cls = DRIVERS[name]
    folder = case_dir(cls).parent
    readme = folder / "README.md"
    assert readme.is_file() and readme.read_text(encoding="utf-8").strip()
    for filt in cls.topics:
        assert filt in readme.read_text(encoding="utf-8"), f"README names the topic filter {filt}"
    sample = yaml.safe_load((folder / "sample.yaml").read_text(encoding="utf-8"))
    section = sample["drivers"][name]
    config = DriverConfig.model_validate(section)
    cls(config.options)  # the sample's options are accepted
    cases = cases_of(name, cls)
    assert len([c for c in cases if not c.is_encode]) >= 3, "at least 3 decode cases"
    assert any("expect" in c.data for c in cases) and any("error" in c.data for c in cases)


@pytest.mark.parametrize("name", NAMES)
def test_cases_cover_every_declared_measure(name: str) -> None:
    cls = DRIVERS[name]
    seen = {
        (r["family"], r["measure"])
        for c in cases_of(name, cls)
        for r in c.data.get("expect", [])
        if "measure" in r
    }
    assert set(cls.measures) <= seen, f"measures never exercised by a case: {set(cls.measures) - seen}"


@pytest.mark.parametrize("name", NAMES)
def test_error_reasons_are_short_codes(name: str) -> None:
    for case in cases_of(name, DRIVERS[name]):
        if "error" in case.data and not case.is_encode:
            assert REASON.fullmatch(case.data["error"]), f"{case.id}: {case.data['error']!r}"


def test_topic_filters_do_not_collide() -> None:
    owners = [(name, f) for name, cls in DRIVERS.items() for f in cls.topics]
    for (n1, f1), (n2, f2) in itertools.combinations(owners, 2):
        if n1 != n2:
            assert not filters_collide(f1, f2), f"{n1} {f1!r} collides with {n2} {f2!r}"


def _refuse(*_a: Any, **_k: Any) -> Any:
    raise AssertionError("a driver did I/O")


@contextmanager
def no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as m:
        for target, attr in ((builtins, "open"), (io, "open"), (os, "open"), (socket, "socket"),
                             (socket, "create_connection"), (subprocess, "Popen"), (Path, "open")):
            m.setattr(target, attr, _refuse)
        yield


@pytest.mark.parametrize("name", NAMES)
def test_decode_is_pure(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = DRIVERS[name]
    cases = [c for c in cases_of(name, cls) if not c.is_encode]
    driver = cls(cases[0].data.get("options"))
    reference = [decode_outcome(cls(c.data.get("options")), c) for c in cases]
    with no_io(monkeypatch):
        # same driver instance, all cases twice, in two orders: no state leaks between messages
        first = [decode_outcome(driver, c) for c in cases]
        backwards = [decode_outcome(driver, c) for c in reversed(cases)][::-1]
    assert first == reference
    assert backwards == reference


@pytest.mark.parametrize("name", [n for n in NAMES if DRIVERS[n].commands])
def test_every_command_is_tested(name: str) -> None:
    cls = DRIVERS[name]
    encode_cases: list[Case] = [c for c in cases_of(name, cls) if c.is_encode]
    for action in cls.commands:
        ok = [c for c in encode_cases if c.data["command"]["action"] == action and "publish" in c.data]
        refused = [c for c in encode_cases if c.data["command"]["action"] == action and "error" in c.data]
        assert ok, f"no encode case publishes {action}"
        assert refused, f"no encode case refuses a bad {action}"
    for case in encode_cases:
        for p in case.data.get("publish", []):
            assert p["retain"] is False, f"{case.id}: commands are never retained"


def test_encode_refused_by_read_only_drivers() -> None:
    for cls in DRIVERS.values():
        if not cls.commands:
            with pytest.raises(EncodeError):
                cls().encode(Command("d1", "switch", True, zone="z"))
