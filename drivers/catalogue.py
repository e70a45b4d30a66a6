"""The catalogue of device families: the one place that says what a family is.

A :class:`Family` names its device kinds (each with the severity of its alarm), its canonical
measures (one unit and one InfluxDB storage type per measure, see ``shared/formats.md`` section 5),
its native driver, its default reporting interval and the network service it serves. Everything
else reads this module: the canonical schema (:mod:`drivers._schema`), the city model, the alarm
manager, the state intervals, the simulators and the rules.

The registry is a frozen-dataclass table in the style of Home Assistant's device classes. It is
built from three sources, later ones unable to shadow earlier ones:

1. the built-in families below;
2. the ``urban_supervisor.families`` entry-point group (a ``Family`` object, or a callable
   returning one or several), so an installed package adds a family without editing this project;
3. :func:`register_family`, for tests and embedding applications.

A broken entry point is logged, counted in :func:`load_errors` and skipped: a third-party package
must not take the supervisor down.
"""

from __future__ import annotations

import keyword
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "BUILTIN",
    "GROUP",
    "SEVERITIES",
    "CatalogueError",
    "DeviceKind",
    "Family",
    "MeasureSpec",
    "Severity",
    "UnknownFamilyError",
    "UnknownKindError",
    "families",
    "family",
    "family_of_kind",
    "kind",
    "kinds",
    "load_errors",
    "register_family",
    "reload",
    "unregister_family",
]

GROUP = "urban_supervisor.families"
_log = logging.getLogger(__name__)

