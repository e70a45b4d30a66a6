"""The SNMP poller as a supervisor part: one thread, a round every ``snmp.interval`` seconds.

Each round writes the ``network`` points through the supervisor's writer and hands the observed
evidence (unreachable switches, ports oper-down while admin-up) to the alarm manager at once
(:meth:`supervisor.service.periodic.PeriodicWork.observe`): the root-cause alarm does not wait for
the devices behind the element to go stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from supervisor.snmp.config import SnmpConfig
from supervisor.snmp.poller import Poller, evidence, network_lines, targets_from_model

if TYPE_CHECKING:
    from supervisor.model import CityModel

log = logging.getLogger(__name__)


class SnmpService:
    def __init__(self, cfg: SnmpConfig, model: CityModel, submit: Callable[[list[bytes]], None],
                 observe: Callable[[dict[str, str]], None]) -> None:
        self.cfg = cfg
        self.poller = Poller(cfg, targets_from_model(model, cfg))
        self.submit = submit
        self.observe = observe
        self.rounds = 0
        self.overruns = 0  # rounds that took longer than the interval
        self.last_round_s = 0.0
        self.unreachable = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_model(self, model: CityModel) -> None:
        """Poll the switches of ``model`` from the next round on (for a model reload)."""
        self.poller.set_targets(targets_from_model(model, self.cfg))

    def start(self) -> None:
        log.info("SNMP: polling %d switches every %g s", len(self.poller.targets), self.cfg.interval)
        self._thread = threading.Thread(target=self._run, name="snmp-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.poller.close()

    def poll_once(self) -> dict[str, str]:
        """One round: store the points, hand over the evidence; returns the evidence."""
        t0 = time.monotonic()
        results = self.poller.round_sync()
        lines = network_lines(results, self.poller.rates)
        seen = evidence(results)
        self.last_round_s = time.monotonic() - t0
        self.rounds += 1
        self.unreachable = sum(1 for r in results if not r.reachable)
        if self.last_round_s > self.cfg.interval:
            self.overruns += 1
            log.warning("SNMP: a poll round took %.1f s, longer than the %g s interval", self.last_round_s,
                        self.cfg.interval)
        self.submit(lines)
        self.observe(seen)
        return seen

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("SNMP poll round failed")
            next_at += self.cfg.interval
            next_at = max(next_at, time.monotonic())  # an overrun starts the next round at once, no burst
            self._stop.wait(max(0.0, next_at - time.monotonic()))
