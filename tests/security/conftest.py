"""A secured private Mosquitto for the security tests: password file, ACL, TLS with a test CA.

Everything is created per test session in a temporary folder: the CA, server and client
certificates with the ``openssl`` CLI, the password file with ``mosquitto_passwd -b``. The broker
listens on 127.0.0.1 only, on three ports:

- ``plain``: MQTT without TLS (authentication and ACL still apply);
- ``tls``: TLS with the test CA's server certificate;
- ``mtls``: TLS that also requires a client certificate signed by the test CA.
"""

from __future__ import annotations

import contextlib
import getpass
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.services import Mosquitto, free_port, mosquitto, wait_port

# The ACL recommended in docs/security.md: the supervisor reads every telemetry and writes only
# commands; each device user (its user name is its device id) writes only its own telemetry and
# events and reads only its own commands. ``observer`` reads everything (test only).
ACL = """\
user supervisor
topic read city/#
topic write city/+/+/+/cmd
topic read $SYS/broker/publish/messages/dropped
topic readwrite urban-supervisor/backlog-marker/#

user observer
topic read city/#

pattern write city/+/+/%u/telemetry
pattern write city/+/+/%u/event
pattern read city/+/+/%u/cmd
"""
USERS = ("supervisor", "observer", "det-001", "cab-01", "cab-02")


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing the broker presents


@dataclass
class SecureBroker:
    broker: Mosquitto
    pki: Pki
    passwords: dict[str, str]
    tls_port: int
    mtls_port: int
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.broker.port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all 2048-bit RSA."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is needed to create the test certificates")
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=urban test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, cn in (("server", "127.0.0.1"), ("client", "supervisor")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{who}.key",
                 "-out", f"{who}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.crt", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
               d / "other-ca.crt")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    work = tmp_path / "secure-mosquitto"
    work.mkdir()
    passwords = {u: secrets.token_urlsafe(18) for u in USERS}
    pwfile = work / "passwd"
    for i, (user, pw) in enumerate(passwords.items()):
        args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pwfile), user, pw]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    pwfile.chmod(0o600)
    (work / "acl").write_text(ACL)
    tls_port, mtls_port = free_port(), free_port()
    tls = f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    # mosquitto started as root drops to the user `mosquitto`, which cannot read the 0600 keys and
    # password file in the test's private folder: keep the test's own user
    extra = (f"user {getpass.getuser()}\nallow_anonymous false\npassword_file {pwfile}\nacl_file {work / 'acl'}\n"
             f"listener {tls_port} 127.0.0.1\n{tls}"
             f"listener {mtls_port} 127.0.0.1\n{tls}require_certificate true\n")
    with mosquitto(work, extra_conf=extra) as broker:
        wait_port("127.0.0.1", tls_port)
        wait_port("127.0.0.1", mtls_port)
        yield SecureBroker(broker, pki, passwords, tls_port, mtls_port)


# ----------------------------------------------------------------------------- a test MQTT client


@dataclass
class Client:
    """A paho MQTT 5 client that records what it receives and its connection outcome."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca: Path | None = None
    cert: tuple[Path, Path] | None = None
    received: list[tuple[str, bytes, bool]] = field(default_factory=list)
    rc: str | None = None
    acks: list[tuple[int, bool]] = field(default_factory=list)  # (mid, failure reason code)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sec-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv5)
        if self.username is not None:
            self.c.username_pw_set(self.username, self.password)
        if self.ca is not None:
            self.c.tls_set(ca_certs=str(self.ca), certfile=str(self.cert[0]) if self.cert else None,
                           keyfile=str(self.cert[1]) if self.cert else None)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.granted: list[Any] = []

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self._cond:
            self.rc = str(rc)
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any = None) -> None:
        with self._cond:
            self.acks.append((mid, bool(rc.is_failure)))
            self._cond.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any = None) -> None:
        with self._cond:
            self.granted.append(rcs)
            self._cond.notify_all()

    def connect(self, timeout: float = 10.0) -> str:
        """Connect and return the CONNACK reason ("Success" or the refusal)."""
        self.c.connect(self.host, self.port, 30, clean_start=True)
        self.c.loop_start()
        self.wait(lambda: self.rc is not None, timeout, "a CONNACK")
        return str(self.rc)

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, 1)
        self.wait(lambda: bool(self.granted), 10, "a SUBACK")

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.c.publish(topic, payload, 1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(info.rc)
        return int(info.mid)

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(min(left, 0.2))

    def topics(self) -> list[str]:
        with self._cond:
            return [t for t, _, _ in self.received]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Collects the clients a test opens and closes them at the end."""
    opened: list[Client] = []
    yield opened
    for c in opened:
        with contextlib.suppress(Exception):  # already gone is fine at teardown
            c.close()
