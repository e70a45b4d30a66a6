"""Nothing lost, nothing twice: a receiver down for 60 s, a notifier killed mid-send."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from supervisor.notify import Notifier
from tests.notify.conftest import FAST, event
from tests.notify.support import Receiver, SmtpServer, wait_for

ROOT = Path(__file__).resolve().parents[2]
DOWNTIME = 60.0  # the figure, kept as it is


@pytest.mark.slow
def test_a_receiver_down_for_60_s_gets_every_notification_afterwards_exactly_once(
    make_notifier: Callable[..., Notifier],
) -> None:
    hook = Receiver()  # its port is reserved, nothing listens yet: connection refused
    n = make_notifier(channels={"hook": hook.channel()}, routes=[{"name": "all", "channels": ["hook"]}],
                      retry_max_delay=5.0)  # fmt: skip
    start = time.monotonic()
    expected = set()
    for k in range(4):  # alarms all along the downtime
        n.submit(event(f"a{k}", kind="device", element=f"lamp-{k}", devices=1))
        expected.add((f"a{k}", "raised"))
        if k == 1:
            n.submit(event("a0", "acknowledged", acknowledged_by="night-crew"))
            expected.add(("a0", "acknowledged"))
        time.sleep(DOWNTIME / 4)
    assert time.monotonic() - start >= DOWNTIME
    assert hook.requests == [] and int(str(n.stats()["retried"])) >= 8
    hook.start()
    try:
        wait_for(lambda: len(hook.notification_keys()) >= len(expected), 30, "every notification")
        time.sleep(3.0)  # and nothing after them
        got = [(x["alarm_id"], x["transition"]) for d in hook.processed for x in d.body["notifications"]]
        assert sorted(got) == sorted(expected)  # each exactly once
        assert all(not d.duplicate for d in hook.requests)  # not even a duplicate on the wire
        stats = n.stats()
        assert (stats["pending"], stats["failed"], stats["notifications_sent"]) == (0, 0, len(expected))
    finally:
        hook.stop()


@contextmanager
def _child(config: dict[str, Any], data_dir: Path, events: list[dict[str, Any]]) -> Iterator[subprocess.Popen[str]]:
    cfg = data_dir / "notify.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "tests.notify._child", str(cfg), str(data_dir), json.dumps(events)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def _message_states(data_dir: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(data_dir / "notify-outbox.sqlite3") as db:
        return db.execute("SELECT key, state, attempts FROM messages").fetchall()


def test_a_notifier_killed_mid_send_resends_the_same_key_and_the_receiver_drops_it(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = {**FAST, "channels": {"hook": receiver.channel()}, "routes": [{"name": "all", "channels": ["hook"]}]}
    events = [{"alarm_id": "rc:sw-z01"}]
    receiver.hold.set()  # the receiver processes the first request, then does not answer
    with _child(config, tmp_path, events) as first:
        assert receiver.got_request.wait(20)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    receiver.release.set()
    [(key, state, attempts)] = _message_states(tmp_path)
    assert (state, attempts) == ("pending", 0)  # killed before the answer: not marked delivered
    assert [d.key for d in receiver.processed] == [key]
    # the restarted supervisor submits the same alarm again, as a lifecycle replaying its state would
    with _child(config, tmp_path, events):
        wait_for(lambda: _message_states(tmp_path) == [(key, "delivered", 1)], 20, "the resend to be accepted")
        time.sleep(1.0)
    assert [(d.key, d.duplicate) for d in receiver.requests] == [(key, False), (key, True)]
    assert len(receiver.processed) == 1  # the receiver saw no duplicate by key


def test_a_notifier_killed_mid_mail_resends_the_same_message_id(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {**FAST, "channels": {"mail": smtp.channel()}, "routes": [{"name": "all", "channels": ["mail"]}]}
    events = [{"alarm_id": "rc:sw-z01"}]
    smtp.handler.hold.set()  # the server has the mail's data, and does not answer it
    with _child(config, tmp_path, events) as first:
        assert smtp.handler.got_mail.wait(20)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    smtp.handler.release.set()
    [(key, state, _)] = _message_states(tmp_path)
    assert state == "pending"
    with _child(config, tmp_path, events):
        wait_for(lambda: _message_states(tmp_path) == [(key, "delivered", 1)], 20, "the resend to be accepted")
    assert [m["Message-ID"] for m in smtp.mails] == [f"<{key}@urban-supervisor.invalid>"] * 2
    assert smtp.handler.unique_message_ids() == {f"<{key}@urban-supervisor.invalid>"}
