"""End to end through a real SMTP server (STARTTLS + AUTH) and a real HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor.notify import NotificationsConfig, Notifier, check_reachable
from tests.notify.conftest import event
from tests.notify.support import WEBHOOK_SECRET, Receiver, SmtpServer, wait_for

MakeNotifier = Callable[..., Notifier]


def _both(smtp: SmtpServer, receiver: Receiver, **route: object) -> dict[str, object]:
    return {
        "channels": {"mail": smtp.channel(), "hook": receiver.channel()},
        "routes": [{"name": "oncall", "channels": ["mail", "hook"], **route}],
    }


def _escalating(crew: Receiver, chief: Receiver, after: float) -> dict[str, Any]:
    """Route "crew" escalates to route "chief", which receives nothing else."""
    return {
        "channels": {"crew": crew.channel(), "chief": chief.channel()},
        "routes": [{"name": "crew", "channels": ["crew"], "escalation": {"after": after, "route": "chief"}},
                   {"name": "chief", "channels": ["chief"], "kinds": ["none"]}],
    }  # fmt: skip


def test_one_event_gives_one_mail_and_one_signed_webhook(
    smtp: SmtpServer, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    n = make_notifier(**_both(smtp, receiver))
    assert n.submit(event()) == 2
    wait_for(lambda: len(smtp.mails) == 1 and len(receiver.requests) == 1, 20, "one mail and one webhook")
    time.sleep(1.0)  # nothing else follows
    assert len(smtp.mails) == 1 and len(receiver.requests) == 1
    assert receiver.bad_signatures == 0
    mail = smtp.mails[0]
    assert smtp.handler.tls == [True] and smtp.handler.authenticated == [True]
    assert mail["Subject"].startswith("[urban-supervisor] CRITICAL raised: root cause sw-z01 (120 devices)")
    assert mail["To"] == "night-crew@city.test"
    body = mail.get_content()
    assert isinstance(body, str) and "root cause sw-z01: 120 devices affected" in body
    hook = receiver.requests[0]
    assert hook.body["count"] == 1
    item = hook.body["notifications"][0]
    assert (item["alarm_id"], item["transition"], item["devices"], item["zone"]) == ("rc:sw-z01", "raised", 120, "z01")
    # one notification, one key: the webhook's Idempotency-Key is the notification's, the mail's Message-ID too
    assert hook.key == item["key"]
    mail_key = mail["X-Urban-Idempotency-Key"]
    assert mail["Message-ID"] == f"<{mail_key}@urban-supervisor.invalid>"
    assert set(n.outbox.message_states().items()) == {(hook.key, "delivered"), (mail_key, "delivered")}
    stats = n.stats()
    assert (stats["sent"], stats["failed"], stats["pending"], stats["retried"]) == (2, 0, 0, 0)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_delivers_too(tls_cert: tuple[Path, Path], make_notifier: MakeNotifier) -> None:
    server = SmtpServer(*tls_cert, implicit_tls=True).start()
    try:
        cfg = {"channels": {"mail": server.channel()}, "routes": [{"name": "all", "channels": ["mail"]}]}
        check_reachable(NotificationsConfig(**cfg))
        make_notifier(**cfg).submit(event())
        wait_for(lambda: len(server.mails) == 1, 20, "the mail over implicit TLS")
        assert server.handler.tls == [True] and server.handler.authenticated == [True]
    finally:
        server.stop()


def test_a_resubmitted_event_is_not_sent_twice(receiver: Receiver, make_notifier: MakeNotifier) -> None:
    n = make_notifier(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}])
    assert n.submit(event()) == 1
    wait_for(lambda: len(receiver.requests) == 1, 20, "the webhook")
    assert n.submit(event()) == 0  # same alarm, same transition, same channel: the same key
    time.sleep(1.0)
    assert len(receiver.requests) == 1


def test_a_burst_of_50_events_is_one_digest_per_channel(
    smtp: SmtpServer, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    n = make_notifier(group_window=3.0, **_both(smtp, receiver))
    for i in range(50):
        n.submit(event(f"dev:lamp-{i:03d}", kind="device", severity="minor", element=f"lamp-{i:03d}",
                       text=f"lamp lamp-{i:03d} silent or faulty", devices=1))  # fmt: skip
    wait_for(lambda: len(smtp.mails) >= 1 and len(receiver.requests) >= 1, 30, "the digests")
    time.sleep(4.0)  # a second grouping window: nothing else arrives
    assert len(smtp.mails) == 1 and len(receiver.requests) == 1
    assert receiver.requests[0].body["count"] == 50
    assert len(set(receiver.notification_keys())) == 50
    assert smtp.mails[0]["Subject"] == "[urban-supervisor] 50 alarm notifications: 50 minor"
    body = smtp.mails[0].get_content()
    assert isinstance(body, str) and all(f"lamp-{i:03d}" in body for i in range(50))
    assert n.stats()["notifications_sent"] == 100


def test_escalation_goes_to_the_second_route_unless_acknowledged(make_notifier: MakeNotifier) -> None:
    first, second = Receiver().start(), Receiver().start()
    try:
        n = make_notifier(**_escalating(first, second, after=5.0))
        n.submit(event("a:ignored"))
        n.submit(event("a:acked"))
        wait_for(lambda: len(first.notification_keys()) == 2, 10, "both raises")
        assert n.stats()["scheduled"] == 2  # the two escalations
        n.submit(event("a:acked", "acknowledged", acknowledged_by="alice"))
        assert n.stats()["scheduled"] == 1 and n.stats()["cancelled"] == 1
        wait_for(lambda: len(second.processed) == 1, 10, "the escalation")
        time.sleep(1.0)  # both escalations were due together: the acknowledged one does not follow
        escalated = [x for d in second.processed for x in d.body["notifications"]]
        assert [(x["alarm_id"], x["transition"]) for x in escalated] == [("a:ignored", "escalated")]
        told = sorted((x["alarm_id"], x["transition"]) for d in first.processed for x in d.body["notifications"])
        assert told == [("a:acked", "acknowledged"), ("a:acked", "raised"), ("a:ignored", "raised")]
        # the escalation route hears the end of what it was escalated, nothing of the rest
        n.submit(event("a:ignored", "cleared"))
        n.submit(event("a:acked", "cleared"))
        wait_for(lambda: len(second.processed) == 2, 10, "the clear at the escalation route")
        time.sleep(1.0)
        last = second.processed[-1].body["notifications"]
        assert [(x["alarm_id"], x["transition"]) for x in last] == [("a:ignored", "cleared")]
    finally:
        first.stop()
        second.stop()


def test_delay_cancels_a_raise_that_clears_in_time(receiver: Receiver, make_notifier: MakeNotifier) -> None:
    n = make_notifier(channels={"hook": receiver.channel()},
                      routes=[{"name": "patient", "channels": ["hook"], "delay": 1.5}])  # fmt: skip
    n.submit(event("brief"))
    n.submit(event("lasting"))
    time.sleep(0.3)
    n.submit(event("brief", "cleared"))  # cleared within the delay: nobody is told of it, neither raise nor clear
    wait_for(lambda: len(receiver.processed) == 1, 10, "the lasting alarm")
    time.sleep(2.0)
    items = [(x["alarm_id"], x["transition"]) for x in receiver.processed[0].body["notifications"]]
    assert items == [("lasting", "raised")] and len(receiver.processed) == 1
    assert n.stats()["cancelled"] == 1


def test_routes_match_severity_service_zone_and_kind(make_notifier: MakeNotifier) -> None:
    lights, water = Receiver().start(), Receiver().start()
    try:
        n = make_notifier(
            channels={"lights": lights.channel(), "water": water.channel()},
            routes=[{"name": "l", "channels": ["lights"], "services": ["lighting"], "min_severity": "major"},
                    {"name": "w", "channels": ["water"], "services": ["water"], "zones": ["z02"],
                     "kinds": ["leak"]}])  # fmt: skip
        assert n.submit(event("rc")) == 1  # critical, lighting+traffic: lights only
        assert n.submit(event("minor-lamp", severity="minor", services=("lighting",))) == 0  # below major
        assert n.submit(event("leak-1", kind="leak", services=("water",), zone="z02", severity="warning")) == 1
        assert n.submit(event("leak-2", kind="leak", services=("water",), zone="z03")) == 0  # other zone
        assert n.submit(event("meter", kind="device", services=("water",), zone="z02")) == 0  # other kind
        wait_for(lambda: len(lights.processed) == 1 and len(water.processed) == 1, 10, "both channels")
        assert [x["alarm_id"] for x in lights.processed[0].body["notifications"]] == ["rc"]
        assert [x["alarm_id"] for x in water.processed[0].body["notifications"]] == ["leak-1"]
    finally:
        lights.stop()
        water.stop()


def test_maintenance_is_never_notified(receiver: Receiver, make_notifier: MakeNotifier) -> None:
    n = make_notifier(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}])
    assert n.submit(event(in_maintenance=True)) == 0
    assert n.submit(event(transition="cleared", in_maintenance=True)) == 0
    time.sleep(1.0)
    assert receiver.requests == [] and n.stats()["suppressed_maintenance"] == 2


def test_maintenance_declared_later_silences_what_still_waits(make_notifier: MakeNotifier) -> None:
    crew, chief = Receiver().start(), Receiver().start()
    try:
        n = make_notifier(**_escalating(crew, chief, after=2.0))
        n.submit(event())
        wait_for(lambda: len(crew.processed) == 1, 10, "the raise")
        n.submit(event(transition="raised", in_maintenance=True))  # the lifecycle: the switch is now in works
        time.sleep(3.0)
        assert chief.requests == [] and n.stats()["cancelled"] == 1 and n.stats()["scheduled"] == 0
    finally:
        crew.stop()
        chief.stop()


def test_shelving_cancels_what_still_waits(make_notifier: MakeNotifier) -> None:
    crew, chief = Receiver().start(), Receiver().start()
    try:
        n = make_notifier(**_escalating(crew, chief, after=2.0))
        n.submit(event())
        wait_for(lambda: len(crew.processed) == 1, 10, "the raise")
        assert n.cancel("rc:sw-z01") == 1  # the lifecycle: an operator shelved the alarm
        time.sleep(3.0)
        assert chief.requests == [] and n.stats()["cancelled"] == 1 and n.stats()["scheduled"] == 0
    finally:
        crew.stop()
        chief.stop()


def test_a_follow_up_of_an_alarm_nobody_was_told_of_is_not_sent(
    receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    n = make_notifier(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}])
    assert n.submit(event("never-raised", "acknowledged", acknowledged_by="bob")) == 0
    assert n.submit(event("never-raised", "cleared")) == 0


def test_a_receiver_that_never_comes_back_fails_after_the_horizon(make_notifier: MakeNotifier) -> None:
    down = Receiver()  # never started: connection refused
    n = make_notifier(channels={"hook": down.channel()}, routes=[{"name": "all", "channels": ["hook"]}],
                      retry_horizon=2.0)  # fmt: skip
    n.submit(event())
    wait_for(lambda: n.stats()["failed"] == 1, 15, "the message to fail")
    stats = n.stats()
    assert stats["pending"] == 0 and stats["sent"] == 0 and int(str(stats["retried"])) >= 2
    assert stats["notifications_failed"] == 1
    assert set(n.outbox.message_states().values()) == {"failed"}


def test_a_bad_signature_is_refused_and_retried(make_notifier: MakeNotifier) -> None:
    strict = Receiver(secret="another-secret-of-the-receiver").start()
    try:
        n = make_notifier(channels={"hook": strict.channel(secret="whsec-the-wrong-one-0123")},
                          routes=[{"name": "all", "channels": ["hook"]}], retry_horizon=1.5)  # fmt: skip
        n.submit(event())
        wait_for(lambda: n.stats()["failed"] == 1, 15, "the refused message to fail")
        assert strict.bad_signatures >= 2 and strict.processed == []
    finally:
        strict.stop()


def test_a_refusing_receiver_is_retried_until_it_accepts(receiver: Receiver, make_notifier: MakeNotifier) -> None:
    receiver.fail_next = 2
    n = make_notifier(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}])
    n.submit(event())
    wait_for(lambda: len(receiver.processed) == 1, 20, "the third attempt to be accepted")
    time.sleep(1.0)
    stats = n.stats()
    assert (stats["retried"], stats["sent"], stats["pending"]) == (2, 1, 0)
    assert stats["channels"] == {"hook": {"retried": 2, "sent": 1, "notifications_sent": 1}}


def test_a_redirect_is_not_followed(receiver: Receiver, make_notifier: MakeNotifier) -> None:
    elsewhere = Receiver(secret=WEBHOOK_SECRET).start()
    try:
        receiver.redirect_to = elsewhere.url
        n = make_notifier(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}],
                          retry_horizon=1.0)  # fmt: skip
        n.submit(event())
        wait_for(lambda: n.stats()["failed"] == 1, 15, "the redirected message to fail")
        assert elsewhere.requests == [] and receiver.processed == []
    finally:
        elsewhere.stop()


def test_a_flapping_alarm_that_was_never_told_is_told_on_its_return(make_notifier: MakeNotifier) -> None:
    crew, chief = Receiver().start(), Receiver().start()
    try:
        cfg = _escalating(crew, chief, after=2.0)
        cfg["routes"][0]["delay"] = 0.5
        n = make_notifier(**cfg)
        n.submit(event("blink"))
        n.submit(event("blink", "cleared"))  # within the delay: the raise and its escalation are cancelled
        n.submit(event("blink", "flapping", flap_count=1))  # back: it has a delay and an escalation of its own
        wait_for(lambda: len(chief.processed) == 1, 10, "the escalation of the return")
        told = [(x["transition"], x["flap_count"]) for d in crew.processed for x in d.body["notifications"]]
        assert told == [("flapping", 1)]
        assert [x["transition"] for x in chief.processed[0].body["notifications"]] == ["escalated"]
        assert n.stats()["cancelled"] == 2
    finally:
        crew.stop()
        chief.stop()


def test_alarm_text_with_line_breaks_still_makes_a_valid_mail(smtp: SmtpServer, make_notifier: MakeNotifier) -> None:
    n = make_notifier(channels={"mail": smtp.channel()}, routes=[{"name": "all", "channels": ["mail"]}])
    n.submit(event(kind="leak", text="leak on\r\nmain 3\nsince 02:00"))
    wait_for(lambda: len(smtp.mails) == 1, 20, "the mail")
    # (the stdlib may fold a long header before its first word: unfolded, the value starts with a space)
    assert smtp.mails[0]["Subject"].strip() == "[urban-supervisor] CRITICAL raised: sw-z01: leak on main 3 since 02:00"
    assert n.stats()["retried"] == 0


def test_a_failing_channel_costs_one_attempt_per_pass(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next = 1000
    config = NotificationsConfig(channels={"hook": receiver.channel()}, routes=[{"name": "all", "channels": ["hook"]}],
                                 group_window=0, max_digest=1, retry_min_delay=0.2)  # fmt: skip
    n = Notifier(config, tmp_path)  # no dispatcher thread: the test makes the passes
    try:
        for i in range(3):
            n.submit(event(f"a{i}"))
        n.dispatch_once()
        assert len(receiver.fail_log) == 1  # the other two messages wait with the first, untried
        assert n.stats()["retried"] == 1 and n.stats()["pending"] == 3
        time.sleep(0.3)
        n.dispatch_once()
        assert len(receiver.fail_log) == 2
        receiver.fail_next = 0
        time.sleep(0.5)
        n.dispatch_once()
        assert len(receiver.processed) == 3 and n.stats()["pending"] == 0
    finally:
        n.close()
