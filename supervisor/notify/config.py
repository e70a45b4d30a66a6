"""Notification configuration: channels (e-mail, webhooks), routes, delays, escalation.

Validated when the settings load (shape, URLs, route -> channel and route -> route references) and,
for what only the network can tell, by :func:`supervisor.notify.check_reachable` that the runtime
calls at start.
Secrets (SMTP password, webhook HMAC secret) are ``SecretStr``; no error or log line names them,
and a webhook URL is only ever shown as ``scheme://host`` (chat hooks carry a token in the path).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from supervisor.endpoint import EndpointUrl

#: severities, most severe first (the alarm lifecycle's order)
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "warning")
SeverityName = Literal["critical", "major", "minor", "warning"]


class NotificationConfigError(ValueError):
    """A notification configuration that cannot work; the message names the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmailChannel(_Section):
    """E-mail over SMTP. ``starttls`` upgrades a plain connection (port 587); ``tls`` is implicit TLS (465)."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0, le=120)
    ca_file: Path | None = None  # trust this CA (a private relay's); None: the system's store

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        return _address(v)

    @field_validator("to")
    @classmethod
    def _recipients(cls, v: list[str]) -> list[str]:
        return [_address(a) for a in v]

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"file not found or not a regular file: {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> EmailChannel:
        if self.tls and self.starttls:
            raise ValueError("tls (implicit TLS) and starttls exclude each other: choose one")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.password is not None and not (self.tls or self.starttls):
            raise ValueError("a login needs starttls or tls: the password would cross the network in clear")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of this relay: certificate and host name always verified."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


class WebhookChannel(_Section):
    """A JSON POST signed with HMAC-SHA256 (see docs/notifications.md for the receiver's side)."""

    type: Literal["webhook"]
    url: EndpointUrl  # production refuses plain http:// beyond loopback (supervisor.config.insecurities)
    secret: SecretStr
    timeout: float = Field(5.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        # the URL itself is never echoed: a chat hook carries its token in the path
        try:
            parts = urlsplit(v)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"the scheme must be http or https, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if port == 0:
            raise ValueError("port 0 is not a valid port")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("the HMAC secret must be at least 16 characters")
        return v

    def display(self) -> str:
        """``scheme://host:port``: what logs and errors may show of the URL."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


Channel = Annotated[EmailChannel | WebhookChannel, Field(discriminator="type")]


class Escalation(_Section):
    after: float = Field(gt=0, description="seconds without acknowledgement before escalating")
    route: str = Field(min_length=1, description="the route that receives the escalation")


class Route(_Section):
    """Which alarms go where. Empty ``services``/``zones``/``kinds`` match everything."""

    name: str = Field(min_length=1)
    min_severity: SeverityName = "warning"
    services: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    channels: list[str] = Field(min_length=1)
    delay: float = Field(0.0, ge=0, description="notify a raise only if still active and unacknowledged after this")
    escalation: Escalation | None = None


class NotificationsConfig(_Section):
    """``notifications:`` in the YAML file. Empty (the default): nothing is notified."""

    channels: dict[str, Channel] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    group_window: float = Field(10.0, ge=0, le=3600, description="events of a channel within it: one digest")
    max_digest: int = Field(200, ge=1, le=10_000, description="notifications in one message at most")
    retry_min_delay: float = Field(2.0, gt=0)
    retry_max_delay: float = Field(300.0, gt=0)
    retry_horizon: float = Field(24 * 3600.0, gt=0, description="seconds of retries before a message fails")
    outbox_file: Path = Path("notify-outbox.sqlite3")  # under data_dir unless absolute
    # delivered, failed and cancelled notifications are kept this long (seconds), then deleted: the
    # outbox stays bounded, and an alarm re-submitted within it is still recognised as already sent
    history_retention: float = Field(30 * 86400.0, ge=3600)
    check_timeout: float = Field(5.0, gt=0, le=60, description="the start-up reachability check, per channel")

    @model_validator(mode="after")
    def _references(self) -> NotificationsConfig:
        if self.retry_max_delay < self.retry_min_delay:
            raise ValueError("retry_max_delay must be >= retry_min_delay")
        names = [r.name for r in self.routes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"routes: duplicate route name(s) {', '.join(dup)}")
        for i, route in enumerate(self.routes):
            for ch in route.channels:
                if ch not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(f"routes.{i} ({route.name}): unknown channel {ch!r} (known: {known})")
            esc = route.escalation
            if esc is not None and esc.route not in names:
                raise ValueError(f"routes.{i} ({route.name}): escalation.route {esc.route!r} is not a route")
            if esc is not None and esc.route == route.name:
                raise ValueError(f"routes.{i} ({route.name}): escalation.route must be another route")
        return self

    def route(self, name: str) -> Route:
        return next(r for r in self.routes if r.name == name)


def _address(v: str) -> str:
    local, at, domain = v.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>,;" for c in v.strip()):
        raise ValueError(f"not an e-mail address: {v!r}")
    return v.strip()
