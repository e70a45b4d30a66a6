"""A slow stop says which step held it (a process manager kills what does not stop in time)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from supervisor.service import supervisor as supervisor_module
from tests.api.conftest import make_supervisor


def test_a_slow_stop_is_logged_with_the_time_of_each_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    sup = make_supervisor(tmp_path)
    writer_stop = sup.writer.stop

    def slow_writer_stop(timeout: float = 30.0) -> bool:
        time.sleep(0.3)
        return writer_stop(timeout)

    monkeypatch.setattr(sup.writer, "stop", slow_writer_stop)
    monkeypatch.setattr(supervisor_module, "SLOW_STOP_S", 0.2)
    with caplog.at_level(logging.DEBUG, logger="supervisor.service.supervisor"):
        sup.stop(timeout=5.0)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("stopped in")]
    assert line.levelno == logging.WARNING
    text = line.getMessage()
    for name in ("snmp", "pipeline thread", "inbox drain", "writer", "mqtt", "notifier, alarms"):
        assert f"{name} " in text
    held = float(text.split("writer ")[1].split(" s")[0])
    assert held >= 0.3  # the step that held it is the one named with the time


def test_a_quick_stop_is_not_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sup = make_supervisor(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="supervisor.service.supervisor"):
        sup.stop(timeout=5.0)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("stopped in")]
    assert line.levelno == logging.DEBUG
