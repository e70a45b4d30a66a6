"""The supervisor's MQTT sockets through a real Mosquitto: Nagle's algorithm is off on both paths.

paho leaves it on; a command written right after a PUBACK then waited for the broker's TCP
acknowledgement of the PUBACK (Linux delays it up to ~40 ms), which `bench storm` measured as a
50 ms p50 reaction (supervisor/ingest/mqtt.py, ``_no_delay``)."""

from __future__ import annotations

import socket
import time

import pytest

from supervisor.config import MqttConfig
from supervisor.ingest.mqtt import Inbox, MqttIngest
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "plain-paho"])
def test_the_connected_socket_sends_small_packets_at_once(broker: Mosquitto, fast_path: bool) -> None:
    cfg = MqttConfig(host=broker.host, port=broker.port, client_id=f"nodelay-{fast_path}", fast_path=fast_path)
    ing = MqttIngest(cfg, ["city/#"], Inbox())
    ing.start()
    try:
        deadline = time.monotonic() + 10.0
        while not ing.stats.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ing.stats.connected, "no connection to the test broker"
        sock = ing._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        ing.stop()
