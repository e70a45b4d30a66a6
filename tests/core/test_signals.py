"""Stop and reload signals never hang the process (supervisor/cli/_signals.py).

Each case runs in a child process: the handlers are installed for the life of a process, and
pytest's own must stay as they are.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The main thread holds the stop event's own lock (as it does, briefly, inside every
# ``stop.wait(...)``) when SIGTERM arrives; the handler runs at once, in that thread.
HELD_LOCK = textwrap.dedent("""
    import os, signal, sys, threading
    from supervisor.cli._signals import route_signals
    stop = threading.Event()
    if sys.argv[1] == "routed":
        route_signals({signal.SIGTERM: stop.set})
    else:  # what run and demo did before
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with stop._cond:  # private, on purpose: the state the main thread is in inside Event.wait
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes: the handler runs between two of them
            pass
    print("stopped" if stop.wait(10) else "not set", flush=True)
""")

# A burst of reload signals, then stop, against a main loop that waits and clears all the time.
BURST = textwrap.dedent("""
    import signal, threading
    from supervisor.cli._signals import route_signals
    stop, reload = threading.Event(), threading.Event()
    route_signals({signal.SIGTERM: stop.set, signal.SIGHUP: reload.set})
    print("ready", flush=True)
    reloads = 0
    while not stop.wait(0.0001):
        if reload.is_set():
            reload.clear()
            reloads += 1
    print("stopped", reloads, flush=True)
""")


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_stop_signal_while_the_main_thread_holds_the_event_lock_stops_the_process() -> None:
    child = _child(HELD_LOCK, "routed")
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "stopped"


def test_the_handler_it_replaces_hangs_there_so_this_test_can_fail() -> None:
    child = _child(HELD_LOCK, "lambda")
    with pytest.raises(subprocess.TimeoutExpired):
        child.communicate(timeout=3)
    child.kill()
    child.communicate()


def test_a_burst_of_reload_signals_then_stop_ends_the_process() -> None:
    child = _child(BURST)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    for _ in range(500):
        child.send_signal(signal.SIGHUP)
        time.sleep(0.0002)
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGTERM)  # twice, as a worker got from its spawning thread and its manager
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    word, reloads = out.split()
    assert word == "stopped" and int(reloads) >= 1
