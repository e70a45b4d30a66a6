"""`make demo DEMO_ARGS="--duration 30"`: every command the demo prints under "Look:" works as printed,
the console's URL and login it prints work, and in those 30 s the story the README tells happens: the
lights come on at dusk, traffic dims them, a camera alarm raises them, a switch fails with its single
root-cause alarm."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _look_commands(banner: str) -> list[str]:
    """The commands of the banner's "Look:" block (a trailing backslash continues a line)."""
    lines = banner.split("Look:\n", 1)[1].splitlines()
    cmds: list[str] = []
    pending = ""
    for line in lines:
        if not line.startswith("  "):
            break
        text = line.strip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        cmds.append(pending + text)
        pending = ""
    return cmds


def _http(method: str, url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if r.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _decisions(db: Path, rule: str) -> list[float]:
    with sqlite3.connect(db) as c:
        return [v for (v,) in c.execute(
            "SELECT value FROM points WHERE measurement = 'decisions' AND field = 'output' "
            "AND json_extract(series, '$.rule') = ? ORDER BY ts", (rule,))]


def _root_causes_raised(db: Path) -> list[str]:
    with sqlite3.connect(db) as c:
        return [json.loads(s)["element"] for (s,) in c.execute(
            "SELECT series FROM points WHERE measurement = 'alarms' AND field = 'id' "
            "AND json_extract(series, '$.kind') = 'root_cause' AND json_extract(series, '$.state') = 'raised'")]


def _run_look_commands(banner: str) -> None:
    cmds = _look_commands(banner)
    assert len(cmds) == 3, cmds
    for cmd in cmds:
        run = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30, check=False)
        assert run.returncode == 0, (cmd, run.stderr)
        if cmd.startswith("curl"):
            body = json.loads(run.stdout)  # JSON, not an error page
            assert "detail" not in body, (cmd, body)
        else:
            assert "traffic" in run.stdout, run.stdout


def _check_the_story(db: Path, switch: str) -> None:
    """What the store holds after the run: lights on at dusk, dimmed by traffic, raised by a camera
    alarm, and one root-cause alarm on the failed switch."""
    schedule = _decisions(db, "night-schedule")
    assert 0.0 in schedule and schedule[-1] > 0, "the lights came on at dusk"
    assert schedule.index(0.0) < next(i for i, v in enumerate(schedule) if v > 0), "off first, then on"
    dimmed = _decisions(db, "traffic-dims-lights")
    assert any(0 < v < 100 for v in dimmed), f"traffic dimmed no lamp: {sorted(set(dimmed))}"
    assert 100.0 in _decisions(db, "cctv-safety-lighting"), "no camera alarm raised the lights"
    assert _root_causes_raised(db) == [switch], "one root-cause alarm, on the failed switch"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the demo prints curl commands")
def test_a_30_second_demo_prints_working_commands_and_shows_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBAN_")}
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "demo", "--duration", "30", "--api-port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def wait_for(text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            joined = "".join(out)
            if text in joined:
                return joined
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed within {timeout} s:\n{''.join(out)}")

    try:
        banner = wait_for("Stop with Ctrl-C", 60)
        assert "Look:\n" in banner, banner
        # the console and its login: the operator token the curl commands use
        m = re.search(r"console +(http://\S+)/console +\(log in with the operator token (\S+)\)", banner)
        assert m, banner
        api, token = m.groups()
        assert f"Bearer {token}" in banner
        status, _ = _http("GET", f"{api}/console")
        # the console is built on another branch: once it is merged, its page answers
        assert status == (200 if importlib.util.find_spec("supervisor.console") else 404), status
        time.sleep(4.0)  # some telemetry stored, the lights switched on
        _run_look_commands(banner)
        # the switch fails: one root-cause alarm, which the printed login may comment on (an operator's write)
        failed = wait_for("[demo] switch ", 20)
        switch = re.search(r"\[demo\] switch (\S+) failed", failed)
        assert switch, failed
        deadline = time.monotonic() + 10
        roots: list[dict[str, Any]] = []
        while not roots and time.monotonic() < deadline:
            status, body = _http("GET", f"{api}/api/v1/alarms?all=true&kind=root_cause", token)
            assert status == 200
            roots = body["items"]
            time.sleep(0.2)
        assert [a["element"] for a in roots] == [switch.group(1)], roots
        status, _ = _http("POST", f"{api}/api/v1/alarms/{roots[0]['id']}/comment", token,
                          {"user": "demo test", "text": "seen on the console"})
        assert status == 200
        assert _http("POST", f"{api}/api/v1/alarms/{roots[0]['id']}/comment", None,
                     {"user": "demo test", "text": "no login"})[0] == 401
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    reader.join(10)
    _check_the_story(data / "urban.sqlite3", switch.group(1))
