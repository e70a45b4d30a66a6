"""MQTT authentication and TLS between the supervisor and a secured private Mosquitto.

The broker (conftest.py) has a password file, an ACL and two TLS listeners signed by a test CA,
one of which requires a client certificate. The supervisor connects with the right credentials
and CA and stores what a device publishes; a wrong password is refused, reported in
``mqtt.stats.last_error`` and never logged; a wrong CA fails verification; a client certificate
is accepted where one is required, and its absence refused.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from supervisor.config import Settings, load_settings
from supervisor.runtime import Supervisor
from tests.security.conftest import Client, SecureBroker
from tests.support.services import Influx

pytestmark = pytest.mark.integration

# device times of the last hours: inside the pipeline's window and the raw retention (30 days,
# docs/data-protection.md; older points are refused by InfluxDB)
TS0 = float(int(time.time()) // 3600 * 3600 - 3 * 3600)


def _settings(sb: SecureBroker, tmp: Path, influx: Influx, db: str, *, port: int, password: str | None = None,
              tls: dict[str, Any] | None = None, user: str = "supervisor") -> Settings:
    mqtt: dict[str, Any] = {"host": sb.host, "port": port, "client_id": f"sup-sec-{port}", "username": user,
                            "password": password if password is not None else sb.passwords[user],
                            "reconnect_min_delay": 0.5, "reconnect_max_delay": 1.0, "clean_start": True}
    if tls is not None:
        mqtt["tls"] = tls
    return load_settings(None, mode="production", data_dir=str(tmp / "var"), mqtt=mqtt, api={"enabled": False},
                         storage={"backend": "influx-v1", "url": influx.url, "database": db, "flush_interval": 0.2})


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _publish_traffic(sb: SecureBroker, port: int, n: int, *, cert: bool = False) -> None:
    """``n`` readings of det-001 published by the device's own user over TLS, every PUBACK awaited."""
    dev = Client(sb.host, port, "det-001", sb.passwords["det-001"], ca=sb.pki.ca,
                 cert=(sb.pki.client_cert, sb.pki.client_key) if cert else None)
    assert dev.connect() == "Success"
    try:
        for i in range(n):
            body = {"ts": TS0 + i, "flow": float(i), "speed": 50.0, "occupancy": 10.0}
            dev.publish("city/north/traffic/det-001/telemetry", orjson.dumps(body))
        dev.wait(lambda: len(dev.acks) >= n, 30, "PUBACKs")
        assert not any(failed for _, failed in dev.acks)
    finally:
        dev.close()


def _stored(influx: Influx, db: str) -> int:
    return int(influx.scalar('SELECT count("flow") FROM "traffic"', db) or 0)  # type: ignore[call-overload]


def _run_and_store(sup: Supervisor, sb: SecureBroker, port: int, influx: Influx, db: str, *, cert: bool) -> None:
    sup.start()
    try:
        assert sup.mqtt.wait_connected(15), sup.mqtt.stats
        time.sleep(0.3)  # SUBACK
        _publish_traffic(sb, port, 40, cert=cert)
        _wait(lambda: sup.pipeline.counters.received >= 40, 30, "40 messages")
        assert sup.writer.flush(30)
        counters = sup.pipeline.counters
    finally:
        sup.stop()
    assert counters.decoded == 40 and counters.error_total == 0, counters.as_dict()
    assert _stored(influx, db) == 40


def test_supervisor_with_password_and_ca_receives_and_stores(
        secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str) -> None:
    sb = secure_broker
    sup = Supervisor(_settings(sb, tmp_path, influx, influx_db, port=sb.tls_port, tls={"ca_file": str(sb.pki.ca)}))
    _run_and_store(sup, sb, sb.tls_port, influx, influx_db, cert=False)


def test_client_certificate_works_where_required(
        secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str) -> None:
    sb = secure_broker
    tls = {"ca_file": str(sb.pki.ca), "cert_file": str(sb.pki.client_cert), "key_file": str(sb.pki.client_key)}
    sup = Supervisor(_settings(sb, tmp_path, influx, influx_db, port=sb.mtls_port, tls=tls))
    _run_and_store(sup, sb, sb.mtls_port, influx, influx_db, cert=True)


