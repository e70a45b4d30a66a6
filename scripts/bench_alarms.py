"""Alarm-list benchmark (issue 12): a city of N devices whose core switch fails.

Every device of the city depends on ``sw-core``; all of them go silent at once. Measured, in
process: from the status check that finds them silent (the pipeline's ``PeriodicWork`` sees
the last message's absence) to the alarm committed in the durable list and its notification
queued in the outbox; the alarm store's size; the notifications queued and the messages a local
webhook receiver gets (exactly one expected). Usage::

    .venv/bin/python scripts/bench_alarms.py [--devices 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from simulators.city import generate_city
from supervisor.alarms import AlarmManager
from supervisor.alarms.lifecycle import AlarmLifecycle
from supervisor.alarms.store import AlarmStore
from supervisor.model import city_from_dict
from supervisor.notify import NotificationsConfig, Notifier


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        _Hook.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100_000)
    args = ap.parse_args()
    t = time.perf_counter()
    model = city_from_dict(generate_city(seed=1, devices=args.devices))
    load_s = time.perf_counter() - t
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cfg = NotificationsConfig(channels={"hook": {"type": "webhook", "url": f"http://127.0.0.1:{server.server_port}/h",
                                                     "secret": "0123456789abcdef0123"}},
                                  routes=[{"name": "all", "channels": ["hook"]}], group_window=0.5)
        notifier = Notifier(cfg, data)
        notifier.start()
        zones = {d.id: d.zone for d in model.devices.values()}  # the supervisor's device state holds them
        lc = AlarmLifecycle(AlarmStore(data / "alarms.sqlite3"), model=model, notify=notifier.submit,
                            zone_of=zones.get)
        mgr = AlarmManager(model, id_for=lc.id_for, on_change=lc.on_manager_change)
        silent = frozenset(model.dependents("sw-core"))
        t0 = time.perf_counter()
        mgr.update(silent, time.time())  # the check that found them silent
        to_alarm_ms = (time.perf_counter() - t0) * 1000
        active = lc.active()
        deadline = time.monotonic() + 30
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # anything more would arrive now
        stats = notifier.stats()
        notifier.close()
        lc.store.close()
        size = sum(p.stat().st_size for p in data.glob("alarms.sqlite3*"))
    server.shutdown()
    print(json.dumps({
        "devices": len(model.devices), "silent": len(silent), "model_load_s": round(load_s, 1),
        "last_check_to_alarm_ms": round(to_alarm_ms, 1),
        "alarms": [(a.kind, a.element, a.device_count) for a in active],
        "alarm_store_bytes": size, "notifications_queued": stats["queued"], "webhook_messages": len(_Hook.received),
    }, indent=2))


if __name__ == "__main__":
    main()
