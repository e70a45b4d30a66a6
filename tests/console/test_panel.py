"""The device panel's operator side in a real browser: an override from the form, and the "why".

The supervisor has the network model and the example rules (its rule engine arbitrates the lamps),
served by the real ApiServer; no broker is needed for what is checked here (the commands the
override causes are refused by the unconnected MQTT client and logged, as the API tests do).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import OPERATOR, make_city_supervisor, served_api

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Supervisor, str]]:
    model = city_from_dict(generate_city(devices=60, seed=2))
    sup = make_city_supervisor(tmp_path_factory.mktemp("panel"), model)
    with served_api(sup) as url:
        yield sup, url


def _get(url: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {OPERATOR}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_an_operator_overrides_a_lamp_from_its_panel_and_sees_why(
        served: tuple[Supervisor, str], browser: Any, shots: Path) -> None:
    sup, base = served
    lamp = next(d for d, info in sorted(sup.model.devices.items()) if info.kind == "lamp")  # type: ignore[union-attr]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{base}/console/")
        page.fill("#token", OPERATOR)
        page.fill("#user", "bob")
        page.click("#login-button")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        page.evaluate("(id) => urbanConsole.showDevice(id)", lamp)
        page.locator("#override-submit").wait_for(timeout=5000)
        assert page.locator("#override-submit").is_enabled()
        page.fill("#override-level", "40")
        page.fill("#override-minutes", "30")
        page.click("#override-submit")
        page.wait_for_function("() => document.querySelector('#panel .result').textContent.includes('level asked now')",
                               timeout=5000)
        assert "level asked now 40" in page.inner_text("#panel .result")
        why = _get(f"{base}/api/v1/why/{lamp}")
        assert why["level"] == 40.0
        assert any("bob (operator#1)" in json.dumps(r) for r in why["requests"]), why["requests"]
        page.evaluate("(id) => urbanConsole.showDevice(id)", lamp)  # the panel again: the why shows it
        page.wait_for_function(
            "() => document.getElementById('panel-why').textContent.includes('level asked now: 40 %')", timeout=5000)
        page.screenshot(path=str(shots / "override.png"))
        page.click("#override-clear")
        page.wait_for_function("() => document.querySelector('#panel .result').textContent === 'override cleared'",
                               timeout=5000)
        assert not any("bob" in json.dumps(r) for r in _get(f"{base}/api/v1/why/{lamp}")["requests"])
    finally:
        context.close()
