"""The notifier: routes alarm events into the outbox, and a dispatcher thread that delivers them."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from pathlib import Path

from supervisor.notify.channels import DeliveryError, send_email, send_webhook
from supervisor.notify.config import SEVERITIES, EmailChannel, NotificationsConfig, Route
from supervisor.notify.events import FOLLOW_UPS, STARTS, AlarmEvent
from supervisor.notify.outbox import Message, Outbox, Target

log = logging.getLogger(__name__)

#: the dispatcher looks at the outbox at least this often (seconds), whatever it expects
IDLE_POLL = 5.0
#: finished notifications older than ``history_retention`` are deleted this often (seconds)
PRUNE_INTERVAL = 3600.0


def route_matches(route: Route, event: AlarmEvent) -> bool:
    if event.severity_rank() > SEVERITIES.index(route.min_severity):
        return False
    if route.services and not set(route.services) & set(event.services):
        return False
    if route.zones and event.zone not in route.zones:
        return False
    return not route.kinds or event.kind in route.kinds


class Notifier:
    """Durable alarm notifications. ``submit`` is cheap (one SQLite transaction) and thread-safe."""

    def __init__(self, config: NotificationsConfig, data_dir: Path) -> None:
        self.config = config
        path = config.outbox_file if config.outbox_file.is_absolute() else data_dir / config.outbox_file
        self.outbox = Outbox(path)
        self._counts: Counter[str] = Counter()
        self._by_channel: dict[str, Counter[str]] = {name: Counter() for name in config.channels}
        self._stats_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    # -- the lifecycle's side ---------------------------------------------------------------

    def submit(self, event: AlarmEvent) -> int:
        """Queue the notifications ``event`` calls for; returns how many were added.

        Never raises for an event it cannot store: that is counted (``errors``) and logged.
        """
        now = time.time()
        try:
            if event.in_maintenance:  # and what was still waiting for this alarm stays quiet too
                self._count("suppressed_maintenance")
                self._count("cancelled", self.outbox.cancel_waiting(event.alarm_id))
                return 0
            added, cancelled = self.outbox.submit(event, self.targets(event, now), now)
        except Exception:
            log.exception("notify: could not store the notification of alarm %s (%s)", event.alarm_id,
                          event.transition)
            self._count("errors")
            return 0
        self._count("queued", added)
        self._count("cancelled", cancelled)
        if added:
            self._wake.set()
        return added

    def cancel(self, alarm_id: str) -> int:
        """Cancel what still waits for ``alarm_id`` (a delayed raise, an escalation): the alarm was
        shelved. Returns how many notifications were cancelled; never raises (counted in ``errors``)."""
        try:
            n = self.outbox.cancel_waiting(alarm_id)
        except Exception:
            log.exception("notify: could not cancel the notifications of alarm %s", alarm_id)
            self._count("errors")
            return 0
        self._count("cancelled", n)
        return n

    def targets(self, event: AlarmEvent, now: float) -> list[Target]:
        """Where ``event`` goes, one target per (channel, transition), the earliest time winning."""
        chosen: dict[tuple[str, str], Target] = {}

        def add(route: Route, not_before: float, transition: str) -> None:
            for ch in route.channels:
                old = chosen.get((ch, transition))
                if old is None or not_before < old.not_before:
                    chosen[(ch, transition)] = Target(ch, route.name, not_before, transition)

        for route in self.config.routes:
            if not route_matches(route, event):
                continue
            esc = route.escalation
            second = self.config.route(esc.route) if esc is not None else None
            if event.transition == "escalated":
                if second is not None:
                    add(second, now, "escalated")
                continue
            delay = 0.0 if event.transition in FOLLOW_UPS else route.delay
            add(route, now + delay, event.transition)
            if second is not None and esc is not None and event.transition in STARTS:
                add(second, now + esc.after, "escalated")
            if second is not None and event.transition in FOLLOW_UPS:
                add(second, now, event.transition)  # told only if it was escalated to
        return list(chosen.values())

    # -- the dispatcher ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="notify-dispatcher", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the dispatcher (after the send in progress) and close the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.outbox.close()

    def _run(self) -> None:
        next_prune = 0.0
        while not self._stop.is_set():
            self._wake.clear()  # before the pass: a submit during it wakes the next wait at once
            try:
                if time.time() >= next_prune:
                    self.outbox.prune(time.time() - self.config.history_retention)
                    next_prune = time.time() + PRUNE_INTERVAL
                wait = self.dispatch_once()
            except Exception:
                log.exception("notify: dispatcher pass failed; retrying")
                wait = IDLE_POLL
            self._wake.wait(wait)

    def dispatch_once(self) -> float:
        """One pass: bind due notifications to messages, send those due; returns seconds to sleep."""
        cfg = self.config
        self.outbox.open_messages(time.time(), cfg.group_window, cfg.max_digest)
        down: dict[str, float] = {}  # channel -> its next attempt, once one of its messages failed
        for message in self.outbox.due_messages(time.time()):
            if self._stop.is_set():
                break
            if message.channel in down:  # one failure per channel and pass: a dead host costs one timeout
                self._postpone(message, down[message.channel])
                continue
            retry = self._deliver(message)
            if retry is not None:
                down[message.channel] = retry
        wake = self.outbox.next_wakeup(cfg.group_window)
        if wake is None:
            return IDLE_POLL
        return min(IDLE_POLL, max(0.01, wake - time.time()))

    def _deliver(self, message: Message) -> float | None:
        """Send ``message``; returns when it will be retried, or None (delivered, or failed for good)."""
        channel = self.config.channels.get(message.channel)
        if channel is None:
            # a channel removed from the configuration while messages for it waited
            self._finish_failed(message, "channel no longer configured")
            return None
        try:
            if isinstance(channel, EmailChannel):
                note = send_email(channel, message)
            else:
                note = send_webhook(channel, message.channel, message)
        except DeliveryError as exc:
            return self._retry(message, str(exc))
        except Exception as exc:  # a bug must not wedge the queue: this message retries, the others go on
            log.exception("notify: channel %s, message %s: unexpected error", message.channel, message.key)
            return self._retry(message, f"{type(exc).__name__}: {exc}")
        if note:
            log.warning("notify: channel %s, message %s: %s", message.channel, message.key, note)
        self.outbox.finish(message.key, "delivered", time.time())
        self._count("sent", channel=message.channel)
        self._count("notifications_sent", len(message.items), channel=message.channel)
        log.info("notify: channel %s accepted message %s (%d notifications, attempt %d)", message.channel,
                 message.key, len(message.items), message.attempts + 1)
        return None

    def _retry(self, message: Message, error: str) -> float | None:
        now = time.time()
        cfg = self.config
        deadline = message.created + cfg.retry_horizon
        if now >= deadline:
            self._finish_failed(message, error)
            return None
        base = min(cfg.retry_max_delay, cfg.retry_min_delay * 2.0 ** min(message.attempts, 30))
        delay = base / 2 + self._rng.uniform(0, base / 2)  # equal jitter: never a synchronised retry storm
        when = min(now + delay, deadline)
        self.outbox.retry_at(message.key, when, error)
        self._count("retried", channel=message.channel)
        log.warning("notify: channel %s, message %s, attempt %d failed (%s); retry in %.1f s", message.channel,
                    message.key, message.attempts + 1, error, delay)
        return when

    def _postpone(self, message: Message, when: float) -> None:
        """Not tried, its channel just failed: wait with the message that failed (the horizon still holds)."""
        deadline = message.created + self.config.retry_horizon
        if time.time() >= deadline:
            self._finish_failed(message, "the retry horizon passed while the channel was failing")
        else:
            self.outbox.postpone(message.key, min(when, deadline))

    def _finish_failed(self, message: Message, error: str) -> None:
        self.outbox.finish(message.key, "failed", time.time(), error)
        self._count("failed", channel=message.channel)
        self._count("notifications_failed", len(message.items), channel=message.channel)
        log.error("notify: channel %s, message %s FAILED after %d attempts: %s (%d notifications lost)",
                  message.channel, message.key, message.attempts + 1, error, len(message.items))

    # -- health -----------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1, channel: str | None = None) -> None:
        if not n:
            return
        with self._stats_lock:
            self._counts[name] += n
            if channel is not None:
                self._by_channel.setdefault(channel, Counter())[name] += n

    def stats(self) -> dict[str, object]:
        """Counters since start (messages ``sent``/``retried``/``failed``...) and the outbox's backlog.

        ``pending``: notifications due and not yet delivered (in a grouping window, being retried):
        a backlog that grows while a receiver is down. ``scheduled``: waiting for their time (a
        route's delay, an escalation deadline that an acknowledgement may still cancel).
        """
        with self._stats_lock:
            out: dict[str, object] = {k: self._counts[k] for k in (
                "sent", "retried", "failed", "notifications_sent", "notifications_failed", "queued",
                "cancelled", "suppressed_maintenance", "errors")}  # fmt: skip
            out["channels"] = {ch: dict(c) for ch, c in self._by_channel.items()}
        counts = self.outbox.counts(time.time())
        out["pending"], out["scheduled"] = counts["pending"], counts["scheduled"]
        return out
