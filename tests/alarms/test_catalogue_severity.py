"""Device alarms take their severity from the family catalogue, air stations and run-time families included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers import catalogue
from drivers.catalogue import DeviceKind, Family, MeasureSpec
from simulators.city import generate_city
from supervisor.alarms import AlarmManager
from supervisor.model import city_from_dict


@pytest.fixture
def bays() -> Iterator[Family]:
    fam = catalogue.register_family(Family(
        "parking", kinds=(DeviceKind("parking_sensor", "critical"),),
        measures={"occupied": MeasureSpec("bool", bool)}, driver="parking_sensor", interval=300.0))
    yield fam
    catalogue.unregister_family("parking")


def test_air_station_alarm() -> None:
    model = city_from_dict(generate_city(seed=3, devices=60, air_per_zone=1))
    station = next(d for d in model.devices.values() if d.kind == "air_station")
    (change,) = AlarmManager(model).update({station.id}, now=100.0)
    alarm = change.alarm
    assert (alarm.kind, alarm.element, alarm.services) == ("device", station.id, ("air",))
    assert alarm.severity == catalogue.kind("air_station").severity
    assert alarm.text == f"air_station {station.id} silent or faulty"


def test_a_family_registered_at_run_time_raises_at_its_severity(bays: Family) -> None:
    city = generate_city(seed=3, devices=60, air_per_zone=1)
    station = next(d for d in city["devices"] if d["kind"] == "air_station")
    city["devices"].append({**station, "id": "bay-1", "family": "parking", "kind": "parking_sensor",
                            "driver": "parking_sensor"})
    mgr = AlarmManager(city_from_dict(city))
    (change,) = mgr.update({"bay-1"}, now=100.0)
    assert change.alarm.severity == "critical"
