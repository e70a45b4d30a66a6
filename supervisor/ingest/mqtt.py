"""MQTT ingestion on paho-mqtt: QoS 1, persistent session, manual acknowledgement, batched hand-over.

paho runs its network loop in its own thread and hands messages to an :class:`Inbox`. The pipeline
thread takes whole batches from the inbox, so it is woken once per batch, not once per message
(iterating aiomqtt's stream costs 2.5-3x a bare paho callback loop here). Two paths, chosen by
``mqtt.fast_path``: the fast one (``_paho_fast.py``, on paho internals, checked at start) hands over
a whole socket read at once; the plain one (paho's public API) appends in ``on_message``.

With MQTT 5 (the default) the client announces a large *Receive Maximum*, so the broker may keep
thousands of QoS 1 messages unacknowledged while their points travel to InfluxDB; the supervisor
acknowledges each message only once its points are durable (stored or spooled). With MQTT 3.1.1
the broker's own in-flight limit applies (Mosquitto's default is 20), which throttles throughput.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from supervisor.config import MqttConfig
from supervisor.ingest.backlog import SessionBacklog

if TYPE_CHECKING:
    from supervisor.ingest._paho_fast import FastClient

_log = logging.getLogger(__name__)

# one received message: (topic, payload, mid, qos, receive time)
Message = tuple[str, bytes, int, int, float]


class Inbox:
    """Thread-safe hand-over of messages from the network thread to the pipeline thread, in batches.

    ``put`` appends under a lock and signals only when the consumer sleeps, so the cost per message
    is one list append; the consumer swaps the whole list out at once.

    It has two sides: the bulk side (this object, bounded by ``max_items``) and the control lane
    (:attr:`lane`, fed by the lane's own MQTT session, unbounded: its session's Receive Maximum
    bounds it). :meth:`take_lanes` hands the lane over whole before any bulk, with one wake-up for
    either side.
    """

    def __init__(self, max_items: int = 0) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._space = threading.Condition(lock)
        self._items: list[Message] = []
        self._lane_items: list[Message] = []  # the lane's inputs: what commanding rules react to
        #: the lane's confirmations (the commanded lamps' own reports), behind its inputs: a lamp's
        #: report confirms a command already sent and changes no command, so a sensor reading or a
        #: camera event never waits behind a thousand of them (``bench rules``: 3,400 lamp reports/s
        #: beside 3,500 sensor readings/s went through one FIFO)
        self._lane_confirm: list[Message] = []
        #: topics whose messages are confirmations (set by :class:`~supervisor.ingest.lane.ControlLane`
        #: through :meth:`set_confirm_topics` and :meth:`add_confirm_topics`; read and changed under the lock)
        self.confirm_topics: set[str] = set()
        self._waiting = False
        self._producer_waiting = False
        self.max_items = max_items  # 0: unbounded
        self.total = 0
        self.full_waits = 0  # times the network thread found the inbox full (and stopped reading)
        self.lane = LaneInbox(self)

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

    def take_lanes(self, limit: int, bulk_limit: int, timeout: float = 0.0,
                   bulk: bool = True) -> tuple[list[Message], list[Message]]:
        """(lane, bulk): every waiting lane message (up to ``limit``; its inputs first, then its
        confirmations), then up to ``bulk_limit`` bulk ones (none when ``bulk`` is False: the consumer
        cannot take bulk now); waits up to ``timeout`` s when there is nothing to take."""
        inputs, confirm, items = self.take_three(limit, limit, bulk_limit, timeout, bulk)
        return inputs + confirm, items

    def take_three(self, limit: int, confirm_limit: int, bulk_limit: int, timeout: float = 0.0,
                   bulk: bool = True) -> tuple[list[Message], list[Message], list[Message]]:
        """(inputs, confirmations, bulk): every waiting lane input (up to ``limit``), up to
        ``confirm_limit`` lane confirmations, then up to ``bulk_limit`` bulk messages (none when
        ``bulk`` is False); waits up to ``timeout`` s when there is nothing to take."""
        with self._cond:
            if timeout > 0 and not self._lane_items and not self._lane_confirm and not (bulk and self._items):
                self._waiting = True
                self._cond.wait(timeout)
                self._waiting = False
            lane = self._lane_items
            if len(lane) <= limit:
                self._lane_items = []
            else:
                lane, self._lane_items = lane[:limit], lane[limit:]
            confirm = self._lane_confirm
            room = min(confirm_limit, limit - len(lane))
            if len(confirm) <= room:
                self._lane_confirm = []
            elif room > 0:
                confirm, self._lane_confirm = confirm[:room], confirm[room:]
            else:
                confirm = []
            if not bulk or not self._items:
                return lane, confirm, []
            n = min(bulk_limit, limit - len(lane) - len(confirm))
            if n <= 0:
                return lane, confirm, []
            items = self._items
            if len(items) <= n:
                self._items = []
            else:
                items, self._items = items[:n], items[n:]
            if self._producer_waiting:
                self._producer_waiting = False
                self._space.notify()
            return lane, confirm, items

    def take_inputs(self, limit: int) -> list[Message]:
        """The lane inputs waiting now (up to ``limit``), without waiting: the consumer looks again
        between the stages of an iteration."""
        with self._cond:
            lane = self._lane_items
            if len(lane) <= limit:
                self._lane_items = []
                return lane
            lane, self._lane_items = lane[:limit], lane[limit:]
            return lane

    def lane_waiting(self) -> bool:
        """Whether a lane input waits (read without the lock: a hint for the consumer to come back)."""
        return bool(self._lane_items)

    def add_confirm_topics(self, topics: Iterable[str]) -> None:
        """Topics just learned that carry confirmations (the lane has no message of them yet)."""
        with self._cond:
            self.confirm_topics.update(topics)

    def set_confirm_topics(self, topics: Iterable[str]) -> None:
        """The lane's confirmation topics. Confirmations already waiting move ahead of the waiting
        inputs, so a topic that changes side keeps its order (its older messages are all in the
        confirmations, its newer ones will be inputs, or the reverse, and inputs go first)."""
        topics = set(topics)
        with self._cond:
            if topics == self.confirm_topics:
                return
            if self._lane_confirm:
                self._lane_items = self._lane_confirm + self._lane_items
                self._lane_confirm = []
            self.confirm_topics = topics

    def _put_lane(self, items: list[Message]) -> None:
        with self._cond:
            confirm = self.confirm_topics
            if confirm:
                inputs, confirms = self._lane_items, self._lane_confirm
                for item in items:
                    (confirms if item[0] in confirm else inputs).append(item)
            else:
                self._lane_items.extend(items)
            if self._waiting:
                self._waiting = False
                self._cond.notify()

    def depths(self) -> tuple[int, int, float, float]:
        """(lane depth, bulk depth, receive time of the oldest waiting lane message, of the oldest bulk
        one; 0.0 when that side is empty): read without the lock, as a snapshot for health. The
        lane counts its inputs and its confirmations."""
        lane, confirm, bulk = self._lane_items, self._lane_confirm, self._items
        oldest = min((q[0][4] for q in (lane, confirm) if q), default=0.0)
        return (len(lane) + len(confirm), len(bulk), oldest, bulk[0][4] if bulk else 0.0)

    def confirm_depth(self) -> int:
        return len(self._lane_confirm)

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


class LaneInbox:
    """The control lane's side of an :class:`Inbox`, as its MQTT session sees it (never full)."""

    max_items = 0

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    def put(self, item: Message) -> None:
        self._inbox._put_lane([item])

    def put_many(self, items: list[Message]) -> None:
        self._inbox._put_lane(items)

    def wait_room(self, timeout: float) -> bool:
        return True

    def set_confirm_topics(self, topics: Iterable[str]) -> None:
        self._inbox.set_confirm_topics(topics)

    def add_confirm_topics(self, topics: Iterable[str]) -> None:
        self._inbox.add_confirm_topics(topics)

    def __len__(self) -> int:
        return len(self._inbox._lane_items) + len(self._inbox._lane_confirm)


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


