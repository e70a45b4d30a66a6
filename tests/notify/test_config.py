"""Bad notification configuration: clear errors naming the key, never a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ConfigFileError, load_settings
from supervisor.notify import AlarmEvent, InvalidEventError, NotificationConfigError, NotificationsConfig
from supervisor.notify import check_reachable as check
from tests.notify.conftest import event
from tests.notify.support import SMTP_PASSWORD, WEBHOOK_SECRET, SmtpServer, free_port

SLACK_LIKE_TOKEN = "T000-B000-XXXXXXXXXXXXXXXXXXXXXXXX"


def _load(tmp_path: Path, notifications: dict[str, Any]) -> str:
    with pytest.raises(ConfigFileError) as err:
        load_settings(notifications=notifications)
    return str(err.value)


def _hook(url: str) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": WEBHOOK_SECRET}


def test_default_settings_notify_nobody() -> None:
    s = load_settings()
    assert s.notifications.channels == {} and s.notifications.routes == []


def test_a_yaml_file_configures_channels_and_routes(tmp_path: Path) -> None:
    path = tmp_path / "urban.yaml"
    path.write_text(
        "notifications:\n"
        "  group_window: 5\n"
        "  channels:\n"
        "    oncall:\n      type: email\n      host: smtp.city.test\n      port: 587\n      username: sup\n"
        "      password: a-long-smtp-secret\n      from: supervisor@city.test\n      to: [crew@city.test]\n"
        "    ops:\n      type: webhook\n      url: https://ops.city.test/hooks/urban\n"
        f"      secret: {WEBHOOK_SECRET}\n"
        "  routes:\n"
        "    - {name: night, min_severity: major, services: [lighting], channels: [oncall, ops], delay: 60,\n"
        "       escalation: {after: 900, route: chiefs}}\n"
        "    - {name: chiefs, channels: [oncall]}\n", encoding="utf-8")  # fmt: skip
    cfg = load_settings(path).notifications
    assert cfg.group_window == 5 and cfg.routes[0].escalation is not None
    assert cfg.routes[0].escalation.route == "chiefs" and cfg.route("chiefs").channels == ["oncall"]
    assert "a-long-smtp-secret" not in repr(cfg) and WEBHOOK_SECRET not in repr(cfg)


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://hooks.city.test/x", "the scheme must be http or https, got 'ftp'"),
    ("hooks.city.test/x", "the scheme must be http or https, got 'none'"),
    ("https:///path-only", "the URL has no host"),
    ("http://hooks.city.test:99999/x", "not a valid URL"),
])  # fmt: skip
def test_a_bad_webhook_url_is_a_clear_error_that_does_not_echo_it(tmp_path: Path, url: str, problem: str) -> None:
    msg = _load(tmp_path, {"channels": {"ops": _hook(url.replace("/x", f"/{SLACK_LIKE_TOKEN}"))}})
    assert "notifications.channels.ops" in msg and "url" in msg and problem in msg
    assert SLACK_LIKE_TOKEN not in msg and WEBHOOK_SECRET not in msg


def test_an_unknown_channel_in_a_route_names_route_and_channel(tmp_path: Path) -> None:
    msg = _load(tmp_path, {"channels": {"ops": _hook("https://h.test/x")},
                           "routes": [{"name": "night", "channels": ["ops", "pager"]}]})  # fmt: skip
    assert "routes.0 (night): unknown channel 'pager' (known: ops)" in msg


def test_escalation_to_an_unknown_or_the_same_route_is_refused(tmp_path: Path) -> None:
    chans = {"ops": _hook("https://h.test/x")}
    msg = _load(tmp_path, {"channels": chans, "routes": [
        {"name": "night", "channels": ["ops"], "escalation": {"after": 60, "route": "chiefs"}}]})
    assert "escalation.route 'chiefs' is not a route" in msg
    msg = _load(tmp_path, {"channels": chans, "routes": [
        {"name": "night", "channels": ["ops"], "escalation": {"after": 60, "route": "night"}}]})
    assert "escalation.route must be another route" in msg


def test_other_shape_errors(tmp_path: Path) -> None:
    mail = {"type": "email", "host": "smtp.test", "from": "sup@city.test", "to": ["crew@city.test"]}
    assert "tls (implicit TLS) and starttls exclude each other" in _load(
        tmp_path, {"channels": {"m": {**mail, "tls": True}}})
    assert "not an e-mail address: 'crew'" in _load(tmp_path, {"channels": {"m": {**mail, "to": ["crew"]}}})
    assert "username and password go together" in _load(tmp_path, {"channels": {"m": {**mail, "username": "u"}}})
    assert "a login needs starttls or tls" in _load(tmp_path, {"channels": {"m": {
        **mail, "starttls": False, "username": "u", "password": "a-password-here"}}})  # fmt: skip
    NotificationsConfig(channels={"m": {**mail, "starttls": False}})  # a local relay without login: plain is fine
    assert "at least 16 characters" in _load(tmp_path, {"channels": {"h": {**_hook("https://h.test"),
                                                                          "secret": "short"}}})  # fmt: skip
    assert "duplicate route name(s) r" in _load(tmp_path, {"channels": {"h": _hook("https://h.test")}, "routes": [
        {"name": "r", "channels": ["h"]}, {"name": "r", "channels": ["h"]}]})
    assert "notifications.channels.x" in _load(tmp_path, {"channels": {"x": {"type": "pager"}}})


def _mail_config(smtp: SmtpServer, **over: Any) -> NotificationsConfig:
    return NotificationsConfig(channels={"oncall": smtp.channel(**over)}, check_timeout=2)


def test_check_reachable_passes_with_tls_and_login(smtp: SmtpServer) -> None:
    check(_mail_config(smtp))  # STARTTLS with the trusted certificate, AUTH accepted: no error


def test_check_reachable_refuses_an_unreachable_smtp_host() -> None:
    port = free_port()  # nothing listens there
    cfg = NotificationsConfig(check_timeout=2, channels={"oncall": {
        "type": "email", "host": "127.0.0.1", "port": port, "from": "sup@city.test", "to": ["crew@city.test"],
        "username": "sup", "password": SMTP_PASSWORD}})  # fmt: skip
    with pytest.raises(NotificationConfigError) as err:
        check(cfg)
    msg = str(err.value)
    assert msg.startswith(f"notifications.channels.oncall: SMTP host 127.0.0.1:{port} unreachable within 2 s")
    assert SMTP_PASSWORD not in msg


def test_check_reachable_refuses_a_wrong_password_without_showing_it(smtp: SmtpServer) -> None:
    with pytest.raises(NotificationConfigError) as err:
        check(_mail_config(smtp, password="not-the-password-at-all"))
    msg = str(err.value)
    assert "notifications.channels.oncall" in msg and "refused the login of 'supervisor' (SMTP 535)" in msg
    assert "not-the-password-at-all" not in msg


def test_check_reachable_refuses_an_untrusted_certificate(smtp: SmtpServer) -> None:
    with pytest.raises(NotificationConfigError) as err:
        check(_mail_config(smtp, ca_file=None))  # the system store does not know the test's certificate
    assert "notifications.channels.oncall" in str(err.value) and "TLS failed: CERTIFICATE_VERIFY_FAILED" in str(
        err.value)


def test_a_bad_event_is_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidEventError, match="severity must be one of critical, major, minor, warning"):
        event(severity="fatal")
    with pytest.raises(InvalidEventError, match="transition must be one of raised, acknowledged"):
        event(transition="exploded")
    with pytest.raises(InvalidEventError, match="position must be"):
        event(position=(float("nan"), 1.0))
    with pytest.raises(InvalidEventError, match="alarm_id"):
        event("")
    ev = event()
    assert AlarmEvent.from_json(ev.to_json()) == ev


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0].replace('"…"', '"a-real-secret-of-the-city-0042"')
    path = tmp_path / "urban.yaml"
    path.write_text(example, encoding="utf-8")
    cfg = load_settings(path).notifications
    assert sorted(cfg.channels) == ["night-crew", "ops-hook"] and [r.name for r in cfg.routes] == ["night", "chiefs"]
