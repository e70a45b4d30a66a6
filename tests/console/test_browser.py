"""The operator console in a real browser, on a real supervisor, broker and database.

A 300-device city runs in the simulator on a stepped virtual clock (``tests/integration/_rig.py``)
over a private Mosquitto; the supervisor stores in a fresh InfluxDB database and serves its API,
hence the console, over HTTP (the real :class:`~supervisor.api.ApiServer`). Debian's chromium,
driven by Playwright, logs in with the API's tokens. The tests check what a person sees: every
device on the map, a failed switch greying out exactly its devices with one alarm, acknowledging
from the console, a viewer's disabled actions (and the API's 403 for a forged request), the layer
toggles. Screenshots go to a temporary directory (printed); the switch failure's is also written
to ``docs/img/console.png`` for the README.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.api import ApiServer
from supervisor.config import ApiConfig
from supervisor.model import CityModel
from tests.integration._rig import Rig, local, with_intervals
from tests.support.services import Influx, mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VIEWER = "console-viewer-token-0123456789"
OPERATOR = "console-operator-token-0123456789"
INTERVAL = 60.0
START = local(2025, 3, 10, 14, 0)
WARMUP = 4 * INTERVAL
SILENCE = 3 * INTERVAL * 1.5
LIVE_S = 5.0  # the issue: the failure shows on the map within 5 s
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "console.png"


def _access_switch(model: CityModel) -> str:
    """The access switch whose failure silences the most services (then devices)."""
    return max((e for e, info in model.elements.items() if info.kind == "switch" and "-a" in e),
               key=lambda e: (len(model.impact(e).services), len(model.dependents(e)), e))


@pytest.fixture(scope="module")
def city(influx: Influx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, str]]:
    """The rig after warm-up (every device reported), and the console's URL."""
    tmp = tmp_path_factory.mktemp("console-rig")
    db = influx.create()
    spec = with_intervals(generate_city(seed=11, devices=300),
                          {"traffic": INTERVAL, "lighting": INTERVAL, "cctv": INTERVAL, "water": INTERVAL})
    try:
        with mosquitto(tmp / "mosquitto") as broker:
            rig = Rig.start(spec, broker, influx, db, tmp_path=tmp, start=START, check_interval=5.0)
            server = None
            try:
                rig.advance(WARMUP)
                assert rig.sup.lifecycle.active() == []
                cfg = ApiConfig(host="127.0.0.1", port=0, viewer_tokens=[VIEWER], operator_tokens=[OPERATOR])  # type: ignore[list-item]
                server = ApiServer(rig.sup, cfg).start()
                yield rig, f"http://127.0.0.1:{server.port}"
            finally:
                if server is not None:
                    server.stop()
                rig.close()
    finally:
        influx.drop(db)


class Page:
    """One logged-in console page; records the CSP violations and script errors it reports (not the
    API's refusals, which the console shows: a viewer's 403, a missing rule engine's 503)."""

    def __init__(self, browser: Any, base: str, token: str, user: str = "alice") -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        self.page.goto(f"{base}/console/")
        self.page.fill("#token", token)
        self.page.fill("#user", user)
        self.page.click("#login-button")
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page_of(browser: Any, city: tuple[Rig, str]) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(token: str) -> Page:
        p = Page(browser, city[1], token)
        pages.append(p)
        return p

    yield open_
    for p in pages:
        assert not p.problems, p.problems  # no CSP violation, no script error
        p.close()


