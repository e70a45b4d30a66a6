"""Issue 14: LoRaWAN radio gateways observed, through the real broker into the real InfluxDB.

A generated city gets one ``lorawan_gateway`` device per radio gateway (reporting every second,
``lorawan.down_after`` 3). ChirpStack gateway statistics and uplinks are published on the real
Mosquitto; the supervisor must:

- keep a gateway up while only uplinks name it (no statistics);
- raise ONE root-cause alarm, ``evidence: observed``, naming the radio gateway and listing the water
  meters behind it, within about 3 s of its statistics stopping while the other gateway's arrive
  (the meters report every 900 s: stale after 45 minutes);
- recover it when the statistics resume and the meters report;
- compute the link figures exactly, show them in the API and store them as ``link_*`` measures;
- take the gateway bridge's ``state/conn`` OFFLINE as observed down at once (30-s gateways: the
  silence rule would need 90 s), and ONLINE as back.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from simulators.city import generate_city
from supervisor.api import create_app
from supervisor.config import ApiConfig
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.integration._rig import settings, wait
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

GW1, GW2 = "lgw-z01-01", "lgw-z02-01"
RG1, RG2 = "rg-z01-01", "rg-z02-01"
EUI1, EUI2, METER_EUI = "0016c001f153a14c", "0016c001f153a14d", "0101010101010101"
IV = 1.0  # the gateways' statistics interval in this test (ChirpStack's default: 30 s)
PROFILES = {"meter": {"family": "water", "measures": {"index": {"key": "volume", "unit": "L"}}}}
UPLINKS = [(-100, 1.0), (-80, 9.0), (-90, 3.0), (-120, -4.0), (-70, 7.5)]  # RSSI dBm, SNR dB


def _city(interval: float = IV) -> dict[str, Any]:
    city = generate_city(seed=8, devices=60)
    for dev, site in ((GW1, RG1), (GW2, RG2)):
        meter = next(d for d in city["devices"] if d.get("gateway") == site)
        city["devices"].append({"id": dev, "family": "lorawan", "kind": "lorawan_gateway", "driver": "chirpstack",
                                "service": meter["service"], "zone": meter["zone"], "geometry": meter["geometry"],
                                "gateway": site, "interval": interval})
    return city


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _stats(eui: str, received: int, ok: int) -> bytes:
    return orjson.dumps({"gatewayId": eui, "time": _iso(time.time()), "rxPacketsReceived": received,
                         "rxPacketsReceivedOk": ok})


def _uplink(rssi: float, snr: float) -> bytes:
    return orjson.dumps({"time": _iso(time.time()), "deviceInfo": {"deviceProfileName": "meter", "devEui": METER_EUI},
                         "object": {"volume": 1234.5}, "rxInfo": [{"gatewayId": EUI1, "rssi": rssi, "snr": snr}]})


class Gateways:
    """A publisher thread: statistics every quarter interval from the gateways in ``sending``."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="radio-it-pub", protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.sending: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def _run(self) -> None:
        while not self._stop.wait(IV / 4):
            for eui in list(self.sending):
                self.publish(f"eu868/gateway/{eui}/event/stats", _stats(eui, 10, 9))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def test_radio_gateway_observed_down_then_back(broker: Mosquitto, influx: Influx, influx_db: str,
                                               tmp_path: Path) -> None:
    model = city_from_dict(_city())
    meters = sorted(d for d in model.devices if model.devices[d].gateway == RG1 and d != GW1)
    assert len(meters) == 6 and all(model.devices[m].interval == 900.0 for m in meters)
    cfg = settings(broker, influx, influx_db, "radio-it", data_dir=tmp_path / "var", check_interval=0.2,
                   drivers={"chirpstack": {"options": {"profiles": PROFILES}}, "water_meter": {}},
                   identity={"map": {"chirpstack": {EUI1: GW1, EUI2: GW2, METER_EUI: meters[0]}}},
                   lorawan={"down_after": 3, "window": 5, "min_samples": 3, "store_interval": 0.3})
    sup = Supervisor(cfg, model=model)
    sup.start()
    gws = Gateways(broker)
    try:
        assert sup.mqtt.wait_connected(10)
        _link_figures(sup, gws, influx, influx_db, meters[0])
        _uplinks_keep_it_up(sup, gws)
        _down_observed(sup, meters)
        _back(sup, gws, influx, influx_db, meters)
    finally:
        gws.close()
        sup.stop()


def _link_figures(sup: Supervisor, gws: Gateways, influx: Influx, db: str, meter: str) -> None:
    """Five uplinks heard by GW1 and the statistics' 9 of 10 frames ok: exact in the API and InfluxDB."""
    radio = sup.radio
    assert radio is not None
    gws.sending = {EUI1, EUI2}
    wait(lambda: radio.device_state(GW1, sup.clock())["last_heard"] is not None, 10,  # type: ignore[index]
         "the first statistics")
    for rssi, snr in UPLINKS:
        gws.publish(f"application/app-1/device/{METER_EUI}/event/up", _uplink(rssi, snr))
    wait(lambda: radio.link(GW1).uplinks == 5, 10, "five uplinks")  # type: ignore[union-attr]
    q = radio.link(GW1)
    assert q is not None and (q.rssi, q.snr, q.ok_ratio, q.link) == (-90.0, 3.0, 0.9, "ok")
    with TestClient(create_app(sup, ApiConfig())) as api:
        el = api.get(f"/api/v1/model/elements/{RG1}").json()
        assert el["observed"]["status"] == "up" and el["observed"]["link"] == "ok"
        dev = api.get(f"/api/v1/devices/{GW1}").json()
        assert (dev["radio"]["rssi_median"], dev["radio"]["snr_median"]) == (-90.0, 3.0)
        assert dev["radio"]["ok_ratio"] == 0.9 and dev["radio"]["element"] == RG1
        assert "observed" not in api.get(f"/api/v1/model/elements/{meter}").json()

    def stored() -> list[dict[str, Any]]:
        rows = influx.query(f"SELECT link_rssi, link_snr, link_ok_ratio, link_uplinks, link_degraded FROM lorawan "
                            f"WHERE device = '{GW1}' AND link_uplinks = 5", db)
        series = rows[0].get("series") if rows else None
        return [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]] if series else []

    wait(lambda: bool(stored()), 15, "the link point in InfluxDB")
    p = stored()[-1]
    assert (p["link_rssi"], p["link_snr"], p["link_ok_ratio"], p["link_degraded"]) == (-90.0, 3.0, 0.9, False)


