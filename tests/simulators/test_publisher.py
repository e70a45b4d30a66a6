"""The load publisher through a private Mosquitto: exactly N messages, malformed kinds counted."""

from __future__ import annotations

import orjson
import pytest

from simulators.publisher import BAD_KINDS, Publisher, PublishError, expected_from
from simulators.runner import SimulatedCity
from simulators.telemetry import CityTelemetry
from tests.simulators.citydata import small_city
from tests.simulators.mqtt_helpers import Collector
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

ORIGIN = 1_795_000_000.0


def _invalid_json(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return True
    return False


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_publisher_delivers_exactly_n_messages(broker: Mosquitto, protocol: str) -> None:
    tel = CityTelemetry(small_city(), seed=2, origin=ORIGIN)
    msgs = list(tel.due(ORIGIN + 12 * 3600))[:3000]
    assert len(msgs) == 3000
    col = Collector(broker.host, broker.port)
    try:
        with Publisher(broker.host, broker.port, protocol=protocol) as pub:
            rep = pub.run(msgs)
            got = col.drain(pub.client)
    finally:
        col.close()
    assert rep.sent == rep.sent_good == rep.acked == 3000 and rep.complete
    assert sorted(got) == sorted((m.topic, m.payload) for m in msgs)
    fam, pts = expected_from(msgs)
    assert rep.per_family == fam and rep.expected_points == pts


def test_malformed_messages_are_sent_and_counted_per_kind(broker: Mosquitto) -> None:
    tel = CityTelemetry(small_city(), seed=2, origin=ORIGIN)
    msgs = list(tel.due(ORIGIN + 12 * 3600))
    col = Collector(broker.host, broker.port)
    try:
        with Publisher(broker.host, broker.port) as pub:
            rep = pub.run(msgs, count=2000, bad_ratio=0.05, seed=7)
            got = col.drain(pub.client)
    finally:
        col.close()
    assert rep.sent == 2000 == len(got) == rep.acked
    assert set(rep.sent_bad_by_kind) == set(BAD_KINDS) and all(v > 0 for v in rep.sent_bad_by_kind.values())
    assert 40 <= rep.sent_bad <= 160
    bad = rep.sent_bad_by_kind
    assert sum(_invalid_json(p) for _, p in got) == bad["invalid_json"] + bad["nan_text"]
    assert sum("/unknown/" in t for t, _ in got) == bad["unknown_topic"]
    assert sum(len(p) > 256 * 1024 for _, p in got) == bad["oversized"]
    good = [p for t, p in got if "/unknown/" not in t and not _invalid_json(p) and len(p) < 256 * 1024]
    typed = [orjson.loads(p) for p in good]
    assert sum(any(v == "n/a" for v in b.values()) for b in typed) == bad["wrong_type"]
    assert sum(any(v == -1000.0 for v in b.values()) for b in typed) == bad["out_of_range"]
    assert rep.sent_good == len(got) - rep.sent_bad


def test_rate_limit_is_bounded_and_runs_stop_on_count(broker: Mosquitto) -> None:
    tel = CityTelemetry(small_city(), seed=2, origin=ORIGIN)
    with Publisher(broker.host, broker.port) as pub:
        rep = pub.run(tel.due(ORIGIN + 86400), count=300, rate=3000.0)
    assert rep.sent == 300 == rep.acked
    # 300 messages at 3000 msg/s cannot take less than ~0.1 s (the limiter sleeps)
    assert rep.elapsed >= 0.08


def test_connection_errors_are_specific() -> None:
    from tests.support.services import free_port

    port = free_port()
    with pytest.raises(PublishError, match=f"127.0.0.1:{port}"):
        Publisher("127.0.0.1", port, connect_timeout=2).connect()
    with pytest.raises(ValueError, match="protocol"):
        Publisher(protocol="4")
    with pytest.raises(ValueError, match="window"):
        Publisher(max_inflight=10, window=20)


def test_simulated_city_load_run_in_stepped_time(broker: Mosquitto) -> None:
    col = Collector(broker.host, broker.port)
    try:
        with SimulatedCity(small_city(), host=broker.host, port=broker.port, speed=None, start=ORIGIN,
                           bad_ratio=0.02, seed=3) as sim:
            rep = sim.run(messages=5000)
            got = col.drain(sim.publisher.client)
            summary = sim.summary(rep)
    finally:
        col.close()
    assert rep.sent == 5000 == rep.acked == len(got)
    assert summary["sent_bad"] == rep.sent_bad > 0
    assert sim.clock.now() - ORIGIN > 12 * 3600  # ~6,500 messages a simulated day
