"""Seeded telemetry of a simulated city, in the native topic scheme of ``docs/architecture.md``.

Everything here is pure computation: no I/O and no wall clock. The caller passes the (virtual or
real) time ``t`` in UTC epoch seconds, so a whole night can be generated in milliseconds.

``CityTelemetry`` holds the per-device state (lighting levels, energy and water indexes, lamp
failures, scheduled report times) and yields ``Message`` tuples for the devices due to report.
It is thread-safe (one lock) because the command responders of :mod:`simulators.devices` share it
with the publisher.

Behaviour, per family:

- traffic: a daily curve with a morning and an evening peak, low at night, multiplicative noise;
  speed drops with flow (capacity ``capacity`` veh/h), occupancy = flow x vehicle length / speed.
- lighting: lamps are off by day and at their scheduled level (``night_level``) in the dark. A
  command (see :meth:`CityTelemetry.apply_command`) overrides the schedule, day or night, until
  the next dusk/dawn transition, like a manual override on a real lighting controller. A
  cabinet's power is the sum of its lamps' power (wattage x level) minus failed lamps, per circuit;
  the energy counter integrates power between reports; voltage ~230 V; current = P / V.
- cctv: online, recording, fps ~25, bitrate ~4 Mbit/s, no tamper; occasional motion events on the
  ``event`` topic (more by day).
- water: a daily consumption curve with a night minimum (often exactly zero); the index integrates
  flow; an injected :class:`Leak` adds a constant flow from a given night on; an injected
  :class:`Burst` adds a large flow for a while (alarm ``BURST``). ``LEAK`` is raised by the meter
  itself when its flow has not dropped to zero for 24 hours.

- air: stations report NO2, PM10, PM2.5, O3, temperature and humidity with diurnal and seasonal
  cycles (see :func:`air_values`); every other station also sends its own EAQI level, the driver
  computes it for the others.

Timestamps ``ts`` are rounded to the millisecond and strictly increasing per device (at least 1 ms
apart), so that InfluxDB keeps exactly one point per message.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from drivers import catalogue
from drivers.air_quality import eaqi

_log = logging.getLogger(__name__)

NOMINAL_VOLTAGE = 230.0
DEFAULT_LAMP_WATTAGE = 60.0
DEFAULT_CABINET_LAMPS = 24
DEFAULT_CIRCUITS = 2


class CityFormatError(ValueError):
    """A city description the simulators cannot use; the message names the device and field."""


class CommandError(ValueError):
    """A lighting command that is malformed or addresses something that does not exist."""

    def __init__(self, device: str, detail: str) -> None:
        super().__init__(f"command for {device!r}: {detail}")
        self.device = device
        self.detail = detail


class Message(NamedTuple):
    """One MQTT message to publish, with what it should become in InfluxDB."""

    topic: str
    payload: bytes
    family: str
    measurement: str  # InfluxDB measurement it feeds: the family, or ``events``
    points: int  # points it yields in that measurement
    device: str
    events: int = 0  # points it also yields in ``events`` (water alarm tokens)


@dataclass(frozen=True, slots=True)
class SimDevice:
    """The fields of a city device that the simulators read (extra fields are ignored)."""

    id: str
    family: str
    kind: str
    zone: str
    power: str | None = None
    port: str | None = None
    gateway: str | None = None
    cabinet: str | None = None
    street: str | None = None
    interval: float = 60.0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def base_topic(self) -> str:
        return f"city/{self.zone}/{self.family}/{self.id}"


def _opt_str(d: Mapping[str, Any], key: str, dev: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise CityFormatError(f"device {dev!r}: field {key!r} must be a string or null, got {v!r}")
    return v


def parse_devices(city: Mapping[str, Any]) -> list[SimDevice]:
    """Read the ``devices`` list of a raw city dict; raise :class:`CityFormatError` on bad input."""
    raw = city.get("devices")
    if not isinstance(raw, list):
        raise CityFormatError("city: top-level 'devices' must be a list")
    out: list[SimDevice] = []
    seen: set[str] = set()
    for i, d in enumerate(raw):
        if not isinstance(d, Mapping):
            raise CityFormatError(f"devices[{i}]: must be an object, got {type(d).__name__}")
        dev_id = d.get("id")
        if not isinstance(dev_id, str) or not dev_id:
            raise CityFormatError(f"devices[{i}]: 'id' must be a non-empty string")
        if dev_id in seen:
            raise CityFormatError(f"devices[{i}]: duplicate id {dev_id!r}")
        seen.add(dev_id)
        kind = d.get("kind")
        if kind not in KINDS:
            raise CityFormatError(f"device {dev_id!r}: unknown kind {kind!r}; "
                                  f"expected one of {sorted(KINDS)}")
        family = d.get("family", KINDS[kind])
        if family != KINDS[kind]:
            raise CityFormatError(f"device {dev_id!r}: kind {kind!r} belongs to family {KINDS[kind]!r}, "
                                  f"not {family!r}")
        zone = d.get("zone")
        if not isinstance(zone, str) or not zone:
            raise CityFormatError(f"device {dev_id!r}: 'zone' must be a non-empty string")
        interval = d.get("interval", DEFAULT_INTERVAL[family])
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise CityFormatError(f"device {dev_id!r}: 'interval' must be a positive number, "
                                  f"got {interval!r}")
        out.append(SimDevice(
            id=dev_id, family=family, kind=kind, zone=zone,
            power=_opt_str(d, "power", dev_id), port=_opt_str(d, "port", dev_id),
            gateway=_opt_str(d, "gateway", dev_id), cabinet=_opt_str(d, "cabinet", dev_id),
            street=_opt_str(d, "street", dev_id), interval=float(interval), raw=d,
        ))
    return out


# ---------------------------------------------------------------------------------------------
# daily curves (pure functions of the local hour, 0 <= h < 24)


def _bump(h: float, centre: float, width: float) -> float:
    d = min(abs(h - centre), 24.0 - abs(h - centre))
    return math.exp(-0.5 * (d / width) ** 2)


def traffic_curve(h: float) -> float:
    """Relative traffic demand, 0..1: peaks at 08:00 and 17:30, a day plateau, minimum ~04:00."""
    day = 0.45 * (_bump(h, 13.0, 3.5))
    v = 0.05 + 0.95 * max(_bump(h, 8.0, 1.2), 0.9 * _bump(h, 17.5, 1.5), day)
    return min(1.0, v)


def air_values(h: float, day_of_year: int, pollution: float, rng: random.Random) -> dict[str, float]:
    """One air-quality report at local hour ``h``: concentrations in µg/m3, °C and % humidity.

    NO2 follows road traffic (rush-hour peaks, scaled by the station's ``pollution``); O3 is made
    by sunlight (afternoon, summer) and eaten by NO2; PM10 follows traffic plus winter heating, PM2.5
    is 55-70 % of it; temperature swings +-5 °C around a seasonal mean (coldest ~03:00, warmest
    ~15:00) and relative humidity falls as it warms.
    """
    rush = traffic_curve(h)
    season = math.cos(2 * math.pi * (day_of_year - 200) / 365.0)  # +1 mid-July, -1 mid-January
    mean_t = 12.0 + 9.0 * season
    swing = math.cos(2 * math.pi * (h - 15.0) / 24.0)
    temperature = mean_t + 5.0 * swing + rng.gauss(0.0, 0.5)
    humidity = min(100.0, max(15.0, 79.0 - 16.0 * swing + rng.gauss(0.0, 3.0)))
    no2 = pollution * (12.0 + 48.0 * rush) * rng.lognormvariate(0.0, 0.15)
    sun = _bump(h, 14.5, 3.0) * (0.7 + 0.3 * season)
    o3 = max(2.0, 25.0 + 85.0 * sun - 0.35 * no2) * rng.lognormvariate(0.0, 0.1)
    pm10 = pollution * (12.0 + 12.0 * rush + 8.0 * (1.0 - season)) * rng.lognormvariate(0.0, 0.2)
    pm25 = pm10 * rng.uniform(0.55, 0.7)
    return {"no2": round(no2, 1), "pm10": round(pm10, 1), "pm25": round(pm25, 1), "o3": round(o3, 1),
            "temperature": round(temperature, 1), "humidity": round(humidity, 1)}


def water_curve(h: float) -> float:
    """Relative household consumption, 0..1: peaks at 07:30 and 20:00, minimum 02:00-05:00."""
    v = max(_bump(h, 7.5, 1.2), 0.8 * _bump(h, 20.0, 1.8), 0.35 * _bump(h, 13.0, 2.5))
    return 0.01 + 0.99 * v


def day_length(day_of_year: int, latitude: float = 45.0) -> float:
    """Hours of daylight (standard solar declination formula)."""
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + day_of_year) / 365.0)
    x = -math.tan(math.radians(latitude)) * math.tan(decl)
    x = max(-1.0, min(1.0, x))
    return 24.0 * math.acos(x) / math.pi


@dataclass(frozen=True, slots=True)
class Leak:
    """A constant extra flow (m3/h) on a water meter from the start of night ``from_night`` on.

    Night ``n`` starts at local midnight at the end of local day ``origin + n``, where ``origin``
    is the local date of ``CityTelemetry.origin`` (the first midnight after the origin is night 0).
    """

    rate: float
    from_night: int = 0


@dataclass(frozen=True, slots=True)
class Burst:
    """A large extra flow (m3/h) on a water meter between ``start`` and ``start + duration``."""

    start: float
    duration: float
    rate: float = 3.0


@dataclass(slots=True)
class _Circuit:
    id: str
    lamps: list[_Lamp] = field(default_factory=list)
    override: tuple[float, bool] | None = None  # (level, dark phase at command time)


@dataclass(slots=True)
class _Lamp:
    id: str | None  # None for a lamp of the cabinet that is not a device of the city
    wattage: float
    circuit: _Circuit | None = None
    override: tuple[float, bool] | None = None
    failed: bool = False


@dataclass(slots=True)
class _DevState:
    dev: SimDevice
    rng: random.Random
    next_t: float
    last_ms: int = -1
    last_t: float | None = None
    energy: float = 0.0  # kWh (cabinets)
    index: float = 0.0  # m3 (water meters)
    flowing_since: float | None = None  # water: start of the current run of non-zero flow
    capacity: float = 1800.0
    free_speed: float = 50.0
    base_flow: float = 0.03  # m3/h at the daily peak
    circuits: list[_Circuit] = field(default_factory=list)
    lamp: _Lamp | None = None
    pollution: float = 1.0  # air: local emissions relative to a typical urban station
    sends_index: bool = False  # air: the station computes the EAQI itself


class CityTelemetry:
    """Per-device simulated state and the messages of the devices due to report.

    ``origin`` (epoch s) anchors the report schedule and the night numbering of leaks; a device of
    interval ``i`` reports at ``origin + phase + k*i`` with a seeded phase in ``[0, i)``.
    """

    def __init__(
        self,
        city: Mapping[str, Any],
        *,
        seed: int = 0,
        origin: float,
        night_level: float = 100.0,
        motion_probability: float = 0.05,
        latitude: float | None = None,
        leaks: Mapping[str, Leak] | None = None,
        bursts: Mapping[str, Burst] | None = None,
        max_catchup: int = 10_000,
    ) -> None:
        if not 0.0 <= night_level <= 100.0:
            raise ValueError(f"night_level must be within 0..100, got {night_level}")
        self.devices = parse_devices(city)
        self.by_id = {d.id: d for d in self.devices}
        self.origin = float(origin)
        self.seed = seed
        self.night_level = night_level
        self.motion_probability = motion_probability
        self.max_catchup = max_catchup
        tzname = city.get("timezone") or "UTC"
        try:
            self.tz: ZoneInfo = ZoneInfo(str(tzname))
        except (ZoneInfoNotFoundError, ValueError):
            _log.warning("unknown timezone %r in the city file; using UTC", tzname)
            self.tz = ZoneInfo("UTC")
        lat, lon = _city_centre(city)
        self.latitude = latitude if latitude is not None else lat
        self.longitude = lon
        self.leaks: dict[str, Leak] = dict(leaks or {})
        self.bursts: dict[str, Burst] = dict(bursts or {})
        self._origin_day = datetime.fromtimestamp(self.origin, self.tz).date()
        self._lock = threading.RLock()
        self._camera_faults: dict[str, str] = {}  # camera -> "tamper" | "offline"
        self._tamper_events: set[str] = set()  # cameras whose tamper is yet to be announced by an event
        self._offsets: dict[int, float] = {}
        self._dark: dict[int, bool] = {}
        self._state: dict[str, _DevState] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._build()

    # -- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        master = random.Random(self.seed)
        lamps_of: dict[str, list[SimDevice]] = {}
        for d in self.devices:
            if d.kind == "lamp" and d.cabinet is not None:
                lamps_of.setdefault(d.cabinet, []).append(d)
        for n, d in enumerate(self.devices):
            rng = random.Random(master.getrandbits(64))
            st = _DevState(dev=d, rng=rng, next_t=self.origin + rng.uniform(0, d.interval))
            if d.family == "traffic":
                lanes = _num(d.raw.get("lanes"), 1.0)
                st.capacity = 1800.0 * max(1.0, lanes) * rng.uniform(0.7, 1.1)
                st.free_speed = _num(d.raw.get("speed_limit"), 50.0) * rng.uniform(0.9, 1.1)
            elif d.family == "water":
                st.index = rng.uniform(10.0, 2000.0)
                st.base_flow = _num(d.raw.get("peak_flow"), 0.0) or rng.uniform(0.02, 0.08)
            elif d.kind == "lighting_cabinet":
                st.energy = rng.uniform(100.0, 50_000.0)
            elif d.family == "air":
                st.pollution = _num(d.raw.get("pollution"), 0.0) or rng.uniform(0.6, 1.5)
                st.sends_index = n % 2 == 1
            self._state[d.id] = st
            heapq.heappush(self._heap, (st.next_t, n, d.id))
        # wire lamps into cabinet circuits
        for d in self.devices:
            if d.kind != "lighting_cabinet":
                continue
            st = self._state[d.id]
            raw_c = d.raw.get("circuits")
            if isinstance(raw_c, list) and raw_c:
                ids = [str(c.get("id", i + 1)) if isinstance(c, Mapping) else str(c)
                       for i, c in enumerate(raw_c)]
            else:
                ids = [str(i + 1) for i in range(int(_num(raw_c, DEFAULT_CIRCUITS)) or DEFAULT_CIRCUITS)]
            st.circuits = [_Circuit(i) for i in ids]
            wattage = _num(d.raw.get("lamp_wattage"), DEFAULT_LAMP_WATTAGE)
            members = lamps_of.get(d.id, [])
            total = max(len(members), int(_num(d.raw.get("lamps"), 0 if members else DEFAULT_CABINET_LAMPS)))
            by_circ = {c.id: c for c in st.circuits}
            for k in range(total):
                lamp_dev = members[k] if k < len(members) else None
                w = _num(lamp_dev.raw.get("wattage"), wattage) if lamp_dev else wattage
                want = str(lamp_dev.raw.get("circuit")) if lamp_dev and lamp_dev.raw.get("circuit") else None
                circ = by_circ.get(want) if want else None
                circ = circ or st.circuits[k % len(st.circuits)]
                lamp = _Lamp(lamp_dev.id if lamp_dev else None, w, circ)
                circ.lamps.append(lamp)
                if lamp_dev is not None:
                    self._state[lamp_dev.id].lamp = lamp
        for d in self.devices:  # lamps without a (known) cabinet still light up
            if d.kind == "lamp" and self._state[d.id].lamp is None:
                self._state[d.id].lamp = _Lamp(d.id, _num(d.raw.get("wattage"), DEFAULT_LAMP_WATTAGE))

    # -- time helpers --------------------------------------------------------------------------

    def _offset(self, t: float) -> float:
        """UTC offset (s) at ``t``, cached per quarter hour (DST changes on the quarter hour)."""
        key = int(t // 900)
        off = self._offsets.get(key)
        if off is None:
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            u = datetime.fromtimestamp(t, self.tz).utcoffset()
            off = self._offsets[key] = u.total_seconds() if u is not None else 0.0
        return off

    def local_hour(self, t: float) -> float:
        return ((t + self._offset(t)) % 86400.0) / 3600.0

    def is_dark(self, t: float) -> bool:
        """Between dusk and dawn at the city's centre (cached per minute)."""
        key = int(t // 60)
        dark = self._dark.get(key)
        if dark is None:
            if len(self._dark) > 100_000:
                self._dark.clear()
            lt = datetime.fromtimestamp(t, self.tz)
            h = lt.hour + lt.minute / 60.0 + lt.second / 3600.0
            half = day_length(lt.timetuple().tm_yday, self.latitude) / 2.0
            offset = lt.utcoffset()
            noon = 12.0 - self.longitude / 15.0 + (offset.total_seconds() / 3600.0 if offset else 0.0)
            dark = self._dark[key] = not (noon - half <= h < noon + half)
        return dark

    def night_start(self, n: int) -> float:
        """Epoch of the local midnight that starts night ``n`` (see :class:`Leak`)."""
        day = self._origin_day.toordinal() + n + 1
        return datetime.fromordinal(day).replace(tzinfo=self.tz).timestamp()

    # -- public state changes ------------------------------------------------------------------

    def apply_command(self, device: str, body: Mapping[str, Any], t: float) -> None:
        """Apply a native lighting command (``{"level": x}`` / ``{"on": b}``, optional ``circuit``)."""
        if not isinstance(body, Mapping):
            raise CommandError(device, f"payload must be a JSON object, got {type(body).__name__}")
        level: float
        if "level" in body:
            v = body["level"]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 100.0:
                raise CommandError(device, f"level must be a number within 0..100, got {v!r}")
            level = float(v)
        elif "on" in body:
            v = body["on"]
            if not isinstance(v, bool):
                raise CommandError(device, f"on must be a boolean, got {v!r}")
            level = self.night_level if v else 0.0
        else:
            raise CommandError(device, "needs 'level' or 'on'")
        circuit = body.get("circuit")
        if circuit is not None and not isinstance(circuit, str | int):
            raise CommandError(device, f"circuit must be a string, got {circuit!r}")
        with self._lock:
            st = self._state.get(device)
            if st is None or st.dev.family != "lighting":
                raise CommandError(device, "no such lighting device")
            ov = (level, self.is_dark(t))
            if st.dev.kind == "lamp":
                if circuit is not None:
                    raise CommandError(device, "a lamp has no circuits")
                assert st.lamp is not None
                st.lamp.override = ov
                return
            targets = st.circuits
            if circuit is not None:
                targets = [c for c in st.circuits if c.id == str(circuit)]
                if not targets:
                    raise CommandError(device, f"no circuit {circuit!r} (has {[c.id for c in st.circuits]})")
            for c in targets:
                c.override = ov
                for lamp in c.lamps:  # a cabinet command supersedes lamp overrides below it
                    lamp.override = None

    def set_lamp_failures(self, cabinet: str, k: int) -> list[str | None]:
        """Mark exactly ``k`` lamps of ``cabinet`` failed (the others repaired); return their ids."""
        with self._lock:
            st = self._state.get(cabinet)
            if st is None or st.dev.kind != "lighting_cabinet":
                raise KeyError(f"no lighting cabinet {cabinet!r}")
            lamps = [lamp for c in st.circuits for lamp in c.lamps]
            if not 0 <= k <= len(lamps):
                raise ValueError(f"cabinet {cabinet!r} has {len(lamps)} lamps; cannot fail {k}")
            chosen = set(random.Random(f"{self.seed}:{cabinet}").sample(range(len(lamps)), len(lamps))[:k])
            for i, lamp in enumerate(lamps):
                lamp.failed = i in chosen
            return [lamps[i].id for i in sorted(chosen)]

    def set_camera_fault(self, camera: str, fault: str | None) -> None:
        """Make ``camera`` report a tamper (``"tamper"``), a lost stream (``"offline"``: online false,
        0 fps, not recording) or nothing wrong (``None``); it keeps reporting, unlike a silenced one."""
        if fault not in (None, "tamper", "offline"):
            raise ValueError(f"camera fault must be 'tamper', 'offline' or None, got {fault!r}")
        with self._lock:
            st = self._state.get(camera)
            if st is None or st.dev.family != "cctv":
                raise KeyError(f"no camera {camera!r}")
            if fault is None:
                self._camera_faults.pop(camera, None)
                self._tamper_events.discard(camera)
            else:
                self._camera_faults[camera] = fault
                if fault == "tamper":
                    self._tamper_events.add(camera)

    def lamp_failures(self, cabinet: str) -> int:
        with self._lock:
            return sum(lamp.failed for c in self._state[cabinet].circuits for lamp in c.lamps)

    def lamps_of(self, cabinet: str) -> list[str]:
        """Ids of the lamp devices fed by ``cabinet``."""
        with self._lock:
            return [lp.id for c in self._state[cabinet].circuits for lp in c.lamps if lp.id is not None]

    # -- level resolution ----------------------------------------------------------------------

    def _valid(self, ov: tuple[float, bool] | None, dark: bool) -> bool:
        return ov is not None and ov[1] == dark

    def _circuit_level(self, c: _Circuit, dark: bool) -> float:
        if c.override is not None and self._valid(c.override, dark):
            return c.override[0]
        return self.night_level if dark else 0.0

    def _lamp_level(self, lamp: _Lamp, dark: bool) -> float:
        if lamp.override is not None and self._valid(lamp.override, dark):
            return lamp.override[0]
        if lamp.circuit is not None:
            return self._circuit_level(lamp.circuit, dark)
        return self.night_level if dark else 0.0

    # -- payloads ------------------------------------------------------------------------------

    def _stamp(self, st: _DevState, t: float) -> float:
        ms = max(round(t * 1000.0), st.last_ms + 1)
        st.last_ms = ms
        return ms / 1000.0

    def snapshot(self, device: str, t: float) -> list[Message]:
        """The messages ``device`` would send if it reported now (used after a command)."""
        with self._lock:
            return self._report(self._state[device], t)

    def _report(self, st: _DevState, t: float) -> list[Message]:
        dt = 0.0 if st.last_t is None else max(0.0, t - st.last_t)
        st.last_t = t
        ts = self._stamp(st, t)
        return _REPORTERS[st.dev.kind](self, st, t, ts, dt)

    def _traffic(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        rng = st.rng
        demand = traffic_curve(self.local_hour(t))
        flow = max(0.0, st.capacity * 0.85 * demand * rng.gauss(1.0, 0.08))
        ratio = min(1.0, flow / st.capacity)
        speed = max(3.0, st.free_speed * (1.0 - 0.65 * ratio**2) * rng.gauss(1.0, 0.04))
        occupancy = min(100.0, flow * 6.5 / (speed * 1000.0) * 100.0)
        body = {"ts": ts, "flow": round(flow, 1), "speed": round(speed, 1),
                "occupancy": round(occupancy, 2), "heavy_flow": round(flow * rng.uniform(0.04, 0.1), 1)}
        return [_telemetry(st.dev, body)]

    def _cabinet(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        dark = self.is_dark(t)
        circuits = []
        total = 0.0
        lamps = failures = 0
        for c in st.circuits:
            lvl = self._circuit_level(c, dark)
            p = 0.0
            for lamp in c.lamps:
                lamps += 1
                if lamp.failed:
                    failures += 1
                    continue
                p += lamp.wattage * self._lamp_level(lamp, dark) / 100.0
            total += p
            circuits.append({"id": c.id, "on": lvl > 0.0, "level": lvl, "power": round(p, 2)})
        st.energy += total * dt / 3.6e6
        voltage = st.rng.gauss(NOMINAL_VOLTAGE, 1.5)
        body = {"ts": ts, "power": round(total, 2), "energy": round(st.energy, 4),
                "voltage": round(voltage, 1), "current": round(total / voltage, 3),
                "lamp_failures": failures, "lamps": lamps, "door_open": False, "circuits": circuits}
        return [_telemetry(st.dev, body, points=1 + len(circuits))]

    def _lamp(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        assert st.lamp is not None
        lvl = self._lamp_level(st.lamp, self.is_dark(t))
        p = 0.0 if st.lamp.failed else st.lamp.wattage * lvl / 100.0
        return [_telemetry(st.dev, {"ts": ts, "on": lvl > 0.0, "level": lvl, "power": round(p, 2)})]

    def _camera(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        d, rng = st.dev, st.rng
        extra: list[Message] = []
        body: dict[str, Any] = {"ts": ts, "online": True, "recording": True, "fps": round(rng.gauss(25.0, 0.3), 2),
                                "bitrate": round(max(100.0, rng.gauss(4096.0, 250.0)), 1), "tamper": False}
        fault = self._camera_faults.get(d.id)
        if fault == "tamper":
            body["tamper"] = True
            if d.id in self._tamper_events:  # a camera announces a tamper once, as an event
                self._tamper_events.discard(d.id)
                ev = {"ts": self._stamp(st, t), "type": "tamper", "score": 1.0}
                extra.append(Message(d.base_topic + "/event", orjson.dumps(ev), "cctv", "events", 1, d.id))
        elif fault == "offline":
            body.update(online=False, recording=False, fps=0.0, bitrate=0.0)
        day = not self.is_dark(t)
        if rng.random() < self.motion_probability * (1.0 if day else 0.4):
            ets = self._stamp(st, t)
            ev = {"ts": ets, "type": "motion", "score": round(rng.uniform(0.5, 0.99), 3)}
            extra.append(Message(d.base_topic + "/event", orjson.dumps(ev), "cctv", "events", 1, d.id))
        return [_telemetry(d, body), *extra]

    def _water(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        d, rng = st.dev, st.rng
        use = st.base_flow * water_curve(self.local_hour(t))
        # households use nothing most of the night: the night minimum is zero without a leak
        flow = 0.0 if rng.random() < 0.75 * (1.0 - water_curve(self.local_hour(t))) ** 4 else \
            use * rng.uniform(0.3, 1.7)
        alarms: list[str] = []
        leak = self.leaks.get(d.id)
        if leak is not None and t >= self.night_start(leak.from_night):
            flow += leak.rate
        burst = self.bursts.get(d.id)
        if burst is not None and burst.start <= t < burst.start + burst.duration:
            flow += burst.rate
            alarms.append("BURST")
        st.index += flow * dt / 3600.0
        if flow > 0.0:
            if st.flowing_since is None:
                st.flowing_since = t
            if t - st.flowing_since >= 86400.0:
                alarms.append("LEAK")
        else:
            st.flowing_since = None
        body = {"ts": ts, "index": round(st.index, 4), "flow": round(flow, 5), "alarms": alarms}
        return [_telemetry(d, body, events=len(alarms))]

    def _air(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        local = datetime.fromtimestamp(t, self.tz)
        values = air_values(self.local_hour(t), local.timetuple().tm_yday, st.pollution, st.rng)
        body: dict[str, Any] = {"ts": ts, **values}
        if st.sends_index:  # some stations compute the index themselves; the driver does it for the others
            body["eaqi"] = eaqi(values)
        return [_telemetry(st.dev, body)]

    def _lorawan_gateway(self, st: _DevState, t: float, ts: float, dt: float) -> list[Message]:
        """A LoRaWAN gateway's figures: the last uplink's signal, frames heard and sent since the last report."""
        rng = st.rng
        rx = rng.randint(0, 40)
        tx = rng.randint(0, 2)
        body = {"ts": ts, "rssi": round(rng.uniform(-120.0, -60.0), 1), "snr": round(rng.uniform(-10.0, 10.0), 2),
                "rx_received": rx, "rx_ok": rx - rng.randint(0, rx // 10), "tx_received": tx, "tx_emitted": tx}
        return [_telemetry(st.dev, body)]

    # -- the schedule --------------------------------------------------------------------------

    def next_due(self) -> float:
        """Time of the next scheduled report (``inf`` for an empty city)."""
        with self._lock:
            return self._heap[0][0] if self._heap else math.inf

    def due(self, t: float, skip: frozenset[str] | set[str] = frozenset()) -> Iterator[Message]:
        """Messages of every report scheduled at or before ``t``, in time order.

        Each scheduled report carries its scheduled time as ``ts``. Devices in ``skip`` (silenced)
        advance their schedule and state but publish nothing.
        """
        n = 0
        limit = self.max_catchup * max(1, len(self._state))
        heap = self._heap
        while True:
            batch: list[Message] = []
            with self._lock:  # one lock round per batch, not per message
                while len(batch) < 256:
                    if not heap or heap[0][0] > t:
                        break
                    when, idx, dev = heapq.heappop(heap)
                    st = self._state[dev]
                    st.next_t = when + st.dev.interval
                    heapq.heappush(heap, (st.next_t, idx, dev))
                    if dev in skip or self._dark_lamp(st, skip):
                        st.last_t = when  # integrate nothing over the silence
                        continue
                    batch.extend(self._report(st, when))
                    n += 1
            if not batch:
                return
            yield from batch
            if n > limit:
                _log.warning("catch-up bound reached at t=%s; dropping the backlog", t)
                return

    def _dark_lamp(self, st: _DevState, skip: Iterable[str]) -> bool:
        return st.dev.kind == "lamp" and st.dev.cabinet is not None and st.dev.cabinet in skip


def _telemetry(d: SimDevice, body: Mapping[str, Any], *, points: int = 1, events: int = 0) -> Message:
    """The telemetry message of ``d``, feeding its family's measurement."""
    return Message(d.base_topic + "/telemetry", orjson.dumps(body), d.family, d.family, points, d.id, events)


_Reporter = Callable[[CityTelemetry, _DevState, float, float, float], list[Message]]
#: device kind -> how it reports (method of CityTelemetry taking the state, t, ts and dt)
_REPORTERS: dict[str, _Reporter] = {
    "road_sensor": CityTelemetry._traffic,
    "lighting_cabinet": CityTelemetry._cabinet,
    "lamp": CityTelemetry._lamp,
    "camera": CityTelemetry._camera,
    "water_meter": CityTelemetry._water,
    "air_station": CityTelemetry._air,
    "lorawan_gateway": CityTelemetry._lorawan_gateway,
}
#: the device kinds this simulator behaves like; kind -> family and family -> default reporting
#: interval come from the family catalogue
KINDS = {k: catalogue.family_of_kind(k).name for k in _REPORTERS}
FAMILIES = tuple(dict.fromkeys(KINDS.values()))
DEFAULT_INTERVAL = {f: catalogue.family(f).interval for f in FAMILIES}


def _city_centre(city: Mapping[str, Any]) -> tuple[float, float]:
    """(lat, lon) of the centre of ``bounds`` (a GeoJSON bbox ``[w, s, e, n]`` or a mapping with
    south/north/west/east); (45, 0) when absent or unreadable."""
    b = city.get("bounds")
    try:
        if isinstance(b, Mapping):
            lat = (float(b["south"]) + float(b["north"])) / 2.0
            return lat, (float(b["west"]) + float(b["east"])) / 2.0
        if isinstance(b, list | tuple) and len(b) == 4:
            return (float(b[1]) + float(b[3])) / 2.0, (float(b[0]) + float(b[2])) / 2.0
    except (KeyError, TypeError, ValueError):
        pass
    return 45.0, 0.0


def _num(v: Any, default: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return default
    return float(v)
