"""Delivery over the two channel types, the messages' text, and the start-up reachability check.

Both senders run in the dispatcher thread (blocking I/O, bounded by the channel's timeout) and
raise :class:`DeliveryError` unless the receiver accepted the message: a 2xx answer to the
webhook's POST, an SMTP server that took the mail for at least one recipient.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate

import orjson

from supervisor.notify.config import (
    SEVERITIES,
    EmailChannel,
    NotificationConfigError,
    NotificationsConfig,
    WebhookChannel,
)
from supervisor.notify.outbox import Item, Message

SIGNATURE_HEADER = "X-Urban-Signature"
TIMESTAMP_HEADER = "X-Urban-Timestamp"
KEY_HEADER = "Idempotency-Key"
USER_AGENT = "urban-supervisor-notify/1"
MAIL_DOMAIN = "urban-supervisor.invalid"
SUBJECT_PREFIX = "[urban-supervisor] "


class DeliveryError(Exception):
    """The receiver did not accept the message (the outbox retries it)."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body): what a receiver recomputes."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _line(item: Item) -> str:
    ev = item.event
    when = datetime.fromtimestamp(ev.ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    where = f" zone {ev.zone}" if ev.zone else ""
    services = f" [{', '.join(ev.services)}]" if ev.services else ""
    head = f"{when} {ev.severity.upper()} {ev.transition.upper()}"
    if ev.kind == "root_cause":
        body = f"root cause {ev.element}: {ev.devices} devices affected: {ev.text}"
    else:
        body = f"{ev.kind} {ev.element}: {ev.text}"
    ack = f" (acknowledged by {ev.acknowledged_by})" if ev.acknowledged_by else ""
    flaps = f" (flap {ev.flap_count})" if ev.flap_count else ""
    return f"{head} {body}{services}{where}{ack}{flaps} (alarm {ev.alarm_id})"


def summary(message: Message) -> str:
    """One line: the alarm (a root cause with its device count), or a digest's count by severity."""
    items = message.items
    if len(items) == 1:
        ev = items[0].event
        name = f"root cause {ev.element} ({ev.devices} devices)" if ev.kind == "root_cause" else ev.element
        line = f"{ev.severity.upper()} {ev.transition}: {name}: {ev.text}"
        return " ".join(line.split())[:200]  # alarm text may hold line breaks: a mail header may not
    by_sev = Counter(i.event.severity for i in items)
    parts = ", ".join(f"{n} {sev}" for sev, n in sorted(by_sev.items(), key=lambda kv: _rank(kv[0])))
    return f"{len(items)} alarm notifications: {parts}"


def text(message: Message) -> str:
    lines = [summary(message), ""]
    lines += [_line(i) for i in message.items]
    lines += ["", f"Idempotency key: {message.key}"]
    return "\n".join(lines) + "\n"


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def webhook_body(message: Message, channel_name: str) -> bytes:
    doc = {
        "key": message.key,
        "channel": channel_name,
        "count": len(message.items),
        "summary": summary(message),
        "notifications": [{"key": i.key, "route": i.route, **i.event.to_json()} for i in message.items],
    }
    return orjson.dumps(doc)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an acceptance: following it would turn the POST into a GET and
    hand the signed request to another host."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send_webhook(channel: WebhookChannel, name: str, message: Message) -> str | None:
    """POST ``message``; the receiver's 2xx answer is the acceptance (returns no note)."""
    body = webhook_body(message, name)
    stamp = str(int(time.time()))
    req = urllib.request.Request(channel.url, data=body, method="POST", headers={  # noqa: S310 - http(s) only, validated
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        KEY_HEADER: message.key,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(channel.secret.get_secret_value().encode(), stamp, body),
    })  # fmt: skip
    where = channel.display()
    try:
        with _OPENER.open(req, timeout=channel.timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{where} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{where} unreachable: {reason}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"{where} answered HTTP {status}")
    return None


def email_message(channel: EmailChannel, message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail["Subject"] = SUBJECT_PREFIX + summary(message)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<{message.key}@{MAIL_DOMAIN}>"
    mail["X-Urban-Idempotency-Key"] = message.key
    mail.set_content(text(message))
    return mail


def send_email(channel: EmailChannel, message: Message) -> str | None:
    """Deliver ``message``; returns a note when some recipients were refused."""
    mail = email_message(channel, message)
    where = f"SMTP {channel.host}:{channel.port}"
    try:
        with smtp_session(channel, channel.timeout) as smtp:
            refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError(f"{where} refused every recipient") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {_smtp_text(exc)}") from None
    except (ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"{where} unreachable: {exc}") from None
    if refused:
        # accepted for the others: a resend would duplicate their copy, so this message is done
        return f"{where} refused {', '.join(sorted(refused))} (delivered to the other recipients)"
    return None


@contextmanager
def smtp_session(channel: EmailChannel, timeout: float) -> Iterator[smtplib.SMTP]:
    """An SMTP connection to ``channel``: TLS as configured, logged in when credentials are set."""
    smtp: smtplib.SMTP
    if channel.tls:
        smtp = smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=channel.ssl_context())
    else:
        smtp = smtplib.SMTP(channel.host, channel.port, timeout=timeout)
    try:
        smtp.ehlo()
        if channel.starttls:
            smtp.starttls(context=channel.ssl_context())
            smtp.ehlo()
        if channel.username is not None and channel.password is not None:
            smtp.login(channel.username, channel.password.get_secret_value())
        yield smtp
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _smtp_text(exc: smtplib.SMTPException) -> str:
    raw = getattr(exc, "smtp_error", None)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(exc)


def check_reachable(config: NotificationsConfig) -> None:
    """Open a session with every SMTP relay (TLS, and AUTH when configured) within ``check_timeout``.

    Raises :class:`NotificationConfigError` naming each failing channel's key. Webhook receivers
    are not probed: one may be down at start, and the outbox keeps its messages until it is back.
    """
    problems = []
    for name, channel in config.channels.items():
        if isinstance(channel, EmailChannel):
            problem = _smtp_problem(channel, config.check_timeout)
            if problem:
                problems.append(f"notifications.channels.{name}: {problem}")
    if problems:
        raise NotificationConfigError("\n".join(problems))


def _smtp_problem(channel: EmailChannel, timeout: float) -> str | None:
    where = f"SMTP host {channel.host}:{channel.port}"
    try:
        with smtp_session(channel, timeout):
            return None
    except smtplib.SMTPAuthenticationError as exc:
        return f"{where} refused the login of {channel.username!r} (SMTP {exc.smtp_code})"
    except smtplib.SMTPException as exc:
        return f"{where}: {type(exc).__name__}: {_smtp_text(exc)}"
    except ssl.SSLError as exc:
        return f"{where}: TLS failed: {exc.reason or exc}"
    except OSError as exc:
        return f"{where} unreachable within {timeout:g} s: {exc.strerror or exc}"
