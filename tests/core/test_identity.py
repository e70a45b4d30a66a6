"""Identity mapping: source identifiers → devices of the city model, through the real pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from drivers import Command
from simulators.city import generate_city
from supervisor.config import load_settings
from supervisor.ingest.identity import UNPLACED, IdentityMap
from supervisor.model import city_from_dict
from supervisor.runtime import CommandRefusedError, Supervisor


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return city_from_dict(generate_city(seed=4, devices=60))


def _sup(tmp_path: Path, model, **identity: object) -> Supervisor:  # type: ignore[no-untyped-def]
    settings = load_settings(None, mode="test", data_dir=str(tmp_path), api={"enabled": False},
                             storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3")},
                             drivers={"lighting_cabinet": {}, "tasmota": {}}, identity=identity)
    return Supervisor(settings, model=model)


def _lamp(model) -> str:  # type: ignore[no-untyped-def]
    return next(d.id for d in model.devices.values() if d.kind == "lamp")


def test_tasmota_topic_maps_to_its_model_lamp_and_zone(tmp_path: Path, model) -> None:  # type: ignore[no-untyped-def]
    lamp = _lamp(model)
    sup = _sup(tmp_path, model, map={"tasmota": {"tasmota_A1B2C3": lamp}})
    payload = orjson.dumps({"POWER": "ON", "Dimmer": 40})
    sup.pipeline.process([("stat/tasmota_A1B2C3/RESULT", payload, 1, 1, time.time())])
    assert sup.pipeline.counters.error_total == 0
    st = sup.state.get(lamp)
    assert st is not None and st.values["level"] == 40.0 and st.zone == model.devices[lamp].zone
    # commands to the model device go out on the source's own topic
    sup.mqtt.publish = lambda *a, **k: None  # type: ignore[method-assign]  # no broker in this unit test
    assert sup.send_command(Command(lamp, "set_level", 70.0)) == ["cmnd/tasmota_A1B2C3/Dimmer"]


def test_unknown_identifiers_are_refused_counted_and_reported(tmp_path: Path, model) -> None:  # type: ignore[no-untyped-def]
    sup = _sup(tmp_path, model)
    sup.pipeline.process([("stat/tasmota_FFFFFF/RESULT", b'{"POWER":"ON","Dimmer":10}', 1, 1, time.time())] * 3)
    assert sup.pipeline.counters.errors_by_reason() == {"unknown_device": 3}
    assert sup.pipeline.identity is not None
    assert sup.pipeline.identity.report() == [
        {"driver": "tasmota", "source": "tasmota_FFFFFF", "messages": 3, "policy": "refuse"}]
    assert sup.state.get("tasmota_FFFFFF") is None
    with pytest.raises(CommandRefusedError, match="unknown device"):
        sup.send_command(Command("tasmota_FFFFFF", "set_level", 50.0))


def test_unknown_identifiers_can_be_registered_as_unplaced(tmp_path: Path, model) -> None:  # type: ignore[no-untyped-def]
    sup = _sup(tmp_path, model, unknown="unplaced")
    sup.pipeline.process([("stat/tasmota_EEEEEE/RESULT", b'{"POWER":"ON","Dimmer":10}', 1, 1, time.time())])
    assert sup.pipeline.counters.error_total == 0
    st = sup.state.get("tasmota_EEEEEE")
    assert st is not None and st.zone == UNPLACED
    assert sup.summary()["identity"]["unplaced"] == 1


def test_without_a_model_every_identifier_is_accepted_as_is() -> None:
    ident = IdentityMap({"zigbee2mqtt": {"park:lamp_12": "lamp-000012"}})
    assert ident.resolve("zigbee2mqtt", "park:lamp_12") == ("lamp-000012", None)
    assert ident.resolve("zigbee2mqtt", "other") == ("other", None)
    assert ident.source_of("zigbee2mqtt", "lamp-000012") == "park:lamp_12"
    assert ident.report() == []
