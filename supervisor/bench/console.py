"""``bench console``: the operator console in headless chromium on a large city.

A city of 100,000 devices (10,000 with ``--quick``) is loaded in a supervisor whose API (and so
the console) is served over HTTP by the real :class:`~supervisor.api.ApiServer`. Debian's chromium
(``/usr/bin/chromium``, driven by Playwright; never a downloaded browser) logs in with an operator
token. Figures:

- ``first_render_ms``: from the login click to every device drawn on the map (the page's layers
  fetched, the clusters built, two frames painted), the page's own part of it, and its parts
  (``fetch``: the devices and base layers answered and parsed; ``clusters``; ``draw``);
- the JS heap (``Runtime.getHeapUsage`` after a forced garbage collection) after the first render,
  then every ``--console-sample-s`` during ``--console-minutes`` of live updates (devices changing
  status at ``--console-rate`` per second through the supervisor's live feed, and an alarm raised
  or cleared every 10 s), and its growth over the run (the target: 20 % at most).

Nothing is asserted: the figures are printed (run it on an idle machine for comparable ones).
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

NAME = "console"
HELP = "operator console in headless chromium: first render of a 100k-device city, JS heap under live updates"
TOKEN = secrets.token_hex(16)  # an operator token of this run only
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("console")
    g.add_argument("--console-devices", type=int, default=None, help="city size (default 100000; quick 10000)")
    g.add_argument("--console-minutes", type=float, default=None,
                   help="minutes of live updates before the last heap reading (default 10; quick 1)")
    g.add_argument("--console-rate", type=float, default=100.0, help="status changes per second meanwhile")
    g.add_argument("--console-sample-s", type=float, default=30.0, help="seconds between heap readings")


def _supervisor(devices: int, tmp: Path) -> Any:
    from simulators.city import generate_city
    from supervisor.config import load_settings
    from supervisor.model import city_from_dict
    from supervisor.runtime import Supervisor

    model = city_from_dict(generate_city(devices=devices, seed=1))
    settings = load_settings(None, mode="test", data_dir=str(tmp),
                             storage={"backend": "sqlite", "sqlite_path": str(tmp / "b.sqlite3"),
                                      "spool_dir": str(tmp / "spool")})
    sup = Supervisor(settings, model=model)
    now = time.time()
    for d in model.devices.values():
        sup.state.register(d.id, d.family, d.zone, d.interval, now)
    return sup


class _Changes:
    """Devices flipping between ok and stale (and an alarm every 10 s), through the live feed."""

    def __init__(self, sup: Any, rate: float) -> None:
        self.sup, self.rate = sup, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-console-changes", daemon=True)

    def _run(self) -> None:
        from supervisor.state.registry import StatusChange

        rng = random.Random(7)
        devices = list(self.sup.state)
        step = 0.1
        per_step = max(1, round(self.rate * step))
        next_alarm = time.monotonic() + 10
        raised = False
        while not self._stop.wait(step):
            now = time.time()
            changes = []
            with self.sup.lock:
                for st in rng.sample(devices, per_step):
                    old, new = st.status, ("stale" if st.status == "ok" else "ok")
                    st.status = new
                    changes.append(StatusChange(st.device, st.family, st.zone, old, new, now, "bench"))
            self.sup.live.status(changes)
            self.sent += len(changes)
            if time.monotonic() >= next_alarm:
                next_alarm += 10
                raised = not raised
                with self.sup.lock:
                    self.sup.lifecycle.supervisor_alarm("bench-console", "minor", "raised" if raised else "cleared",
                                                        "bench console: a raised and cleared alarm", now)

    def __enter__(self) -> _Changes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _heap(cdp: Any) -> int:
    cdp.send("HeapProfiler.collectGarbage")
    return int(cdp.send("Runtime.getHeapUsage")["usedSize"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from supervisor.api import ApiServer
    from supervisor.config import ApiConfig

    devices = args.console_devices or (10_000 if args.quick else 100_000)
    minutes = args.console_minutes if args.console_minutes is not None else (1.0 if args.quick else 10.0)
    with tempfile.TemporaryDirectory(prefix="urban-bench-console-") as tmp:
        t0 = time.perf_counter()
        sup = _supervisor(devices, Path(tmp))
        setup_s = time.perf_counter() - t0
        server = ApiServer(sup, ApiConfig(host="127.0.0.1", port=0, operator_tokens=[TOKEN])).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.goto(f"http://127.0.0.1:{server.port}/console/")
                    page.fill("#token", TOKEN)
                    t1 = time.perf_counter()
                    page.click("#login-button")
                    page.wait_for_function("() => window.urbanConsole && urbanConsole.firstRenderMs !== null",
                                           timeout=120_000)
                    first_ms = (time.perf_counter() - t1) * 1000
                    page_ms = page.evaluate("() => urbanConsole.firstRenderMs")
                    parts = page.evaluate("() => urbanConsole.timings")
                    drawn = page.evaluate("() => urbanConsole.drawnDevices()")
                    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
                    cdp = page.context.new_cdp_session(page)
                    heap0 = _heap(cdp)
                    samples: list[dict[str, float]] = []
                    started = time.monotonic()
                    with _Changes(sup, args.console_rate) as changes:
                        while (elapsed := time.monotonic() - started) < minutes * 60:
                            page.wait_for_timeout(min(args.console_sample_s, minutes * 60 - elapsed) * 1000)
                            samples.append({"t_s": round(time.monotonic() - started, 1),
                                            "heap_mb": round(_heap(cdp) / 1e6, 2)})
                    events = page.evaluate("() => urbanConsole.liveEvents()")
                    page.wait_for_timeout(2000)  # the last changes drawn
                    heap_end = _heap(cdp)
                finally:
                    browser.close()
        finally:
            server.stop()
    return {
        "devices": devices, "setup_s": round(setup_s, 1), "first_render_ms": round(first_ms),
        "first_render_page_ms": round(page_ms), "first_render_parts_ms": {k: round(v) for k, v in parts.items()},
        "devices_drawn": drawn, "target_first_render_ms": 3000,
        "live_minutes": minutes, "status_changes_sent": changes.sent, "live_events_received": events,
        "heap_after_first_render_mb": round(heap0 / 1e6, 2), "heap_end_mb": round(heap_end / 1e6, 2),
        "heap_growth_pct": round((heap_end - heap0) * 100 / heap0, 1), "target_heap_growth_pct": 20,
        "heap_samples": samples,
    }
