"""The radio gateways observed (supervisor/state/radio.py): status logic and link figures, on a
generated city with one ``lorawan_gateway`` device per radio gateway and a hand-driven clock."""

from __future__ import annotations

from typing import Any

import pytest

from drivers import Reading
from simulators.city import generate_city
from supervisor.alarms import AlarmManager
from supervisor.config import LorawanConfig
from supervisor.model import CityModel, city_from_dict
from supervisor.state.radio import SOURCE, RadioGateways
from supervisor.storage.lineprotocol import parse_line

GW1, GW2 = "lgw-z01-01", "lgw-z02-01"
RG1, RG2 = "rg-z01-01", "rg-z02-01"
IV = 30.0  # the gateways' reporting interval (ChirpStack's default statistics interval)


def city(*gateways: tuple[str, str]) -> dict[str, Any]:
    c = generate_city(seed=8, devices=60)
    for dev, site in gateways:
        meter = next(d for d in c["devices"] if d.get("gateway") == site)
        c["devices"].append({"id": dev, "family": "lorawan", "kind": "lorawan_gateway", "driver": "chirpstack",
                             "service": meter["service"], "zone": meter["zone"], "geometry": meter["geometry"],
                             "gateway": site, "interval": IV})
    return c


@pytest.fixture(scope="module")
def model() -> CityModel:
    return city_from_dict(city((GW1, RG1), (GW2, RG2)))


def stats(dev: str, received: int = 10, ok: int = 10) -> Reading:
    return Reading(dev, "lorawan", {"rx_received": received, "rx_ok": ok, "tx_received": 0, "tx_emitted": 0})


def uplink(dev: str, rssi: float, snr: float) -> Reading:
    return Reading(dev, "lorawan", {"rssi": rssi, "snr": snr})


def test_down_only_after_down_after_intervals_while_another_reports(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(down_after=3), model, 0.0)
    radio.on_readings([stats(GW1), stats(GW2)], 0.0)
    for t in (30.0, 60.0, 89.0):  # GW1 falls silent after t=0; GW2 keeps reporting
        radio.on_readings([stats(GW2)], t)
        assert radio.evaluate(t) == {}, t
    assert radio.element_state(RG1, 89.0)["status"] == "silent"  # type: ignore[index]
    radio.on_readings([stats(GW2)], 90.0)
    down = radio.evaluate(90.0)
    assert list(down) == [RG1]
    assert "lgw-z01-01" in down[RG1] and "3 x its 30 s interval" in down[RG1]
    st = radio.element_state(RG1, 90.0)
    assert st is not None and (st["status"], st["observed"]) == ("down", True)
    assert radio.element_state(RG2, 90.0)["status"] == "up"  # type: ignore[index]


def test_a_single_missed_report_is_never_down() -> None:
    with pytest.raises(ValueError, match="down_after"):
        LorawanConfig(down_after=1)


def test_all_silent_together_concludes_nothing(model: CityModel) -> None:
    """The feed died (network server, MQTT): no gateway heard after the others' misses."""
    radio = RadioGateways(LorawanConfig(), model, 0.0)
    radio.on_readings([stats(GW1), stats(GW2)], 0.0)
    assert radio.evaluate(1000.0) == {}
    # a report of GW2 long after GW1's first miss: the feed is alive, GW1 is down
    radio.on_readings([stats(GW2)], 1000.0)
    assert list(radio.evaluate(1000.0)) == [RG1]


def test_require_others_false_for_a_single_gateway_network() -> None:
    alone = city_from_dict(city((GW1, RG1)))
    radio = RadioGateways(LorawanConfig(require_others=False), alone, 0.0)
    radio.on_readings([stats(GW1)], 0.0)
    assert radio.evaluate(89.0) == {}
    assert list(radio.evaluate(90.0)) == [RG1]
    strict = RadioGateways(LorawanConfig(), alone, 0.0)
    strict.on_readings([stats(GW1)], 0.0)
    assert strict.evaluate(1000.0) == {}  # no other gateway: nothing concluded


def test_uplinks_naming_a_gateway_keep_it_up_and_a_report_brings_it_back(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(), model, 0.0)
    for t in range(0, 300, 20):  # no statistics from GW1 at all, only uplinks heard by it
        radio.on_readings([uplink(GW1, -90.0, 5.0), stats(GW2)], float(t))
        assert radio.evaluate(float(t)) == {}
    radio.on_readings([stats(GW2)], 400.0)
    assert list(radio.evaluate(400.0)) == [RG1]
    radio.on_readings([stats(GW1)], 401.0)
    assert radio.evaluate(401.0) == {}
    assert radio.element_state(RG1, 401.0)["status"] == "up"  # type: ignore[index]


def test_a_gateway_never_heard_counts_from_the_start(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(), model, 0.0)
    radio.started(100.0)
    radio.on_readings([stats(GW2)], 189.0)
    assert radio.evaluate(189.0) == {}
    radio.on_readings([stats(GW2)], 190.0)
    down = radio.evaluate(190.0)
    assert list(down) == [RG1] and "never heard" in down[RG1]


