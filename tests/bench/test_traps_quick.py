"""``bench traps --quick``: CI smoke of the trap receiver's benchmark (no timing assertion): every
v3 authPriv trap of a switch with its own engine id, and every v2c trap, is handed over."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("snmptrap") is None, reason="Net-SNMP's snmptrap (Debian snmp)")]


def test_traps_quick() -> None:
    exe = Path(sys.executable).with_name("urban-supervisor")
    out = subprocess.run([str(exe), "bench", "traps", "--quick", "--traps-switches", "30", "--traps-count", "5"],
                         capture_output=True, timeout=300, check=True)
    r = json.loads(out.stdout)["traps"]
    assert r["usm_entries"] == 31  # one per switch's engine id, and the receiver's own (informs)
    assert r["v3_authpriv_accepted"] == r["v3_authpriv_sent"] == 5
    assert r["v2c_accepted"] == r["v2c_sent"] == 5
    assert r["refused"] == {}
    assert r["usm_entry_ms"] > 0 and r["passphrase_hash_ms"] > 0
