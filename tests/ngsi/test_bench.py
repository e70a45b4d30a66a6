"""``bench ngsi``: the scenario runs to the end over HTTP and every page is full (no timing assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_ngsi_bench_small_city() -> None:
    exe = Path(sys.executable).with_name("urban-supervisor")
    out = subprocess.run([str(exe), "bench", "ngsi", "--quick", "--ngsi-devices", "4000", "--ngsi-requests", "5"],
                         capture_output=True, timeout=300, check=True)
    r = json.loads(out.stdout)["ngsi"]
    assert r["devices"] == 4000 and r["lamps"] > 1000
    assert r["non_200"] == 0 and r["entities_per_page"] == 1000
    assert r["page_1000"]["requests"] == 5 and r["page_1000"]["p50_ms"] > 0
    assert r["cpu_ms_per_request"]["page_1000"] > 0 and r["cpu_ms_per_request"]["page_1000_with_q"] > 0