def _raw_connack(sb: SecureBroker, cert: bool) -> bytes:
    """Open TLS to the mTLS port (with or without the client certificate), send a bare CONNECT and
    return the first bytes of the answer (a CONNACK starts with 0x20)."""
    ctx = ssl.create_default_context(cafile=str(sb.pki.ca))
    if cert:
        ctx.load_cert_chain(str(sb.pki.client_cert), str(sb.pki.client_key))
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])  # MQTT 3.1.1, empty client id
    with socket.create_connection((sb.host, sb.mtls_port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=sb.host) as tls:
        tls.sendall(connect)  # TLS 1.3: a refusal of the client arrives after the client's handshake
        return tls.recv(4)


def test_no_client_certificate_is_refused_where_required(secure_broker: SecureBroker) -> None:
    """Without a client certificate the broker aborts the TLS session before any MQTT packet."""
    sb = secure_broker
    assert _raw_connack(sb, cert=True)[:1] == b"\x20"  # the probe itself works: a CONNACK
    try:
        answer = _raw_connack(sb, cert=False)
    except (ssl.SSLError, ConnectionError):
        return  # alert or abort: refused
    assert answer == b"", f"the broker answered {answer!r} without a client certificate"


def test_wrong_password_is_refused_reported_and_never_logged(
        secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str,
        caplog: pytest.LogCaptureFixture) -> None:
    sb = secure_broker
    wrong = "Wr0ng-" + sb.passwords["supervisor"][::-1]
    caplog.set_level(logging.DEBUG)  # paho's own packet log included (MqttIngest enables it)
    settings = _settings(sb, tmp_path, influx, influx_db, port=sb.tls_port, password=wrong,
                         tls={"ca_file": str(sb.pki.ca)})
    sup = Supervisor(settings)
    sup.start()
    try:
        _wait(lambda: bool(sup.mqtt.stats.last_error), 15, "the refusal to be reported")
        error = sup.mqtt.stats.last_error
        summary = orjson.dumps(sup.summary()).decode()
        assert not sup.mqtt.stats.connected and sup.mqtt.stats.connects == 0
    finally:
        sup.stop()
    assert "refused" in error and ("Not authorized" in error or "Bad user name or password" in error), error
    assert f"{sb.host}:{sb.tls_port}" in error
    for text in (caplog.text, error, summary, repr(settings), str(settings.model_dump())):
        assert wrong not in text
        assert sb.passwords["supervisor"] not in text
    assert any("refused" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_anonymous_and_wrong_password_clients_are_refused(secure_broker: SecureBroker) -> None:
    sb = secure_broker
    for user, pw in ((None, None), ("det-001", "not-the-password"), ("nobody", "x" * 20)):
        c = Client(sb.host, sb.port, user, pw)
        try:
            rc = c.connect()
        finally:
            c.close()
        assert rc in ("Not authorized", "Bad user name or password"), (user, rc)


def test_wrong_ca_fails_verification(secure_broker: SecureBroker) -> None:
    sb = secure_broker
    c = Client(sb.host, sb.tls_port, "observer", sb.passwords["observer"], ca=sb.pki.other_ca)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            c.connect()
    finally:
        c.close()


def test_supervisor_with_wrong_ca_never_connects(
        secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str,
        caplog: pytest.LogCaptureFixture) -> None:
    sb = secure_broker
    caplog.set_level(logging.DEBUG)
    sup = Supervisor(_settings(sb, tmp_path, influx, influx_db, port=sb.tls_port,
                               tls={"ca_file": str(sb.pki.other_ca)}))
    sup.start()
    try:
        assert not sup.mqtt.wait_connected(3.0)  # several attempts (reconnect delay 0.5-1 s)
        assert sup.mqtt.stats.connects == 0 and not sup.mqtt.stats.connected
    finally:
        sup.stop()
    assert sb.passwords["supervisor"] not in caplog.text


def test_supervisor_reports_a_tls_verification_failure(
        secure_broker: SecureBroker, tmp_path: Path, influx: Influx, influx_db: str) -> None:
    sb = secure_broker
    sup = Supervisor(_settings(sb, tmp_path, influx, influx_db, port=sb.tls_port,
                               tls={"ca_file": str(sb.pki.other_ca)}))
    sup.start()
    try:
        _wait(lambda: bool(sup.mqtt.stats.last_error), 3, "the TLS failure to be reported")
    finally:
        sup.stop()
