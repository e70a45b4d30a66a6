"""A fast QoS 1 load publisher: MQTT 3.1.1 on a plain socket, packets encoded and written in bulk.

paho-mqtt spends tens of microseconds of Python per QoS 1 publish (packet building, a lock, a
message object and a callback per message), so a paho publisher tops out near 15k msg/s and, on
a 2-core machine, takes a whole core away from the system it is meant to load. Measured on the
dev machine (``urban-supervisor bench ingest``): with the paho publisher the broker's own live
delivery rate to ``mosquitto_sub`` was capped at the publisher's ~16k msg/s.

:class:`RawPublisher` encodes PUBLISH packets a chunk at a time, writes each chunk with one
``sendall`` and parses PUBACKs from bulk reads. It still accounts for every PUBACK (a run ends
only when all are in, or fails with :class:`~simulators.publisher.PublishError`), bounds the
unacknowledged messages by ``window`` and can pace to a rate. It speaks only what a load
generator needs: CONNECT (clean session, optional username and password), PUBLISH at QoS 1,
PUBACK, PINGREQ and DISCONNECT; use :class:`~simulators.publisher.Publisher` for TLS, MQTT 5 or
malformed-message runs.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .publisher import PublishError

_PUBACK = 0x40
_PINGRESP = 0xD0
_CONNACK = 0x20
_MAX_ID = 65535


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _utf8(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise ValueError(f"MQTT string longer than 65535 bytes ({len(b)})")
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id: str, keepalive: int, username: str | None = None, password: str | None = None) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session."""
    flags = 0x02
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    var = _utf8("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big")
    body = var + payload
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1; ``topic`` is the topic already prefixed with its 2-byte length."""
    return b"\x32" + _varint(len(topic) + 2 + len(payload)) + topic + packet_id.to_bytes(2, "big") + payload


@dataclass(slots=True)
class RawReport:
    """What a run sent and what the broker acknowledged; ``first_send`` is ``time.monotonic()``."""

    sent: int = 0
    acked: int = 0
    elapsed: float = 0.0
    rate: float = 0.0
    bytes_sent: int = 0
    first_send: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time during the run

    @property
    def complete(self) -> bool:
        return self.acked == self.sent

    def finish(self, start: float, cpu0: float) -> None:
        """Set the duration, CPU time and rate of a run that began at ``start`` (monotonic) and ``cpu0``."""
        self.elapsed = time.monotonic() - start
        self.cpu_s = time.process_time() - cpu0
        self.rate = self.acked / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"sent": self.sent, "acked": self.acked, "elapsed": round(self.elapsed, 3),
                "rate": round(self.rate, 1), "bytes_sent": self.bytes_sent, "complete": self.complete,
                "first_send": self.first_send, "cpu_s": round(self.cpu_s, 3)}


def _idle_wait(pending: bool, due: float | None, now: float) -> float:
    """Seconds to wait for input when nothing can be sent now.

    Up to 50 ms while PUBACKs are due, and no later than ``due``, when the next paced message is
    (None when not pacing); 0 when there is nothing to wait for.
    """
    wait = 0.05 if pending else 0.0
    if due is not None:
        wait = max(0.0, min(wait, due - now)) if pending else max(0.0, due - now)
    return wait


class RawPublisher:
    """QoS 1 publisher on one TCP connection; use as a context manager or call connect()/close().

    ``window`` bounds the messages sent and not yet acknowledged (at most 60,000, below the
    packet-id space); ``chunk`` is how many packets are encoded and written at once.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None, keepalive: int = 60,
                 window: int = 5000, chunk: int = 250, connect_timeout: float = 10.0) -> None:
        if not 1 <= window <= 60000:
            raise ValueError(f"window must be within 1..60000, got {window}")
        if not 1 <= chunk <= window:
            raise ValueError(f"chunk must be within 1..window ({window}), got {chunk}")
        if not 0 <= keepalive <= 0xFFFF:
            raise ValueError(f"keepalive must be within 0..65535 s, got {keepalive}")
        self.host, self.port = host, port
        self.client_id = client_id or f"urban-rawpub-{uuid.uuid4().hex[:8]}"
        self._username, self._password = username, password
        self.keepalive = keepalive
        self.window = window
        self.chunk = chunk
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._topics: dict[str, bytes] = {}
        self._last_io = 0.0
        self._pid = 0  # the last packet id used

    # -- connection ------------------------------------------------------------------------------

    def connect(self) -> RawPublisher:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise PublishError(self.host, self.port, f"connect failed: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        try:
            sock.sendall(connect_packet(self.client_id, self.keepalive, self._username, self._password))
            deadline = time.monotonic() + self.connect_timeout
            while len(self._buf) < 4:
                if time.monotonic() > deadline:
                    raise PublishError(self.host, self.port, "no CONNACK")
                data = sock.recv(4096)
                if not data:
                    raise PublishError(self.host, self.port, "connection closed before CONNACK")
                self._buf += data
        except OSError as exc:
            self.close()
            raise PublishError(self.host, self.port, f"CONNECT failed: {exc}") from exc
        if self._buf[0] != _CONNACK or self._buf[1] != 2:
            self.close()
            raise PublishError(self.host, self.port, f"expected CONNACK, got packet type {self._buf[0] >> 4}")
        if self._buf[3] != 0:
            code = self._buf[3]
            self.close()
            raise PublishError(self.host, self.port, f"connection refused, CONNACK return code {code}")
        self._buf = self._buf[4:]
        sock.settimeout(None)
        self._last_io = time.monotonic()
        return self

    def close(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        self._sock.close()
        self._sock = None

    def __enter__(self) -> RawPublisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the load loop ---------------------------------------------------------------------------

    def _read_acks(self, pending: set[int], timeout: float) -> int:
        """Wait up to ``timeout`` s for input; remove acknowledged ids from ``pending``; PUBACKs read."""
        sock = self._sock
        assert sock is not None
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return 0
        data = sock.recv(1 << 16)
        if not data:
            raise PublishError(self.host, self.port, f"connection closed with {len(pending)} PUBACKs missing")
        buf = self._buf + data if self._buf else data
        n = 0
        i, end = 0, len(buf)
        while end - i >= 2:
            kind, length = buf[i], buf[i + 1]
            if length & 0x80:
                raise PublishError(self.host, self.port, f"unexpected long packet of type {kind >> 4}")
            if end - i < 2 + length:
                break
            if kind == _PUBACK and length == 2:
                pid = (buf[i + 2] << 8) | buf[i + 3]
                try:
                    pending.remove(pid)
                except KeyError:
                    raise PublishError(self.host, self.port, f"PUBACK for unknown packet id {pid}") from None
                n += 1
            elif kind != _PINGRESP:
                raise PublishError(self.host, self.port, f"unexpected packet type {kind >> 4}")
            i += 2 + length
        self._buf = buf[i:]
        return n

    def _topic(self, topic: str) -> bytes:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _utf8(topic)
        return t

    def _encode(self, it: Iterator[tuple[str, bytes]], room: int,
                pending: set[int]) -> tuple[list[bytes], int, bool, int]:
        """Up to ``room`` PUBLISH packets from ``it``, their ids added to ``pending``.

        Returns (packets, payload bytes, whether ``it`` is exhausted, PUBACKs read meanwhile). Called
        once per chunk (``chunk`` messages), so the per-message loop stays in one frame.
        """
        parts: list[bytes] = []
        nbytes = 0
        acked = 0
        pid = self._pid
        topic_of = self._topic
        for _ in range(room):
            try:
                topic, payload = next(it)
            except StopIteration:
                self._pid = pid
                return parts, nbytes, True, acked
            pid = pid + 1 if pid < _MAX_ID else 1
            while pid in pending:  # a very late ack: never reuse an id in flight
                acked += self._read_acks(pending, 1.0)
            pending.add(pid)
            parts.append(publish_packet(topic_of(topic), payload, pid))
            nbytes += len(payload)
        self._pid = pid
        return parts, nbytes, False, acked

    def run(self, messages: Iterable[tuple[str, bytes]], *, rate: float | None = None,
            duration: float | None = None, ack_timeout: float = 60.0) -> RawReport:
        """Publish ``messages`` (topic, payload) at QoS 1 and wait for every PUBACK.

        ``rate`` in messages per second (None: as fast as the window allows); ``duration`` stops
        sending after that many seconds. Raises :class:`PublishError` when acknowledgements stop
        for ``ack_timeout`` seconds or the connection is lost.
        """
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        sock = self._sock
        if sock is None:
            raise PublishError(self.host, self.port, "not connected; call connect() first")
        rep = RawReport()
        it = iter(messages)
        pending: set[int] = set()
        window, chunk = self.window, self.chunk
        self._pid = 0
        exhausted = False
        acked = 0
        cpu0 = time.process_time()
        start = time.monotonic()
        rep.first_send = start
        end = start + duration if duration is not None else None
        last_ack = start
        while not exhausted or pending:
            now = time.monotonic()
            room = 0
            if not exhausted:
                exhausted = end is not None and now >= end
                if not exhausted:
                    room = min(chunk, window - len(pending))
                    if rate is not None:
                        room = min(room, int((now - start) * rate) + 1 - rep.sent)
            timeout = 0.0
            if room > 0:
                parts, nbytes, exhausted, got = self._encode(it, room, pending)
                acked += got
                if parts:
                    sock.sendall(b"".join(parts))
                    rep.sent += len(parts)
                    rep.bytes_sent += nbytes
                    self._last_io = now
            elif pending or not exhausted:
                due = start + (rep.sent + 1) / rate if rate is not None and not exhausted else None
                timeout = _idle_wait(bool(pending), due, now)
            else:
                break
            got = self._read_acks(pending, timeout) if (pending or timeout) else 0
            if got:
                acked += got
                last_ack = time.monotonic()
            elif pending and time.monotonic() - last_ack > ack_timeout:
                raise PublishError(self.host, self.port, f"{len(pending)} PUBACKs missing after {ack_timeout}s")
            self._keep_alive()
        rep.acked = acked
        rep.finish(start, cpu0)
        return rep

    def _keep_alive(self) -> None:
        """PINGREQ when nothing was written for half the keep-alive (the broker would drop us)."""
        if self.keepalive and time.monotonic() - self._last_io > self.keepalive / 2:
            assert self._sock is not None
            self._sock.sendall(b"\xc0\x00")  # PINGREQ
            self._last_io = time.monotonic()
