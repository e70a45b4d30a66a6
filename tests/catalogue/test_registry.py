"""The family catalogue: validation, run-time registration, and every reader agreeing with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import drivers
from drivers import CANONICAL, FAMILIES, catalogue, measures_of, spec, unit_of
from drivers.catalogue import CatalogueError, DeviceKind, Family, MeasureSpec, UnknownFamilyError, UnknownKindError
from simulators import telemetry
from simulators.city import DEFAULT_AIR_PER_ZONE, generate_city
from supervisor.alarms._manager import DEVICE_SEVERITY
from supervisor.cli import main
from supervisor.config import Settings
from supervisor.model import city_from_dict
from supervisor.model._load import FAMILIES as MODEL_FAMILIES

BUILTIN = ("traffic", "lighting", "cctv", "water", "air", "lorawan")


def parking(**kw: object) -> Family:
    args: dict[str, object] = {
        "name": "parking",
        "kinds": (DeviceKind("parking_sensor", "minor"),),
        "measures": {"occupied": MeasureSpec("bool", bool, doc="a vehicle is on the bay")},
        "driver": "parking_sensor",
        "interval": 300.0,
    }
    args.update(kw)
    return Family(**args)  # type: ignore[arg-type]


@pytest.fixture
def registered() -> Iterator[Family]:
    fam = catalogue.register_family(parking())
    yield fam
    catalogue.unregister_family("parking")


def test_builtin_families_in_order() -> None:
    assert tuple(FAMILIES) == BUILTIN
    assert catalogue.family("air").kind_names == ("air_station",)
    assert catalogue.kind("lighting_cabinet").severity == "major"
    assert catalogue.family_of_kind("lamp").name == "lighting"
    assert catalogue.family("air").title == "Air quality" and catalogue.family("water").service == "water"


def test_run_time_registration_shows_in_every_view(registered: Family) -> None:
    assert "parking" in FAMILIES and FAMILIES[-1] == "parking" and len(FAMILIES) == len(BUILTIN) + 1
    assert CANONICAL["parking"]["occupied"].kind is bool
    assert spec("parking", "occupied") is registered.measures["occupied"]
    assert unit_of("parking", "occupied") == "bool" and measures_of("parking") == {("parking", "occupied"): "bool"}
    assert MODEL_FAMILIES["parking"] == (("parking_sensor",), "parking_sensor")
    assert DEVICE_SEVERITY["parking_sensor"] == "minor"
    assert Settings().state.families["parking"].interval == 300.0


def test_unregister_removes_it_everywhere() -> None:
    catalogue.register_family(parking())
    catalogue.unregister_family("parking")
    assert "parking" not in FAMILIES and "parking" not in CANONICAL and "parking_sensor" not in DEVICE_SEVERITY
    with pytest.raises(UnknownFamilyError, match="unknown family 'parking'; known families: traffic, "):
        catalogue.family("parking")
    with pytest.raises(UnknownFamilyError):
        catalogue.unregister_family("air")  # a built-in family stays


def test_names_and_kinds_are_unique(registered: Family) -> None:
    with pytest.raises(CatalogueError, match="family 'parking' is already in the catalogue"):
        catalogue.register_family(parking())
    assert catalogue.register_family(parking(interval=60.0), replace=True).interval == 60.0
    with pytest.raises(CatalogueError, match="family 'air' is already in the catalogue"):
        catalogue.register_family(parking(name="air"), replace=True)  # replace is for registered ones only
    with pytest.raises(CatalogueError, match="kind 'lamp' already belongs to family 'lighting'"):
        catalogue.register_family(parking(name="bays", kinds=(DeviceKind("lamp"),)))


@pytest.mark.parametrize(("kw", "message"), [
    ({"name": "Parking"}, "family name 'Parking' must be a lower-case identifier"),
    ({"name": "class"}, "must be a lower-case identifier"),
    ({"kinds": ()}, "needs at least one device kind"),
    ({"kinds": ("parking_sensor",)}, "kinds must be DeviceKind objects"),
    ({"kinds": (DeviceKind("bay"), DeviceKind("bay"))}, "kind 'bay' listed twice"),
    ({"kinds": (DeviceKind("bay", "fatal"),)}, "severity 'fatal' is not one of"),  # type: ignore[arg-type]
    ({"measures": {}}, "needs at least one measure"),
    ({"measures": {"occupied": MeasureSpec("bool", list)}}, "measure 'occupied' needs a MeasureSpec typed"),
    ({"measures": {"Occupied": MeasureSpec("bool", bool)}}, "measure 'Occupied' must be a lower-case"),
    ({"interval": 0}, "interval must be a positive number of seconds, got 0"),
    ({"interval": True}, "interval must be a positive number"),
    ({"driver": "Parking Sensor"}, "driver 'Parking Sensor' must be"),
    ({"faults": {"blocked": "blocked"}}, "fault measure 'blocked' must be one of its bool or str measures"),
])
def test_a_bad_family_is_refused_with_a_precise_error(kw: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        parking(**kw)


def test_families_are_read_only() -> None:
    fam = catalogue.family("air")
    with pytest.raises(AttributeError):
        fam.interval = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        fam.measures["no2"] = MeasureSpec("ppb", float)  # type: ignore[index]
    with pytest.raises(TypeError):
        catalogue.families()["air"] = fam  # type: ignore[index]
    with pytest.raises(UnknownKindError, match="unknown device kind 'toaster'; known kinds: air_station, "):
        catalogue.kind("toaster")


def test_each_native_driver_is_installed_and_decodes_its_family() -> None:
    installed = drivers.available()
    for fam in catalogue.families().values():
        assert fam.name in installed[fam.driver].families, fam.name
    for name, cls in installed.items():
        assert set(cls.families) <= set(FAMILIES), name


def test_readers_agree_with_the_catalogue() -> None:
    defaults = Settings()
    for fam in catalogue.families().values():
        assert defaults.state.families[fam.name].interval == fam.interval
        assert defaults.drivers[fam.driver].enabled
        assert telemetry.DEFAULT_INTERVAL[fam.name] == fam.interval  # the simulator behaves like every family
        for k in fam.kinds:
            assert DEVICE_SEVERITY[k.name] == k.severity
            assert telemetry.KINDS[k.name] == fam.name


def test_generated_air_stations_load_into_the_model() -> None:
    city = generate_city(seed=3, devices=300, air_per_zone=2)
    model = city_from_dict(city)
    air = [d for d in model.devices.values() if d.kind == "air_station"]
    assert len(air) == 2 * len(model.zones)
    assert {d.driver for d in air} == {"air_quality"} and {d.service for d in air} == {"air"}
    assert all(d.interval == 600.0 and d.power is not None and d.port is not None for d in air)
    assert "air" in model.dependencies(air[0].id)  # reachable over its service's VLAN
    assert len(model.devices) == 300  # the stations are part of the devices asked for
    assert generate_city(seed=3, devices=300) == generate_city(seed=3, devices=300, air_per_zone=0)
    too_few = r"at least 5 devices \(one per kind\) besides its 8 air stations \(4 in each of 2 zones\), got 12"
    with pytest.raises(ValueError, match=too_few):
        generate_city(devices=12, zones=2, air_per_zone=4)


def test_model_generate_places_air_stations(tmp_path: Path) -> None:
    out = tmp_path / "city.json"
    assert main(["model", "generate", "--devices", "400", "--seed", "5", str(out)]) == 0
    devices = orjson.loads(out.read_bytes())["devices"]
    zones = {d["zone"] for d in devices}
    assert len(devices) == 400
    assert sum(d["kind"] == "air_station" for d in devices) == DEFAULT_AIR_PER_ZONE * len(zones)
    assert main(["model", "generate", "--devices", "400", "--air-per-zone", "0", str(out)]) == 0
    assert not any(d["kind"] == "air_station" for d in orjson.loads(out.read_bytes())["devices"])


def test_a_family_s_fault_measures_make_its_devices_faulty(registered: Family) -> None:
    from drivers import Reading
    from supervisor.state.registry import FAULT, OK, StateRegistry

    catalogue.register_family(parking(faults={"occupied": "bay blocked"}), replace=True)
    reg = StateRegistry({"parking": 300.0})
    change = reg.update(Reading("bay-1", "parking", {"occupied": True}, zone="z1"), now=1.0, ts=1.0)
    assert change is not None and (change.new, change.reason) == (FAULT, "bay blocked")
    change = reg.update(Reading("bay-1", "parking", {"occupied": False}, zone="z1"), now=2.0, ts=2.0)
    assert change is not None and change.new == OK
    # the built-in signals, now read from the catalogue
    assert catalogue.family("cctv").faults == {"tamper": "tamper"}
    assert catalogue.family("water").faults == {"alarms": "alarm"}
