"""MQTT ingestion on paho-mqtt: QoS 1, persistent session, manual acknowledgement, batched hand-over.

paho runs its network loop in its own thread; ``on_message`` only appends to an :class:`Inbox`.
The pipeline thread takes whole batches from the inbox, so it is woken once per batch, not once
per message (iterating aiomqtt's stream costs 2.5-3x a bare paho callback loop here).

With MQTT 5 (the default) the client announces a large *Receive Maximum*, so the broker may keep
thousands of QoS 1 messages unacknowledged while their points travel to InfluxDB; the supervisor
acknowledges each message only once its points are durable (stored or spooled). With MQTT 3.1.1
the broker's own in-flight limit applies (Mosquitto's default is 20), which throttles throughput.
"""

from __future__ import annotations

import logging
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from supervisor.config import MqttConfig

_log = logging.getLogger(__name__)

# one received message: (topic, payload, mid, qos, receive time)
Message = tuple[str, bytes, int, int, float]


class Inbox:
    """Thread-safe hand-over of messages from the network thread to the pipeline thread, in batches.

    ``put`` appends under a lock and signals only when the consumer sleeps, so the cost per message
    is one list append; the consumer swaps the whole list out at once.
    """

    def __init__(self, max_items: int = 0) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._space = threading.Condition(lock)
        self._items: list[Message] = []
        self._waiting = False
        self._producer_waiting = False
        self.max_items = max_items  # 0: unbounded
        self.total = 0
        self.full_waits = 0  # times the network thread found the inbox full (and stopped reading)

    def put(self, item: Message) -> None:
        with self._cond:
            self._items.append(item)
            self.total += 1
            if self._waiting:
                self._waiting = False
                self._cond.notify()

    def put_many(self, items: list[Message]) -> None:
        """Append a whole read of the socket at once (one lock, one wake-up)."""
        with self._cond:
            self._items.extend(items)
            self.total += len(items)
            if self._waiting:
                self._waiting = False
                self._cond.notify()

    def take(self, limit: int, timeout: float = 0.0) -> list[Message]:
        """Up to ``limit`` messages; waits up to ``timeout`` s for the first one."""
        with self._cond:
            if not self._items and timeout > 0:
                self._waiting = True
                self._cond.wait(timeout)
                self._waiting = False
            if len(self._items) <= limit:
                items, self._items = self._items, []
            else:
                items, self._items = self._items[:limit], self._items[limit:]
            if self._producer_waiting and items:
                self._producer_waiting = False
                self._space.notify()
            return items

    def wait_room(self, timeout: float) -> bool:
        """Network thread: whether there is room; when full, first wait up to ``timeout`` s for some.

        The broker may send far more than the session's Receive Maximum (Mosquitto 2.0 sends a
        whole offline queue at once on reconnection, and MQTT 3.1.1 has no such limit): without a
        bound, a storm of queued messages lands in memory (3 million messages took the process to
        1.1 GB). While the inbox is full the socket is not read, and TCP pushes back on the broker,
        which keeps the messages.
        """
        if not self.max_items or len(self._items) < self.max_items:
            return True
        with self._space:
            if len(self._items) >= self.max_items:
                self.full_waits += 1
                self._producer_waiting = True
                self._space.wait(timeout)
            return len(self._items) < self.max_items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class MqttStats:
    connects: int = 0
    disconnects: int = 0
    received: int = 0
    acked: int = 0
    published: int = 0
    bad_topics: int = 0
    sessions_lost: int = 0  # reconnections where the broker no longer had our persistent session
    refused_subscriptions: int = 0  # filters the broker refused in a SUBACK (ACL, invalid filter)
    connected: bool = False
    last_error: str = ""


class MqttError(Exception):
    """A configuration or connection problem with the broker, with host and port in the message."""


def _tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    if cfg.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
    if cfg.tls.cert_file is not None:
        ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file) if cfg.tls.key_file else None)
    if cfg.tls.insecure:
        ctx.check_hostname = False
    return ctx


