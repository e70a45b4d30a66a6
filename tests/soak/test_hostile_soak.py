"""Soak: more than 100,000 malformed and hostile messages mixed with good ones, through a private
Mosquitto (``max_queued_messages 0``) into the in-process supervisor (with a city model) and the
real InfluxDB.

What must hold afterwards:

- no crash: the pipeline thread is alive, the supervisor never lost its broker session, and good
  messages published *after* the flood are still processed;
- no loss: InfluxDB holds exactly the points of the good messages;
- every bad message that reached the supervisor is counted under the reason we expected for it
  (exact counts per reason), and the dead-letter store keeps a bounded sample;
- what never reaches the supervisor is counted on the publisher side: topics with ``+``/``#`` or
  longer than 65,535 bytes are refused locally by paho; topics with control characters,
  Unicode non-characters or invalid UTF-8 make Mosquitto close the publisher's connection
  ("Malformed packet", MQTT 5 §1.5.4), and so do topics deeper than 200 levels ("Protocol
  error"); they are never delivered.

Payloads for devices that are not in the city model are valid but refused (``unknown_device``,
the default ``identity.unknown: refuse`` when a model is loaded) and never stored. The counts by
reason are printed as one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.city import generate_city
from simulators.publisher import Publisher
from simulators.telemetry import CityTelemetry, Message
from supervisor.config import StorageConfig, load_settings
from supervisor.ingest.pipeline import DeadLetter
from supervisor.model import CityModel, city_from_dict
from supervisor.runtime import Supervisor
from supervisor.storage import retention
from tests.support.services import Influx, mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_GOOD = 20_000
N_BAD = 88_000
N_CANARY = 500  # good messages sent after the flood
N_GHOST = 1_000  # valid payloads of devices that are not in the model
MAX_PAYLOAD = 8192  # mqtt.max_payload_bytes of the supervisor under test
COUNT_FIELD = {"traffic": "flow", "lighting": "power", "cctv": "online", "water": "index", "events": "value"}
JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')
DAY = 86_400.0


def _good_messages(city: dict[str, object], start: float, n: int) -> list[Message]:
    tel = CityTelemetry(city, seed=5, origin=start)

    def gen() -> Iterator[Message]:
        for _ in range(100_000):  # bounded: far more rounds than needed
            yield from tel.due(tel.next_due())

    return list(islice(gen(), n))


def _bad(reason: str, topic: str, payload: bytes) -> Message:
    """A hostile message, carried through Publisher.run as a Message with no expected point."""
    return Message(topic, payload, "bad", "bad:" + reason, 0, "-")


class Hostile:
    """Seeded generator of hostile messages, each with the reason the supervisor must count."""

    def __init__(self, rng: random.Random, traffic: list[tuple[str, str]], now: float) -> None:
        self.rng = rng
        self.traffic = traffic  # (zone, device) of road sensors of the model
        self.now = now
        self.kinds = [getattr(self, n) for n in dir(self) if n.startswith("k_")]

    def topic(self) -> str:
        zone, dev = self.rng.choice(self.traffic)
        return f"city/{zone}/traffic/{dev}/telemetry"

    def ts(self) -> float:
        return self.now - self.rng.uniform(60, 3 * 3600)

    def body(self, **fields: object) -> dict[str, object]:
        return {"ts": self.ts(), "flow": 100.0, "speed": 40.0, **fields}

    # one method per kind: returns (expected reason, topic, payload)
    def k_random_bytes(self) -> tuple[str, str, bytes]:
        raw = bytearray(self.rng.randbytes(self.rng.randint(1, 200)))
        while raw[0] in JSON_START:
            raw[0] = self.rng.randrange(256)
        return "invalid_json", self.topic(), bytes(raw)

    def k_empty_or_truncated(self) -> tuple[str, str, bytes]:
        full = orjson.dumps(self.body())
        return "invalid_json", self.topic(), full[: self.rng.randrange(0, len(full) - 1)]

    def k_too_large(self) -> tuple[str, str, bytes]:
        pad = "x" * (MAX_PAYLOAD + self.rng.randint(1, 4000))
        return "too_large", self.topic(), orjson.dumps(self.body(padding=pad))

    def k_deep_nesting(self) -> tuple[str, str, bytes]:
        if self.rng.random() < 0.5:  # beyond orjson's depth limit (1024)
            depth = self.rng.randint(1100, 3000)
            return "invalid_json", self.topic(), b'{"flow": ' + b"[" * depth + b"]" * depth + b"}"
        depth = self.rng.randint(2, 500)
        return "bad_type", self.topic(), b'{"flow": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"

    def k_nan_infinity_literals(self) -> tuple[str, str, bytes]:
        lit = self.rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
        key = self.rng.choice([b"flow", b"speed", b"occupancy", b"ts"])
        return "invalid_json", self.topic(), b'{"' + key + b'": ' + lit + b', "flow": 1.0}'

    def k_nan_infinity_strings(self) -> tuple[str, str, bytes]:
        text = self.rng.choice(["NaN", "nan", "Infinity", "-inf", "1e999", "-1E400"])
        return "bad_value", self.topic(), orjson.dumps(self.body(**{self.rng.choice(["flow", "speed"]): text}))

    def k_wrong_types(self) -> tuple[str, str, bytes]:
        pick = self.rng.randrange(6)
        if pick == 0:
            return "bad_value", self.topic(), orjson.dumps(self.body(flow="n/a"))
        if pick == 1:
            value = self.rng.choice([True, [1.0], {"v": 1}, False])
            return "bad_type", self.topic(), orjson.dumps(self.body(speed=value))
        if pick == 2:
            return "bad_type", self.topic(), orjson.dumps([self.body()])
        if pick == 3:
            return "bad_type", self.topic(), orjson.dumps(self.rng.choice(["flow", 42, None, True]))
        if pick == 4:
            return "missing_field", self.topic(), orjson.dumps({"ts": self.ts(), "flux": 1.0})
        return "missing_field", self.topic(), orjson.dumps({"flow": "", "speed": None, "ts": self.ts()})

    def k_out_of_range(self) -> tuple[str, str, bytes]:
        key, value = self.rng.choice([("speed", 301.0), ("occupancy", -0.5), ("flow", 1e300), ("occupancy", 100.01),
                                      ("heavy_flow", -1)])
        return "out_of_range", self.topic(), orjson.dumps(self.body(**{key: value}))

    def k_timestamp_refused_by_driver(self) -> tuple[str, str, bytes]:
        ts = self.rng.choice([0, -1.0, 5e9, 9e18, "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z", "yesterday",
                              True, "2025-11-26T10:00:00", [1], "2025-11-26"])
        return "bad_timestamp", self.topic(), orjson.dumps({"ts": ts, "flow": 1.0})

    def k_timestamp_outside_window(self) -> tuple[str, str, bytes]:
        # plausible for the driver (2000..2100), refused by the pipeline (now-10 y .. now+24 h)
        ts = self.rng.choice([self.now - 12 * 365 * DAY, self.now + 3 * DAY, self.now + 60 * 365 * DAY,
                              (self.now - 11 * 365 * DAY) * 1000.0])
        return "bad_timestamp", self.topic(), orjson.dumps({"ts": ts, "flow": 1.0})

    def k_topic_not_claimed(self) -> tuple[str, str, bytes]:
        zone, dev = self.rng.choice(self.traffic)
        topic = self.rng.choice([f"city/{zone}/unknown/{dev}/telemetry", f"city/{zone}/traffic/{dev}/telemetry/x",
                                 f"city/{zone}/traffic/{dev}", "city", "city/\U0001f6a6",
                                 f"city/{zone}/traffic/{dev}/cmd",
                                 f"city/{zone}/{dev}/traffic/telemetry", "city/" + "z/" * 150 + "telemetry"])
        return "unknown_topic", topic, orjson.dumps(self.body())

    def k_topic_not_printable(self) -> tuple[str, str, bytes]:
        # Unicode format characters pass the broker (valid UTF-8) but are not printable
        mark = self.rng.choice(["\u202e", "\u200b", "\u2028", "\ufeff"])
        return "bad_topic", f"city/x{mark}/unclaimed/{self.rng.randrange(10**6)}", orjson.dumps(self.body())

    def k_bad_identifier_in_topic(self) -> tuple[str, str, bytes]:
        zone, dev = self.rng.choice(self.traffic)
        seg = self.rng.choice(["*", "%23", "%2B", "d\u00e9v", "\U0001f6a6", "a b", "", "\u202edev", "x" * 0 + "dev,1",
                               "dev=1", '"q"', "dev\\"])
        topic = self.rng.choice([f"city/{zone}/traffic/{seg}/telemetry", f"city/{seg}/traffic/{dev}/telemetry"])
        if seg == "" and self.rng.random() < 0.5:
            topic = "city//traffic//telemetry"
        return "bad_identifier", topic, orjson.dumps(self.body())

    def next(self) -> Message:
        reason, topic, payload = self.rng.choice(self.kinds)()
        return _bad(reason, topic, payload)


# ----------------------------------------------------------------------------- publisher-side refusals


def _paho_refusals(host: str, port: int, rng: random.Random) -> Counter[str]:
    """Topics paho refuses to send (wildcards, too long): counted, never on the wire."""
    out: Counter[str] = Counter()
    with Publisher(host, port) as pub:
        for i in range(60):
            topic = rng.choice(["city/z01/traffic/+/telemetry", "city/z01/traffic/det#1/telemetry", "city/#",
                                "city/z01/traffic/a+b/telemetry", "+", "city/" + "x" * 65_536])
            try:
                pub.publish(topic, b'{"flow": 1}')
            except ValueError:
                out["refused_by_paho"] += 1
            else:
                out[f"unexpected_send_{i}"] += 1
        assert pub.wait_acked(10)
    return out


def _broker_refusals(host: str, port: int) -> Counter[str]:
    """Topics Mosquitto refuses: the publisher's connection is closed, nothing is delivered."""
    out: Counter[str] = Counter()
    texts = ["city/z01/traffic/d\x01v/telemetry", "city/z01/traffic/d\x7fv/telemetry",
             "city/z01/traffic/d\u0085v/telemetry", "city/z01/traffic/d\nv/telemetry",
             "city/z01/traffic/d\ufffev/telemetry", "city/z01/traffic/d\ufdd0v/telemetry",
             "city/" + "z/" * 200 + "telemetry"]  # beyond Mosquitto's 200 topic levels: "Protocol error"
    for topic in texts * 3:
        gone = threading.Event()
        acked = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-bad-{uuid.uuid4().hex[:8]}",
                        protocol=mqtt.MQTTv5)
        c.on_disconnect = lambda *a, ev=gone: ev.set()  # type: ignore[misc]
        c.on_publish = lambda *a, ev=acked: ev.set()  # type: ignore[misc]
        c.connect(host, port, 30)
        c.loop_start()
        try:
            c.publish(topic, b'{"flow": 1}', 1)
            assert gone.wait(10), f"the broker kept a client that published on {topic!r}"
            out["refused_by_broker" if not acked.is_set() else "acked_by_broker"] += 1
        finally:
            c.disconnect()
            c.loop_stop()
    for raw in (b"city/z01/traffic/\xff\xfe/telemetry", b"city/\xc3\x28/x", b"city/\xed\xa0\x80/x"):
        out["refused_by_broker" if _raw_publish_refused(host, port, raw) else "acked_by_broker"] += 1
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _raw_publish_refused(host: str, port: int, topic: bytes) -> bool:
    """Publish QoS 1 on a topic of raw bytes (invalid UTF-8, which paho cannot send) over MQTT 3.1.1."""
    cid = b"soak-raw-" + uuid.uuid4().hex[:8].encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
    body = len(topic).to_bytes(2, "big") + topic + b"\x00\x01" + b'{"flow": 1}'
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"\x10" + _varint(len(var)) + var)
        connack = s.recv(4)
        assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack
        s.sendall(b"\x32" + _varint(len(body)) + body)
        try:
            answer = s.recv(4)
        except ConnectionResetError:
            return True
        return not answer.startswith(b"\x40")  # no PUBACK: closed