Severity = Literal["critical", "major", "minor", "warning"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
STORAGE_TYPES: tuple[type, ...] = (float, int, bool, str)
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


class CatalogueError(ValueError):
    """A family that cannot enter the catalogue; the message names the family and the field."""


class UnknownFamilyError(CatalogueError, KeyError):
    def __init__(self, name: object) -> None:
        super().__init__(f"unknown family {name!r}; known families: {', '.join(families()) or 'none'}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownKindError(CatalogueError, KeyError):
    def __init__(self, name: object) -> None:
        known = sorted(k for f in families().values() for k in f.kind_names)
        super().__init__(f"unknown device kind {name!r}; known kinds: {', '.join(known)}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """One canonical measure: its unit, its storage type and its plausible range."""

    unit: str
    kind: type  # float, int, bool or str: the InfluxDB field type
    lo: float | None = None
    hi: float | None = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A kind of device of a family, with the severity of its own (non root-cause) alarm."""

    name: str
    severity: Severity = "minor"
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Family:
    """A device family: its kinds, measures, native driver, reporting interval and service.

    ``interval`` is the default expected reporting interval in seconds (the state registry calls a
    device stale after a few missed intervals); ``service`` is the network service (VLAN) its
    devices belong to in a generated city.
    """

    name: str
    kinds: tuple[DeviceKind, ...]
    measures: Mapping[str, MeasureSpec] = field(hash=False)  # a read-only mapping is not hashable
    driver: str
    interval: float
    service: str = ""
    title: str = ""
    doc: str = ""
    # measures that report a fault, and the word the fault is named by: a ``True`` bool is the fault
    # itself, a non-empty string (tokens) is named "<word> <tokens>"; ``online: false`` is a fault in
    # every family (an explicit signal only: a value out of range is never a fault)
    faults: Mapping[str, str] = field(default_factory=dict, hash=False)
    kind_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_family(self)
        set_ = object.__setattr__  # the dataclass is frozen: derived fields are set once, here
        set_(self, "kinds", tuple(self.kinds))
        set_(self, "measures", MappingProxyType(dict(self.measures)))
        set_(self, "faults", MappingProxyType(dict(self.faults)))
        set_(self, "service", self.service or self.name)
        set_(self, "title", self.title or self.name.replace("_", " ").capitalize())
        set_(self, "kind_names", tuple(k.name for k in self.kinds))

    def kind(self, name: str) -> DeviceKind:
        for k in self.kinds:
            if k.name == name:
                return k
        raise UnknownKindError(name)


def _identifier(what: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or keyword.iskeyword(name):
        raise CatalogueError(f"{what} {name!r} must be a lower-case identifier ([a-z][a-z0-9_]*)")
    return name


def _check_family(f: Family) -> None:
    name = _identifier("family name", f.name)
    where = f"family {name!r}"
    if not f.kinds:
        raise CatalogueError(f"{where}: needs at least one device kind")
    seen: set[str] = set()
    for k in f.kinds:
        if not isinstance(k, DeviceKind):
            raise CatalogueError(f"{where}: kinds must be DeviceKind objects, got {k!r}")
        if _identifier(f"{where}: kind", k.name) in seen:
            raise CatalogueError(f"{where}: kind {k.name!r} listed twice")
        if k.severity not in SEVERITIES:
            raise CatalogueError(f"{where}: kind {k.name!r}: severity {k.severity!r} is not one of {SEVERITIES}")
        seen.add(k.name)
    if not isinstance(f.measures, Mapping) or not f.measures:
        raise CatalogueError(f"{where}: needs at least one measure")
    for m, s in f.measures.items():
        _identifier(f"{where}: measure", m)
        if not isinstance(s, MeasureSpec) or s.kind not in STORAGE_TYPES:
            raise CatalogueError(f"{where}: measure {m!r} needs a MeasureSpec typed float, int, bool or str")
    for m in f.faults:
        spec_ = f.measures.get(m)
        if spec_ is None or spec_.kind not in (bool, str):
            raise CatalogueError(f"{where}: fault measure {m!r} must be one of its bool or str measures")
    _identifier(f"{where}: driver", f.driver)
    if isinstance(f.interval, bool) or not isinstance(f.interval, int | float) or not 0 < f.interval < float("inf"):
        raise CatalogueError(f"{where}: interval must be a positive number of seconds, got {f.interval!r}")


# ---------------------------------------------------------------------------------------------
# the built-in families

F, I, B, S = float, int, bool, str  # noqa: E741 (a table of types reads better short)
M = MeasureSpec

TRAFFIC = Family(
    "traffic",
    kinds=(DeviceKind("road_sensor", "minor", "loop, radar or camera counter on a lane"),),
    measures={
        "flow": M("veh/h", F, 0, 20000, "vehicle flow rate"),
        "speed": M("km/h", F, 0, 300, "mean speed"),
        "occupancy": M("%", F, 0, 100, "share of time the detector is occupied"),
        "heavy_flow": M("veh/h", F, 0, 20000, "heavy-vehicle flow rate"),
        "count": M("veh", I, 0, None, "vehicles counted in the reported interval"),
        "interval": M("s", F, 0, None, "length of the counting interval"),
        "v85": M("km/h", F, 0, 300, "85th percentile speed"),
        "uptime": M("%", F, 0, 100, "share of the interval the counter was active"),
        "bike_flow": M("veh/h", F, 0, 20000, "two-wheeler flow rate"),
        "pedestrian_flow": M("ped/h", F, 0, 100000, "pedestrian flow rate"),
        "speed_ratio": M("%", F, 0, 200, "mean speed as a share of the free-flow speed"),
        "capacity_use": M("%", F, 0, 1000, "flow as a share of the lane's maximum capacity"),
    },
    driver="road_sensor",
    interval=60.0,
    title="Traffic",
)

LIGHTING = Family(
    "lighting",
    kinds=(
        DeviceKind("lighting_cabinet", "major", "cabinet controller: a whole street goes dark with it"),
        DeviceKind("lamp", "minor", "one luminaire, controlled through its cabinet"),
    ),
    measures={
        "on": M("bool", B, doc="circuit or lamp switched on"),
        "level": M("%", F, 0, 100, "applied dimming level"),
        "setpoint": M("%", F, 0, 100, "requested dimming level"),
        "power": M("W", F, 0, 1e6, "active power"),
        "energy": M("kWh", F, 0, None, "energy counter (may reset)"),
        "voltage": M("V", F, 0, 1000, "RMS voltage"),
        "current": M("A", F, 0, 10000, "RMS current"),
        "power_factor": M("1", F, -1, 1, "power factor"),
        "lamp_failures": M("count", I, 0, None, "lamps reported failed"),
        "lamps": M("count", I, 0, None, "lamps on the circuit or cabinet"),
        "color_temp": M("K", F, 1000, 10000, "colour temperature"),
        "rssi": M("dBm", F, -150, 20, "radio signal"),
        "online": M("bool", B, doc="controller reachable"),
        "lumens": M("lm", F, 0, None, "light measured at the lamp, as sent (AsyncAPI Streetlights)"),
        "lqi": M("LQI", I, 0, 255, "Zigbee link quality indicator (not convertible to dBm)"),
        "energy_period": M("kWh", F, 0, None, "energy since the previous report (Tasmota Period)"),
        "door_open": M("bool", B, doc="cabinet door open"),
        "reactive_power": M("var", F, -1e6, 1e6, "reactive power"),
        "faults": M("tokens", S, doc="active fault tokens, upper case, comma separated"),
    },
    driver="lighting_cabinet",
    interval=300.0,
    title="Lighting",
)

CCTV = Family(
    "cctv",
    kinds=(DeviceKind("camera", "major", "network camera on a pole"),),
    measures={
        "online": M("bool", B, doc="camera reachable and streaming"),
        "recording": M("bool", B, doc="recording active"),
        "fps": M("fps", F, 0, 1000, "frames per second received"),
        "bitrate": M("kbit/s", F, 0, 1e7, "stream bitrate"),
        "tamper": M("bool", B, doc="tamper detected (covered, moved, defocused)"),
        "motion": M("bool", B, doc="motion currently detected"),
        "objects": M("count", I, 0, None, "objects currently tracked"),
        "inference_ms": M("ms", F, 0, None, "detector inference time"),
        "uptime": M("s", F, 0, None, "time since start"),
        "enabled": M("bool", B, doc="camera processing enabled in the NVR (not a health signal)"),
        "detect": M("bool", B, doc="object detection enabled in the NVR"),
        "cpu": M("%", F, 0, None, "NVR CPU usage (above 100 on several cores)"),
        "gpu": M("%", F, 0, 100, "NVR GPU usage"),
        "battery": M("%", F, 0, 100, "battery charge"),
        "rssi": M("dBm", F, -150, 20, "radio signal"),
    },
    driver="cctv",
    interval=60.0,
    title="CCTV",
    faults={"tamper": "tamper"},
)

WATER = Family(
    "water",
    kinds=(DeviceKind("water_meter", "warning", "battery meter read through a radio gateway"),),
    measures={
        "index": M("m3", F, 0, None, "volume index (counter; may reset)"),
        "flow": M("m3/h", F, 0, 10000, "flow rate"),
        "alarms": M("tokens", S, doc="active alarm tokens, upper case, comma separated"),
        "temperature": M("°C", F, -50, 150, "water temperature"),
        "battery": M("%", F, 0, 100, "battery charge"),
        "rssi": M("dBm", F, -150, 20, "radio signal"),
        "target_index": M("m3", F, 0, None, "volume index at the last billing date"),
        "max_flow": M("m3/h", F, 0, 10000, "highest flow over the meter's reporting window"),
        "min_flow": M("m3/h", F, 0, 10000, "lowest flow over the meter's reporting window"),
        "external_temperature": M("°C", F, -50, 150, "temperature outside the pipe"),
    },
    driver="water_meter",
    interval=900.0,
    title="Water",
    faults={"alarms": "alarm"},
)

AIR = Family(
    "air",
    kinds=(DeviceKind("air_station", "minor", "air-quality station (NO2, PM, O3, EAQI)"),),
    measures={
        "no2": M("µg/m3", F, 0, 2000, "nitrogen dioxide concentration"),
        "pm10": M("µg/m3", F, 0, 2000, "particulate matter < 10 µm"),
        "pm25": M("µg/m3", F, 0, 2000, "particulate matter < 2.5 µm"),
        "o3": M("µg/m3", F, 0, 2000, "ozone concentration"),
        "eaqi": M("level", I, 1, 6, "European Air Quality Index level (1 good .. 6 extremely poor)"),
        "temperature": M("°C", F, -60, 70, "air temperature"),
        "humidity": M("%", F, 0, 100, "relative humidity"),
    },
    driver="air_quality",
    interval=600.0,
    title="Air quality",
)

LORAWAN = Family(
    "lorawan",
    kinds=(DeviceKind("lorawan_gateway", "major",
                      "LoRaWAN radio gateway as its network server sees it: every radio device behind it goes "
                      "silent with it"),),
    measures={
        "rssi": M("dBm", F, -150, 20, "signal strength of the uplink the gateway heard (best antenna)"),
        "snr": M("dB", F, -40, 40, "signal-to-noise ratio of the uplink the gateway heard (best antenna)"),
        "rx_received": M("count", I, 0, None, "radio frames received since the previous statistics"),
        "rx_ok": M("count", I, 0, None, "radio frames received with a valid CRC since the previous statistics"),
        "tx_received": M("count", I, 0, None, "downlinks the gateway was asked to send since the previous statistics"),
        "tx_emitted": M("count", I, 0, None, "downlinks the gateway sent since the previous statistics"),
        "online": M("bool", B, doc="the gateway connected to its network server (ChirpStack gateway bridge "
                    "`state/conn`); false: a fault, and the radio gateway observed down"),
        # the link quality: computed by the supervisor over the gateway's last uplinks and statistics
        # (supervisor/state/radio.py, `lorawan.window`), never sent by a driver
        "link_rssi": M("dBm", F, -150, 20, "median RSSI of the last uplinks the gateway heard"),
        "link_snr": M("dB", F, -40, 40, "median SNR of the last uplinks the gateway heard"),
        "link_ok_ratio": M("1", F, 0, 1, "frames with a valid CRC / frames received, over the last statistics"),
        "link_uplinks": M("count", I, 0, None, "uplinks the median RSSI and SNR are taken over"),
        "link_degraded": M("bool", B, doc="link quality below the `lorawan` thresholds (degraded, not down)"),
    },
    driver="lorawan_gateway",  # native scheme; network servers: the chirpstack and the_things_stack drivers
    interval=60.0,  # ChirpStack gateways send statistics every 30 s by default
    title="LoRaWAN gateways",
)

BUILTIN: tuple[Family, ...] = (TRAFFIC, LIGHTING, CCTV, WATER, AIR, LORAWAN)
del F, I, B, S, M


# ---------------------------------------------------------------------------------------------
# the registry


class _Registry:
    """Built-in, entry-point and registered families; entry points are read once, lazily."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.registered: dict[str, Family] = {}
        self.loaded: dict[str, Family] | None = None
        self.errors: list[str] = []
        self.view: Mapping[str, Family] = MappingProxyType({})
        self.by_kind: Mapping[str, Family] = MappingProxyType({})

    def all(self) -> Mapping[str, Family]:
        if self.loaded is None:
            with self.lock:
                if self.loaded is None:
                    self.loaded = self._from_entry_points()
                    self._rebuild()
        return self.view

    def _from_entry_points(self) -> dict[str, Family]:
        self.errors = []
        found: dict[str, Family] = {}
        for ep in entry_points(group=GROUP):
            try:
                obj = ep.load()
                items = _families_of(obj() if callable(obj) and not isinstance(obj, Family) else obj)
            except Exception as exc:  # a third-party package must not take the supervisor down
                self._error(f"family entry point {ep.name} ({ep.value}) failed to load: {exc}")
                continue
            for fam in items:
                try:
                    _no_clash(fam, {f.name: f for f in BUILTIN} | found)
                except CatalogueError as exc:
                    self._error(f"family entry point {ep.name} ({ep.value}): {exc}")
                    continue
                found[fam.name] = fam
        return found

    def _error(self, text: str) -> None:
        _log.error("%s", text)
        self.errors.append(text)

    def _rebuild(self) -> None:
        merged = {f.name: f for f in BUILTIN} | (self.loaded or {}) | self.registered
        self.view = MappingProxyType(merged)
        self.by_kind = MappingProxyType({k: f for f in merged.values() for k in f.kind_names})

    def register(self, fam: Family, replace: bool) -> Family:
        self.all()
        with self.lock:
            others = {n: f for n, f in self.view.items() if not (replace and n in self.registered and n == fam.name)}
            _no_clash(fam, others)
            self.registered[fam.name] = fam
            self._rebuild()
        return fam

    def unregister(self, name: str) -> None:
        with self.lock:
            if self.registered.pop(name, None) is None:
                raise UnknownFamilyError(name)
            self._rebuild()

    def reset(self) -> None:
        with self.lock:
            self.loaded = None
            self.view = MappingProxyType({})


def _families_of(obj: object) -> list[Family]:
    items: list[object] = [obj] if isinstance(obj, Family) else list(obj) if isinstance(obj, Iterable) else [obj]
    found = [it for it in items if isinstance(it, Family)]
    if len(found) != len(items):
        bad = next(it for it in items if not isinstance(it, Family))
        raise CatalogueError(f"expected a Family (or a callable returning families), got {bad!r}")
    return found


def _no_clash(fam: Family, known: Mapping[str, Family]) -> None:
    if not isinstance(fam, Family):
        raise CatalogueError(f"expected a Family, got {fam!r}")
    if fam.name in known:
        raise CatalogueError(f"family {fam.name!r} is already in the catalogue")
    kinds = {k: f.name for f in known.values() for k in f.kind_names}
    for k in fam.kind_names:
        if k in kinds:
            raise CatalogueError(f"family {fam.name!r}: device kind {k!r} already belongs to family {kinds[k]!r}")


_REGISTRY = _Registry()


def families() -> Mapping[str, Family]:
    """Every family, by name (built-in first, then entry points, then registered), read-only."""
    return _REGISTRY.all()


def family(name: str) -> Family:
    """The family called ``name``; :class:`UnknownFamilyError` (a ``KeyError``) names the known ones."""
    try:
        return families()[name]
    except (KeyError, TypeError):
        raise UnknownFamilyError(name) from None


def family_of_kind(kind_name: str) -> Family:
    """The family a device kind belongs to; :class:`UnknownKindError` when no family has it."""
    _REGISTRY.all()
    try:
        return _REGISTRY.by_kind[kind_name]
    except (KeyError, TypeError):
        raise UnknownKindError(kind_name) from None


def kind(kind_name: str) -> DeviceKind:
    """The :class:`DeviceKind` called ``kind_name`` (its severity, its doc)."""
    return family_of_kind(kind_name).kind(kind_name)


def kinds() -> Iterator[DeviceKind]:
    """Every device kind of every family, in catalogue order."""
    for f in families().values():
        yield from f.kinds


def register_family(fam: Family, *, replace: bool = False) -> Family:
    """Add ``fam`` to the catalogue (usable at run time, also by third parties).

    Raises :class:`CatalogueError` when its name or one of its device kinds is already taken;
    ``replace=True`` lets a family registered earlier through this function be replaced.
    """
    return _REGISTRY.register(fam, replace)


def unregister_family(name: str) -> None:
    """Remove a family added by :func:`register_family` (built-in and entry-point ones stay)."""
    _REGISTRY.unregister(name)


def reload() -> None:
    """Read the entry points again on next use (after installing a package at run time)."""
    _REGISTRY.reset()


def load_errors() -> tuple[str, ...]:
    """What went wrong loading the entry points, one sentence each (empty when all loaded)."""
    _REGISTRY.all()
    return tuple(_REGISTRY.errors)
