"""Load publisher: QoS 1 over paho-mqtt, every PUBACK waited for, malformed messages on demand.

``Publisher.run(messages, ...)`` sends an iterable of :class:`~simulators.telemetry.Message` at a
given rate (or as fast as the broker acknowledges), keeps at most ``window`` messages
unacknowledged, waits for every PUBACK at the end and returns a :class:`PublishReport`.

With ``bad_ratio`` > 0 a seeded share of the sent messages are malformed (one of
:data:`BAD_KINDS`, round robin), each derived from the next good message's topic and payload and
inserted before it; the good message is still sent. Malformed messages yield no point.

``unknown_topic`` messages go to ``city/<zone>/unknown/<device>/telemetry``: the supervisor only
receives (and so only counts) them if it subscribes to ``city/#``.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from .telemetry import Message

_log = logging.getLogger(__name__)

BAD_KINDS: tuple[str, ...] = ("invalid_json", "wrong_type", "out_of_range", "nan_text", "unknown_topic",
                              "oversized")
# the field a malformed message corrupts, per family and payload shape
_MAIN_FIELD = {"traffic": "flow", "cctv": "fps", "water": "index", "air": "no2"}
DEFAULT_OVERSIZE = 300 * 1024  # above the supervisor's default mqtt.max_payload_bytes (256 KiB)


class PublishError(Exception):
    """The publisher could not connect or lost the broker; carries the broker address."""

    def __init__(self, host: str, port: int, detail: str) -> None:
        super().__init__(f"MQTT {host}:{port}: {detail}")
        self.host = host
        self.port = port
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings passed to paho's ``tls_set`` (same field names as the supervisor's TlsConfig)."""

    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    insecure: bool = False


@dataclass(slots=True)
class PublishReport:
    """What a run sent and what the broker acknowledged.

    ``expected_points`` maps an InfluxDB measurement (``traffic``, ``lighting``, ``cctv``,
    ``water``, ``events``) to the number of points the good messages should produce there.
    ``rejected`` counts PUBACKs with a failure reason code (MQTT 5); ``failed`` counts publishes
    paho refused locally. ``acked == sent`` when every message reached the broker.
    """

    sent_good: int = 0
    sent_bad_by_kind: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    elapsed: float = 0.0
    rate: float = 0.0
    per_family: dict[str, int] = field(default_factory=dict)
    expected_points: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    failed: int = 0
    bytes_sent: int = 0

    @property
    def sent_bad(self) -> int:
        return sum(self.sent_bad_by_kind.values())

    def count_good(self, msg: Message) -> None:
        """Count good message ``msg`` as sent: its family and the points it should produce."""
        self.sent_good += 1
        self.per_family[msg.family] = self.per_family.get(msg.family, 0) + 1
        points = self.expected_points
        points[msg.measurement] = points.get(msg.measurement, 0) + msg.points
        if msg.events:
            points["events"] = points.get("events", 0) + msg.events

    @property
    def sent(self) -> int:
        return self.sent_good + self.sent_bad

    @property
    def complete(self) -> bool:
        return self.acked == self.sent and self.failed == 0 and self.rejected == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "sent_good": self.sent_good, "sent_bad": self.sent_bad,
            "sent_bad_by_kind": dict(self.sent_bad_by_kind), "acked": self.acked,
            "rejected": self.rejected, "failed": self.failed, "complete": self.complete,
            "elapsed": round(self.elapsed, 3), "rate": round(self.rate, 1), "bytes_sent": self.bytes_sent,
            "per_family": dict(self.per_family), "expected_points": dict(self.expected_points),
        }


