"""The live feed and ``GET /api/v1/events`` (server-sent events) over real HTTP.

The feed is one bounded journal: a client that falls behind is told (``lost``), and nothing is
kept per client. The stream is read by a plain HTTP client with the token in ``Authorization``:
a status change and an alarm transition made in the supervisor arrive as ``changes`` events.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.api import ApiServer
from supervisor.config import ApiConfig
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from supervisor.service.live import LiveFeed
from supervisor.state.registry import StatusChange
from tests.api.conftest import OPERATOR, VIEWER, make_city_supervisor


def _change(device: str, new: str = "stale", at: float = 1.0) -> StatusChange:
    return StatusChange(device, "lighting", "z01", "ok", new, at, "silent for 900 s")


def test_the_feed_coalesces_and_answers_from_a_cursor() -> None:
    feed = LiveFeed(capacity=100)
    start = feed.cursor
    feed.status([_change("a"), _change("b")])
    feed.status([_change("a", "ok", 2.0)])
    got = feed.since(start)
    assert not got.lost and got.cursor == start + 3
    assert got.status == {"a": {"status": "ok", "fault": None, "at": 2.0},
                          "b": {"status": "stale", "fault": "silent for 900 s", "at": 1.0}}
    assert feed.since(got.cursor).empty
    part = feed.since(start, limit=2)  # a client reads in bounded slices, in order
    assert part.cursor == start + 2 and set(part.status) == {"a", "b"}


def test_the_feed_is_bounded_and_says_when_a_client_fell_behind() -> None:
    feed = LiveFeed(capacity=10)
    for i in range(1000):
        feed.status([_change(f"d{i}")])
    assert len(feed._events) == 10  # the journal holds its capacity, whatever was produced
    behind = feed.since(0)
    assert behind.lost and behind.cursor == 1000 and not behind.status
    recent = feed.since(995)
    assert not recent.lost and set(recent.status) == {f"d{i}" for i in range(995, 1000)}
    assert feed.since(2000).lost, "a cursor from the future (another server's) is a resync too"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Supervisor, int]]:
    model = city_from_dict(generate_city(devices=40, seed=1))
    sup = make_city_supervisor(tmp_path_factory.mktemp("ev"), model)
    cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
    server = ApiServer(sup, cfg).start()
    try:
        yield sup, server.port
    finally:
        server.stop()


class Stream:
    """An SSE reader on a thread: the events, parsed, as they come."""

    def __init__(self, port: int, path: str, token: str | None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.events: list[tuple[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.resp.status == 200:
            self._thread.start()

    def _read(self) -> None:
        name, data = "message", ""
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    self.events.append((name, json.loads(data)))
                    name, data = "message", ""
        except (OSError, ValueError):
            return

    def wait(self, predicate: Any, timeout: float = 5.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s: {self.events}")

    def close(self) -> None:
        self.conn.close()


def test_the_stream_needs_a_token(served: tuple[Supervisor, int]) -> None:
    _, port = served
    s = Stream(port, "/api/v1/events", None)
    assert s.resp.status == 401
    s.close()


def test_status_changes_and_alarms_arrive_within_two_seconds(served: tuple[Supervisor, int]) -> None:
    sup, port = served
    s = Stream(port, "/api/v1/events?max_s=30", VIEWER)
    try:
        assert s.resp.status == 200 and s.resp.getheader("Content-Type", "").startswith("text/event-stream")
        (hello,) = s.wait(lambda e: e[0] == "hello")
        device = sorted(sup.model.devices)[0]  # type: ignore[union-attr]
        t0 = time.monotonic()
        with sup.lock:
            sup.periodic.on_status([_change(device, "fault")])  # what the pipeline calls on a change
            sup.lifecycle.supervisor_alarm("events-test", "minor", "raised", "a test alarm", time.time())
        got = s.wait(lambda e: e[0] == "changes" and device in e[1]["status"], timeout=2.0)
        assert time.monotonic() - t0 < 2.0
        assert got[0][1]["status"][device]["status"] == "fault"
        alarms = s.wait(lambda e: e[0] == "changes" and e[1]["alarms"], timeout=2.0)
        alarm = alarms[0][1]["alarms"][0]
        assert alarm["element"] == "events-test" and alarm["transition"] == "raised"
        assert all(e[1]["cursor"] > hello[1]["cursor"] for e in alarms)
    finally:
        s.close()


def test_a_stream_resumes_after_its_cursor_and_ends_by_itself(served: tuple[Supervisor, int]) -> None:
    sup, port = served
    cursor = sup.live.cursor
    device = sorted(sup.model.devices)[1]  # type: ignore[union-attr]
    with sup.lock:
        sup.periodic.on_status([_change(device, "stale")])  # while no stream is open
    s = Stream(port, f"/api/v1/events?after={cursor}&max_s=1", OPERATOR)
    try:
        got = s.wait(lambda e: e[0] == "changes" and device in e[1]["status"])
        assert got[0][1]["status"][device]["status"] == "stale", "nothing is missed between two streams"
        s.wait(lambda e: e[0] == "end", timeout=5.0)
    finally:
        s.close()


def test_a_token_in_the_url_is_not_a_login(served: tuple[Supervisor, int]) -> None:
    _, port = served
    s = Stream(port, f"/api/v1/events?token={VIEWER}&access_token={VIEWER}", None)
    assert s.resp.status == 401
    s.close()


def test_the_session_names_the_role_never_the_token(served: tuple[Supervisor, int], tmp_path: Path) -> None:
    _, port = served
    for token, role, write in ((VIEWER, "viewer", False), (OPERATOR, "operator", True)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/v1/session", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200 and token not in body
        assert json.loads(body) == {"role": role, "name": f"{role}#1", "can_write": write}
        conn.close()


def test_the_command_log_is_bounded_per_device_and_in_devices() -> None:
    from rules import CommandState
    from supervisor.service.live import CommandLog

    log = CommandLog(per_device=3, max_devices=2)
    for k in range(5):
        log.add(CommandState("lamp-1", None, "z01", float(k * 10), "pending", 1, float(k), float(k)))
    assert [c["level"] for c in log.of("lamp-1")] == [40.0, 30.0, 20.0]
    log.add(CommandState("lamp-2", None, "z01", 5.0, "confirmed", 1, 1.0, 1.0))
    log.add(CommandState("lamp-3", None, "z01", 5.0, "failed", 3, 1.0, 1.0, error="no answer"))
    assert log.of("lamp-1") == [], "the device heard from longest ago went first"
    assert log.of("lamp-3")[0]["error"] == "no answer"


def test_a_devices_command_history_through_the_api(served: tuple[Supervisor, int]) -> None:
    from rules import CommandState

    sup, port = served
    lamp = next(d for d, info in sorted(sup.model.devices.items()) if info.kind == "lamp")  # type: ignore[union-attr]
    with sup.lock:  # what the rule engine's command tracker calls on each state change
        sup._on_command(CommandState(lamp, None, "z01", 60.0, "pending", 1, 10.0, 10.0))
        sup._on_command(CommandState(lamp, None, "z01", 60.0, "confirmed", 1, 11.0, 10.0, reported=60.0))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/api/v1/commands/{lamp}/history", headers={"Authorization": f"Bearer {VIEWER}"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200
    assert [(c["state"], c["level"]) for c in body["items"]] == [("confirmed", 60.0), ("pending", 60.0)]
    conn.request("GET", "/api/v1/commands/no-such-device/history", headers={"Authorization": f"Bearer {VIEWER}"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404
    conn.close()
