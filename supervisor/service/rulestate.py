"""Rule state that survives restarts (overrides, leases, leak counters): one JSON file, written atomically."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from rules import RuleEngine

_log = logging.getLogger(__name__)


class RuleStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._saver: threading.Thread | None = None

    def save(self, engine: RuleEngine, background: bool = False) -> None:
        """Write the engine's snapshot atomically (temp file, fsync, rename).

        The snapshot is taken here (under the supervisor's lock, cheap); with ``background`` the
        file is written and fsynced by a short-lived thread, so a slow disk never stalls the pipeline.
        """
        data = orjson.dumps(engine.snapshot())
        if background:
            if self._saver is not None and self._saver.is_alive():
                return  # the previous save is still on its way; the next period catches up
            self._saver = threading.Thread(target=self._write, args=(data,), name="rule-state", daemon=True)
            self._saver.start()
        else:
            if self._saver is not None:
                self._saver.join(10)
            self._write(data)

    def _write(self, data: bytes) -> None:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            _log.error("cannot save rule state to %s: %s", path, exc)

    def restore(self, engine: RuleEngine) -> None:
        path = self.path
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            _log.error("rule state %s unreadable, starting without it: %s", path, exc)
            return
        try:
            n = engine.restore(data)
        except ValueError as exc:
            _log.error("rule state %s refused: %s", path, exc)
            return
        _log.info("restored %d leased rule requests from %s", n, path)
