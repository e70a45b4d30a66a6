"""LoRaWAN network servers through the real broker into the real InfluxDB, with exact values.

A generated city gets one ``lorawan_gateway`` device for its radio gateway ``rg-z01-01`` (heard
through it, like the water meters). ChirpStack and The Things Stack uplinks of two water meters,
mapped by DevEUI through the identity map, must land as exact ``water`` points; the gateway that
heard them, and its statistics, as exact ``lorawan`` points of the gateway device, which the state
then holds as observed. An uplink from a DevEUI the identity map does not know is refused and
counted (``unknown_device``), one of an unconfigured profile too (``unknown_profile``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

CS_EUI, TTS_EUI, STRANGER = "0101010101010101", "0004A30B001C0530", "0909090909090909"
GW_EUI = "0016c001f153a14c"
PROFILES = {"meter": {"family": "water", "measures": {"index": {"key": "volume", "unit": "L"},
                                                      "temperature": {"key": "temp", "unit": "degF"}}}}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _city() -> tuple[dict[str, Any], list[str], str]:
    city = generate_city(seed=8, devices=60)
    meters = [d for d in city["devices"] if d["kind"] == "water_meter" and d["gateway"] == "rg-z01-01"]
    gw = {"id": "lgw-z01-01", "family": "lorawan", "kind": "lorawan_gateway", "driver": "chirpstack",
          "service": meters[0]["service"], "zone": "z01", "geometry": meters[0]["geometry"], "gateway": "rg-z01-01",
          "interval": 60.0}
    city["devices"].append(gw)
    return city, [m["id"] for m in meters[:2]], gw["id"]


def _cs_up(eui: str, ts: float, profile: str = "meter") -> bytes:
    return orjson.dumps({
        "time": _iso(ts), "deviceInfo": {"deviceProfileName": profile, "devEui": eui}, "fPort": 1,
        "object": {"volume": 1234.5, "temp": 50.0},
        "rxInfo": [{"gatewayId": GW_EUI, "rssi": -36, "snr": 10.5}]})


def _tts_up(ts: float) -> bytes:
    return orjson.dumps({
        "end_device_ids": {"device_id": "dev1", "dev_eui": TTS_EUI},
        "uplink_message": {"decoded_payload": {"volume": 250, "temp": 68},
                           "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1"}, "rssi": -35, "snr": 5}],
                           "received_at": _iso(ts)}})


def _points(influx: Influx, db: str, measurement: str, device: str) -> list[dict[str, Any]]:
    """The device's points, household water read from its own retention policy too."""
    from supervisor.storage.retention import raw_sources

    policies = [str(v[0]) for s in influx.series(f'SHOW RETENTION POLICIES ON "{db}"', db)
                for v in s["values"]]  # type: ignore[union-attr]
    rows: list[dict[str, Any]] = []
    for source in raw_sources(measurement, policies):
        for s in influx.series(f'SELECT * FROM {source} WHERE "device" = \'{device}\'', db):
            cols = s["columns"]
            rows.extend(dict(zip(cols, v, strict=True)) for v in s["values"])  # type: ignore[call-overload]
    return rows


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_lorawan_uplinks_land_exactly_and_observe_the_gateway(broker: Mosquitto, influx: Influx, influx_db: str,
                                                            tmp_path: Any) -> None:
    city, (cs_meter, tts_meter), gw = _city()
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "data"), api={"enabled": False},
        mqtt={"host": broker.host, "port": broker.port, "client_id": "lorawan-it"},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.2},
        drivers={"chirpstack": {"options": {"profiles": PROFILES}},
                 "the_things_stack": {"options": {"profiles": PROFILES, "devices": {TTS_EUI: "meter"}}}},
        identity={"map": {"chirpstack": {CS_EUI: cs_meter, GW_EUI: gw},
                          "the_things_stack": {TTS_EUI.lower(): tts_meter, "gtw1": gw}}},
    )
    sup = Supervisor(settings, model=city_from_dict(city))
    sup.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lorawan-it-pub", protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        assert sup.mqtt.wait_connected(10)
        time.sleep(0.3)
        t0 = float(int(time.time()) - 120)
        sends = [
            (f"application/app-1/device/{CS_EUI}/event/up", _cs_up(CS_EUI, t0)),
            ("v3/app1@ttn/devices/dev1/up", _tts_up(t0 + 1)),
            (f"eu868/gateway/{GW_EUI}/event/stats",
             orjson.dumps({"gatewayId": GW_EUI, "time": _iso(t0 + 2), "rxPacketsReceived": 7,
                           "rxPacketsReceivedOk": 6, "txPacketsReceived": 1, "txPacketsEmitted": 1})),
            (f"application/app-1/device/{STRANGER}/event/up", _cs_up(STRANGER, t0 + 3)),
            (f"application/app-1/device/{CS_EUI}/event/up", _cs_up(CS_EUI, t0 + 4, profile="nobody")),
        ]
        for topic, payload in sends:
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        _wait(lambda: len(_points(influx, influx_db, "lorawan", gw)) == 3, 15, "three lorawan points")
        ms = int(t0 * 1000)
        _only(_points(influx, influx_db, "water", cs_meter), index=1.2345, temperature=10.0, time=ms)
        _only(_points(influx, influx_db, "water", tts_meter), index=0.25, temperature=20.0, time=ms + 1000)
        got = {p["time"]: p for p in _points(influx, influx_db, "lorawan", gw)}
        assert (got[ms]["rssi"], got[ms]["snr"]) == (-36.0, 10.5)
        assert (got[ms + 1000]["rssi"], got[ms + 1000]["snr"]) == (-35.0, 5.0)
        assert [got[ms + 2000][k] for k in ("rx_received", "rx_ok", "tx_received", "tx_emitted")] == [7, 6, 1, 1]
        errors = sup.pipeline.counters.errors
        _wait(lambda: errors[("chirpstack", "unknown_profile")] == 1, 5, "the unknown profile counted")
        assert errors[("chirpstack", "unknown_device")] == 1
        assert sup.pipeline.counters.error_total == 2
        assert {r["source"] for r in sup.pipeline.identity.report()} == {STRANGER}  # type: ignore[union-attr]
        assert sup.state.last_value(gw, "tx_emitted") == 1  # the gateway is observed by the state
    finally:
        pub.loop_stop()
        pub.disconnect()
        sup.stop()


def _only(points: list[dict[str, Any]], **want: Any) -> None:
    assert len(points) == 1, points
    assert {k: points[0][k] for k in want} == want, points[0]
