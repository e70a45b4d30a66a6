from __future__ import annotations

import pytest

from drivers import Decoded, Driver
from supervisor.ingest.router import Router, TopicCollisionError, topic_matches


def _driver(name: str, *topics: str) -> Driver:
    cls = type(name, (Driver,), {
        "name": name, "families": ("traffic",), "topics": topics, "measures": {},
        "decode": lambda self, topic, payload: Decoded(),
    })
    return cls()


@pytest.mark.parametrize(("flt", "topic", "ok"), [
    ("city/+/traffic/+/telemetry", "city/z1/traffic/rs-1/telemetry", True),
    ("city/+/traffic/+/telemetry", "city/z1/traffic/rs-1/event", False),
    ("city/+/traffic/+/telemetry", "city/z1/traffic/telemetry", False),
    ("tele/#", "tele/lamp/STATE", True),
    ("tele/#", "tele", True),
    ("#", "$SYS/broker/uptime", False),
    ("+/x", "$SYS/x", False),
    ("a/b", "a/b/c", False),
])
def test_topic_matches(flt: str, topic: str, ok: bool) -> None:
    assert topic_matches(flt, topic) is ok


def test_router_routes_each_topic_to_its_driver_and_caches() -> None:
    traffic = _driver("t", "city/+/traffic/+/telemetry")
    cctv = _driver("c", "city/+/cctv/+/telemetry", "city/+/cctv/+/event")
    tas = _driver("tas", "tele/#")
    r = Router([traffic, cctv, tas])
    assert r.route("city/z1/traffic/rs-1/telemetry") is traffic
    assert r.route("city/z1/cctv/cam-1/event") is cctv
    assert r.route("tele/lamp-1/SENSOR") is tas
    assert r.route("city/z1/water/wm-1/telemetry") is None
    assert r.route("city/z1/traffic/rs-1/telemetry") is traffic  # from the cache
    assert r.candidates("city/z1/cctv/cam-1/event") == [cctv]


def test_router_exact_level_beats_wildcard() -> None:
    generic = _driver("g", "city/+/x")
    special = _driver("s", "city/special/x")
    r = Router([generic, special])
    assert r.route("city/special/x") is special
    assert r.route("city/other/x") is generic


def test_router_refuses_two_drivers_on_one_filter() -> None:
    with pytest.raises(TopicCollisionError, match="claimed by 'a' and 'b'"):
        Router([_driver("a", "x/+"), _driver("b", "x/+")])


def test_router_cache_is_bounded() -> None:
    r = Router([_driver("t", "city/#")], cache_size=10)
    for i in range(100):
        assert r.route(f"city/{i}") is not None
    assert len(r._cache) <= 10