def _api(base: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_map_shows_every_device_of_the_city(city: tuple[Rig, str], page_of: Any, shots: Path) -> None:
    rig, _ = city
    p = page_of(OPERATOR)
    n = len(rig.model.devices)
    assert p.js("() => urbanConsole.devices()") == n
    assert p.js("() => urbanConsole.drawnDevices()") == n, "the whole city is in view, every device drawn"
    assert int(p.page.get_attribute("#map", "data-drawn-devices") or 0) == n
    ids = sorted(rig.model.devices)
    statuses = p.js("(ids) => ids.map((id) => urbanConsole.status(id))", ids)
    assert statuses == ["ok"] * n
    assert p.page.get_attribute(".legend-ok", "data-count") == str(n)
    p.shot(shots / "city.png")


def test_layer_toggles_hide_and_show_their_features(page_of: Any, shots: Path) -> None:
    p = page_of(OPERATOR)
    expect_initially = {"base": True, "physical": True, "l2": False, "l3": False, "devices": True}
    for layer, shown in expect_initially.items():
        assert p.js("(n) => urbanConsole.layerShown(n)", layer) is shown, layer
        assert p.js("(n) => urbanConsole.layerFeatures(n)", layer) > 0 or layer == "devices", layer
    for layer, shown in expect_initially.items():
        box = p.page.locator(f"input[data-layer={layer}]")
        box.click()
        assert p.js("(n) => urbanConsole.layerShown(n)", layer) is (not shown), layer
        if layer == "devices":
            assert p.js("() => urbanConsole.drawnDevices()") == 0
        box.click()
        assert p.js("(n) => urbanConsole.layerShown(n)", layer) is shown, layer
    assert p.js("() => urbanConsole.drawnDevices()") == p.js("() => urbanConsole.devices()")
    p.page.locator("input[data-layer=l2]").click()
    p.page.locator("input[data-layer=l3]").click()
    p.shot(shots / "layers.png")


def test_failing_a_switch_greys_out_exactly_its_devices_with_one_alarm(
        city: tuple[Rig, str], page_of: Any, shots: Path) -> None:
    rig, _ = city
    p = page_of(OPERATOR)  # open before the failure: what changes comes through the live stream
    switch, silent = failed_switch(city)
    ids = sorted(rig.model.devices)
    expected = ["stale" if d in silent else "ok" for d in ids]
    p.page.wait_for_function(
        "([ids, want]) => ids.every((id, k) => urbanConsole.status(id) === want[k])", arg=[ids, expected],
        timeout=LIVE_S * 1000)
    items = p.page.locator("#alarm-list > li")
    items.first.wait_for(timeout=LIVE_S * 1000)
    assert items.count() == 1
    assert items.first.get_attribute("data-element") == switch
    p.page.wait_for_function("(s) => document.getElementById('map').dataset.rootCauses === s", arg=switch,
                             timeout=LIVE_S * 1000)
    p.page.wait_for_function("(n) => document.querySelector('.legend-stale').dataset.count === n",
                             arg=str(len(silent)), timeout=LIVE_S * 1000)  # the legend follows within a second
    items.first.locator("button.locate").click()  # jump to the alarm: the element's impact analysis
    p.page.locator("#impact").wait_for(timeout=5000)
    services = {rig.model.devices[d].service for d in silent}
    assert set(p.page.locator("#impact th").all_inner_texts()) == services
    p.page.wait_for_timeout(300)
    p.shot(shots / "switch-failure.png")
    README_SHOT.parent.mkdir(parents=True, exist_ok=True)
    p.shot(README_SHOT)


def failed_switch(city: tuple[Rig, str]) -> tuple[str, set[str]]:
    """The module's switch failure, done on first use (the fixture, callable after a page opened)."""
    rig, _ = city
    done = getattr(rig, "_console_failed", None)
    if done is None:
        switch = _access_switch(rig.model)
        silent = rig.model.dependents(switch) & set(rig.model.devices)
        assert len(silent) >= 2
        rig.sim.faults.fail(switch)
        rig.advance(SILENCE)
        assert rig.sup.state.not_ok() == silent
        assert [a.element for a in rig.sup.lifecycle.active()] == [switch]
        done = (switch, silent)
        rig._console_failed = done  # type: ignore[attr-defined]
    return done  # type: ignore[no-any-return]


def test_acknowledging_from_the_console_changes_the_alarm_in_the_api(
        city: tuple[Rig, str], page_of: Any, shots: Path) -> None:
    _, base = city
    switch, _ = failed_switch(city)
    p = page_of(OPERATOR)
    item = p.page.locator(f"#alarm-list > li[data-element='{switch}']")
    alarm_id = item.get_attribute("data-alarm-id")
    assert alarm_id and item.get_attribute("data-state") == "raised"
    ack = item.locator("button.ack")
    assert ack.is_enabled()
    ack.click()
    p.page.locator(f"#alarm-list > li[data-alarm-id='{alarm_id}'][data-state=acknowledged]").wait_for(timeout=5000)
    code, alarm = _api(base, f"/api/v1/alarms/{alarm_id}", OPERATOR)
    assert code == 200
    assert alarm["state"] == "acknowledged"
    assert alarm["acked_by"] == "alice (operator#1)"
    acks = [j for j in alarm["journal"] if j["action"] == "acknowledged"]
    assert [j["user"] for j in acks] == ["alice (operator#1)"], alarm["journal"]
    p.shot(shots / "acknowledged.png")


def test_a_viewer_sees_every_action_disabled_and_the_api_refuses_a_forged_one(
        city: tuple[Rig, str], page_of: Any, shots: Path) -> None:
    rig, base = city
    switch, silent = failed_switch(city)
    p = page_of(VIEWER)
    assert "viewer" in p.page.inner_text("#who")
    item = p.page.locator(f"#alarm-list > li[data-element='{switch}']")
    item.wait_for(timeout=5000)
    for action in ("ack", "shelve", "comment"):  # the alarm is active: each action has its button
        button = item.locator(f"button.{action}")
        assert button.count() == 1, action
        assert button.is_disabled(), action
    lamp = next(d for d in sorted(silent) if rig.model.devices[d].kind == "lamp")
    p.js("(id) => urbanConsole.showDevice(id)", lamp)
    p.page.locator("#override-submit").wait_for(timeout=5000)
    for control in ("#override-level", "#override-minutes", "#override-submit", "#override-clear"):
        assert p.page.locator(control).is_disabled(), control
    # the panel: the device's status, its last readings with their units, its place in the layers
    assert p.page.inner_text("#panel-status").startswith("stale")
    _, detail = _api(base, f"/api/v1/devices/{lamp}", VIEWER)
    numeric = {m: v for m, v in detail["state"]["values"].items()
               if isinstance(v, float | int) and not isinstance(v, bool) and detail["units"].get(m, "1") != "1"}
    assert numeric, detail
    rows = dict(zip(p.page.locator("#panel .readings th").all_inner_texts(),
                    p.page.locator("#panel .readings td").all_inner_texts(), strict=True))
    for measure in numeric:
        assert rows[measure].endswith(" " + detail["units"][measure]), (measure, rows)
    panel = p.page.inner_text("#panel")
    info = rig.model.devices[lamp]
    for where in (info.cabinet, info.port, info.site, info.service, info.street):
        assert where is None or where in panel, (where, panel)
    alarm_id = item.get_attribute("data-alarm-id")
    before = _api(base, f"/api/v1/alarms/{alarm_id}", OPERATOR)[1]
    # a forged request from the viewer's page, with the viewer's token: the API refuses it
    forged = p.js("""async ([id, token]) => {
        const r = await fetch('/api/v1/alarms/' + id + '/comment', {method: 'POST',
            headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'},
            body: JSON.stringify({user: 'mallory', text: 'forged'})});
        return [r.status, await r.json()];
    }""", [alarm_id, VIEWER])
    assert forged[0] == 403, forged
    assert "operator token" in forged[1]["detail"]
    code, _ = _api(base, f"/api/v1/alarms/{alarm_id}/ack", VIEWER, {"user": "mallory"})
    assert code == 403
    after = _api(base, f"/api/v1/alarms/{alarm_id}", OPERATOR)[1]
    assert after["journal"] == before["journal"], "a refused request changed nothing"
    p.shot(shots / "viewer.png")
