from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.notify import AlarmEvent, NotificationsConfig, Notifier
from tests.notify.support import Receiver, SmtpServer, make_cert


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    server = SmtpServer(*tls_cert).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.release.set()
        r.stop()


#: fast timings for tests: small windows and backoff, same code paths
FAST = {"group_window": 0.3, "retry_min_delay": 0.2, "retry_max_delay": 1.0}


@pytest.fixture
def make_notifier(tmp_path: Path) -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(**cfg: Any) -> Notifier:
        n = Notifier(NotificationsConfig(**{**FAST, **cfg}), tmp_path)
        n.start()
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


def event(alarm_id: str = "rc:sw-z01", transition: str = "raised", **over: Any) -> AlarmEvent:
    fields: dict[str, Any] = {
        "alarm_id": alarm_id, "transition": transition, "kind": "root_cause", "severity": "critical",
        "element": "sw-z01", "text": "switch sw-z01 down: 120 devices silent", "ts": 1_790_000_000.0,
        "services": ("lighting", "traffic"), "zone": "z01", "devices": 120, "position": (2.35, 48.85),
    }  # fmt: skip
    fields.update(over)
    return AlarmEvent(**fields)