#: topic filters per SUBSCRIBE packet when the lane subscribes what it learned (a packet per topic cost
#: a SUBACK each: 54,640 of them while a 100,000-device city's storm drained)
SUBSCRIBE_CHUNK = 1000
FULL_WAIT = 0.05  # s the network thread waits for room in a full inbox before servicing the socket again


class ReconnectingClient(mqtt.Client):
    """paho's client, public API only (the plain path): keeps the last connection error, acknowledges batches."""

    last_connect_error = ""

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = f"{type(exc).__name__}: {exc}"
            raise

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (one queued PUBACK each; the fast path queues one write)."""
        for mid in mids:
            self.ack(mid, 1)

    def publish_many(self, messages: list[tuple[str, bytes, int, bool]]) -> list[mqtt.MQTTMessageInfo]:
        """Publish (topic, payload, qos, retain) in order (the fast path wakes its loop once)."""
        return [self.publish(t, p, qos=q, retain=r) for t, p, q, r in messages]


def _fast_client_class() -> type[FastClient] | None:
    """The fast path's client class if paho is as it was verified with; None (logged): the plain path."""
    # imported here: the plain path must keep working if a paho upgrade breaks the fast module itself
    try:
        from supervisor.ingest import _paho_fast
    except ImportError as exc:
        _log.error("MQTT: the paho fast path cannot load (%s): using the plain paho path", exc)
        return None
    problems = _paho_fast.paho_mismatches()
    if problems:
        _log.error("MQTT: paho-mqtt %s is not what the fast path was verified with (%s): using the plain paho path",
                   paho.mqtt.__version__, "; ".join(problems))
        return None
    return _paho_fast.FastClient



