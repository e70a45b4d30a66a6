"""``bench console --quick``: CI smoke of the console's render benchmark (no timing assertion).

It must run to the end in Debian's headless chromium, draw every device of its city and report
the heap figures (skipped, with the reason, only when chromium is absent).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.bench.console import CHROMIUM

pytestmark = pytest.mark.slow


def test_console_quick() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/services.sh does)")
    exe = Path(sys.executable).with_name("urban-supervisor")
    out = subprocess.run([str(exe), "bench", "console", "--quick", "--console-devices", "3000",
                          "--console-minutes", "0.1", "--console-sample-s", "3"],
                         capture_output=True, timeout=300, check=True)
    r = json.loads(out.stdout)["console"]
    assert r["devices"] == r["devices_drawn"] == 3000
    assert r["first_render_ms"] > 0 and set(r["first_render_parts_ms"]) == {"fetch_ms", "clusters_ms", "draw_ms"}
    assert r["status_changes_sent"] > 0 and r["live_events_received"] > 0
    assert r["heap_after_first_render_mb"] > 0 and r["heap_end_mb"] > 0 and r["heap_samples"]
