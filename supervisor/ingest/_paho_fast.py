"""The fast path: paho's client with a batched read path and batched PUBACKs (``mqtt.fast_path: true``).

Why it exists. paho reads a packet with three ``recv`` calls and one ``select`` (its loop reads one
packet per wake-up), then builds an ``MQTTMessage`` with MQTT 5 ``Properties``, a debug log call, a
topic matcher walk and two locks, and queues one PUBACK (one ``send`` plus one wake-up byte) per
message: together about 30 µs per message, the whole of one core at ~30k msg/s. Here
:meth:`FastClient.loop_read` reads up to 256 KiB per ``recv``, parses every complete QoS 0/1 PUBLISH
itself (topic, packet id, payload; MQTT 5 properties are skipped, as the supervisor never used them,
and topic aliases are never granted) and hands them over in one call. Every other packet (CONNACK,
SUBACK, PINGRESP, DISCONNECT, QoS 2 PUBLISH) goes through paho's own handler, in order; a PUBACK
is handled here (see :meth:`FastClient._puback`).
:meth:`FastClient.ack_many` queues the PUBACKs of a batch as one write. Measured with
``urban-supervisor bench ingest``: 48k msg/s end to end, against 22k for a bare paho subscriber.

The price: it relies on paho internals, verified with paho-mqtt 2.2.0 (``pyproject.toml`` pins
``>=2.2,<2.3``; 2.1 has no ``paho.mqtt.exception`` and its packet reader does not catch
``MalformedPacket``). Every private member used, and why (checked by :func:`paho_mismatches`, which
``tests/core/test_paho_fast.py`` runs and :class:`~supervisor.ingest.mqtt.MqttIngest` runs at start,
falling back to the plain path with an error log if anything changed):

- ``Client.loop_read(max_packets)`` (public, overridden): the read path paho's loop thread calls.
- ``Client._in_packet``: the partial-packet state (a dict with the eight keys :func:`_in_packet` writes);
  a packet paho started reading is left to paho, and a non-PUBLISH packet is handed to paho's handler
  by filling it in.
- ``Client._packet_handle()``: paho's dispatcher for a complete packet in ``_in_packet``.
- ``Client._sock``: the connected socket (``None`` when disconnected); a new socket resets our buffer.
- ``Client._sock_recv(bufsize)``: ``recv`` with paho's TLS want-read/want-write translation.
- ``Client._easy_log(level, fmt, *args)``: paho's logger (enable_logger), for socket and parse errors.
- ``Client._msgtime_mutex``, ``Client._last_bytes_received``: the keepalive clock, updated after reads.
- ``paho.mqtt.client.time_func``: the clock paho's keepalive compares ``_last_bytes_received`` with.
- ``Client._loop_rc_handle(rc)``: closes the socket and runs ``on_disconnect`` after a read error.
- ``Client._protocol``: MQTT 5 PUBLISH packets carry a properties block to skip.
- ``Client._manual_ack``: with auto-acknowledgement, QoS 1 PUBACKs are sent on receipt.
- ``Client._send_puback(mid)``: that PUBACK (auto-acknowledgement only).
- ``Client._packet_queue(command, packet, mid, qos, info)``: queues raw bytes for paho's writer
  (the batched PUBACKs); overridden so that :meth:`FastClient.publish_many` gathers the QoS 1/2
  PUBLISH packets of a batch into one write.
- ``Client._out_messages``, ``Client._out_message_mutex``, ``Client._inflight_messages``,
  ``Client._max_inflight_messages``, ``Client._update_inflight()``, ``MQTTMessageInfo._set_as_published()``:
  a PUBACK (of a command) is handled here, as paho's ``_handle_pubackcomp`` does when no
  ``on_publish`` callback is set (:meth:`FastClient._puback`); with a callback, paho handles it.
- ``paho.mqtt.exception.MalformedPacket``: what paho's handlers raise on a malformed packet.
- ``MQTTMessage._topic`` (raw topic bytes): read by the plain path's ``on_message`` when the topic is
  not UTF-8, so that the message is counted as a bad topic instead of crashing the callback.
"""

from __future__ import annotations

import functools
import inspect
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

from supervisor.ingest.mqtt import FULL_WAIT, Message, ReconnectingClient

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket  # paho's TypedDict of _in_packet: mypy checks our keys against it

_PUBLISH = 0x30
_PUBACK = 0x40
_PUBACK_PACKET = struct.Struct("!BBH").pack
_READ_SIZE = 256 * 1024  # bytes per recv(): hundreds of telemetry messages
_MAX_READS = 8  # recv() calls per loop_read, so that PUBACKs and pings still go out under a flood
_ACK_CHUNK = 8192  # PUBACKs per queued write (32 KiB)



