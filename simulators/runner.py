"""``SimulatedCity``: a city's telemetry on a broker, with devices answering commands and faults.

Three clocks:

- ``speed=1.0`` (default): real time; devices report on their schedule as the wall clock passes;
- ``speed=F``: virtual time starting at ``start`` and running F times faster (a night of 12 h in
  72 s at F=600);
- ``speed=None``: as fast as possible; the virtual clock jumps to the next scheduled report (load
  tests, ``messages=N``).

``duration`` is always in *simulated* seconds; a run also stops after ``messages`` messages, on
:meth:`SimulatedCity.stop` or after ``timeout`` real seconds, whichever first. Thread-based;
:meth:`SimulatedCity.run_async` runs it in a worker thread for asyncio callers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .devices import FaultInjector, LightResponder, Resolver
from .publisher import BAD_KINDS, Publisher, PublishReport, TlsOptions
from .rawpub import RawPublisher
from .telemetry import Burst, CityFormatError, CityTelemetry, Leak, Message

_log = logging.getLogger(__name__)


class SimClock:
    """Virtual time: ``start + speed x elapsed`` real seconds, or stepped when ``speed`` is None.

    The clock stands still at ``start`` until :meth:`begin` (called by the first run), so that a
    run of ``duration`` covers exactly ``[start, start + duration]`` of simulated time.
    """

    def __init__(self, start: float | None = None, speed: float | None = 1.0) -> None:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive finite number or None, got {speed}")
        self.start = time.time() if start is None else float(start)
        self.speed = speed
        self._mono0: float | None = None
        self._t = self.start

    @property
    def stepped(self) -> bool:
        return self.speed is None

    def begin(self) -> None:
        """Start the flow of time (idempotent)."""
        if self._mono0 is None:
            self._mono0 = time.monotonic()

    def now(self) -> float:
        if self.speed is None or self._mono0 is None:
            return self._t
        return self.start + self.speed * (time.monotonic() - self._mono0)

    def advance_to(self, t: float) -> None:
        if self.speed is not None:
            raise RuntimeError("only a stepped clock (speed=None) can be advanced")
        self._t = max(self._t, t)

    __call__ = now


def load_city(city: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    """A city dict from a dict or a JSON file; :class:`CityFormatError` names the file."""
    if isinstance(city, Mapping):
        return city
    p = Path(city)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CityFormatError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CityFormatError(f"{p}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise CityFormatError(f"{p}: the top level must be an object")
    return data


class SimulatedCity:
    """Telemetry publisher + light responders + fault injector over one city (see module doc)."""

    def __init__(
        self,
        city: Mapping[str, Any] | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        seed: int = 0,
        start: float | None = None,
        speed: float | None = 1.0,
        rate: float | None = None,
        bad_ratio: float = 0.0,
        bad_kinds: Iterable[str] = BAD_KINDS,
        protocol: str = "5",
        username: str | None = None,
        password: str | None = None,
        tls: TlsOptions | None = None,
        responders: bool = True,
        responder_delay: float = 0.0,
        unresponsive: Iterable[str] = (),
        resolver: Resolver | None = None,
        leaks: Mapping[str, Leak] | None = None,
        bursts: Mapping[str, Burst] | None = None,
        night_level: float = 100.0,
        window: int = 50,
        bulk: bool = False,
    ) -> None:
        self.city = load_city(city)
        self.clock = SimClock(start, speed)
        self.telemetry = CityTelemetry(self.city, seed=seed, origin=self.clock.start, leaks=leaks,
                                       bursts=bursts, night_level=night_level)
        self.faults = FaultInjector(self.telemetry, resolver)
        self.seed = seed
        self.rate = rate
        self.bad_ratio = bad_ratio
        self.bad_kinds = tuple(bad_kinds)
        self.publisher = Publisher(host, port, protocol=protocol, username=username, password=password,
                                   tls=tls, window=window)
        # bulk: telemetry through the raw-socket publisher (MQTT 3.1.1, ~7x paho's rate), for load tests
        self.bulk_publisher: RawPublisher | None = None
        if bulk:
            if tls is not None:
                raise ValueError("the bulk publisher speaks plain TCP only: drop TLS or bulk")
            if bad_ratio > 0:
                raise ValueError("the bulk publisher sends good messages only: bad_ratio must be 0 with bulk")
            self.bulk_publisher = RawPublisher(host, port, username=username, password=password)
        self.responder: LightResponder | None = None
        if responders:
            self.responder = LightResponder(self.telemetry, host=host, port=port, clock=self.clock.now,
                                            faults=self.faults, delay=responder_delay,
                                            unresponsive=unresponsive, protocol=protocol,
                                            username=username, password=password, tls=tls)
        self._stop = threading.Event()
        self._open = False

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> SimulatedCity:
        if not self._open:
            pub: Publisher | RawPublisher = self.bulk_publisher or self.publisher
            pub.connect()
            if self.responder is not None:
                try:
                    self.responder.start()
                except Exception:
                    pub.close()
                    raise
            self._open = True
        return self

    def close(self) -> None:
        if self._open:
            if self.responder is not None:
                self.responder.stop()
            (self.bulk_publisher or self.publisher).close()
            self._open = False

    def __enter__(self) -> SimulatedCity:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Ask a running :meth:`run` to finish (it still waits for the PUBACKs)."""
        self._stop.set()

    # -- the schedule --------------------------------------------------------------------------

    def messages(self, until: float, real_deadline: float) -> Iterator[Message]:
        """Scheduled messages up to virtual time ``until``, paced by the clock."""
        tel, clock, faults = self.telemetry, self.clock, self.faults
        while not self._stop.is_set() and time.monotonic() < real_deadline:
            nd = tel.next_due()
            if nd > until:
                return
            if clock.stepped:
                clock.advance_to(nd)
                yield from tel.due(nd, faults.silenced)
                continue
            now = clock.now()
            if nd > now:
                assert clock.speed is not None
                time.sleep(min((nd - now) / clock.speed, 0.1))
                continue
            yield from tel.due(min(now, until), faults.silenced)

    def run(self, duration: float | None = None, messages: int | None = None,
            timeout: float = 3600.0) -> PublishReport:
        """Publish until ``duration`` simulated seconds passed or ``messages`` were sent."""
        if duration is None and messages is None:
            raise ValueError("give duration (simulated seconds) and/or messages")
        if duration is not None and duration < 0:
            raise ValueError(f"duration must be >= 0, got {duration}")
        if messages is not None and messages < 0:
            raise ValueError(f"messages must be >= 0, got {messages}")
        self.open()
        self._stop.clear()
        self.clock.begin()
        until = self.clock.now() + duration if duration is not None else math.inf
        deadline = time.monotonic() + timeout
        if self.bulk_publisher is not None:
            report = self._run_bulk(self.bulk_publisher, self.messages(until, deadline), messages)
            _log.info("simulation sent %d messages (bulk), %d acked, %.0f msg/s", report.sent, report.acked,
                      report.rate)
            return report
        report = self.publisher.run(
            self.messages(until, deadline), count=messages, rate=self.rate, bad_ratio=self.bad_ratio,
            bad_kinds=self.bad_kinds, seed=self.seed, stop=self._stop,
        )
        _log.info("simulation sent %d messages (%d malformed), %d acked, %.0f msg/s",
                  report.sent, report.sent_bad, report.acked, report.rate)
        return report

    def _run_bulk(self, pub: RawPublisher, msgs: Iterator[Message], count: int | None) -> PublishReport:
        rep = PublishReport()
        per_family, points = rep.per_family, rep.expected_points

        def items() -> Iterator[tuple[str, bytes]]:
            for n, m in enumerate(msgs):
                if count is not None and n >= count:
                    return
                per_family[m.family] = per_family.get(m.family, 0) + 1
                points[m.measurement] = points.get(m.measurement, 0) + m.points
                if m.events:
                    points["events"] = points.get("events", 0) + m.events
                yield m.topic, m.payload

        raw = pub.run(items(), rate=self.rate)
        rep.sent_good, rep.acked, rep.elapsed, rep.rate = raw.sent, raw.acked, raw.elapsed, raw.rate
        rep.bytes_sent = raw.bytes_sent
        return rep

    async def run_async(self, duration: float | None = None, messages: int | None = None,
                        timeout: float = 3600.0) -> PublishReport:
        """:meth:`run` in a worker thread; cancelling the awaiting task stops the run."""
        try:
            return await asyncio.to_thread(self.run, duration, messages, timeout)
        except asyncio.CancelledError:
            self.stop()
            raise

    def summary(self, report: PublishReport) -> dict[str, Any]:
        out = report.to_dict()
        out["devices"] = len(self.telemetry.devices)
        out["virtual_time"] = round(self.clock.now(), 3)
        if self.responder is not None:
            out["responder"] = self.responder.stats.as_dict()
        out["failed_elements"] = sorted(self.faults.failed)
        out["silenced_devices"] = len(self.faults.silenced)
        return out