# ----------------------------------------------------------------------------- the soak


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _count(influx: Influx, db: str, measurement: str) -> int:
    source = retention.raw_from(StorageConfig(), measurement)  # household water: its own policy
    v = influx.scalar(f'SELECT count("{COUNT_FIELD[measurement]}") FROM {source}', db)
    return int(v or 0)  # type: ignore[call-overload]


def _ghost_messages(rng: random.Random, traffic: list[tuple[str, str]], now: float) -> list[Message]:
    """Well-formed telemetry from traffic devices the city model does not know."""
    ghosts = []
    for i in range(N_GHOST):
        zone = rng.choice(traffic)[0]
        body = {"ts": now - rng.uniform(60, 3600), "flow": float(i % 500), "speed": 30.0}
        ghosts.append(Message(f"city/{zone}/traffic/ghost-{i:05d}/telemetry", orjson.dumps(body), "traffic",
                              "traffic", 1, f"ghost-{i:05d}"))
    return ghosts


def _assert_dead_letters(dead: list[DeadLetter], expected_reasons: Counter[str]) -> None:
    """Every dead letter has an expected reason, an escaped bounded topic and truncated details."""
    for d in dead:
        assert d.reason in expected_reasons, d
        assert d.topic.isascii() and d.topic.isprintable() and len(d.topic) <= 200, d.topic
        assert len(d.detail) <= 300 and len(d.head) <= 4 * 120


