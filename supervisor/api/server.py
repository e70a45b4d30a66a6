"""``ApiServer``: the API served by uvicorn in a background thread.

The listening socket is bound in :meth:`ApiServer.start` (before the thread starts), so a port
already in use fails there with a clear message, and ``port=0`` resolves to the port the system
picked, available as :attr:`ApiServer.port` as soon as ``start`` returns.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn

from supervisor.api.app import create_app
from supervisor.api.limits import Limits
from supervisor.config import ApiConfig
from supervisor.runtime import Supervisor

_log = logging.getLogger(__name__)

START_TIMEOUT = 10.0


class ApiServerError(Exception):
    """The API could not start (address in use, bad host...); the message says where."""


class ApiServer:
    def __init__(self, sup: Supervisor, cfg: ApiConfig, limits: Limits | None = None) -> None:
        self.cfg = cfg
        self.app = create_app(sup, cfg, limits)
        self.port: int = cfg.port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _bind(self) -> socket.socket:
        host, port = self.cfg.host, self.cfg.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ApiServerError(f"api.host {host!r}: cannot resolve: {exc.strerror}") from None
        family, stype, proto, _, addr = infos[0]
        sock = socket.socket(family, stype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise ApiServerError(f"api: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sock.set_inheritable(True)
        return sock

    def start(self) -> ApiServer:
        """Bind, start serving in a daemon thread, return once uvicorn has started."""
        if self._thread is not None:
            raise ApiServerError("api: already started")
        self._sock = self._bind()
        self.port = int(self._sock.getsockname()[1])
        # log_config=None: keep the application's logging; the access log never shows headers
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)
        self._thread.start()
        started = self._wait_started()
        if not started:
            self.stop()
            why = f": {self._error}" if self._error is not None else ""
            raise ApiServerError(f"api: uvicorn did not start on {self.cfg.host}:{self.port}{why}")
        _log.info("API listening on http://%s:%s", self.cfg.host, self.port)
        return self

    def _serve(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(); a thread cannot raise to its caller
            self._error = exc

    def _wait_started(self) -> bool:
        assert self._server is not None and self._thread is not None
        ready = threading.Event()
        deadline_steps = int(START_TIMEOUT / 0.01)
        for _ in range(deadline_steps):
            if self._server.started:
                return True
            if not self._thread.is_alive():
                return False
            ready.wait(0.01)
        return self._server.started

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to finish its requests and exit, then close the socket."""
        streams = getattr(self.app.state, "event_streams", None)
        if streams is not None:
            streams.stop.set()  # the event streams end within a poll, so uvicorn need not wait for them
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None
        self._sock = None