def make_bad(kind: str, good: Message, *, oversize: int = DEFAULT_OVERSIZE) -> tuple[str, bytes]:
    """A malformed (topic, payload) of ``kind`` derived from a good telemetry message."""
    topic, payload = good.topic, good.payload
    if kind == "invalid_json":
        return topic, payload[: max(1, len(payload) // 2)]
    if kind == "unknown_topic":
        parts = topic.split("/")
        return f"{parts[0]}/{parts[1]}/unknown/{parts[3]}/telemetry", payload
    body = orjson.loads(payload)
    key = _MAIN_FIELD.get(good.family)
    if key is None:  # lighting: cabinets carry power, lamps level
        key = "power" if "circuits" in body else "level"
    if kind == "wrong_type":
        body[key] = "n/a"
    elif kind == "out_of_range":
        body[key] = -1000.0
    elif kind == "nan_text":
        body[key] = "__NAN__"
        return topic, orjson.dumps(body).replace(b'"__NAN__"', b"NaN")
    elif kind == "oversized":
        body["padding"] = "x" * oversize
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; expected one of {BAD_KINDS}")
    return topic, orjson.dumps(body)


class Publisher:
    """A paho-mqtt QoS 1 publisher that accounts for every PUBACK.

    Use as a context manager, or call :meth:`connect` and :meth:`close`. ``protocol`` is ``"5"``
    (default) or ``"3.1.1"``. ``max_inflight`` is given to paho's ``max_inflight_messages_set``;
    ``window`` (at most ``max_inflight``) bounds the messages sent and not yet acknowledged.

    The default window is small on purpose: paho 2.2 scans every outstanding message on each
    PUBACK (``Client._update_inflight``), so the cost per acknowledgement grows with the window.
    Measured on the 2-core dev machine, private Mosquitto, no subscriber: window 1000 gives
    ~5.5k msg/s, window 30-100 gives 12-14k msg/s (loopback round trips are short enough).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        protocol: str = "5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: TlsOptions | None = None,
        keepalive: int = 30,
        max_inflight: int = 1000,
        window: int = 50,
        connect_timeout: float = 10.0,
    ) -> None:
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be '5' or '3.1.1', got {protocol!r}")
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        self.host, self.port = host, port
        self.protocol = protocol
        self.connect_timeout = connect_timeout
        if not 1 <= window <= max_inflight:
            raise ValueError(f"window must be within 1..max_inflight ({max_inflight}), got {window}")
        self.window = window
        self._keepalive = keepalive
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"urban-sim-pub-{uuid.uuid4().hex[:8]}",
            protocol=proto,
            clean_session=None if protocol == "5" else True,
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            self.client.tls_insecure_set(tls.insecure)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._cond = threading.Condition(threading.Lock())
        self._connected = threading.Event()
        self._connect_rc: str | None = None
        self._pending: set[int] = set()
        self._early: set[int] = set()
        self._acked = 0
        self._rejected = 0
        self._started = False
        self.subscriptions: list[tuple[str, int]] = []  # (re)subscribed at every CONNACK

    # -- connection ----------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode,
                    props: Any = None) -> None:
        self._connect_rc = str(rc)
        if not rc.is_failure:
            if self.subscriptions:
                client.subscribe(list(self.subscriptions))
            self._connected.set()
        else:
            _log.error("MQTT %s:%s refused the connection: %s", self.host, self.port, rc)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode,
                       props: Any = None) -> None:
        self._connected.clear()
        if rc.is_failure:
            _log.warning("MQTT %s:%s disconnected: %s", self.host, self.port, rc)

    def connect(self) -> Publisher:
        try:
            if self.protocol == "5":
                self.client.connect(self.host, self.port, self._keepalive, clean_start=True)
            else:
                self.client.connect(self.host, self.port, self._keepalive)
        except OSError as exc:
            raise PublishError(self.host, self.port, f"cannot connect: {exc}") from exc
        self.client.loop_start()
        self._started = True
        deadline = time.monotonic() + self.connect_timeout
        while not self._connected.wait(0.05):
            if self._connect_rc is not None and not self._connected.is_set():
                self.close()
                raise PublishError(self.host, self.port, f"connection refused: {self._connect_rc}")
            if time.monotonic() > deadline:
                self.close()
                raise PublishError(self.host, self.port, f"no CONNACK within {self.connect_timeout}s")
        return self

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False

    def __enter__(self) -> Publisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- acknowledgements ----------------------------------------------------------------------

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode,
                    props: Any = None) -> None:
        with self._cond:
            if mid in self._pending:
                self._pending.discard(mid)
            else:  # the PUBACK overtook our bookkeeping of the publish
                self._early.add(mid)
            self._acked += 1
            if rc.is_failure:
                self._rejected += 1
            self._cond.notify_all()

    @property
    def outstanding(self) -> int:
        with self._cond:
            return len(self._pending)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish one message, tracked for its PUBACK like those of :meth:`run`; False if refused."""
        info = self.client.publish(topic, payload, qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            _log.warning("publish to %s refused locally: %s", topic, mqtt.error_string(info.rc))
            return False
        if qos > 0:
            self._track(info.mid)
        return True

    def _track(self, mid: int) -> None:
        with self._cond:
            if mid in self._early:
                self._early.discard(mid)
            else:
                self._pending.add(mid)

    def wait_acked(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is outstanding; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    # -- the load loop -------------------------------------------------------------------------

    def run(
        self,
        messages: Iterable[Message],
        *,
        count: int | None = None,
        rate: float | None = None,
        bad_ratio: float = 0.0,
        bad_kinds: Sequence[str] = BAD_KINDS,
        seed: int = 0,
        duration: float | None = None,
        stop: threading.Event | None = None,
        ack_timeout: float = 60.0,
        oversize: int = DEFAULT_OVERSIZE,
    ) -> PublishReport:
        """Send ``messages`` (at most ``count`` in all, good and bad) and wait for every PUBACK.

        ``rate`` is in messages per second (None: as fast as acknowledged). The run ends when the
        iterable is exhausted, ``count`` messages were sent, ``duration`` seconds passed or ``stop``
        is set, whichever first.
        """
        self._check_run(rate, bad_ratio, bad_kinds)
        rep = PublishReport(sent_bad_by_kind=dict.fromkeys(bad_kinds, 0) if bad_ratio > 0 else {})
        rng = random.Random(seed)
        kinds = list(bad_kinds)
        acked0, rejected0 = self._acked, self._rejected
        publish = self.client.publish
        limit = count if count is not None else -1
        start = time.monotonic()
        end = start + duration if duration is not None else None
        sent = 0
        nbytes = 0
        bad_i = 0
        for msg in messages:
            if sent == limit:
                break
            if (sent & 63) == 0 and sent and not _pace(sent, start, end, rate, stop):
                break
            batch: list[tuple[str, bytes, Message | str]]
            if bad_ratio > 0 and msg.measurement != "events" and rng.random() < bad_ratio:
                kind = kinds[bad_i % len(kinds)]
                bad_i += 1
                btopic, bpayload = make_bad(kind, msg, oversize=oversize)
                batch = [(btopic, bpayload, kind), (msg.topic, msg.payload, msg)]
            else:
                batch = [(msg.topic, msg.payload, msg)]
            for topic, payload, what in batch:
                if sent == limit:
                    break
                info = publish(topic, payload, 1)
                if info.rc != 0:
                    rep.failed += 1
                    _log.warning("publish to %s refused locally: %s", topic, mqtt.error_string(info.rc))
                    continue
                self._admit(info.mid, ack_timeout)
                sent += 1
                nbytes += len(payload)
                if isinstance(what, str):
                    rep.sent_bad_by_kind[what] += 1
                else:
                    rep.count_good(what)
        if not self.wait_acked(ack_timeout):
            _log.error("%d messages still unacknowledged after %ss", self.outstanding, ack_timeout)
        rep.elapsed = time.monotonic() - start
        rep.acked = self._acked - acked0
        rep.rejected = self._rejected - rejected0
        rep.bytes_sent = nbytes
        rep.rate = rep.acked / rep.elapsed if rep.elapsed > 0 else 0.0
        return rep

    def _check_run(self, rate: float | None, bad_ratio: float, bad_kinds: Sequence[str]) -> None:
        """The arguments of :meth:`run` (ValueError) and the connection (PublishError)."""
        if not 0.0 <= bad_ratio < 1.0:
            raise ValueError(f"bad_ratio must be within [0, 1), got {bad_ratio}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        unknown = [k for k in bad_kinds if k not in BAD_KINDS]
        if unknown or (bad_ratio > 0 and not bad_kinds):
            raise ValueError(f"bad_kinds must be a non-empty subset of {BAD_KINDS}, got {list(bad_kinds)}")
        if not self._started:
            raise PublishError(self.host, self.port, "not connected; call connect() first")

    def _admit(self, mid: int, ack_timeout: float) -> None:
        """Track publish ``mid`` for its PUBACK, then wait while ``window`` messages are unacknowledged."""
        cond, pending = self._cond, self._pending
        with cond:
            if mid in self._early:
                self._early.discard(mid)
            else:
                pending.add(mid)
            if len(pending) >= self.window:
                deadline = time.monotonic() + ack_timeout
                while len(pending) >= self.window and time.monotonic() < deadline:
                    cond.wait(0.5)
                if len(pending) >= self.window:
                    raise PublishError(self.host, self.port, f"{len(pending)} PUBACKs missing after {ack_timeout}s")


def _pace(sent: int, start: float, end: float | None, rate: float | None, stop: threading.Event | None) -> bool:
    """Sleep until message ``sent`` is due at ``rate``; False when the run must end (``stop`` or ``end``).

    Called every 64 messages, so that the clock and the pacing cost nothing per message.
    """
    now = time.monotonic()
    if (stop is not None and stop.is_set()) or (end is not None and now >= end):
        return False
    if rate is not None:
        ahead = start + sent / rate - now
        if ahead > 0.005:
            time.sleep(ahead if end is None else min(ahead, max(0.0, end - now)))
    return True


def expected_from(messages: Iterable[Message]) -> tuple[dict[str, int], dict[str, int]]:
    """(per_family, expected_points) of a list of good messages, for tests that build their own."""
    rep = PublishReport()
    for m in messages:
        rep.count_good(m)
    return rep.per_family, rep.expected_points


def merge_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out
