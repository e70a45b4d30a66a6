"""Where the broker's backlog ends: a marker the bulk session sends itself when it resumes a session.

A persistent session (``clean_start: false``) gets, on reconnecting, what the broker queued for it
while the supervisor was away: minutes or hours of telemetry, camera events included. Those must be
stored (no loss), but a rule must not light a street now for an intrusion of an hour ago.

A device's timestamp alone cannot tell a backlog from live traffic: a device whose clock lags would
lose every reaction. So the events are judged by their age only while the bulk session may still be
taking a backlog: from a connection that found its session present until (1) the marker it sent
itself came back and (2) its inbox then ran low (under ``low_water`` messages). On such a
connection the session publishes a nonce (QoS 1) to a topic only it subscribes to. The marker
alone is not enough: MQTT orders messages per topic only, and Mosquitto 2 delivers a new message at
once when the session's in-flight window has room, ahead of what it still queues (in one of three
3M-message storms the marker came back 15.7 s into a 138.6 s drain). A low inbox alone is not enough
either: it is empty right after connecting, before the broker sends anything. Everything the control
lane's clean session delivers is live and never judged by a device clock.

If the marker cannot come back (the broker refuses its subscription, or an ACL drops the publish),
the catch-up ends when the subscription is refused, or after ``backlog_marker_timeout`` seconds,
with a warning: events are then treated as live, as before this mechanism.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)

MARKER_ROOT = "urban-supervisor/backlog-marker"


def marker_topic(client_id: str) -> str:
    """The session's own marker topic (its client id, with MQTT's wildcards and separators made safe)."""
    safe = "".join("_" if c in "+#/$" else c for c in client_id)
    return f"{MARKER_ROOT}/{safe}"


class SessionBacklog:
    """Whether the bulk pipeline is still taking messages queued before the session resumed.

    :meth:`begin` is called by the network thread when a connection finds its session present;
    :meth:`marker` and :meth:`expired` by the pipeline thread, in message order.
    """

    def __init__(self, topic: str, timeout_s: float, depth: Callable[[], int] = lambda: 0,
                 low_water: int = 500) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._depth = depth  # messages waiting in the bulk inbox
        self.low_water = low_water
        self._lock = threading.Lock()
        self._nonce = b""
        self._marked = False  # the current connection's marker came back
        self._started = 0.0
        #: read by the pipeline for every batch: True from a resumed session's connection to its marker
        self.active = False
        self.catch_ups = 0  # resumed sessions whose backlog was marked
        self.last_catch_up_s = 0.0  # from the connection to the marker, last time
        self.ended_by = ""  # "marker", "refused" or "timeout", last time

    def begin(self) -> bytes:
        """A connection found its session present: the backlog runs until the returned nonce comes back."""
        nonce = os.urandom(8).hex().encode()
        with self._lock:
            self._nonce = nonce
            self._started = time.monotonic()
            self._marked = False
            self.active = True
        return nonce

    def marker(self, payload: bytes) -> bool:
        """The marker topic delivered ``payload``: True if that ended the current backlog (an earlier
        connection's marker, delivered after a reconnect, does not; with the inbox still full, the
        backlog ends later, at :meth:`settled`)."""
        with self._lock:
            if not self.active or payload != self._nonce:
                return False
            self._marked = True
        return self.settled()

    def settled(self) -> bool:
        """True if the marker came back and the bulk inbox is now low: the backlog is over (ended here)."""
        if not self._marked or self._depth() >= self.low_water:
            return False
        with self._lock:
            if not (self.active and self._marked):
                return False
            self._end("marker")
        return True

    def refused(self) -> None:
        """The broker refused the marker's subscription: the marker cannot come back."""
        with self._lock:
            if self.active:
                self._end("refused")
                _log.warning("MQTT: the broker refused the subscription to %s; a resumed session's backlog "
                             "cannot be told from live traffic, so its events command as if live", self.topic)

    def expired(self) -> bool:
        """Past the timeout without the marker (an ACL that drops it): end, with a warning."""
        if not self.active or time.monotonic() - self._started < self.timeout_s:
            return False
        with self._lock:
            if not self.active:
                return False
            self._end("timeout")
        _log.warning("MQTT: the backlog marker on %s did not come back within %.0f s (ACL?); events are "
                     "treated as live from now on", self.topic, self.timeout_s)
        return True

    def _end(self, how: str) -> None:
        self.active = False
        self._marked = False
        self.catch_ups += 1
        self.last_catch_up_s = round(time.monotonic() - self._started, 3)
        self.ended_by = how
        if how == "marker":
            _log.info("MQTT: the resumed session's backlog is drained (%.1f s after connecting)",
                      self.last_catch_up_s)

    def report(self) -> dict[str, object]:
        return {"catching_up": self.active, "catch_ups": self.catch_ups,
                "last_catch_up_s": self.last_catch_up_s, "ended_by": self.ended_by}
