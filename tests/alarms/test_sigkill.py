"""SIGKILL of the supervisor while an alarm is active and acknowledged: after the restart the same
id is still active and acknowledged, and nothing is notified twice (real notifier, real HTTP receiver)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from supervisor.notify import NotificationsConfig
from tests.notify.conftest import FAST
from tests.notify.support import Receiver, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@contextmanager
def _child(config: dict[str, Any], data_dir: Path, ack: bool) -> Iterator[tuple[subprocess.Popen[str], list[Any]]]:
    cfg = data_dir / "notify.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "tests.alarms._child", str(cfg), str(data_dir), "1" if ack else "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        active = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        yield proc, active
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def _delivered(data_dir: Path, config: dict[str, Any]) -> int:
    """Rows the child's outbox marks delivered (read-only, beside the child's WAL writer)."""
    path = data_dir / NotificationsConfig(**config).outbox_file
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        return int(db.execute("SELECT count(*) FROM notifications WHERE state = 'delivered'").fetchone()[0])


def test_sigkill_keeps_id_and_acknowledgement_and_notifies_nothing_twice(receiver: Receiver, tmp_path: Path) -> None:
    config = {**FAST, "channels": {"hook": receiver.channel()}, "routes": [{"name": "all", "channels": ["hook"]}]}
    with _child(config, tmp_path, ack=True) as (first, before):
        [alarm] = before
        assert alarm["state"] == "acknowledged"
        wait_for(lambda: len(receiver.notification_keys()) >= 2, 20, "the raise and the acknowledgement")
        # killed only once the outbox has recorded both deliveries: a kill between the receiver's
        # acceptance and that record resends the message by design (same key; the receiver drops it),
        # and a CI run once landed there
        wait_for(lambda: _delivered(tmp_path, config) >= 2, 20, "both deliveries recorded in the outbox")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    delivered = receiver.notification_keys()
    with _child(config, tmp_path, ack=False) as (_second, after):  # the camera is still silent
        time.sleep(2.0)  # the notifier runs: anything it would send again, it sends now
    assert [(a["id"], a["state"], a["acked_by"]) for a in after] == [(alarm["id"], "acknowledged", "alice")]
    assert receiver.notification_keys() == delivered  # nothing more
    got = sorted((n["alarm_id"], n["transition"]) for d in receiver.processed for n in d.body["notifications"])
    assert got == [(alarm["id"], "acknowledged"), (alarm["id"], "raised")]
    assert all(not d.duplicate for d in receiver.requests)
