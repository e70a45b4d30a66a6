"""The plain paho path's on_message (mqtt.fast_path: false), without a broker: the inbox bound holds
paho's thread, a stop releases it without losing the message, and a non-UTF-8 topic is counted."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from supervisor.config import MqttConfig
from supervisor.ingest.mqtt import Inbox, MqttIngest


def _full(n: int) -> tuple[MqttIngest, Inbox]:
    inbox = Inbox(max_items=n)
    inbox.put_many([("city/x", b"{}", i + 1, 1, 0.0) for i in range(n)])
    ing = MqttIngest(MqttConfig(fast_path=False), ["city/#"], inbox)
    assert not ing.fast_path
    return ing, inbox


def _deliver_in_thread(ing: MqttIngest, mid: int, topic: bytes = b"city/y") -> threading.Thread:
    msg = mqtt.MQTTMessage(mid=mid, topic=topic)
    msg.payload = b'{"v": 1}'
    msg.qos = 1
    t = threading.Thread(target=ing._on_message, args=(ing._client, None, msg), daemon=True)
    t.start()
    return t


def test_a_full_inbox_holds_the_network_thread_until_the_pipeline_takes() -> None:
    ing, inbox = _full(100)
    t = _deliver_in_thread(ing, 500)
    time.sleep(0.3)
    assert t.is_alive() and len(inbox) == 100 and ing.stats.received == 0  # waiting: the socket is not read
    assert len(inbox.take(10)) == 10
    t.join(5)
    assert not t.is_alive()
    assert ing.stats.received == 1 and inbox.take(1000)[-1][:3] == ("city/y", b'{"v": 1}', 500)
    assert inbox.full_waits >= 1


def test_a_stop_releases_a_waiting_network_thread_and_keeps_the_message() -> None:
    ing, inbox = _full(100)
    t = _deliver_in_thread(ing, 501)
    time.sleep(0.2)
    assert t.is_alive()
    ing._stopping.set()  # what stop() does before disconnecting
    t.join(5)
    assert not t.is_alive()
    assert len(inbox) == 101  # past the bound rather than lost (unacknowledged: the broker has it too)


def test_a_topic_that_is_not_utf8_is_counted_and_handed_on() -> None:
    inbox = Inbox(max_items=100)
    ing = MqttIngest(MqttConfig(fast_path=False), ["city/#"], inbox)
    _deliver_in_thread(ing, 7, b"city/\xff/x").join(5)
    assert ing.stats.bad_topics == 1
    ((topic, _, mid, qos, _),) = inbox.take(10)
    assert (topic, mid, qos) == ("city/\ufffd/x", 7, 1)  # the pipeline refuses and counts it
