"""The supervisor's wiring of the alarm list and the notifier: a clear configuration error at start
for an unreachable SMTP relay, and the health points counting notifications."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import load_settings
from supervisor.runtime import Supervisor, SupervisorError
from supervisor.storage import schema
from supervisor.storage.lineprotocol import parse_line
from tests.notify.support import Receiver, free_port


def _settings(tmp_path: Path, channels: dict[str, object]) -> object:
    return load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"), mqtt={"port": free_port()},
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3"), "spool_dir": str(tmp_path / "sp")},
        notifications={"channels": channels, "routes": [{"name": "all", "channels": list(channels)}],
                       "check_timeout": 2},
    )


def test_unreachable_smtp_relay_is_a_clear_configuration_error(tmp_path: Path) -> None:
    mail = {"type": "email", "host": "127.0.0.1", "port": free_port(), "from": "sup@city.test",
            "to": ["crew@city.test"], "starttls": False}
    with pytest.raises(SupervisorError, match=r"^notifications: .*mail"):
        Supervisor(_settings(tmp_path, {"mail": mail}))  # type: ignore[arg-type]


def test_health_points_count_notifications(tmp_path: Path) -> None:
    hook = Receiver()
    sup = Supervisor(_settings(tmp_path, {"hook": hook.channel()}))  # type: ignore[arg-type]
    assert sup.notifier is not None and sup.lifecycle.notify is not None
    lines = sup.health.lines(1.0, 1.0)
    p = parse_line(lines[0])
    assert p.measurement == schema.SUPERVISOR.name
    assert {k: p.fields[k] for k in ("notify_sent", "notify_retried", "notify_failed")} == {
        "notify_sent": 0, "notify_retried": 0, "notify_failed": 0}
    sup.notifier.close()
    sup.lifecycle.store.close()
