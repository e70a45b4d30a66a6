"""Every validation error kind, each with its precise message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from supervisor.model import CityFileError, Problem, city_from_dict, load_city
from tests.model._small import find, ll, pt, small_city

F = "t.json"


def problems(mutate: Callable[[dict[str, Any]], None]) -> list[Problem]:
    city = small_city()
    mutate(city)
    with pytest.raises(CityFileError) as ei:
        city_from_dict(city, F)
    return ei.value.problems


def expect(mutate: Callable[[dict[str, Any]], None], element: str, message: str) -> None:
    found = problems(mutate)
    assert Problem(F, element, message) in found, "\n".join(map(str, found))


def dev(city: dict[str, Any], ident: str) -> dict[str, Any]:
    return find(city, "devices", ident)


def test_small_city_is_valid() -> None:
    model = city_from_dict(small_city(), F)
    assert len(model.devices) == 10
    assert model.timezone == "Europe/Paris"


# ------------------------------------------------------------------ header


def test_wrong_format() -> None:
    expect(lambda c: c.update(format="geojson"), "<root>", "format must be 'urban-supervisor/city', got 'geojson'")


def test_wrong_version() -> None:
    expect(lambda c: c.update(version=2), "<root>", "unsupported version 2 (this reader knows version 1)")


def test_bad_bounds() -> None:
    expect(
        lambda c: c.update(bounds=[3, 48, 2, 49]),
        "<root>",
        "bounds must be [lon_min, lat_min, lon_max, lat_max] with min < max, got [3, 48, 2, 49]",
    )


def test_unknown_timezone() -> None:
    expect(lambda c: c.update(timezone="Mars/Olympus"), "<root>", "unknown timezone 'Mars/Olympus'")


def test_crs_not_metric() -> None:
    expect(
        lambda c: c.update(crs="EPSG:4326"),
        "<root>",
        "crs 'EPSG:4326' is not a projected CRS in metres (distances need one)",
    )


def test_utm_crs_is_picked_from_the_centre() -> None:
    city = small_city()
    city["crs"] = "utm"
    model = city_from_dict(city)
    assert model.crs.to_epsg() == 32631  # Paris, 2.35 E: UTM zone 31 north


# ------------------------------------------------------------------ ids


def test_duplicate_id_across_kinds() -> None:
    expect(lambda c: dev(c, "rs-1").update(id="sw-1"), "sw-1", "duplicate id: already used by a switch")


def test_duplicate_device_id() -> None:
    expect(lambda c: dev(c, "wm-2").update(id="wm-1"), "wm-1", "duplicate id: already used by a device")


def test_duplicate_port_id() -> None:
    def mutate(c: dict[str, Any]) -> None:
        find(c, "switches", "sw-1")["ports"].append({"id": "sw-core:p1", "vlans": [10]})

    expect(mutate, "sw-core:p1", "duplicate id: already used by a port")


def test_invalid_device_id() -> None:
    expect(
        lambda c: dev(c, "rs-1").update(id="rs 1"),
        "devices[7]",
        "device id 'rs 1' is not a valid identifier ([A-Za-z0-9_.:-]+)",
    )


def test_invalid_zone_id() -> None:
    expect(
        lambda c: c["zones"][0].update(id="z/1"),
        "zones[0]",
        "zone id 'z/1' is not a valid identifier ([A-Za-z0-9_.:-]+)",
    )


# ------------------------------------------------------------------ references


def test_dangling_port() -> None:
    expect(lambda c: dev(c, "rs-1").update(port="sw-9:p1"), "rs-1", "port 'sw-9:p1' does not exist")


def test_dangling_zone_and_service() -> None:
    def mutate(c: dict[str, Any]) -> None:
        dev(c, "rs-1").update(zone="z9", service="gas")

    found = problems(mutate)
    assert Problem(F, "rs-1", "zone 'z9' does not exist") in found
    assert Problem(F, "rs-1", "service 'gas' does not exist") in found


def test_dangling_site_power() -> None:
    expect(lambda c: find(c, "sites", "sc-1").update(power="fd-9"), "sc-1", "power 'fd-9' does not exist")


def test_dangling_switch_site() -> None:
    expect(lambda c: find(c, "switches", "sw-1").update(site="sc-9"), "sw-1", "site 'sc-9' does not exist")


def test_dangling_service_gateway() -> None:
    expect(lambda c: find(c, "services", "water").update(gateway="sw-9"), "water", "gateway 'sw-9' does not exist")


def test_dangling_street_zone() -> None:
    expect(lambda c: find(c, "streets", "st-side").update(zone="z2"), "st-side", "zone 'z2' does not exist")


def test_dangling_link_end() -> None:
    expect(lambda c: find(c, "links", "fo-1").update(to="core-2"), "fo-1", "to 'core-2' does not exist")


def test_reference_to_wrong_kind() -> None:
    expect(
        lambda c: dev(c, "wm-1").update(gateway="sc-1"),
        "wm-1",
        "gateway 'sc-1' is a street_cabinet site, expected a radio_gateway site",
    )


def test_power_from_a_pole() -> None:
    expect(
        lambda c: dev(c, "cam-1").update(power="pl-1"),
        "cam-1",
        "power 'pl-1' is a pole site, expected a feeder or a power-distributing site",
    )


def test_site_power_from_a_pole() -> None:
    expect(
        lambda c: find(c, "sites", "rg-1").update(power="pl-1"),
        "rg-1",
        "power 'pl-1' is a pole site, which distributes no power "
        "(expected a feeder or a core, lighting_cabinet, street_cabinet site)",
    )


# ------------------------------------------------------------------ kinds


def test_unknown_site_kind() -> None:
    expect(
        lambda c: find(c, "sites", "pl-1").update(kind="tower"),
        "pl-1",
        "unknown site kind 'tower' (expected one of street_cabinet, lighting_cabinet, pole, "
        "radio_gateway, chamber, core)",
    )


def test_unknown_link_kind() -> None:
    expect(
        lambda c: find(c, "links", "fo-1").update(kind="laser"),
        "fo-1",
        "unknown link kind 'laser' (expected one of fibre, copper, power, duct)",
    )


def test_unknown_family() -> None:
    expect(
        lambda c: dev(c, "rs-1").update(family="gas"),
        "rs-1",
        "unknown family 'gas' (expected one of traffic, lighting, cctv, water, air, lorawan)",
    )


def test_unknown_device_kind() -> None:
    expect(
        lambda c: dev(c, "lamp-1").update(kind="bulb"),
        "lamp-1",
        "unknown kind 'bulb' for family 'lighting' (expected one of lighting_cabinet, lamp)",
    )


def test_driver_does_not_match_family() -> None:
    expect(
        lambda c: dev(c, "cam-1").update(driver="water_meter"),
        "cam-1",
        "driver 'water_meter' does not handle family 'cctv' (it handles water; the native one is 'cctv')",
    )


# ------------------------------------------------------------------ geometry


def test_device_geometry_wrong_type() -> None:
    expect(
        lambda c: dev(c, "rs-1").update(geometry={"type": "LineString", "coordinates": [ll(0, 0), ll(1, 1)]}),
        "rs-1",
        "geometry must be a GeoJSON Point [lon, lat], got 'LineString'",
    )


def test_street_needs_two_positions() -> None:
    expect(
        lambda c: find(c, "streets", "st-side")["geometry"].update(coordinates=[ll(0, 0)]),
        "st-side",
        "needs a list of at least 2 positions",
    )


def test_zone_ring_not_closed() -> None:
    ring = [ll(-500, -500), ll(500, -500), ll(500, 500), ll(-500, 500)]
    expect(
        lambda c: c["zones"][0]["geometry"].update(coordinates=[[*ring, ll(0, 0)]]),
        "z1",
        "Polygon ring is not closed (first and last positions differ)",
    )


def test_site_geometry_wrong_type() -> None:
    expect(
        lambda c: find(c, "sites", "pl-1").update(geometry={"type": "Polygon", "coordinates": []}),
        "pl-1",
        "geometry must be a GeoJSON Point, got type 'Polygon'",
    )


def test_device_outside_bounds() -> None:
    city = small_city()
    far = ll(5000, 0)
    bounds = city["bounds"]
    expect(
        lambda c: dev(c, "rs-1").update(geometry={"type": "Point", "coordinates": far}),
        "rs-1",
        f"position [{far[0]}, {far[1]}] is outside bounds {bounds}",
    )


def test_site_outside_bounds() -> None:
    far = ll(0, -3000)
    bounds = small_city()["bounds"]
    expect(
        lambda c: find(c, "sites", "pl-1").update(geometry=pt(0, -3000)),
        "pl-1",
        f"position [{far[0]}, {far[1]}] is outside bounds {bounds}",
    )


# ------------------------------------------------------------------ paths to the core


def test_switch_without_uplink() -> None:
    found = problems(lambda c: find(c, "switches", "sw-1").pop("uplink"))
    assert Problem(F, "sw-1", "switch has no uplink and is not a core switch") in found
    assert (
        Problem(
            F,
            "rs-1",
            "no path to the core: port 'sw-1:p3' is on switch 'sw-1' whose uplink chain does not reach a core switch",
        )
        in found
    )


def test_uplink_loop() -> None:
    def mutate(c: dict[str, Any]) -> None:
        sw1 = find(c, "switches", "sw-1")
        sw1["ports"].append({"id": "sw-1:down", "vlans": ALL})
        c["links"].append(
            {
                "id": "fo-2",
                "kind": "fibre",
                "from": "sc-1",
                "to": "sc-1",
                "geometry": {"type": "LineString", "coordinates": [ll(0, 0), ll(1, 1)]},
            }
        )
        c["switches"].append(
            {
                "id": "sw-2",
                "site": "sc-1",
                "core": False,
                "ports": [{"id": "sw-2:up", "vlans": ALL}, {"id": "sw-2:p1", "vlans": ALL}],
                "uplink": {"port": "sw-2:up", "to": "sw-1:down", "link": "fo-2"},
            }
        )
        sw1["uplink"] = {"port": "sw-1:up", "to": "sw-2:p1", "link": "fo-1"}

    found = problems(mutate)
    assert Problem(F, "sw-1", "uplink chain loops and never reaches a core switch: sw-1 -> sw-2 -> sw-1") in found


def test_core_switch_with_uplink() -> None:
    expect(
        lambda c: find(c, "switches", "sw-core").update(uplink={"port": "sw-core:p1", "to": "sw-1:up", "link": "fo-1"}),
        "sw-core",
        "a core switch has no uplink",
    )


def test_uplink_port_of_another_switch() -> None:
    expect(
        lambda c: find(c, "switches", "sw-1")["uplink"].update(port="sw-core:p1", to="sw-core:p1"),
        "sw-1",
        "uplink port 'sw-core:p1' belongs to switch 'sw-core', not to this one",
    )


def test_uplink_over_a_power_link() -> None:
    expect(
        lambda c: find(c, "links", "fo-1").update(kind="power"),
        "sw-1",
        "uplink link 'fo-1' is a power link, expected fibre or copper",
    )


def test_gateway_not_connected() -> None:
    found = problems(lambda c: find(c, "sites", "rg-1").update(port=None))
    assert Problem(F, "rg-1", "radio gateway is not connected: it has no port") in found
    for wm in ("wm-1", "wm-2"):
        assert (
            Problem(
                F, wm, "no path to the core: gateway 'rg-1' is not connected to a switch that reaches a core switch"
            )
            in found
        )


def test_vlan_not_on_device_port() -> None:
    expect(
        lambda c: dev(c, "rs-1").update(port="sw-1:p2"),
        "rs-1",
        "service 'traffic' VLAN 30 is not carried on port 'sw-1:p2'",
    )


def test_vlan_not_on_uplink_port() -> None:
    expect(
        lambda c: find(c, "switches", "sw-1")["ports"][0].update(vlans=[10, 20, 40]),
        "rs-1",
        "service 'traffic' VLAN 30 is not carried on uplink port 'sw-1:up' of switch 'sw-1'",
    )


def test_vlan_not_on_upstream_port() -> None:
    expect(
        lambda c: find(c, "switches", "sw-core")["ports"][0].update(vlans=[10, 20, 30]),
        "wm-1",
        "service 'water' VLAN 40 is not carried on port 'sw-core:p1' (uplink of switch 'sw-1')",
    )


def test_port_and_gateway_both_set() -> None:
    expect(
        lambda c: dev(c, "wm-1").update(port="sw-1:p4"), "wm-1", "exactly one of port and gateway must be set, both are"
    )


def test_port_and_gateway_neither_set() -> None:
    expect(
        lambda c: dev(c, "rs-1").update(port=None), "rs-1", "exactly one of port and gateway must be set, neither is"
    )


# ------------------------------------------------------------------ lamps and cabinets


def test_lamp_without_cabinet() -> None:
    expect(lambda c: dev(c, "lamp-2").update(cabinet=None), "lamp-2", "a lamp needs its lighting cabinet ('cabinet')")


def test_lamp_cabinet_is_not_a_cabinet() -> None:
    expect(
        lambda c: dev(c, "lamp-2").update(cabinet="cam-1"),
        "lamp-2",
        "cabinet 'cam-1' is a camera device, expected a lighting_cabinet",
    )


def test_lamp_cabinet_missing() -> None:
    expect(lambda c: dev(c, "lamp-2").update(cabinet="cab-9"), "lamp-2", "cabinet 'cab-9' does not exist")


def test_lamp_on_another_port_than_its_cabinet() -> None:
    def mutate(c: dict[str, Any]) -> None:
        find(c, "switches", "sw-1")["ports"].append({"id": "sw-1:p5", "vlans": [10]})
        dev(c, "lamp-2")["port"] = "sw-1:p5"

    expect(
        mutate,
        "lamp-2",
        "a lamp is reached through its cabinet: it is on 'sw-1:p5' but cabinet 'cab-1' is on 'sw-1:p1'",
    )


def test_cabinet_on_a_non_lamp() -> None:
    expect(
        lambda c: dev(c, "cam-1").update(cabinet="cab-1"),
        "cam-1",
        "only lamps have a 'cabinet', this device is a camera",
    )


# ------------------------------------------------------------------ other fields


def test_non_positive_interval() -> None:
    expect(lambda c: dev(c, "rs-1").update(interval=0), "rs-1", "interval must be a positive number of seconds, got 0")


def test_duplicate_service_vlan() -> None:
    expect(
        lambda c: find(c, "services", "water").update(vlan=10), "water", "vlan 10 is already used by service 'lighting'"
    )


def test_bad_subnet() -> None:
    expect(
        lambda c: find(c, "services", "water").update(subnet="10.40.0.1/16"),
        "water",
        "subnet must be a network in CIDR notation such as 10.1.0.0/16, got '10.40.0.1/16'",
    )


def test_bad_port_vlans() -> None:
    expect(
        lambda c: find(c, "switches", "sw-1")["ports"][1].update(vlans=[5000]),
        "sw-1:p1",
        "vlans must be a list of integers 1..4094, got [5000]",
    )


def test_power_loop() -> None:
    expect(
        lambda c: find(c, "feeders", "fd-1").update(parent="fd-2"), "fd-1", "power supply loops: fd-1 -> fd-2 -> fd-1"
    )


def test_dependency_cycle() -> None:
    # the switch sits in the radio gateway that is plugged into the switch
    found = problems(lambda c: find(c, "switches", "sw-1").update(site="rg-1"))
    assert len(found) == 1
    assert found[0].message.startswith("dependency cycle: ")
    assert {"sw-1", "rg-1", "sw-1:p4"} <= set(found[0].message.removeprefix("dependency cycle: ").split(" -> "))


def test_all_problems_are_reported_together() -> None:
    def mutate(c: dict[str, Any]) -> None:
        dev(c, "rs-1")["port"] = "nowhere"
        dev(c, "wm-2")["interval"] = -1

    found = problems(mutate)
    assert [p.element for p in found] == ["rs-1", "wm-2"]


def test_problem_list_is_capped() -> None:
    city = small_city()
    template = dev(city, "rs-1")
    city["devices"] += [dict(template, id=f"rs-x{i}", port="nowhere") for i in range(1500)]
    with pytest.raises(CityFileError) as ei:
        city_from_dict(city, F)
    assert len(ei.value.problems) == 1000
    assert ei.value.more == 500


# ------------------------------------------------------------------ files


ALL = [10, 20, 30, 40]


def test_load_json_and_yaml(tmp_path: Path) -> None:
    j = tmp_path / "c.json"
    j.write_bytes(orjson.dumps(small_city()))
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump(small_city()))
    assert set(load_city(j).devices) == set(load_city(y).devices)


def test_invalid_json(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text("{nope")
    with pytest.raises(CityFileError) as ei:
        load_city(p)
    assert ei.value.problems[0].file == str(p)
    assert ei.value.problems[0].message.startswith("not valid JSON: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CityFileError) as ei:
        load_city(tmp_path / "absent.json")
    assert ei.value.problems == [
        Problem(str(tmp_path / "absent.json"), "<root>", "cannot read file: No such file or directory")
    ]


def test_top_level_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text("[1, 2]")
    with pytest.raises(CityFileError) as ei:
        load_city(p)
    assert ei.value.problems == [Problem(str(p), "<root>", "top level must be an object, got list")]