def _expected_points(messages: list[Message]) -> Counter[str]:
    """The points ``messages`` should produce, per InfluxDB measurement."""
    expected: Counter[str] = Counter()
    for m in messages:
        expected[m.measurement] += m.points
        if m.events:
            expected["events"] += m.events
    return expected


def _soak_messages(rng: random.Random, city: dict[str, Any], model: CityModel) -> tuple[
        list[Message], list[Message], list[Message], list[Message], list[Message]]:
    """(good, ghosts, bad, the shuffled flood of all three, the canary of good messages sent after it)."""
    traffic = sorted((d.zone, d.id) for d in model.devices.values() if d.family == "traffic")
    now = time.time()
    good = _good_messages(city, now - 6 * 3600, N_GOOD + N_CANARY)
    flood_good, canary = good[:N_GOOD], good[N_GOOD:]
    hostile = Hostile(rng, traffic, now)
    ghosts = _ghost_messages(rng, traffic, now)
    bad = [hostile.next() for _ in range(N_BAD)]
    flood = flood_good + ghosts + bad
    rng.shuffle(flood)
    return good, ghosts, bad, flood, canary


def test_hostile_soak(tmp_path: Path, influx: Influx, influx_db: str) -> None:
    t0 = time.monotonic()
    rng = random.Random(2024)
    city = generate_city(seed=7, devices=300)
    model = city_from_dict(city)
    good, ghosts, bad, flood, canary = _soak_messages(rng, city, model)

    with mosquitto(tmp_path / "mq") as broker:
        settings = load_settings(
            None, mode="test", data_dir=str(tmp_path / "var"),
            mqtt={"host": broker.host, "port": broker.port, "client_id": "soak", "max_payload_bytes": MAX_PAYLOAD},
            storage={"backend": "influx-v1", "url": influx.url, "database": influx_db, "batch_size": 5000,
                     "flush_interval": 0.2},
            api={"enabled": False},
        )
        sup = Supervisor(settings, model=model)
        sup.start()
        try:
            assert sup.mqtt.wait_connected(10)
            time.sleep(0.3)  # SUBACK
            with Publisher(broker.host, broker.port, window=100) as pub:
                rep = pub.run(flood, ack_timeout=60)
            assert rep.acked == rep.sent == len(flood) and rep.failed == 0 and rep.rejected == 0, rep.to_dict()
            refused = _paho_refusals(broker.host, broker.port, rng) + _broker_refusals(broker.host, broker.port)
            with Publisher(broker.host, broker.port) as pub:
                rep2 = pub.run(canary)
            assert rep2.acked == len(canary)
            reached = len(flood) + len(canary)
            _wait(lambda: sup.pipeline.counters.received >= reached, 60, "the supervisor to receive everything")
            assert sup.writer.flush(60)
            assert sup._thread is not None and sup._thread.is_alive(), "the pipeline thread died"
            counters = sup.pipeline.counters
            mqtt_stats = dataclasses.replace(sup.mqtt.stats)  # before stop() disconnects
            dead = list(sup.pipeline.dead_letters)
            ghosts_refused = sup.settings.identity.unknown == "refuse"
            unknown_report = sup.pipeline.identity.report() if sup.pipeline.identity else []
        finally:
            sup.stop()

    assert ghosts_refused, "a model is loaded: devices outside it are refused by default"
    assert sum(r["messages"] for r in unknown_report) >= N_GHOST  # reported per source id, bounded
    expected_reasons = Counter(m.measurement.removeprefix("bad:") for m in bad)
    if ghosts_refused:
        expected_reasons["unknown_device"] += N_GHOST
    by_reason = counters.errors_by_reason()
    result = {
        "sent_to_broker": reached, "good": N_GOOD + N_CANARY, "ghost_unknown_devices": N_GHOST,
        "ghosts_stored": not ghosts_refused, "bad_reached_supervisor": sum(expected_reasons.values()),
        "refused_before_supervisor": dict(refused), "received": counters.received, "decoded": counters.decoded,
        "errors_by_reason": dict(sorted(by_reason.items())),
        "errors_by_driver": {f"{d}:{r}": n for (d, r), n in sorted(counters.errors.items())},
        "dead_letters": len(dead), "elapsed_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result))

    # nothing lost, nothing crashed
    assert mqtt_stats.connects == 1 and mqtt_stats.disconnects == 0, mqtt_stats
    assert counters.received == reached
    assert counters.decoded == N_GOOD + N_CANARY + (0 if ghosts_refused else N_GHOST)
    # every refused message counted, under the expected reason
    assert dict(sorted(by_reason.items())) == dict(sorted(expected_reasons.items()))
    assert counters.error_total == sum(expected_reasons.values())
    assert refused == Counter({"refused_by_paho": 60, "refused_by_broker": 24})
    # a bounded sample of dead letters, escaped and truncated
    assert len(dead) == sup.pipeline.dead_letters.maxlen == 1000
    _assert_dead_letters(dead, expected_reasons)
    # InfluxDB holds exactly the points of the good messages (and of the ghosts if stored)
    expected_points = _expected_points(good + ([] if ghosts_refused else ghosts))
    assert {m: _count(influx, influx_db, m) for m in expected_points} == dict(expected_points)
