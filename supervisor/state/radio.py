"""The radio gateways observed: up, silent or down, and their link quality (issue 14).

A radio gateway of the model (a ``radio_gateway`` site) is watched through its ``lorawan_gateway``
device(s) of the city file (family ``lorawan``, ``gateway``: the site). Every ``lorawan`` reading of
such a device says the gateway was heard: its statistics (ChirpStack gateway stats, the native
``lorawan_gateway`` telemetry) and every uplink whose rx metadata names it (the ``chirpstack`` and
``the_things_stack`` drivers turn each into a reading of the gateway with its RSSI and SNR).

**Down, observed** is concluded, never guessed from one missed packet:

- the gateway has been heard by none of those for ``down_after`` (at least 2, default 3) of its own
  reporting intervals (the device's ``interval``; ChirpStack gateways send statistics every 30 s);
- and, with ``require_others`` (default), another radio gateway was heard *after* this one's first
  missed report: the feed (network server, MQTT integration, the supervisor's own connection) is
  alive, so the silence is the gateway's. When every gateway falls silent together nothing is
  concluded here: the devices' staleness tells (inferred), as for any element.

Before it is down it is ``silent`` (a report or more missed); the first reading makes it ``up``
again. A network server that reports the gateway disconnected (``online: false``: the ChirpStack
gateway bridge's ``state/conn`` OFFLINE, its MQTT last will) makes it down at once, whatever the
others; ``online: true`` or any statistics or uplink naming it ends that. The drivers only
translate: this module holds the status logic.

**Link quality**: the median RSSI and SNR of the last ``window`` uplinks, and the ratio of frames
with a valid CRC to frames received over the last ``window`` statistics reports. Judged once
``min_samples`` are there: a median below ``rssi_min`` or ``snr_min``, or a ratio below
``ok_ratio_min``, makes the gateway **degraded** (still up: it is never an outage, no root-cause
evidence), shown in the element's and device's API state, the console popup and the stored
``link_*`` measures of the ``lorawan`` family.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from drivers import Reading, Value
from supervisor.config import LorawanConfig
from supervisor.storage.schema import reading_point

if TYPE_CHECKING:
    from supervisor.model import CityModel

log = logging.getLogger(__name__)

GATEWAY_KIND = "lorawan_gateway"
FAMILY = "lorawan"
#: the source of the alarm manager's observed evidence (AlarmManager.observe)
SOURCE = "lorawan"

Status = Literal["up", "silent", "down"]
Link = Literal["ok", "degraded", "unknown"]


@dataclass(frozen=True, slots=True)
class LinkQuality:
    """A gateway's rolling link figures (``None``: no sample yet) and the verdict on them."""

    rssi: float | None
    snr: float | None
    ok_ratio: float | None
    uplinks: int
    reports: int
    link: Link
    why: tuple[str, ...] = ()  # what is below its threshold

    def as_dict(self) -> dict[str, Any]:
        return {"rssi_median": self.rssi, "snr_median": self.snr, "ok_ratio": self.ok_ratio,
                "uplinks": self.uplinks, "stats_reports": self.reports, "link": self.link, "why": list(self.why)}


