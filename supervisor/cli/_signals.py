"""Signals routed to callbacks (``stop.set``) without taking a lock in the signal handler.

A Python signal handler runs in the main thread, between two bytecodes of whatever it was doing.
``lambda *_: stop.set()`` takes ``stop``'s internal lock; if the main thread already held that
lock (it does, briefly, on every ``stop.wait(...)``, ``reload.clear()``, and while it returns
from a wait that the first signal ended), the handler waits for a lock that its own thread holds:
the process hangs for good, its stop never begins, and a process manager has to SIGKILL it.
A worker restarted by ``WorkerManager`` in a test got two SIGTERMs within milliseconds (the death
signal of the thread that spawned it, then the manager's) and hung so in a CI run.

Here the handler only writes the signal's number to a pipe (no lock); a daemon thread reads the
pipe and calls the callback (``event.set``), as any thread may.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Mapping

__all__ = ["route_signals"]


def route_signals(actions: Mapping[int, Callable[[], None]]) -> None:
    """From now on, each signal of ``actions`` calls its action on the "signals" thread (call this
    from the main thread). An action must be quick and must not raise: ``event.set`` is the use.

    The handlers stay installed for the life of the process, like the ``signal.signal`` calls
    they replace; calling again installs a new pipe and thread for the signals it names.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    table = dict(actions)

    pending = dict.fromkeys(table, False)  # at most one unread byte per signal: the pipe never fills

    def _handler(signum: int, _frame: object) -> None:
        if not pending[signum]:
            pending[signum] = True
            with contextlib.suppress(BlockingIOError):  # cannot happen (see ``pending``); never raise here
                os.write(write_fd, bytes([signum]))

    def _reader() -> None:
        while True:
            data = os.read(read_fd, 256)
            if not data:
                return
            for signum in data:
                pending[signum] = False  # cleared before the action: a signal from now on is not lost
                action = table.get(signum)
                if action is not None:
                    action()

    threading.Thread(target=_reader, name="signals", daemon=True).start()
    for signum in table:
        signal.signal(signum, _handler)
