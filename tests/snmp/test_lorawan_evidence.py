"""SNMP and LoRaWAN observed evidence at the same time (issue 14): real snmpsim agents polled every
second, ChirpStack gateway statistics on the real broker. A port set down in its agent and a radio
gateway whose statistics stop must both stay observed through every later poll round (each round
hands the alarm manager SNMP's whole set: it must not erase the gateway's), and the gateway heard
again must not take the port's evidence with it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from supervisor.config import load_settings
from supervisor.model import city_from_dict
from supervisor.service.supervisor import Supervisor
from tests.integration._rig import wait
from tests.snmp.conftest import Lab
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

ACCESS = "sw-z01-a01"
PORT, PORT_IFINDEX = f"{ACCESS}:p1", 2  # the lighting cabinet's port (its lamps behind it)
GW1, GW2, RG1, RG2 = "lgw-z01-01", "lgw-z02-01", "rg-z01-01", "rg-z02-01"
EUI1, EUI2 = "0016c001f153a14c", "0016c001f153a14d"


def test_snmp_and_gateway_evidence_both_stay(lab: Lab, broker: Mosquitto, influx: Influx, influx_db: str,
                                             tmp_path: Path) -> None:
    city = lab.city
    for dev, site in ((GW1, RG1), (GW2, RG2)):
        meter = next(d for d in city["devices"] if d.get("gateway") == site)
        city["devices"].append({"id": dev, "family": "lorawan", "kind": "lorawan_gateway", "driver": "chirpstack",
                                "service": meter["service"], "zone": meter["zone"], "geometry": meter["geometry"],
                                "gateway": site, "interval": 1.0})
    model = city_from_dict(city)
    assert model.ports[PORT].ifindex in (None, PORT_IFINDEX) and model.switches[ACCESS].ports[1] == PORT
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"), api={"enabled": False},
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"snmp-lora-{tmp_path.name[-12:]}"},
        storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "flush_interval": 0.1,
                 "spool_dir": str(tmp_path / "var" / "spool")},
        state={"check_interval": 0.2},
        drivers={"chirpstack": {"options": {"profiles": {}}}},
        identity={"map": {"chirpstack": {EUI1: GW1, EUI2: GW2}}},
        snmp={"enabled": True, "interval": 1.0, "timeout": 1.0, "retries": 1, "credentials": lab.credentials()})
    sup = Supervisor(settings, model=model)
    sending = {EUI1, EUI2}
    stop = threading.Event()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"snmp-lora-pub-{tmp_path.name[-8:]}",
                      protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()

    def gateways() -> None:
        while not stop.wait(0.25):
            for eui in list(sending):
                pub.publish(f"eu868/gateway/{eui}/event/stats",
                            orjson.dumps({"gatewayId": eui, "rxPacketsReceived": 3, "rxPacketsReceivedOk": 3}), qos=1)

    thread = threading.Thread(target=gateways, daemon=True)
    sup.start()
    thread.start()
    try:
        assert sup.snmp is not None and sup.alarms is not None
        wait(lambda: sup.snmp is not None and sup.snmp.rounds >= 2, 30, "two poll rounds")
        assert sup.lifecycle.active() == []
        lab.agents[ACCESS].port(PORT_IFINDEX).oper = 2  # the cabinet's port: link down, admin up
        lab.push(ACCESS)
        wait(lambda: any(a.element == PORT for a in sup.lifecycle.active()), 10, "the port's observed alarm")
        sending.discard(EUI1)  # GW1's statistics stop, GW2's go on
        wait(lambda: any(a.element == RG1 for a in sup.lifecycle.active()), 10, "the gateway's observed alarm")
        rounds = sup.snmp.rounds
        wait(lambda: sup.snmp is not None and sup.snmp.rounds >= rounds + 2, 30, "two more poll rounds")
        active = sorted((a.element, a.kind, a.evidence) for a in sup.lifecycle.active())
        assert active == [(RG1, "root_cause", "observed"), (PORT, "root_cause", "observed")]
        assert set(sup.alarms.observed) == {PORT, RG1}
        assert set(sup.alarms.observed_by("snmp")) == {PORT} and set(sup.alarms.observed_by("lorawan")) == {RG1}
        sending.add(EUI1)  # the gateway heard again: the port's evidence stays
        wait(lambda: sup.alarms is not None and RG1 not in sup.alarms.observed, 10, "the gateway heard again")
        time.sleep(1.5)  # a poll round or more
        assert set(sup.alarms.observed) == {PORT}
        port_alarm = next(a for a in sup.alarms.active() if a.element == PORT)
        assert port_alarm.recovering_since is None  # still down, not recovering
    finally:
        stop.set()
        thread.join(5)
        pub.loop_stop()
        pub.disconnect()
        sup.stop()
