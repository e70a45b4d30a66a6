"""Load generation for the bench scenarios: pre-generated messages, a publisher subprocess, baselines.

The publisher runs in its own process so that it does not share the GIL with the consumer being
measured; it reads pre-generated messages from a file (one JSON array per line).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson


def generate_messages(devices: int, count: int, seed: int = 1, hours_back: float = 12.0,
                      origin: float | None = None) -> list[Any]:
    """``count`` native telemetry messages of a generated city, device clocks in the recent past
    (from ``origin``, UTC epoch s, or ``hours_back`` hours before now)."""
    from simulators.city import generate_city
    from simulators.telemetry import CityTelemetry

    city = generate_city(seed=seed, devices=devices)
    tel = CityTelemetry(city, seed=seed, origin=time.time() - hours_back * 3600 if origin is None else origin)

    def gen() -> Iterator[Any]:
        for _ in range(10_000_000):
            yield from tel.due(tel.next_due())

    return list(islice(gen(), count))


def write_messages(path: Path, messages: list[Any]) -> dict[str, int]:
    """Write messages for the publisher process; returns the expected points per measurement."""
    expected: dict[str, int] = {}
    with open(path, "wb") as f:
        for m in messages:
            f.write(orjson.dumps([m.topic, m.payload.decode()]) + b"\n")
            expected[m.measurement] = expected.get(m.measurement, 0) + m.points
            if m.events:
                expected["events"] = expected.get("events", 0) + m.events
    return expected


class PublisherProcess:
    """``python -m supervisor.bench._load publish``: publishes a messages file, waits for PUBACKs."""

    def __init__(self, host: str, port: int, path: Path, rate: float | None = None) -> None:
        cmd = [sys.executable, "-m", "supervisor.bench._load", "--host", host, "--port", str(port), str(path)]
        if rate:
            cmd += ["--rate", str(rate)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait(self, timeout: float = 600.0) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"publisher failed ({self.proc.returncode}): {err.decode(errors='replace')[-800:]}")
        result: dict[str, Any] = json.loads(out)
        return result


def publish_file(host: str, port: int, path: Path, rate: float | None = None) -> dict[str, Any]:
    """Publish a messages file at QoS 1 with the bulk publisher; every PUBACK is waited for.

    ``first_send`` in the answer is the ``time.monotonic()`` of the first publish (the clock is
    shared by every process of the machine): rates are timed from it, not from process start-up.
    """
    from simulators.rawpub import RawPublisher

    msgs: list[tuple[str, bytes]] = []
    with open(path, "rb") as f:
        for line in f:
            topic, payload = orjson.loads(line)
            msgs.append((topic, payload.encode()))
    with RawPublisher(host, port) as pub:
        rep = pub.run(msgs, rate=rate, ack_timeout=300)
    if not rep.complete:
        raise RuntimeError(f"publisher: {rep.sent - rep.acked} of {rep.sent} messages unacknowledged")
    return rep.to_dict()


def mosquitto_sub_drain(host: str, port: int, topic: str, count: int, client_id: str, *,
                        timeout: float) -> float:
    """Seconds for ``mosquitto_sub`` (QoS 1, persistent session) to receive ``count`` messages."""
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-t", topic, "-q", "1", "-c", "-i", client_id,
           "-C", str(count), "-V", "mqttv5", "-x", "3600"]
    t0 = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=True)
    return time.monotonic() - t0


def mosquitto_sub_session(host: str, port: int, topic: str, client_id: str) -> None:
    """Create a persistent QoS 1 subscription for ``client_id`` and leave (the broker queues for it)."""
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-t", topic, "-q", "1", "-c", "-i", client_id,
           "-V", "mqttv5", "-x", "3600", "-E"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True)


def drop_session(host: str, port: int, client_id: str) -> None:
    """End ``client_id``'s persistent session (connect with a clean start and no expiry, leave).

    Left behind, an offline session with ``city/#`` makes the broker queue every later message for
    it, which slows the next measurement on the same broker.
    """
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-t", "$SYS/broker/uptime", "-i", client_id,
           "-V", "mqttv5", "-x", "0", "-E"]  # -E: exit once subscribed; a clean start without -c
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)


class PahoCounter:
    """The Python ceiling: a bare paho MQTT 5 subscriber that only counts (QoS 1, auto ack)."""

    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.count = 0
        self.done = threading.Event()
        self.target = 0
        self.first = 0.0
        self.last = 0.0
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_message = self._on_message

        def on_connect(*_: Any) -> None:
            c.subscribe(topic, 1)
            self.connected.set()

        c.on_connect = on_connect
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 20000
        c.connect(host, port, clean_start=False, properties=props)
        self.client = c

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.first = time.monotonic()
        if self.count >= self.target:
            self.last = time.monotonic()
            self.done.set()

    def start(self, target: int) -> PahoCounter:
        self.target = target
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m supervisor.bench._load")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("file")
    a = p.parse_args()
    print(json.dumps(publish_file(a.host, a.port, Path(a.file), a.rate)))


if __name__ == "__main__":
    main()