def _in_packet(command: int = 0, body: memoryview | bytes = b"") -> _InPacket:
    """paho's ``_in_packet`` holding a complete packet (``command`` 0: none being read, as paho resets it)."""
    return {"command": command, "have_remaining": 1 if command else 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": len(body), "packet": bytearray(body), "to_process": 0, "pos": 0}


# a socket read's QoS 0/1 PUBLISH packets, handed over at once
Deliver = Callable[[list[Message]], None]


class _Malformed(Exception):
    pass


def _packet_bounds(buf: bytearray, pos: int, n: int) -> tuple[int, int]:
    """(start of the variable header, end) of the packet at ``pos``; (0, 0) when not complete yet."""
    i = pos + 1
    length = 0
    shift = 0
    while i < n:
        b = buf[i]
        i += 1
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            end = i + length
            return (i, end) if end <= n else (0, 0)
        shift += 7
        if shift > 21:
            raise _Malformed("remaining length longer than 4 bytes")
    return 0, 0  # the length itself is incomplete


def _publish_fields(buf: bytearray, i: int, end: int, qos: int, v5: bool) -> tuple[str | None, int, int]:
    """(topic, None if not UTF-8; packet id; start of the payload) of the QoS 0/1 PUBLISH whose variable header is
    at ``i``."""
    if end - i < 2:
        raise _Malformed("PUBLISH too short")
    tlen = (buf[i] << 8) | buf[i + 1]
    tend = j = i + 2 + tlen
    mid = 0
    if qos:
        if j + 2 > end:
            raise _Malformed("PUBLISH without packet identifier")
        mid = (buf[j] << 8) | buf[j + 1]
        j += 2
    if v5:
        plen = 0
        shift = 0
        while True:
            if j >= end:
                raise _Malformed("PUBLISH properties truncated")
            b = buf[j]
            j += 1
            plen |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise _Malformed("property length longer than 4 bytes")
        j += plen
    elif not tlen:
        raise _Malformed("empty topic in MQTT 3.1.1")
    if j > end:
        raise _Malformed("PUBLISH header longer than the packet")
    try:
        return buf[i + 2:tend].decode(), mid, j
    except UnicodeDecodeError:
        return None, mid, j


class FastClient(ReconnectingClient):
    """paho's client with a batched read path (set :attr:`deliver`) and batched PUBACKs (:meth:`ack_many`)."""

    deliver: Deliver | None = None
    on_bad_topic: Callable[[], None] | None = None
    room: Callable[[float], bool] | None = None  # False: the consumer is full, do not read now
    _rbuf: bytearray | None = None
    _rsock: object = None

    # -- batched read path (network thread) ------------------------------------------------------
    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        deliver = self.deliver
        if deliver is None or self._in_packet["command"] != 0:
            return super().loop_read(max_packets)  # paho's own path (or a packet it started)
        room = self.room
        if room is not None and not room(FULL_WAIT):
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # back-pressure: leave the bytes in the socket
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if self._rsock is not sock or self._rbuf is None:  # a new connection starts with an empty buffer
            self._rbuf, self._rsock = bytearray(), sock
        rc, lost = self._read_socket(self._rbuf, deliver, room)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = self._parse(self._rbuf, deliver)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and lost:
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._rbuf = None
            return self._loop_rc_handle(rc)
        return rc

    def _read_socket(self, buf: bytearray, deliver: Deliver,
                     room: Callable[[float], bool] | None) -> tuple[MQTTErrorCode, bool]:
        """Append up to ``_MAX_READS`` reads to ``buf``: (parse result of a bounded consumer, connection lost)."""
        lost = False
        got = False
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        for _ in range(_MAX_READS):
            try:
                data = self._sock_recv(_READ_SIZE)
            except BlockingIOError:
                break
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                lost = True
                break
            if not data:
                lost = True
                break
            buf += data
            got = True
            if room is not None:  # a bounded consumer: hand over each read, stop reading once it is full
                rc = self._parse(buf, deliver)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not room(0.0):
                    break
            if len(data) < _READ_SIZE:
                break  # drained: save the recv() that would only say EAGAIN
        if got:
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        return rc, lost

    def _parse(self, buf: bytearray, deliver: Deliver) -> MQTTErrorCode:
        """Handle every complete packet in ``buf`` and remove them from it."""
        out: list[Message] = []
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        auto_ack = not self._manual_ack
        fast_puback = self.on_publish is None  # with a callback, paho's handler calls it
        now = time.time()
        n = len(buf)
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        with memoryview(buf) as mv:
            try:
                while pos < n:
                    hdr = buf[pos]
                    i, end = _packet_bounds(buf, pos, n)
                    if not end:
                        break  # incomplete: wait for more bytes
                    qos = (hdr >> 1) & 3
                    if hdr & 0xF0 == _PUBLISH and qos < 2:
                        topic, mid, j = _publish_fields(buf, i, end, qos, v5)
                        if topic is None:
                            topic = self._bad_topic(mv[i:end])
                        out.append((topic, bytes(mv[j:end]), mid, qos, now))
                        if qos and auto_ack:
                            self._send_puback(mid)
                    elif hdr == _PUBACK and fast_puback and (end - i == 2 or (v5 and end - i > 2)):
                        # the PUBACK of a command: no need to hand the batch over first (nothing
                        # about a PUBLISH depends on it), and none of paho's objects built for it
                        # (a malformed one, e.g. 3 bytes in MQTT 3.1.1, is left to paho's handler)
                        rc = self._puback((buf[i] << 8) | buf[i + 1])
                    else:
                        if out:
                            deliver(out)
                            out = []
                        rc = self._handle_other(hdr, mv[i:end])
                    pos = end
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
            except (_Malformed, IndexError) as exc:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        if out:
            deliver(out)
        del buf[:pos]
        return rc

    def _puback(self, mid: int) -> MQTTErrorCode:
        """A PUBACK for ``mid``: what paho's ``_handle_pubackcomp`` does when no ``on_publish`` is set.

        paho decodes each PUBACK into a ``ReasonCode`` and a ``Properties`` object, logs it, and then
        walks every message it holds (``_update_inflight``) to send the queued ones: with up to 1,000
        commands in flight, that walk is quadratic in the commands outstanding. In ``bench rules`` at
        10k msg/s (4 Dec 2026, py-spy over the wave of ~3,000 lamp commands/s that comes ~10 s into
        the load), the lane session's network thread was busy in 558 of 1,250 samples, most of them
        in paho's handler, taking the GIL from the pipeline thread that reacts. Measured with
        ``scripts/bench_puback.py`` (3,000 commands through Mosquitto, 1,000 in flight, 4 rounds):
        212-354 ms of CPU here against 551-666 ms with paho's handler. Here the message leaves the store, is
        marked published, and the walk runs only when a message waits for room in flight. A reason
        code of failure is treated as paho treats it: the message is done, nothing is retried."""
        with self._out_message_mutex:
            msg = self._out_messages.pop(mid, None)
            if msg is None:
                return MQTTErrorCode.MQTT_ERR_SUCCESS  # a duplicate, or a message paho already let go
            msg.info._set_as_published()
            if msg.qos > 0:
                self._inflight_messages -= 1
                if self._max_inflight_messages > 0 and self._inflight_messages < len(self._out_messages):
                    return self._update_inflight()  # some wait to be sent: paho's own walk sends them
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _bad_topic(self, header: memoryview) -> str:
        """The topic of a PUBLISH whose topic is not UTF-8, with replacement characters (refused by the pipeline)."""
        if self.on_bad_topic is not None:
            self.on_bad_topic()
        tlen = (header[0] << 8) | header[1]
        return str(header[2:2 + tlen], "utf-8", "replace")

    def _handle_other(self, hdr: int, body: memoryview) -> MQTTErrorCode:
        """A packet other than a QoS 0/1 PUBLISH, through paho's own handler."""
        self._in_packet = _in_packet(hdr, body)
        try:
            return self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _in_packet()

    # -- batched publishing (one thread at a time: the pipeline's) ---------------------------------
    _collect: list[bytes] | None = None

    def publish_many(self, messages: list[tuple[str, bytes, int, bool]]) -> list[mqtt.MQTTMessageInfo]:
        """Publish (topic, payload, qos, retain) and queue their QoS 1/2 packets as one write.

        paho queues one packet per message, with one wake-up byte each, and its loop thread writes
        each packet with one ``send``. Every ``send`` releases the GIL; with the pipeline thread busy,
        the loop thread then waits up to the switch interval to take it back, for each packet. In
        ``bench rules`` a rule tick retried ~1,100 unconfirmed lamps at once, and a reaction queued
        behind them left seconds later (p99 1.5 s, against 34 ms with one packet per publish). Here
        paho's ``publish`` keeps its bookkeeping (packet ids, in-flight messages, PUBACK handling,
        re-sending after a reconnection); only the bytes of the batch go out in one ``send``.
        """
        collected: list[bytes] = []
        self._collect = collected
        try:
            infos = [self.publish(t, p, qos=q, retain=r) for t, p, q, r in messages]
        finally:
            self._collect = None
        if collected:
            super()._packet_queue(_PUBLISH | 0x02, b"".join(collected), 0, 1)
        return infos

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        collect = self._collect
        if collect is not None and (command & 0xF0) == _PUBLISH and qos > 0:
            # a QoS 0 packet is queued alone: paho marks it published once written
            collect.append(bytes(packet))
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)

    # -- batched acknowledgement (any thread) --------------------------------------------------------
    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs (success, no properties) of QoS 1 messages as one write per chunk."""
        for k in range(0, len(mids), _ACK_CHUNK):
            packet = b"".join([_PUBACK_PACKET(_PUBACK, 2, mid) for mid in mids[k:k + _ACK_CHUNK]])
            self._packet_queue(_PUBACK, packet, 0, 1)


# -- the shape of every private member above, as paho-mqtt 2.2 has it ----------------------------
# method name -> its parameters (names and kinds, self excluded)
_P = inspect.Parameter
_METHODS: dict[str, list[tuple[str, Any]]] = {
    "loop_read": [("max_packets", _P.POSITIONAL_OR_KEYWORD)],
    "_packet_handle": [],
    "_sock_recv": [("bufsize", _P.POSITIONAL_OR_KEYWORD)],
    "_easy_log": [("level", _P.POSITIONAL_OR_KEYWORD), ("fmt", _P.POSITIONAL_OR_KEYWORD), ("args", _P.VAR_POSITIONAL)],
    "_loop_rc_handle": [("rc", _P.POSITIONAL_OR_KEYWORD)],
    "_send_puback": [("mid", _P.POSITIONAL_OR_KEYWORD)],
    "_packet_queue": [("command", _P.POSITIONAL_OR_KEYWORD), ("packet", _P.POSITIONAL_OR_KEYWORD),
                      ("mid", _P.POSITIONAL_OR_KEYWORD), ("qos", _P.POSITIONAL_OR_KEYWORD),
                      ("info", _P.POSITIONAL_OR_KEYWORD)],
    "_update_inflight": [],
}


def _method_mismatches() -> list[str]:
    out = []
    for name, params in _METHODS.items():
        fn = getattr(mqtt.Client, name, None)
        if not callable(fn):
            out.append(f"paho.mqtt.client.Client.{name} is gone (the fast path calls it)")
            continue
        got = [(p.name, p.kind) for p in list(inspect.signature(fn).parameters.values())[1:]]
        if got != params:
            out.append(f"paho.mqtt.client.Client.{name} changed its parameters: {got}, expected {params}")
    return out


# instance attribute -> what it holds on a client that never connected (MQTT 5, manual acknowledgement)
_ATTRIBUTES: dict[str, Callable[[Any], bool]] = {
    "_in_packet": lambda v: v == _in_packet(),
    "_sock": lambda v: v is None,
    "_protocol": lambda v: v == MQTTProtocolVersion.MQTTv5,
    "_manual_ack": lambda v: v is True,
    "_msgtime_mutex": lambda v: callable(getattr(v, "__enter__", None)) and callable(getattr(v, "__exit__", None)),
    "_last_bytes_received": lambda v: isinstance(v, float),
    "_out_messages": lambda v: isinstance(v, dict) and not v,
    "_out_message_mutex": lambda v: callable(getattr(v, "__enter__", None)) and callable(getattr(v, "__exit__", None)),
    "_inflight_messages": lambda v: v == 0,
    "_max_inflight_messages": lambda v: isinstance(v, int),
}


def _instance_mismatches() -> list[str]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)  # no network
    out = []
    for name, ok in _ATTRIBUTES.items():
        if not hasattr(c, name):
            out.append(f"paho.mqtt.client.Client().{name} is gone (the fast path uses it)")
        elif not ok(getattr(c, name)):
            out.append(f"paho.mqtt.client.Client().{name} changed shape: {getattr(c, name)!r}")
    return out


def _module_mismatches() -> list[str]:
    out = []
    if not callable(getattr(mqtt, "time_func", None)):
        out.append("paho.mqtt.client.time_func is gone (the keepalive clock the fast path updates)")
    if not (isinstance(MalformedPacket, type) and issubclass(MalformedPacket, Exception)):
        out.append("paho.mqtt.exception.MalformedPacket is no longer an exception class")
    msg = mqtt.MQTTMessage(topic=b"city/\xff")
    if not isinstance(getattr(msg, "_topic", None), bytes):
        out.append("paho.mqtt.client.MQTTMessage._topic is no longer the raw topic bytes (plain path, bad topics)")
    if not callable(getattr(msg.info, "_set_as_published", None)):
        out.append("paho.mqtt.client.MQTTMessageInfo._set_as_published is gone (the fast path's PUBACKs)")
    return out


@functools.cache
def paho_mismatches() -> list[str]:
    """Every private paho member the fast path uses that is missing or changed shape: [] when all are as verified."""
    return _method_mismatches() + _instance_mismatches() + _module_mismatches()
