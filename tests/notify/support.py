"""Real receivers for the notification tests: an SMTP server (aiosmtpd, STARTTLS + AUTH) and an
HTTP webhook receiver that verifies the HMAC signature and deduplicates by idempotency key, the
way docs/notifications.md tells a receiver to."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage as MailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "supervisor"
SMTP_PASSWORD = "s3cret-smtp-password-42"
WEBHOOK_SECRET = "whsec-0123456789abcdef-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (openssl CLI): (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)  # fmt: skip
    return cert, key


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# -- SMTP -----------------------------------------------------------------------------------------


class _MailHandler:
    def __init__(self) -> None:
        self.mails: list[MailMessage] = []
        self.authenticated: list[bool] = []
        self.tls: list[bool] = []
        self.hold = threading.Event()  # set: the next mail is received, then not answered until `release`
        self.release = threading.Event()
        self.got_mail = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, MailMessage)
        self.mails.append(mail)
        self.authenticated.append(bool(session.authenticated))
        self.tls.append(session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None)
        self.got_mail.set()
        if self.hold.is_set():
            self.hold.clear()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return "250 OK"

    def unique_message_ids(self) -> set[str]:
        """What a mail store that drops a repeated Message-ID keeps."""
        return {str(m["Message-ID"]) for m in self.mails}


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())  # fmt: skip
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1: STARTTLS required, then AUTH required."""

    cert: Path
    key: Path
    implicit_tls: bool = False  # TLS from the first byte (port 465 style) instead of STARTTLS
    port: int = field(default_factory=free_port)
    handler: _MailHandler = field(default_factory=_MailHandler)
    controller: Controller | None = None

    def start(self) -> SmtpServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        # aiosmtpd's auth_require_tls knows STARTTLS only; over implicit TLS the whole session is encrypted
        tls: dict[str, Any] = {"ssl_context": ctx, "auth_require_tls": False}
        if not self.implicit_tls:
            tls = {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, auth_required=True, authenticator=_authenticator,
            **tls)  # fmt: skip
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    @property
    def mails(self) -> list[MailMessage]:
        return self.handler.mails

    def channel(self, **over: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "type": "email", "host": "localhost", "port": self.port, "username": SMTP_USER,
            "password": SMTP_PASSWORD, "from": "supervisor@city.test", "to": ["night-crew@city.test"],
            "ca_file": str(self.cert), "timeout": 5, "tls": self.implicit_tls, "starttls": not self.implicit_tls,
        }  # fmt: skip
        cfg.update(over)
        return cfg


# -- webhooks -------------------------------------------------------------------------------------


@dataclass
class Delivery:
    key: str
    body: dict[str, Any]
    duplicate: bool


class Receiver:
    """A webhook receiver: refuses a bad signature (401), answers a known key 200 without processing."""

    def __init__(self, port: int | None = None, secret: str = WEBHOOK_SECRET) -> None:
        self.port = port or free_port()
        self.secret = secret.encode()
        self.processed: list[Delivery] = []  # unique keys, in arrival order
        self.requests: list[Delivery] = []  # every request with a valid signature
        self.bad_signatures = 0
        self.fail_next = 0  # answer 503 to this many (valid) requests before processing any
        self.fail_log: list[str] = []  # keys of the requests answered 503
        self.redirect_to: str | None = None  # answer 307 to there instead of processing
        self.hold = threading.Event()  # set: the next request is held until `release` is set
        self.release = threading.Event()
        self.got_request = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/urban"

    def channel(self, **over: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {"type": "webhook", "url": self.url, "secret": self.secret.decode(), "timeout": 5}
        cfg.update(over)
        return cfg

    def verify(self, headers: Any, body: bytes) -> bool:
        stamp = headers.get("X-Urban-Timestamp", "")
        sig = headers.get("X-Urban-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)

    def handle(self, headers: Any, body: bytes) -> int:
        if not self.verify(headers, body):
            with self._lock:
                self.bad_signatures += 1
            return 401
        key = headers.get("Idempotency-Key", "")
        doc = json.loads(body)
        with self._lock:
            if self.redirect_to is not None:
                return 307
            if self.fail_next > 0:
                self.fail_next -= 1
                self.fail_log.append(key)
                return 503
            dup = any(d.key == key for d in self.processed)
            delivery = Delivery(key, doc, dup)
            self.requests.append(delivery)
            if not dup:
                self.processed.append(delivery)
        self.got_request.set()
        if self.hold.is_set():
            self.hold.clear()
            self.release.wait(60)
        return 200

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(self.headers, body)
                try:
                    self.send_response(status)
                    if status == 307 and receiver.redirect_to:
                        self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed mid-send)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def notification_keys(self) -> list[str]:
        """Keys of the notifications the receiver processed (a digest carries several)."""
        return [n["key"] for d in self.processed for n in d.body["notifications"]]