_PUBLISH = 0x30
_PUBACK = 0x40
_PUBACK_PACKET = struct.Struct("!BBH").pack
_READ_SIZE = 256 * 1024  # bytes per recv(): hundreds of telemetry messages
_MAX_READS = 8  # recv() calls per loop_read, so that PUBACKs and pings still go out under a flood
_ACK_CHUNK = 8192  # PUBACKs per queued write (32 KiB)
_FULL_WAIT = 0.05  # s the network thread waits for room in a full inbox before servicing the socket again

# a socket read's QoS 0/1 PUBLISH packets, handed over at once
Deliver = Callable[[list[Message]], None]


class _Malformed(Exception):
    pass


class _Client(mqtt.Client):
    """paho's client with a batched read path and batched PUBACKs; keeps the last connection error.

    paho reads a packet with three ``recv`` calls and one ``select`` (its loop reads one packet per
    wake-up), then builds an ``MQTTMessage`` with MQTT 5 ``Properties``, a debug log call, a topic
    matcher walk and two locks, and queues one PUBACK (one ``send`` plus one wake-up byte) per
    message: together about 30 µs per message, the whole of one core at ~30k msg/s. Here, with
    ``deliver`` set, :meth:`loop_read` reads up to 256 KiB per ``recv``, parses every complete
    QoS 0/1 PUBLISH itself (topic, packet id, payload; MQTT 5 properties are skipped, as the
    supervisor never used them, and topic aliases are never granted) and hands them over in one
    call. Every other packet (CONNACK, SUBACK, PUBACK, PINGRESP, DISCONNECT, QoS 2 PUBLISH) goes
    through paho's own handler, in order. :meth:`ack_many` queues the PUBACKs of a batch as one write.
    """

    last_connect_error = ""
    deliver: Deliver | None = None
    on_bad_topic: Callable[[], None] | None = None
    room: Callable[[float], bool] | None = None  # False: the consumer is full, do not read now
    _rbuf: bytearray | None = None
    _rsock: object = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = f"{type(exc).__name__}: {exc}"
            raise

    # -- batched read path (network thread) ------------------------------------------------------
    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        deliver = self.deliver
        if deliver is None or self._in_packet["command"] != 0:
            return super().loop_read(max_packets)  # paho's own path (or a packet it started)
        room = self.room
        if room is not None and not room(_FULL_WAIT):
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # back-pressure: leave the bytes in the socket
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if self._rsock is not sock or self._rbuf is None:  # a new connection starts with an empty buffer
            self._rbuf, self._rsock = bytearray(), sock
        buf = self._rbuf
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
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = self._parse(buf, deliver)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and lost:
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._rbuf = None
            return self._loop_rc_handle(rc)
        return rc

    def _parse(self, buf: bytearray, deliver: Deliver) -> MQTTErrorCode:
        """Handle every complete packet in ``buf`` and remove them from it."""
        out: list[Message] = []
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        auto_ack = not self._manual_ack
        now = time.time()
        n = len(buf)
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        with memoryview(buf) as mv:
            try:
                while pos < n:
                    hdr = buf[pos]
                    i = pos + 1
                    length = 0
                    shift = 0
                    complete = False
                    while i < n:
                        b = buf[i]
                        i += 1
                        length |= (b & 0x7F) << shift
                        if not b & 0x80:
                            complete = True
                            break
                        shift += 7
                        if shift > 21:
                            raise _Malformed("remaining length longer than 4 bytes")
                    if not complete:
                        break  # the length itself is incomplete: wait for more bytes
                    end = i + length
                    if end > n:
                        break  # the packet is incomplete: wait for more bytes
                    qos = (hdr >> 1) & 3
                    if hdr & 0xF0 == _PUBLISH and qos < 2:
                        if length < 2:
                            raise _Malformed("PUBLISH too short")
                        tlen = (buf[i] << 8) | buf[i + 1]
                        j = i + 2 + tlen
                        raw_topic = bytes(mv[i + 2:j])
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
                            topic = raw_topic.decode()
                        except UnicodeDecodeError:
                            topic = raw_topic.decode("utf-8", "replace")  # refused by the pipeline
                            if self.on_bad_topic is not None:
                                self.on_bad_topic()
                        out.append((topic, bytes(mv[j:end]), mid, qos, now))
                        if qos and auto_ack:
                            self._send_puback(mid)
                    else:
                        if out:
                            deliver(out)
                            out = []
                        self._in_packet = {
                            "command": hdr, "have_remaining": 1, "remaining_count": [], "remaining_mult": 1,
                            "remaining_length": length, "packet": bytearray(mv[i:end]), "to_process": 0, "pos": 0,
                        }
                        try:
                            rc = self._packet_handle()
                        except MalformedPacket as exc:
                            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                        finally:
                            self._in_packet = {
                                "command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                                "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0,
                            }
                        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                            pos = end
                            break
                    pos = end
            except (_Malformed, IndexError) as exc:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        if out:
            deliver(out)
        del buf[:pos]
        return rc

    # -- batched acknowledgement (any thread) --------------------------------------------------------
    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs (success, no properties) of QoS 1 messages as one write per chunk."""
        for k in range(0, len(mids), _ACK_CHUNK):
            packet = b"".join([_PUBACK_PACKET(_PUBACK, 2, mid) for mid in mids[k:k + _ACK_CHUNK]])
            self._packet_queue(_PUBACK, packet, 0, 1)


class MqttIngest:
    """The supervisor's MQTT session: subscribe, receive into an inbox, acknowledge, publish."""

    def __init__(self, cfg: MqttConfig, topics: Sequence[str], inbox: Inbox, *, manual_ack: bool = True) -> None:
        self.cfg = cfg
        self.inbox = inbox
        self.stats = MqttStats()
        self.connected = threading.Event()
        prefix = f"$share/{cfg.share_group}/" if cfg.share_group else ""
        self.subscriptions = [prefix + t for t in topics]
        if cfg.broker_drop_counter:  # a broker statistic: one plain subscription, never shared
            self.subscriptions.append(cfg.broker_drop_counter)
        self._v5 = cfg.protocol == "5"
        self._manual_ack = manual_ack and cfg.qos > 0
        self._client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else cfg.clean_start,
            manual_ack=self._manual_ack,
        )
        self._client.enable_logger(_log)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(int(max(1, cfg.reconnect_min_delay)), int(max(1, cfg.reconnect_max_delay)))
        if cfg.username is not None:
            pw = cfg.password.get_secret_value() if cfg.password is not None else None
            self._client.username_pw_set(cfg.username, pw)
        ctx = _tls_context(cfg)
        if ctx is not None:
            self._client.tls_set_context(ctx)
            if cfg.tls is not None and cfg.tls.insecure:
                self._client.tls_insecure_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._pending_subs: dict[int, list[str]] = {}
        self._client.on_message = self._on_message  # QoS 2 and anything paho reads itself
        self._client.deliver = self._on_messages
        self._client.room = inbox.wait_room if inbox.max_items else None
        self._client.on_bad_topic = self._on_bad_topic
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        props = None
        kwargs: dict[str, object] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.cfg.session_expiry
            props.ReceiveMaximum = self.cfg.receive_maximum
            kwargs["clean_start"] = self.cfg.clean_start
        self._client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive, properties=props, **kwargs  # type: ignore[arg-type]
        )
        self._client.loop_start()
        self._started = True
        _log.info("MQTT: connecting to %s:%s as %r (MQTT %s, QoS %s, %s session)", self.cfg.host, self.cfg.port,
                  self.cfg.client_id, self.cfg.protocol, self.cfg.qos,
                  "clean" if self.cfg.clean_start else "persistent")

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        if not self._started:
            return
        # paho 2.2's network loop may run once more after disconnect() closed the socket and log
        # "Client is not connected" as an ERROR (seen in 1 of 5 demo shutdowns, before and after
        # this session's changes): a stop is not an error, so paho's log is detached first
        self._client.disable_logger()
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    rc: ReasonCode, properties: Properties | None) -> None:
        if rc.is_failure:
            self.stats.last_error = f"connect refused by {self.cfg.host}:{self.cfg.port}: {rc}"
            _log.error("MQTT: %s", self.stats.last_error)
            return
        self.stats.connects += 1
        self.stats.connected = True
        if self.stats.connects > 1 and not flags.session_present and not self.cfg.clean_start:
            self.stats.sessions_lost += 1
            _log.error("MQTT: %s:%s no longer has our persistent session: what was published for us while we "
                       "were away is lost (broker restarted without persistence, or session expired)",
                       self.cfg.host, self.cfg.port)
        _log.info("MQTT: connected to %s:%s (session present: %s)", self.cfg.host, self.cfg.port,
                  flags.session_present)
        # Subscribe even when the session is present: it is idempotent, and a broker that lost its
        # persistence would otherwise leave us deaf. paho does not block on the SUBACK.
        if self.subscriptions:
            # the broker statistic at QoS 0: never queued for the offline session, where it would take
            # a telemetry message's place under max_queued_messages
            subs = [(t, 0 if t == self.cfg.broker_drop_counter else int(self.cfg.qos)) for t in self.subscriptions]
            _, mid = client.subscribe(subs)
            if mid is not None:
                self._pending_subs[mid] = [t for t, _ in subs]
        self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None = None) -> None:
        """A refused filter (ACL, bad filter) is said with its topic: otherwise the supervisor is deaf to it."""
        topics = self._pending_subs.pop(mid, [])
        for i, rc in enumerate(reason_codes):
            if rc.is_failure:
                topic = topics[i] if i < len(topics) else "?"
                self.stats.refused_subscriptions += 1
                _log.error("MQTT: %s:%s refused the subscription to %r: %s", self.cfg.host, self.cfg.port, topic, rc)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        reason = getattr(client, "last_connect_error", "") or "connection failed"
        error = f"cannot connect to {self.cfg.host}:{self.cfg.port}: {reason}"
        if error != self.stats.last_error:  # once per distinct reason; paho retries with backoff
            _log.error("MQTT: %s", error)
        self.stats.last_error = error

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       rc: ReasonCode, properties: Properties | None) -> None:
        self.connected.clear()
        self.stats.connected = False
        self.stats.disconnects += 1
        if rc.is_failure:
            _log.warning("MQTT: disconnected from %s:%s (%s); paho reconnects with backoff", self.cfg.host,
                         self.cfg.port, rc)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")  # counted as a bad topic by the pipeline
            self.stats.bad_topics += 1
        self.stats.received += 1
        self.inbox.put((topic, bytes(msg.payload), msg.mid, msg.qos, time.time()))

    def _on_messages(self, messages: list[Message]) -> None:
        self.stats.received += len(messages)
        self.inbox.put_many(messages)

    def _on_bad_topic(self) -> None:
        self.stats.bad_topics += 1

    # -- acknowledgement and publishing (any thread) ---------------------------------------------
    def ack(self, acks: Iterable[tuple[int, int]]) -> None:
        """Acknowledge (mid, qos) pairs once their points are durable."""
        if not self._manual_ack or not self._client.is_connected():
            return  # not acknowledged: the broker redelivers them in the next session
        mids = [mid for mid, qos in acks if qos == 1]
        if mids:
            self._client.ack_many(mids)
        n = len(mids)
        for mid, qos in acks:
            if qos == 2:
                self._client.ack(mid, qos)
                n += 1
        self.stats.acked += n

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        self.stats.published += 1
