"""Air-quality rules end to end: real Mosquitto, real InfluxDB, the air_quality driver's native topic.

A city with air stations (added to the generated city by the test) runs the example rule
``rules/examples/more/air.yaml`` (kind ``threshold``, ``family: air``, no2 > 200 for 0 s) and a
``when_then`` rule on the same condition. A station publishes a high NO2 reading on
``city/<zone>/air/<station>/telemetry``: both rules raise an alarm, stored in InfluxDB; a low
reading clears them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rules import load_rules
from simulators.city import generate_city
from supervisor.model import city_from_dict
from supervisor.runtime import Supervisor
from tests.integration._rig import settings, wait
from tests.rules._city import with_air_stations
from tests.support.services import Influx, Mosquitto

pytestmark = pytest.mark.integration

AIR_EXAMPLE = Path(__file__).resolve().parents[2] / "rules" / "examples" / "more" / "air.yaml"
WHEN_THEN = """
version: 1
rules:
  - id: no2-now
    kind: when_then
    when:
      devices: {family: air}
      threshold: {measure: no2, op: ">", value: 200}
    then:
      alarm: {severity: critical}
"""
DRIVERS = {n: {} for n in ("road_sensor", "lighting_cabinet", "cctv", "water_meter", "air_quality")}


class Air:
    def __init__(self, sup: Supervisor, broker: Mosquitto, station: str, zone: str) -> None:
        self.sup = sup
        self.station = station
        self.zone = zone
        self.sent = 0
        self._pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._pub.connect(broker.host, broker.port)
        self._pub.loop_start()

    def publish(self, **values: Any) -> None:
        body = orjson.dumps({"ts": round(time.time(), 3), **values})
        self._pub.publish(f"city/{self.zone}/air/{self.station}/telemetry", body, qos=1).wait_for_publish(10)
        self.sent += 1
        wait(lambda: self.sup.pipeline.counters.received >= self.sent and not len(self.sup.inbox), 20,
             "the supervisor to receive the station's reading")
        with self.sup.lock:  # the pipeline ran the batch (rules included) under the lock
            pass

    def decisions(self) -> list[Any]:
        with self.sup.lock:
            return list(self.sup.rules.why(self.station))

    def close(self) -> None:
        self._pub.loop_stop()
        self._pub.disconnect()


@pytest.fixture
def air(broker: Mosquitto, influx: Influx, influx_db: str, tmp_path: Path) -> Iterator[Air]:
    city = with_air_stations(generate_city(seed=3, devices=100))
    model = city_from_dict(city)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shutil.copy(AIR_EXAMPLE, rules_dir / "air.yaml")
    (rules_dir / "when_then.yaml").write_text(WHEN_THEN, encoding="utf-8")
    st = settings(broker, influx, influx_db, f"it-air-{tmp_path.name[-16:]}", data_dir=tmp_path / "var",
                  drivers=DRIVERS)
    sup = Supervisor(st, model=model, rule_set=load_rules(rules_dir, model))
    sup.start()
    air = None
    try:
        assert sup.mqtt.wait_connected(10)
        time.sleep(0.3)  # SUBACK
        air = Air(sup, broker, "aq-0001", model.devices["aq-0001"].zone)
        yield air
    finally:
        if air is not None:
            air.close()
        sup.stop()


def _alarms(influx: Influx, db: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in influx.series("SELECT \"text\", \"id\" FROM \"alarms\" WHERE \"element\" = 'aq-0001' "
                           "GROUP BY \"kind\", \"state\", \"severity\"", db):
        tags: dict[str, Any] = s.get("tags") or {}  # type: ignore[assignment]
        values: list[list[Any]] = s["values"]  # type: ignore[assignment]
        out.extend({**tags, "text": v[1], "id": v[2]} for v in values)
    return out


def test_high_no2_raises_an_alarm_through_the_broker(air: Air, influx: Influx, influx_db: str) -> None:
    air.publish(no2=41.0, pm10=22.0)
    assert air.decisions() == [], "41 µg/m3: nothing to say"
    air.publish(no2=250.0, pm10=30.0)
    raised = {d.rule: d for d in air.decisions()}
    assert set(raised) == {"no2-over-200", "no2-now"}
    assert raised["no2-over-200"].text == "aq-0001: no2 = 250.0 > 200.0"
    assert raised["no2-now"].text.startswith("when_then 'no2-now' — aq-0001: no2 = 250.0 > 200.0")
    air.publish(no2=80.0, pm10=30.0)
    assert [d.output for d in air.decisions()] == [1.0, 1.0, 0.0, 0.0]

    assert air.sup.writer.flush(30), "the writer did not flush"
    rows = _alarms(influx, influx_db)
    got = {(r["kind"], r["state"], r["severity"]) for r in rows}
    assert got == {("rule:threshold", "raised", "major"), ("rule:threshold", "cleared", "major"),
                   ("rule:when_then", "raised", "critical"), ("rule:when_then", "cleared", "critical")}
    assert {r["id"] for r in rows} == {"no2-over-200:aq-0001", "no2-now:aq-0001"}