def _no_delay(_client: mqtt.Client, _userdata: object, sock: Any) -> None:
    """Send small packets at once (TCP_NODELAY): paho leaves Nagle's algorithm on, so a command
    written right after a PUBACK waited for the broker's TCP acknowledgement of the PUBACK, up to
    its delayed-ACK time (~40 ms on Linux). Measured 4 Dec 2026: `bench storm` camera probes p50
    50 ms, p99 91 ms (3M messages) -> p50 12 ms, p99 30 ms (500k); `bench rules` at 3k msg/s
    p50 6-7 -> 2.1 ms, p99 20-31 -> 8.5-9.9 ms. A socket without the option (a WebSocket
    wrapper) is left as it is."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:
        _log.debug("MQTT: TCP_NODELAY not set on %r: %s", sock, exc)

class MqttIngest:
    """The supervisor's MQTT session: subscribe, receive into an inbox, acknowledge, publish."""

    def __init__(self, cfg: MqttConfig, topics: Sequence[str], inbox: Inbox | LaneInbox, *,
                 manual_ack: bool = True, backlog: SessionBacklog | None = None) -> None:
        self.cfg = cfg
        #: where a resumed session's backlog ends (supervisor/ingest/backlog.py): persistent QoS 1 only
        self.backlog = backlog if backlog is not None and not cfg.clean_start and cfg.qos > 0 else None
        self.inbox = inbox
        self.stats = MqttStats()
        self.connected = threading.Event()
        prefix = f"$share/{cfg.share_group}/" if cfg.share_group else ""
        self.subscriptions = [prefix + t for t in topics]
        if cfg.broker_drop_counter:  # a broker statistic: one plain subscription, never shared
            self.subscriptions.append(cfg.broker_drop_counter)
        if self.backlog is not None:  # the session's own marker topic: plain, never shared
            self.subscriptions.append(self.backlog.topic)
        self._subscribed = set(self.subscriptions)  # membership: the lane learns tens of thousands of topics
        self._v5 = cfg.protocol == "5"
        self._manual_ack = manual_ack and cfg.qos > 0
        self._stopping = threading.Event()
        self._client = self._new_client(cfg.fast_path)
        self.fast_path = type(self._client) is not ReconnectingClient  # False: asked so, or paho changed
        self._client.enable_logger(_log)
        self._client.on_socket_open = _no_delay
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
        self._sub_lock = threading.Lock()  # a SUBACK may come back before subscribe_more stored its mid
        #: called (network thread) with the filters the broker granted in a SUBACK
        self.on_subscribed: Callable[[list[str]], None] | None = None
        self._client.on_message = self._on_message  # the plain path; QoS 2 and what paho reads itself
        self._started = False

    def _new_client(self, fast_path: bool) -> ReconnectingClient:
        kwargs: dict[str, Any] = {
            "client_id": self.cfg.client_id, "protocol": mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            "clean_session": None if self._v5 else self.cfg.clean_start, "manual_ack": self._manual_ack,
        }
        fast = _fast_client_class() if fast_path else None
        if fast is None:
            return ReconnectingClient(CallbackAPIVersion.VERSION2, **kwargs)
        client = fast(CallbackAPIVersion.VERSION2, **kwargs)
        client.deliver = self._on_messages
        client.room = self.inbox.wait_room if self.inbox.max_items else None
        client.on_bad_topic = self._on_bad_topic
        return client

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
        _log.info("MQTT: connecting to %s:%s as %r (MQTT %s, QoS %s, %s session, %s paho path)", self.cfg.host,
                  self.cfg.port, self.cfg.client_id, self.cfg.protocol, self.cfg.qos,
                  "clean" if self.cfg.clean_start else "persistent", "fast" if self.fast_path else "plain")

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        if not self._started:
            return
        # paho 2.2's network loop may run once more after disconnect() closed the socket and log
        # "Client is not connected" as an ERROR (seen in 1 of 5 demo shutdowns, before and after
        # this session's changes): a stop is not an error, so paho's log is detached first
        self._client.disable_logger()
        self._stopping.set()  # a plain-path on_message waiting for room in the inbox gives up
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False
        self._stopping.clear()

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
        if self.backlog is not None and flags.session_present:
            # the backlog runs at least until it comes back (MQTT orders per topic only, so it may
            # overtake queued messages: the pipeline also waits for a low inbox, backlog.py)
            client.publish(self.backlog.topic, self.backlog.begin(), qos=1)
        self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None = None) -> None:
        """A refused filter (ACL, bad filter) is said with its topic: otherwise the supervisor is deaf to it."""
        with self._sub_lock:
            topics = self._pending_subs.pop(mid, [])
        granted: list[str] = []
        for i, rc in enumerate(reason_codes):
            topic = topics[i] if i < len(topics) else "?"
            if rc.is_failure:
                self.stats.refused_subscriptions += 1
                _log.error("MQTT: %s:%s refused the subscription to %r: %s", self.cfg.host, self.cfg.port, topic, rc)
                if self.backlog is not None and topic == self.backlog.topic:
                    self.backlog.refused()
            elif i < len(topics):
                granted.append(topic)
        if granted and self.on_subscribed is not None:
            self.on_subscribed(granted)

    def subscribe_more(self, topics: Sequence[str]) -> None:
        """Add subscriptions (kept for the reconnections); sent now when connected."""
        have = self._subscribed
        new = [t for t in dict.fromkeys(topics) if t not in have]
        if not new:
            return
        self.subscriptions.extend(new)
        have.update(new)
        if self.stats.connected:
            qos = int(self.cfg.qos)
            with self._sub_lock:
                for k in range(0, len(new), SUBSCRIBE_CHUNK):
                    chunk = new[k:k + SUBSCRIBE_CHUNK]
                    _, mid = self._client.subscribe([(t, qos) for t in chunk])
                    if mid is not None:
                        self._pending_subs[mid] = chunk

    def unsubscribe(self, topics: Sequence[str]) -> None:
        """Drop subscriptions (a reload took devices out of the lane)."""
        gone = [t for t in dict.fromkeys(topics) if t in self._subscribed]
        if not gone:
            return
        self._subscribed.difference_update(gone)
        self.subscriptions = [t for t in self.subscriptions if t in self._subscribed]
        if self.stats.connected:
            self._client.unsubscribe(gone)

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
        if self.inbox.max_items and not self.fast_path:
            self._wait_room()
        self.stats.received += 1
        self.inbox.put((topic, bytes(msg.payload), msg.mid, msg.qos, time.time()))

    def _wait_room(self) -> None:
        """Plain path: hold paho's network thread (so the socket is not read) while the inbox is full.

        The fast path stops reading and keeps servicing the socket; this one sends no PUBACK and no
        ping meanwhile, so a pipeline stalled for 1.5x the keepalive makes the broker close the
        connection, and it redelivers every unacknowledged message: slower, nothing lost.
        """
        while not self.inbox.wait_room(FULL_WAIT) and not self._stopping.is_set():
            pass

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

    def publish_many(self, messages: list[tuple[str, bytes, int, bool]]) -> None:
        """Publish (topic, payload, qos, retain) in order, queued at once. Raises :class:`MqttError`
        naming the first that failed, after queuing the others."""
        infos = self._client.publish_many(messages)
        bad = [(m[0], i.rc) for m, i in zip(messages, infos, strict=True)
               if i.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)]
        self.stats.published += len(infos) - len(bad)
        if bad:
            raise MqttError(f"publish to {bad[0][0]!r} failed: {mqtt.error_string(bad[0][1])}"
                            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