def test_the_network_server_saying_offline_is_down_at_once(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(), model, 0.0)
    radio.on_readings([stats(GW1)], 0.0)
    radio.on_readings([Reading(GW1, "lorawan", {"online": False})], 1.0)
    assert radio.evaluate(1.0) == {RG1: "LoRaWAN: the network server reports lgw-z01-01 offline"}
    assert radio.device_state(GW1, 1.0)["last_heard"] == 0.0  # type: ignore[index]  # an OFFLINE is not heard
    radio.on_readings([Reading(GW1, "lorawan", {"online": True})], 2.0)
    assert radio.evaluate(2.0) == {}
    radio.on_readings([Reading(GW1, "lorawan", {"online": False})], 3.0)
    radio.on_readings([uplink(GW1, -90.0, 5.0)], 4.0)  # an uplink it relayed: it is back
    assert radio.evaluate(4.0) == {}


def test_link_figures_exact(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(window=4, min_samples=3), model, 0.0)
    assert radio.link(GW1).link == "unknown"  # type: ignore[union-attr]
    for rssi, snr in ((-100.0, 1.0), (-80.0, 9.0), (-90.0, 3.0), (-120.0, -4.0), (-70.0, 7.5)):
        radio.on_readings([uplink(GW1, rssi, snr)], 1.0)
    radio.on_readings([stats(GW1, 40, 38), stats(GW1, 10, 2), stats(GW1, 0, 0)], 2.0)
    q = radio.link(GW1)
    assert q is not None
    # the last 4 uplinks: -80, -90, -120, -70 -> median -85; SNR 9, 3, -4, 7.5 -> median 5.25
    assert (q.rssi, q.snr, q.uplinks) == (-85.0, 5.25, 4)
    assert q.ok_ratio == 40 / 50 and q.reports == 3
    assert q.link == "ok" and q.why == ()
    assert radio.link("nope") is None


def test_poor_link_is_degraded_not_down(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(min_samples=3, rssi_min=-110.0, snr_min=-5.0, ok_ratio_min=0.9), model, 0.0)
    for _ in range(3):
        radio.on_readings([uplink(GW1, -118.0, -8.0), stats(GW1, 10, 7), stats(GW2)], 10.0)
    q = radio.link(GW1)
    assert q is not None and q.link == "degraded"
    assert q.why == ("median RSSI -118 dBm < -110", "median SNR -8 dB < -5", "rx ok ratio 0.7 < 0.9")
    assert radio.evaluate(10.0) == {}  # degraded is never down
    st = radio.element_state(RG1, 10.0)
    assert st is not None and (st["status"], st["link"]) == ("up", "degraded")


def test_link_points_are_lorawan_measures_written_when_they_change(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(store_interval=60.0), model, 0.0)
    assert radio.lines(0.0) == []  # nothing heard: nothing to store
    radio.on_readings([uplink(GW1, -90.0, 5.0), uplink(GW1, -100.0, 4.0), stats(GW1, 10, 9)], 1.0)
    lines = radio.lines(5.0)
    assert len(lines) == 1
    p = parse_line(lines[0])
    assert (p.measurement, p.tags["device"], p.tags["zone"], p.ts_ms) == ("lorawan", GW1, "z01", 5000)
    assert p.fields == {"link_rssi": -95.0, "link_snr": 4.5, "link_ok_ratio": 0.9, "link_uplinks": 2,
                      "link_degraded": False}
    assert radio.lines(30.0) == []  # within store_interval
    assert radio.lines(70.0) == []  # unchanged
    radio.on_readings([uplink(GW1, -60.0, 5.0)], 71.0)
    assert len(radio.lines(72.0)) == 1


def test_reload_keeps_samples_and_follows_removed_gateways(model: CityModel) -> None:
    radio = RadioGateways(LorawanConfig(), model, 0.0)
    radio.on_readings([uplink(GW1, -90.0, 5.0), stats(GW2)], 1.0)
    radio.on_readings([stats(GW2)], 200.0)
    assert list(radio.evaluate(200.0)) == [RG1]
    radio.set_model(model, 200.0)
    assert radio.link(GW1).uplinks == 1  # type: ignore[union-attr]
    only2 = city_from_dict(city((GW2, RG2)))
    radio.set_model(only2, 201.0)
    assert radio.link(GW1) is None and radio.evaluate(201.0) == {}


def test_observed_evidence_is_per_source(model: CityModel) -> None:
    """SNMP and LoRaWAN evidence at the same time: neither erases the other."""
    m = AlarmManager(model)
    port = model.sites[RG2].port
    assert port is not None
    m.observe("snmp", {port: "SNMP: ifOperStatus down"})
    m.observe(SOURCE, {RG1: "LoRaWAN: no statistics"})
    changes = m.update(set(), 10.0)
    raised = {c.alarm.element: c.alarm for c in changes if c.transition == "raised"}
    assert set(raised) == {port, RG1}
    assert all(a.evidence == "observed" for a in raised.values())
    rg1 = raised[RG1]
    meters = sorted(d for d, info in ((d, model.devices[d]) for d in model.devices) if info.gateway == RG1)
    assert list(rg1.devices) == meters and GW1 in meters and len(meters) == 7
    assert rg1.text == "radio_gateway rg-z01-01 down, observed (LoRaWAN: no statistics): 7 devices behind it (water)"
    m.observe("snmp", {port: "SNMP: ifOperStatus down"})  # a new SNMP round: LoRaWAN's stays
    assert set(m.observed) == {port, RG1}
    m.observe(SOURCE, {})  # the gateway heard again: SNMP's stays
    assert m.observed == {port: "SNMP: ifOperStatus down"}
    assert m.observed_by(SOURCE) == {}
    m.observe(SOURCE, {port: "LoRaWAN: x"})
    assert m.observed[port] == "SNMP: ifOperStatus down; LoRaWAN: x"
