"""The scheduled export inside ``urban-supervisor run``: a thread of its own, off the pipeline.

Every day at ``opendata.at`` (UTC) the previous UTC day becomes due; each due day not yet recorded
in the export's state is exported, oldest first, at most ``catch_up_days`` back (a supervisor down for
three days exports those three days when it comes back). The thread reads InfluxDB on its own
connection and the model (immutable): it never takes the supervisor's lock, so the pipeline never
waits for it. A failed export (InfluxDB down) is logged and retried with backoff (1 min doubling to
30 min); a crash mid-export leaves no record, so that day is redone (supervisor/opendata/export.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.opendata.datasets import DAY
from supervisor.opendata.export import OpenDataExport, Period, day_periods

if TYPE_CHECKING:
    from supervisor.model import CityModel
    from supervisor.opendata.config import OpenDataConfig
    from supervisor.opendata.source import InfluxReader

_log = logging.getLogger(__name__)


def due_periods(cfg: OpenDataConfig, now: float, export: OpenDataExport) -> list[Period]:
    """The days due at ``now`` and not yet exported, oldest first."""
    today = int(now) - int(now) % DAY
    last_end = today if now - today >= cfg.at_seconds() else today - DAY
    return [p for p in day_periods(last_end - cfg.catch_up_days * DAY, last_end) if not export.done(p)]


class OpenDataScheduler:
    def __init__(self, cfg: OpenDataConfig, out_dir: Path, model: CityModel, reader: Callable[[], InfluxReader],
                 *, clock: Callable[[], float] = time.time, min_retry_s: float = 60.0) -> None:
        self.cfg, self.clock, self._reader = cfg, clock, reader
        self.export = OpenDataExport(out_dir, cfg, model)
        self.min_retry_s = min_retry_s
        self.exported = 0
        self.failures = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OpenDataScheduler:
        self._thread = threading.Thread(target=self._run, name="opendata", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_due(self) -> int:
        """Export every due day; the number exported. Raises on the first failure (nothing recorded for it)."""
        n = 0
        src = self._reader()
        try:
            for p in due_periods(self.cfg, self.clock(), self.export):
                if self._stop.is_set():
                    break
                result = self.export.run(src, p, again=False)
                if result is None:  # exported meanwhile (an on-demand run of the same day)
                    continue
                _log.info("open data: exported %s (%d files) in %.1f s", p.key, len(result["files"]),
                          result["seconds"])
                n += 1
                self.exported += 1
        finally:
            src.close()
        return n

    def _run(self) -> None:
        delay = self.min_retry_s
        while not self._stop.is_set():
            try:
                self.run_due()
                delay = self.min_retry_s
                wait = self._until_next()
            except Exception as exc:  # logged and retried: the export must never take the supervisor down
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.error("open data: export failed, retrying in %.0f s: %s", delay, self.last_error)
                wait, delay = delay, min(delay * 2, 1800.0)
            self._stop.wait(min(wait, 3600.0))

    def _until_next(self) -> float:
        now = self.clock()
        today = int(now) - int(now) % DAY
        nxt = today + self.cfg.at_seconds()
        if nxt <= now:
            nxt += DAY
        return max(1.0, nxt - now)
