"""Every command the demo prints under "Look:" works as printed, while the demo runs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the demo prints curl commands")
def test_the_commands_the_demo_prints_work_as_printed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBAN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "demo", "--duration", "25", "--api-port", "0",
         "--data-dir", str(tmp_path / "demo"), "--devices", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    banner = ""
    try:
        deadline = time.monotonic() + 60
        while "Stop with Ctrl-C" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
        assert "Look:\n" in banner, banner
        time.sleep(4.0)  # some telemetry stored, the lights switched on
        cmds = _look_commands(banner)
        assert len(cmds) == 3, cmds
        for cmd in cmds:
            out = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30, check=False)
            assert out.returncode == 0, (cmd, out.stderr)
            if cmd.startswith("curl"):
                body = json.loads(out.stdout)  # JSON, not an error page
                assert "detail" not in body, (cmd, body)
            else:
                assert "traffic" in out.stdout, out.stdout
    finally:
        proc.terminate()
        proc.wait(60)