@dataclass(slots=True)
class _Watch:
    """One ``lorawan_gateway`` device: when it was last heard, and its rolling samples."""

    device: str
    element: str
    zone: str
    interval: float
    heard: float  # supervisor clock: the last reading (or the start of the watch)
    window: int
    heard_any: bool = False
    offline: bool = False  # its network server says it is not connected (``online: false``)
    rssi: deque[float] = field(init=False)
    snr: deque[float] = field(init=False)
    rx: deque[tuple[int, int]] = field(init=False)  # (received, ok) per statistics report
    stored: tuple[Any, ...] | None = None  # the figures of the last link point written
    stored_at: float = float("-inf")

    def __post_init__(self) -> None:
        self.rssi, self.snr, self.rx = deque(maxlen=self.window), deque(maxlen=self.window), deque(maxlen=self.window)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RadioGateways:
    """The observed status and link quality of every radio gateway that has a gateway device."""

    def __init__(self, cfg: LorawanConfig, model: CityModel, now: float) -> None:
        self.cfg = cfg
        self._watches: dict[str, _Watch] = {}  # gateway device -> its watch
        self._elements: dict[str, list[_Watch]] = {}  # radio gateway -> the devices watching it
        self._down: dict[str, str] = {}  # radio gateway observed down -> why (the alarm text)
        self.set_model(model, now)

    # -- the model ------------------------------------------------------------------------------
    def set_model(self, model: CityModel, now: float) -> None:
        """Watch the gateway devices of ``model`` (a reload): a device kept keeps its samples and the
        time it was last heard; a new one starts its grace now."""
        old = self._watches
        watches: dict[str, _Watch] = {}
        for dev in model.devices.of_kind(GATEWAY_KIND):
            if dev.gateway is None or dev.gateway not in model.sites:
                continue
            prev = old.get(dev.id)
            w = _Watch(dev.id, dev.gateway, dev.zone, float(dev.interval), now, self.cfg.window)
            if prev is not None and prev.element == w.element:
                w.heard, w.heard_any, w.offline = prev.heard, prev.heard_any, prev.offline
                w.stored, w.stored_at = prev.stored, prev.stored_at
                w.rssi.extend(prev.rssi)
                w.snr.extend(prev.snr)
                w.rx.extend(prev.rx)
            watches[dev.id] = w
        self._watches = watches
        self._elements = {}
        for w in watches.values():
            self._elements.setdefault(w.element, []).append(w)
        self._down = {e: why for e, why in self._down.items() if e in self._elements}

    def started(self, now: float) -> None:
        """The supervisor starts: the grace of a gateway never heard counts from now."""
        for w in self._watches.values():
            if not w.heard_any:
                w.heard = now

    def __len__(self) -> int:
        return len(self._watches)

    # -- the hot path ---------------------------------------------------------------------------
    def on_readings(self, readings: Iterable[Reading], now: float) -> None:
        """Every reading the pipeline took into the state (the gateway devices' ones count)."""
        watches = self._watches
        if not watches:  # a city without gateway devices: nothing to look at
            return
        for r in readings:
            if r.family != FAMILY:
                continue
            w = watches.get(r.device)
            if w is not None:
                self._heard(w, r.values, now)

    @staticmethod
    def _heard(w: _Watch, values: Mapping[str, Value], now: float) -> None:
        if values.get("online") is False:  # the network server says so: down now, and not heard
            w.offline = True
            return
        w.offline = False
        w.heard = max(w.heard, now)
        w.heard_any = True
        rssi, snr = values.get("rssi"), values.get("snr")
        if isinstance(rssi, int | float) and not isinstance(rssi, bool):
            w.rssi.append(float(rssi))
        if isinstance(snr, int | float) and not isinstance(snr, bool):
            w.snr.append(float(snr))
        received, ok = values.get("rx_received"), values.get("rx_ok")
        if isinstance(received, int) and isinstance(ok, int) and not isinstance(received, bool):
            w.rx.append((received, ok))

    # -- the status -----------------------------------------------------------------------------
    def _status(self, w: _Watch, now: float) -> Status:
        if w.offline:
            return "down"
        silent_for = now - w.heard
        if silent_for <= w.interval:
            return "up"
        if silent_for < self.cfg.down_after * w.interval:
            return "silent"
        if not self.cfg.require_others:
            return "down"
        first_missed = w.heard + w.interval
        alive = any(o.heard > first_missed for o in self._watches.values() if o.element != w.element)
        return "down" if alive else "silent"

    def evaluate(self, now: float) -> dict[str, str]:
        """The radio gateways observed down now (element -> what was observed): every device watching
        one is down. Changes are logged."""
        down: dict[str, str] = {}
        for element, watches in self._elements.items():
            if any(self._status(w, now) != "down" for w in watches):
                continue
            offline = [w.device for w in watches if w.offline]
            if offline:
                down[element] = f"LoRaWAN: the network server reports {', '.join(offline)} offline"
                continue
            last = max(watches, key=lambda w: w.heard)
            since = f"since {_iso(last.heard)}" if last.heard_any else "since the start, never heard"
            down[element] = (f"LoRaWAN: no statistics nor uplinks from {last.device} {since}, "
                             f"{self.cfg.down_after:g} x its {last.interval:g} s interval, while other gateways "
                             f"report")
        for element in down.keys() - self._down.keys():
            log.warning("radio gateway %s down, observed: %s", element, down[element])
        for element in self._down.keys() - down.keys():
            log.info("radio gateway %s heard again", element)
        self._down = down
        return dict(down)

    def link(self, device: str) -> LinkQuality | None:
        """The link quality of gateway device ``device`` (None: not a watched gateway device)."""
        w = self._watches.get(device)
        return None if w is None else self._link(w)

    def _link(self, w: _Watch) -> LinkQuality:
        cfg = self.cfg
        rssi = statistics.median(w.rssi) if w.rssi else None
        snr = statistics.median(w.snr) if w.snr else None
        received = sum(r for r, _ in w.rx)
        ok_ratio = sum(o for _, o in w.rx) / received if received > 0 else None
        why: list[str] = []
        judged = False
        if len(w.rssi) >= cfg.min_samples and rssi is not None:
            judged = True
            if rssi < cfg.rssi_min:
                why.append(f"median RSSI {rssi:g} dBm < {cfg.rssi_min:g}")
        if len(w.snr) >= cfg.min_samples and snr is not None:
            judged = True
            if snr < cfg.snr_min:
                why.append(f"median SNR {snr:g} dB < {cfg.snr_min:g}")
        if len(w.rx) >= cfg.min_samples and ok_ratio is not None:
            judged = True
            if ok_ratio < cfg.ok_ratio_min:
                why.append(f"rx ok ratio {ok_ratio:.3g} < {cfg.ok_ratio_min:g}")
        verdict: Link = "degraded" if why else ("ok" if judged else "unknown")
        return LinkQuality(rssi, snr, ok_ratio, len(w.rssi), len(w.rx), verdict, tuple(why))

    def _device_state(self, w: _Watch, now: float) -> dict[str, Any]:
        return {"device": w.device, "element": w.element, "status": self._status(w, now), "offline": w.offline,
                "last_heard": w.heard if w.heard_any else None, "interval": w.interval,
                **self._link(w).as_dict()}

    def device_state(self, device: str, now: float) -> dict[str, Any] | None:
        """What the API shows of a gateway device (None: not one)."""
        w = self._watches.get(device)
        return None if w is None else self._device_state(w, now)

    def element_state(self, element: str, now: float) -> dict[str, Any] | None:
        """What the API and the console show of a radio gateway (None: not watched): ``status`` up,
        silent or down (observed); ``link`` ok, degraded or unknown; its devices' figures."""
        watches = self._elements.get(element)
        if not watches:
            return None
        devices = [self._device_state(w, now) for w in watches]
        if element in self._down:
            status: Status = "down"
        elif any(d["status"] == "up" for d in devices):
            status = "up"
        else:
            status = "silent"
        links = {d["link"] for d in devices}
        link: Link = "degraded" if "degraded" in links else ("ok" if "ok" in links else "unknown")
        return {"status": status, "observed": element in self._down, "why": self._down.get(element),
                "link": link, "devices": devices}

    # -- the stored figures -----------------------------------------------------------------------
    def lines(self, now: float) -> list[bytes]:
        """``lorawan`` points of the link figures (``link_*``) of the gateways whose figures changed,
        each at most every ``store_interval`` seconds."""
        out: list[bytes] = []
        every = self.cfg.store_interval
        for w in self._watches.values():
            if now - w.stored_at < every:
                continue
            q = self._link(w)
            figures = (q.rssi, q.snr, q.ok_ratio, q.uplinks, q.link)
            if figures == w.stored or (q.uplinks == 0 and q.reports == 0):
                continue
            values: dict[str, Value] = {"link_uplinks": q.uplinks, "link_degraded": q.link == "degraded"}
            if q.rssi is not None:
                values["link_rssi"] = q.rssi
            if q.snr is not None:
                values["link_snr"] = q.snr
            if q.ok_ratio is not None:
                values["link_ok_ratio"] = q.ok_ratio
            out.append(reading_point(Reading(w.device, FAMILY, values, now, w.zone), now))
            w.stored, w.stored_at = figures, now
        return out
