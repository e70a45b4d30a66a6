"""The bulk raw-socket publisher through a private Mosquitto: every message delivered once, in order."""

from __future__ import annotations

import getpass
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from simulators.publisher import PublishError
from simulators.rawpub import RawPublisher, connect_packet, publish_packet
from tests.simulators.mqtt_helpers import SENTINEL, Collector
from tests.support.services import Mosquitto, free_port, mosquitto

pytestmark = pytest.mark.integration


def _wait_sentinel(col: Collector, token: bytes, timeout: float = 30.0) -> list[tuple[str, bytes]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with col._cond:
            if token in col._sentinels:
                return list(col.messages)
            col._cond.wait(0.1)
    raise TimeoutError(f"sentinel not received ({len(col.messages)} messages)")


def test_packets_are_encoded_as_mqtt_311() -> None:
    # CONNECT: "MQTT", level 4, clean session, keepalive 60, client id "c"
    assert connect_packet("c", 60) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    with_auth = connect_packet("c", 0, "u", "p")
    assert with_auth[9] == 0x02 | 0x80 | 0x40 and with_auth.endswith(b"\x00\x01u\x00\x01p")
    # PUBLISH QoS 1: remaining length as a varint once it passes 127 bytes
    small = publish_packet(b"\x00\x01t", b"x", 7)
    assert small == b"\x32\x06\x00\x01t\x00\x07x"
    big = publish_packet(b"\x00\x01t", b"x" * 200, 0x1234)
    assert big[:3] == b"\x32\xcd\x01" and big[6:8] == b"\x12\x34" and len(big) == 3 + 205


def test_every_message_arrives_once_and_in_order(broker: Mosquitto) -> None:
    n = 20_000
    msgs = [(f"city/z{i % 3}/traffic/d{i % 50}/telemetry", b'{"seq": %d}' % i) for i in range(n)]
    token = uuid.uuid4().hex.encode()
    col = Collector(broker.host, broker.port)
    try:
        # a small window wraps nothing, a chunk that does not divide n tests the tail
        with RawPublisher(broker.host, broker.port, window=700, chunk=333) as pub:
            rep = pub.run([*msgs, (SENTINEL, token)])
        got = _wait_sentinel(col, token)
    finally:
        col.close()
    assert rep.sent == rep.acked == n + 1 and rep.complete
    assert rep.bytes_sent == sum(len(p) for _, p in msgs) + len(token)
    assert got == msgs


def test_packet_ids_wrap_around(broker: Mosquitto) -> None:
    n = 70_000  # more than the 65,535 packet ids
    with RawPublisher(broker.host, broker.port, window=60_000, chunk=1000) as pub:
        rep = pub.run(("t/wrap", b"x") for _ in range(n))
    assert rep.sent == rep.acked == n


def test_rate_and_duration_bound_a_run(broker: Mosquitto) -> None:
    with RawPublisher(broker.host, broker.port) as pub:
        rep = pub.run((("t/rate", b"x") for _ in range(300)), rate=3000.0)
        assert rep.sent == rep.acked == 300
        assert rep.elapsed >= 0.08  # 300 messages at 3000 msg/s: the pacing sleeps ~0.1 s
        endless = (("t/rate", b"x") for _ in iter(int, 1))
        rep = pub.run(endless, rate=1000.0, duration=0.3)
    assert rep.complete and 0 < rep.sent <= 1000 * 0.3 + 250  # at most one chunk past the bound


def test_refusals_and_bad_arguments_are_specific(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(PublishError, match=f"127.0.0.1:{port}.*connect failed"):
        RawPublisher("127.0.0.1", port, connect_timeout=2).connect()
    for kwargs, what in (({"window": 0}, "window"), ({"window": 10, "chunk": 20}, "chunk"),
                         ({"keepalive": -1}, "keepalive")):
        with pytest.raises(ValueError, match=what):
            RawPublisher(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(PublishError, match="not connected"):
        RawPublisher().run([])
    pwfile = tmp_path / "passwd"
    pwfile.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "load", "s3cret-load"], check=True)
    extra = f"user {getpass.getuser()}\nallow_anonymous false\npassword_file {pwfile}\n"
    with mosquitto(tmp_path / "m", extra_conf=extra) as b:
        with pytest.raises(PublishError, match="CONNACK return code 5"):
            RawPublisher(b.host, b.port, username="load", password="wrong").connect()
        with RawPublisher(b.host, b.port, username="load", password="s3cret-load") as pub:
            assert pub.run([("t/auth", b"ok")]).acked == 1


def test_a_simulated_city_in_bulk_sends_exactly_what_it_reports(broker: Mosquitto) -> None:
    from simulators.runner import SimulatedCity
    from tests.simulators.citydata import small_city

    origin = 1_795_000_000.0
    col = Collector(broker.host, broker.port)
    try:
        with SimulatedCity(small_city(), host=broker.host, port=broker.port, speed=None, start=origin, seed=3,
                           bulk=True, responders=False) as sim:
            rep = sim.run(messages=4000)
            assert sim.bulk_publisher is not None
            token = uuid.uuid4().hex.encode()
            sim.bulk_publisher.run([(SENTINEL, token)])  # same connection: arrives after the data
            got = _wait_sentinel(col, token)
            summary = sim.summary(rep)
    finally:
        col.close()
    assert rep.sent == rep.sent_good == rep.acked == 4000 == len(got) and rep.complete
    assert sum(rep.per_family.values()) == 4000 and summary["sent_bad"] == 0
    fams = {t.split("/")[2] for t, _ in got}
    assert fams == set(rep.per_family)


def test_bulk_refuses_what_it_cannot_do(broker: Mosquitto) -> None:
    from simulators.publisher import TlsOptions
    from simulators.runner import SimulatedCity
    from tests.simulators.citydata import small_city

    with pytest.raises(ValueError, match="plain TCP"):
        SimulatedCity(small_city(), port=broker.port, bulk=True, tls=TlsOptions(insecure=True), responders=False)
    with pytest.raises(ValueError, match="bad_ratio"):
        SimulatedCity(small_city(), port=broker.port, bulk=True, bad_ratio=0.1, responders=False)
