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
from supervisor.snmp.drift import Drift, drift
from supervisor.snmp.poller import Poller, evidence, network_lines, targets_from_model
from supervisor.snmp.traps import Trap, TrapReceiver, engine_ids

if TYPE_CHECKING:
    from supervisor.model import CityModel

log = logging.getLogger(__name__)


class SnmpService:
    """Polling (``snmp.enabled``) and traps (``snmp.traps.enabled``) feed one evidence set: what the
    last poll saw, plus what traps said since (a poll of a switch supersedes its older traps)."""

    def __init__(self, cfg: SnmpConfig, model: CityModel, submit: Callable[[list[bytes]], None],
                 observe: Callable[[dict[str, str]], None],
                 on_drift: Callable[[list[Drift]], None] | None = None) -> None:
        self.cfg = cfg
        self.model = model
        self.on_drift = on_drift
        #: the last LLDP check: when (epoch s), the drifted link ends, the switches that did not answer
        self.last_drift: tuple[float, list[Drift], list[str]] | None = None
        self._next_drift = 0.0
        targets = targets_from_model(model, cfg)
        self.poller = Poller(cfg, targets)
        self.submit = submit
        self.observe = observe
        self._ports = {t.switch: t.ports for t in targets}
        self._lock = threading.Lock()
        self._polled: dict[str, str] = {}  # evidence of the last round
        self._trapped: dict[str, tuple[str, float, str]] = {}  # element -> (what, when, switch)
        self.traps: TrapReceiver | None = (TrapReceiver(cfg, targets, self._on_trap, engine_ids(model))
                                           if cfg.traps.enabled else None)
        self.rounds = 0
        self.overruns = 0  # rounds that took longer than the interval
        self.last_round_s = 0.0
        self.unreachable = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_model(self, model: CityModel) -> None:
        """Poll the switches of ``model`` (and accept their traps) from now on (a model reload)."""
        targets = targets_from_model(model, self.cfg)
        self.model = model
        self.poller.set_targets(targets)
        if self.traps is not None:
            self.traps.set_targets(targets, engine_ids(model))
        with self._lock:
            self._ports = {t.switch: t.ports for t in targets}
            self._polled = {e: w for e, w in self._polled.items() if e in model.elements}
            self._trapped = {e: v for e, v in self._trapped.items() if e in model.elements}

    def start(self) -> None:
        if self.traps is not None:
            self.traps.start()
            log.info("SNMP: receiving traps on %s:%d", self.cfg.traps.host, self.cfg.traps.port)
        if self.cfg.enabled:
            log.info("SNMP: polling %d switches every %g s", len(self.poller.targets), self.cfg.interval)
            self._thread = threading.Thread(target=self._run, name="snmp-poll", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.traps is not None:
            self.traps.stop()
        self.poller.close()

    def fields(self) -> dict[str, float | int]:
        """The health point's SNMP figures (``supervisor`` measurement)."""
        out: dict[str, float | int] = {}
        if self.cfg.enabled:
            out |= {"snmp_rounds": self.rounds, "snmp_round_s": self.last_round_s,
                    "snmp_unreachable": self.unreachable, "snmp_overruns": self.overruns}
        if self.traps is not None:
            out |= {"snmp_traps": self.traps.accepted, "snmp_traps_refused": sum(self.traps.refused.values())}
        return out

    def evidence(self) -> dict[str, str]:
        with self._lock:
            out = dict(self._polled)
            out.update({e: what for e, (what, _, _) in self._trapped.items()})
            return out

    def _on_trap(self, trap: Trap) -> None:
        """linkDown: the port is observed down now; linkUp: no longer (by trap); coldStart/warmStart:
        the agent restarted, its counters too (no rate across it), and its traps are forgotten."""
        now = time.time()
        with self._lock:
            port = self._ports.get(trap.switch, {}).get(trap.ifindex) if trap.ifindex is not None else None
            if trap.kind == "linkDown" and port is not None and trap.admin in (None, 1):
                self._trapped[port] = (f"SNMP trap linkDown (ifIndex {trap.ifindex})", now, trap.switch)
            elif trap.kind == "linkUp" and port is not None:
                self._trapped.pop(port, None)
                self._polled.pop(port, None)
            elif trap.kind in ("coldStart", "warmStart"):
                self._trapped = {e: v for e, v in self._trapped.items() if v[2] != trap.switch}
                self._polled.pop(trap.switch, None)
        if trap.kind in ("coldStart", "warmStart"):
            self.poller.rates.forget({trap.switch})
        log.info("SNMP trap %s from %s%s", trap.kind, trap.switch, f" ifIndex {trap.ifindex}" if trap.ifindex else "")
        self.observe(self.evidence())

    def poll_once(self) -> dict[str, str]:
        """One round: store the points, hand over the evidence; returns the evidence."""
        t0 = time.monotonic()
        started = time.time()
        results = self.poller.round_sync()
        lines = network_lines(results, self.poller.rates)
        polled = {r.target.switch for r in results if r.reachable}
        with self._lock:
            self._polled = evidence(results)
            # a poll that reached a switch supersedes what its traps said before the round
            self._trapped = {e: v for e, v in self._trapped.items() if v[2] not in polled or v[1] >= started}
        seen = self.evidence()
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

    def check_drift(self) -> list[Drift]:
        """Read every switch's LLDP neighbours now and compare them with the model (blocking)."""
        found, silent = drift(self.model, self.poller.targets, self.cfg)
        self.last_drift = (time.time(), found, silent)
        if self.on_drift is not None:
            self.on_drift(found)
        return found

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("SNMP poll round failed")
            if self.cfg.lldp_interval > 0 and time.monotonic() >= self._next_drift:
                self._next_drift = time.monotonic() + self.cfg.lldp_interval
                try:
                    self.check_drift()
                except Exception:
                    log.exception("LLDP drift check failed")
            next_at += self.cfg.interval
            next_at = max(next_at, time.monotonic())  # an overrun starts the next round at once, no burst
            self._stop.wait(max(0.0, next_at - time.monotonic()))
