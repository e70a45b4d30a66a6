"""Issue 12's acceptance, end to end: simulator -> real Mosquitto -> supervisor -> real InfluxDB, with
a real SMTP server (aiosmtpd: STARTTLS + AUTH) and a local webhook receiver, the API in process.

A failed access switch gives exactly one alarm, one e-mail and one webhook; an acknowledgement
through the API sends the acknowledgement notification; the switch's recovery clears the alarm
with no other alarm raised meanwhile. Declared in maintenance, the same failure notifies nobody
and the alarm is recorded "in maintenance".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from simulators.city import generate_city
from supervisor.api import create_app
from supervisor.config import ApiConfig
from supervisor.model import CityModel
from tests.api.conftest import OPERATOR, VIEWER, bearer
from tests.integration._rig import Rig, local, wait, with_intervals
from tests.notify.conftest import FAST
from tests.notify.support import Receiver, SmtpServer, make_cert
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

INTERVAL = 60.0
START = local(2025, 3, 10, 14, 0)
V, OP = bearer(VIEWER), bearer(OPERATOR)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    (tmp_path / "tls").mkdir()
    server = SmtpServer(*make_cert(tmp_path / "tls")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def rig(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path, *, smtp: SmtpServer,
        hook: Receiver) -> Iterator[Rig]:
    city = with_intervals(generate_city(seed=11, devices=300),
                          {"traffic": INTERVAL, "lighting": INTERVAL, "cctv": INTERVAL, "water": INTERVAL})
    notifications = {**FAST, "channels": {"mail": smtp.channel(), "hook": hook.channel()},
                     "routes": [{"name": "all", "channels": ["mail", "hook"]}]}
    r = Rig.start(city, broker, influx, influx_db, tmp_path=tmp_path, start=START, notifications=notifications)
    try:
        r.advance(4 * INTERVAL)
        assert r.sup.lifecycle.active() == []
        yield r
    finally:
        r.close()


@pytest.fixture
def api(rig: Rig) -> Iterator[TestClient]:
    cfg = ApiConfig(viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    with TestClient(create_app(rig.sup, cfg)) as client:
        yield client


def _access_switch(model: CityModel) -> str:
    return max((e for e, info in model.elements.items() if info.kind == "switch" and "-a" in e),
               key=lambda e: (len(model.impact(e).services), len(model.dependents(e)), e))


def _notified(hook: Receiver, smtp: SmtpServer) -> tuple[list[tuple[str, str]], list[str]]:
    """(alarm id, transition) of every webhook notification; the subject of every mail."""
    got = [(n["alarm_id"], n["transition"]) for d in hook.processed for n in d.body["notifications"]]
    return got, [str(m["Subject"]) for m in smtp.mails]


def test_failed_switch_one_alarm_one_mail_one_webhook_ack_and_clear(
        rig: Rig, api: TestClient, hook: Receiver, smtp: SmtpServer) -> None:
    sw = _access_switch(rig.model)
    rig.sim.faults.fail(sw)
    rig.advance(3 * INTERVAL * 1.5)
    (alarm,) = rig.sup.lifecycle.active()
    assert (alarm.kind, alarm.element, alarm.id) == ("root_cause", sw, f"root_cause:{sw}")
    wait(lambda: len(_notified(hook, smtp)[0]) >= 1 and len(smtp.mails) >= 1, 20, "the raise notified")
    r = api.post(f"/api/v1/alarms/{alarm.id}/ack", json={"user": "night-crew"}, headers=OP)
    assert r.status_code == 200 and r.json()["changed"] is True
    wait(lambda: len(_notified(hook, smtp)[0]) >= 2 and len(smtp.mails) >= 2, 20, "the acknowledgement notified")
    hooks, mails = _notified(hook, smtp)
    assert hooks == [(alarm.id, "raised"), (alarm.id, "acknowledged")]
    assert len(mails) == 2 and sw in mails[0]

    rig.sim.faults.restore(sw)
    rig.advance(2 * INTERVAL)
    assert rig.sup.lifecycle.active() == []
    listed = api.get("/api/v1/alarms", params={"all": "true"}, headers=V).json()
    assert [(a["id"], a["state"]) for a in listed["items"]] == [(alarm.id, "cleared")], "an extra alarm in recovery"
    wait(lambda: len(_notified(hook, smtp)[0]) >= 3, 20, "the clear notified")
    assert _notified(hook, smtp)[0][2:] == [(alarm.id, "cleared")]


def test_switch_in_maintenance_notifies_nobody(rig: Rig, api: TestClient, hook: Receiver, smtp: SmtpServer) -> None:
    sw = _access_switch(rig.model)
    body: dict[str, Any] = {"element": sw, "start": rig.now - 60, "end": rig.now + 3600, "reason": "firmware",
                            "user": "planner"}
    r = api.post("/api/v1/maintenance", json=body, headers=OP)
    assert r.status_code == 201
    rig.sim.faults.fail(sw)
    rig.advance(3 * INTERVAL * 1.5)
    (alarm,) = [a for a in rig.sup.lifecycle.active() if a.kind == "root_cause"]
    assert alarm.element == sw and alarm.in_maintenance == r.json()["id"]
    listed = api.get("/api/v1/alarms", headers=V).json()["items"]
    assert all(a["in_maintenance"] == r.json()["id"] for a in listed), listed
    notifier = rig.sup.notifier
    assert notifier is not None
    wait(lambda: int(str(notifier.stats()["suppressed_maintenance"])) >= 1, 10, "the suppression")
    rig.flush()
    assert _notified(hook, smtp) == ([], [])
    assert notifier.stats()["queued"] == 0
