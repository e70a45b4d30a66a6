"""The console shows a radio gateway's observed status and link quality (issue 14), in a real
browser: the element panel of a degraded gateway, and its gateway device's panel.

The supervisor is not started (no broker needed): the gateway's uplinks and statistics are handed
to its radio watch directly, as the pipeline does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivers import Reading
from simulators.city import generate_city
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.api.conftest import VIEWER, make_city_supervisor, served_api

pytestmark = pytest.mark.slow

GW, RG = "lgw-z01-01", "rg-z01-01"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Supervisor, str]]:
    city = generate_city(devices=60, seed=2)
    meter = next(d for d in city["devices"] if d.get("gateway") == RG)
    city["devices"].append({"id": GW, "family": "lorawan", "kind": "lorawan_gateway", "driver": "chirpstack",
                            "service": meter["service"], "zone": meter["zone"], "geometry": meter["geometry"],
                            "gateway": RG, "interval": 30.0})
    sup = make_city_supervisor(tmp_path_factory.mktemp("radio-panel"), city_from_dict(city))
    with served_api(sup) as url:
        yield sup, url


def test_the_panels_show_a_degraded_radio_gateway(served: tuple[Supervisor, str], browser: Any) -> None:
    sup, base = served
    assert sup.radio is not None
    now = sup.clock()
    with sup.lock:
        for _ in range(5):  # a weak link: median RSSI -121 dBm, below the default -115
            sup.radio.on_readings([Reading(GW, "lorawan", {"rssi": -121.0, "snr": -2.5}),
                                   Reading(GW, "lorawan", {"rx_received": 10, "rx_ok": 10})], now)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{base}/console/")
        page.fill("#token", VIEWER)
        page.click("#login-button")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        page.evaluate("(id) => urbanConsole.showElement(id, {kind: 'radio_gateway'})", RG)
        page.locator("#radio-observed").wait_for(timeout=5000)
        text = page.inner_text("#radio-observed")
        assert "up" in text and "degraded" in text and "-121 dBm" in text and "-2.50 dB" in text
        assert "median RSSI -121 dBm < -115" in text
        page.evaluate("(id) => urbanConsole.showDevice(id)", GW)
        page.locator("#panel-radio").wait_for(timeout=5000)
        assert "degraded" in page.inner_text("#panel-radio")
    finally:
        context.close()
