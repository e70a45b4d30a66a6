"""Notifications that reach people: e-mail and signed webhooks, routed, grouped, escalated, durable.

The interface the alarm lifecycle calls::

    from supervisor.notify import AlarmEvent, Notifier, check_reachable

    check_reachable(settings.notifications)   # at start: NotificationConfigError if an SMTP relay fails
    notifier = Notifier(settings.notifications, settings.data_dir)
    notifier.start()                           # the dispatcher thread
    notifier.submit(AlarmEvent(alarm_id="rc:sw-z01", transition="raised", kind="root_cause",
                               severity="critical", element="sw-z01", text="switch sw-z01 down",
                               ts=time.time(), services=("lighting",), zone="z01", devices=120))
    notifier.stats()                           # {"sent", "retried", "failed", "pending", ...}
    notifier.close()

``submit(event)`` takes one :class:`AlarmEvent` per transition of an alarm: ``raised``,
``acknowledged`` (with ``acknowledged_by``), ``cleared``, ``flapping`` (the alarm came back;
``flap_count`` numbers the returns) or ``escalated`` (an explicit escalation; the notifier also
escalates by itself when a route's ``escalation.after`` passes without an acknowledgement). It is
thread-safe, stores the notifications durably before it returns (one SQLite transaction), never
raises for a notification it cannot store (counted as ``errors``), and returns how many it added.

- An event with ``in_maintenance`` set is never notified (counted as ``suppressed_maintenance``),
  and cancels what still waited for that alarm (a delayed raise, an escalation).
- Routes match on severity (at least ``min_severity``), services, zone and kind. A raise waits
  for the route's ``delay``: an acknowledgement or a clear within it cancels it, and cancels
  pending escalations. ``acknowledged``/``cleared`` go only to channels that were told of the
  alarm (its raise, return or escalation).
- Each (alarm, transition, flap_count, channel) is one outbox row whose idempotency key makes a
  second submission a no-op: a lifecycle that re-submits after a restart notifies nobody twice.
- Notifications of one channel due within ``group_window`` seconds go out as one message (a
  digest); a root cause's line names the cause and counts its devices.
- Delivery: retried with exponential backoff and jitter until ``retry_horizon`` (24 h), then
  ``failed``. A message keeps its key across retries and restarts (``Idempotency-Key`` header,
  e-mail ``Message-ID``): at least once on the wire, at most once per key at a deduplicating
  receiver. Details and the webhook signature: ``docs/notifications.md``.
"""

from supervisor.notify.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, check_reachable, sign
from supervisor.notify.config import (
    EmailChannel,
    Escalation,
    NotificationConfigError,
    NotificationsConfig,
    Route,
    WebhookChannel,
)
from supervisor.notify.events import AlarmEvent, InvalidEventError, Transition
from supervisor.notify.notifier import Notifier

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlarmEvent",
    "EmailChannel",
    "Escalation",
    "InvalidEventError",
    "NotificationConfigError",
    "NotificationsConfig",
    "Notifier",
    "Route",
    "Transition",
    "WebhookChannel",
    "check_reachable",
    "sign",
]
