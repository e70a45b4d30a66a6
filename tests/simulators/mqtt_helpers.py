"""A counting paho subscriber (QoS 1) for the simulator integration tests."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

SENTINEL = "test/sentinel"


class Collector:
    """Subscribes to ``city/#`` and the sentinel topic; keeps every (topic, payload) received."""

    def __init__(self, host: str, port: int, filters: tuple[str, ...] = ("city/#",)) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._sentinels: set[bytes] = set()
        self._cond = threading.Condition(self._lock)
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe([(f, 1) for f in (*filters, SENTINEL)])
        if not self._subscribed.wait(10):
            raise TimeoutError("no SUBACK")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            if msg.topic == SENTINEL:
                self._sentinels.add(msg.payload)
            else:
                self.messages.append((msg.topic, msg.payload))
            self._cond.notify_all()

    def drain(self, publisher_client: mqtt.Client, timeout: float = 30.0) -> list[tuple[str, bytes]]:
        """Publish a sentinel through the same connection as the data and wait for it: all the
        messages published before it have then been delivered (per-client ordering)."""
        token = uuid.uuid4().hex.encode()
        publisher_client.publish(SENTINEL, token, 1)
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._sentinels and time.monotonic() < deadline:
                self._cond.wait(0.2)
            if token not in self._sentinels:
                raise TimeoutError(f"sentinel not received after {timeout}s ({len(self.messages)} messages)")
            return list(self.messages)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages) and time.monotonic() < deadline:
                self._cond.wait(0.1)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
