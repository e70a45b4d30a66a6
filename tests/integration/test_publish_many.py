"""The fast path's batched publishing through a real Mosquitto: every command arrives, in order, and
the batch is queued as one write (one ``send`` by paho's loop thread, not one per packet)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from supervisor.ingest._paho_fast import FastClient
from tests.support.services import Mosquitto


def test_a_batch_of_commands_arrives_whole_in_order_from_one_queued_write(broker: Mosquitto,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sub, subscribed, got, done = _subscriber(broker, "pm", 300)
    pub = FastClient(CallbackAPIVersion.VERSION2, client_id="pm-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    queued: list[tuple[int, int]] = []  # (command, bytes) of each packet handed to paho's writer
    base = mqtt.Client._packet_queue

    def counting(self: mqtt.Client, command: int, packet: bytes, mid: int, qos: int,  # noqa: PLR0917 (paho's)
                 info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        if self is pub:
            queued.append((command & 0xF0, len(packet)))
        return base(self, command, packet, mid, qos, info)

    monkeypatch.setattr(mqtt.Client, "_packet_queue", counting)
    try:
        assert subscribed.wait(5)
        _wait(pub.is_connected)
        batch = [(f"pm/{i % 10}/cmd", b'{"level": %d}' % i, 1, False) for i in range(300)]
        infos = pub.publish_many(batch)
        assert all(i.rc == mqtt.MQTT_ERR_SUCCESS for i in infos)
        assert [c for c, _ in queued] == [0x30], "300 PUBLISH packets queued as one write"
        assert done.wait(10), f"{len(got)} of 300 arrived"
        assert got == [(t, p) for t, p, _, _ in batch]
        _wait(lambda: all(i.is_published() for i in infos))  # every PUBACK came back to paho
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()
        sub.loop_stop()


@pytest.mark.parametrize("callback", [False, True], ids=["fast-puback", "paho-puback"])
def test_pubacks_release_the_in_flight_window_and_send_what_waited(broker: Mosquitto, callback: bool) -> None:
    """A window of 5 in flight for 200 commands: each PUBACK (ours, or paho's when ``on_publish`` is set)
    must let the next queued command go, until every one is published and nothing is left held."""
    sub, subscribed, got, done = _subscriber(broker, "pa", 200)
    pub = FastClient(CallbackAPIVersion.VERSION2, client_id="pa-pub", protocol=mqtt.MQTTv5)
    pub.deliver = lambda _messages: None  # the batched read path, as MqttIngest sets it (else paho reads)
    acked: list[int] = []
    if callback:
        pub.on_publish = lambda _c, _u, mid, _rc, _p: acked.append(mid)
    pub.max_inflight_messages_set(5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        assert subscribed.wait(5)
        _wait(pub.is_connected)
        infos = pub.publish_many([(f"pa/{i % 7}/cmd", b"%d" % i, 1, False) for i in range(200)])
        assert done.wait(10), f"{len(got)} of 200 arrived"
        assert [p for _, p in got] == [b"%d" % i for i in range(200)]
        _wait(lambda: all(i.is_published() for i in infos))
        assert pub._out_messages == {} and pub._inflight_messages == 0
        assert sorted(acked) == (sorted(i.mid for i in infos) if callback else [])
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()
        sub.loop_stop()


def _subscriber(broker: Mosquitto, prefix: str, n: int) -> tuple[mqtt.Client, threading.Event,
                                                                  list[tuple[str, bytes]], threading.Event]:
    """A QoS 1 subscriber to ``prefix/#``, started: (client, subscribed, (topic, payload) received, ``n`` received)."""
    got: list[tuple[str, bytes]] = []
    done, subscribed = threading.Event(), threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-sub", protocol=mqtt.MQTTv5)
    sub.on_subscribe = lambda *_: subscribed.set()

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        got.append((m.topic, bytes(m.payload)))
        if len(got) == n:
            done.set()

    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"{prefix}/#", qos=1)
    sub.loop_start()
    return sub, subscribed, got, done


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_malformed_mqtt311_puback_is_left_to_paho_which_drops_the_connection() -> None:
    """A PUBACK of 3 bytes is malformed in MQTT 3.1.1: the fast path must not swallow it as a valid one."""
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    dropped = threading.Event()

    def fake_broker() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK, accepted
            time.sleep(0.2)
            conn.sendall(bytes([0x40, 0x03, 0x00, 0x01, 0x00]))  # PUBACK with one byte too many
            conn.settimeout(5)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass
            dropped.set()  # the client closed the connection

    t = threading.Thread(target=fake_broker, daemon=True)
    t.start()
    client = FastClient(CallbackAPIVersion.VERSION2, client_id="pa-malformed", protocol=mqtt.MQTTv311)
    client.deliver = lambda _messages: None
    reasons: list[object] = []
    client.on_disconnect = lambda _c, _u, _f, rc, _p: reasons.append(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert dropped.wait(5), "the client kept a connection that sent a malformed PUBACK"
        _wait(lambda: bool(reasons))
        assert reasons[0] != 0
    finally:
        client.loop_stop()
        srv.close()