def _uplinks_keep_it_up(sup: Supervisor, gws: Gateways) -> None:
    """Only uplinks name GW1 (no statistics) for 4 intervals: it stays up."""
    assert sup.radio is not None and sup.alarms is not None
    gws.sending = {EUI2}
    t_end = time.monotonic() + 4 * IV
    while time.monotonic() < t_end:
        gws.publish(f"application/app-1/device/{METER_EUI}/event/up", _uplink(-90, 3.0))
        time.sleep(IV / 3)
        assert sup.alarms.observed == {}
    assert sup.radio.element_state(RG1, sup.clock())["status"] == "up"  # type: ignore[index]
    assert sup.lifecycle.active() == []


def _down_observed(sup: Supervisor, meters: list[str]) -> None:
    """GW1 falls silent, GW2 keeps reporting: one observed root cause, within about 3 intervals."""
    t0 = time.monotonic()
    wait(lambda: any(a.element == RG1 for a in sup.lifecycle.active()), 10, "the observed alarm")
    delay = time.monotonic() - t0
    print(f"observed alarm {delay:.2f} s after the last uplink (down after 3 x {IV:g} s)")
    assert delay < 3 * IV + 2.0  # the meters behind it would need 3 x 900 s
    active = sup.lifecycle.active()
    assert [(a.kind, a.element, a.evidence) for a in active] == [("root_cause", RG1, "observed")]
    assert set(active[0].devices) == {*meters, GW1}
    assert "LoRaWAN: no statistics nor uplinks from lgw-z01-01" in active[0].text
    assert all(sup.state.status(m) == "ok" for m in meters)  # long before they go stale
    time.sleep(1.0)  # more checks, still down: still the one alarm
    assert [a.element for a in sup.lifecycle.active()] == [RG1]
    with TestClient(create_app(sup, ApiConfig())) as api:
        obs = api.get(f"/api/v1/model/elements/{RG1}").json()["observed"]
        assert (obs["status"], obs["observed"]) == ("down", True)
        assert api.get(f"/api/v1/model/elements/{RG2}").json()["observed"]["status"] == "up"


def _back(sup: Supervisor, gws: Gateways, influx: Influx, db: str, meters: list[str]) -> None:
    """The statistics resume, the meters report: the alarm recovers."""
    gws.sending = {EUI1, EUI2}
    wait(lambda: sup.alarms is not None and sup.alarms.observed == {}, 10, "the gateway heard again")
    for m in meters:
        gws.publish(f"city/z01/water/{m}/telemetry", orjson.dumps({"index": 1.0}))
    wait(lambda: sup.lifecycle.active() == [], 15, "the alarm cleared")
    sup.write_health()
    assert sup.writer.flush(30)
    rows = influx.query(f"SELECT evidence, state FROM alarms WHERE element = '{RG1}'", db)
    got = [tuple(v[1:]) for v in rows[0]["series"][0]["values"]]  # type: ignore[index]
    assert got == [("observed", "raised"), ("observed", "cleared")]


def test_network_server_offline_is_observed_at_once(broker: Mosquitto, influx: Influx, influx_db: str,
                                                     tmp_path: Path) -> None:
    model = city_from_dict(_city(interval=30.0))
    cfg = settings(broker, influx, influx_db, "radio-it-conn", data_dir=tmp_path / "var", check_interval=0.2,
                   drivers={"chirpstack": {"options": {"profiles": PROFILES}}},
                   identity={"map": {"chirpstack": {EUI1: GW1, EUI2: GW2}}})
    sup = Supervisor(cfg, model=model)
    sup.start()
    gws = Gateways(broker)
    try:
        assert sup.mqtt.wait_connected(10) and sup.alarms is not None
        time.sleep(0.3)
        t0 = time.monotonic()
        gws.publish(f"eu868/gateway/{EUI1}/state/conn", orjson.dumps({"gatewayId": EUI1, "state": "OFFLINE"}))
        wait(lambda: any(a.element == RG1 for a in sup.lifecycle.active()), 10, "the observed alarm")
        delay = time.monotonic() - t0
        assert delay < 5.0, delay  # the silence rule would need 3 x 30 s
        active = sup.lifecycle.active()
        assert [(a.element, a.evidence) for a in active] == [(RG1, "observed")]
        assert "the network server reports lgw-z01-01 offline" in active[0].text
        assert sup.state.status(GW1) == "fault"
        gws.publish(f"eu868/gateway/{EUI1}/state/conn", orjson.dumps({"gatewayId": EUI1, "state": "ONLINE"}))
        wait(lambda: sup.alarms is not None and sup.alarms.observed == {}, 10, "the gateway online again")
        wait(lambda: sup.alarms is not None and sup.alarms.active()[0].recovering_since is not None, 5,
             "the alarm recovering (its meters have not reported since)")
    finally:
        gws.close()
        sup.stop()
