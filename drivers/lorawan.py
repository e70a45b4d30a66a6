"""LoRaWAN network servers: what the ChirpStack and The Things Stack drivers share (pure helpers).

A network server hands over the uplink of a device already decoded by the codec of its *device
profile* (ChirpStack's ``object``, The Things Stack's ``decoded_payload``), plus the gateways that
heard it. Two things are configured, never guessed:

- **profiles** (option ``profiles``): for each device profile, the family its devices belong to
  and, per canonical measure, the key of the decoded object it is read from (``a.b`` for a nested
  key) and the unit it is in (converted into the catalogue's canonical unit by
  :mod:`drivers.units`; an incompatible or unknown unit is a :class:`ConfigError` at start);
- **devices** (option ``devices``, optional): DevEUI -> profile name, for devices whose network
  server profile name is not the one configured (it wins over the server's name).

The device of a reading is its DevEUI, lower-case hex: the identity map (configuration
``identity.map.<driver>``) turns it into the model's device id, and refuses an unknown one.
An uplink of a profile that is not configured is refused (``unknown_profile``).

Gateways: every gateway that heard an uplink gives a ``lorawan`` reading (``rssi``, ``snr`` of
its best antenna), the radio gateway's observed link quality and liveness. Option ``gateways``:
``all`` (default), ``none``, or a list of gateway ids to report (on a shared network such as The
Things Network, other people's gateways hear your devices: list your own).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._contract import ConfigError, DecodeError, Reading, Value
from ._schema import spec
from .catalogue import family as catalogue_family
from .kit import (
    BAD_IDENTIFIER,
    BAD_TYPE,
    MISSING_FIELD,
    check_range,
    to_bool,
    to_float,
    to_identifier,
    to_int,
    to_tokens,
)
from .units import Conversion, conversion

__all__ = [
    "GATEWAY_FAMILY",
    "GATEWAY_MEASURES",
    "RADIO_MEASURES",
    "UNKNOWN_PROFILE",
    "LoraConfig",
    "Profile",
    "best_per_gateway",
    "dev_eui",
    "gateway_id",
    "gateway_readings",
    "sub_list",
    "sub_object",
]

UNKNOWN_PROFILE = "unknown_profile"  # an uplink whose device profile is not configured
GATEWAY_FAMILY = "lorawan"
#: the supervisor's link-quality figures of the family (``link_*``, supervisor/state/radio.py): no driver sends them
SUPERVISOR_MEASURES_PREFIX = "link_"
GATEWAY_MEASURES: dict[tuple[str, str], str] = {
    (GATEWAY_FAMILY, m): s.unit for m, s in catalogue_family(GATEWAY_FAMILY).measures.items()
    if not m.startswith(SUPERVISOR_MEASURES_PREFIX)
}  # statistics included: what a network server that forwards gateway statistics emits
RADIO_MEASURES: dict[tuple[str, str], str] = {k: u for k, u in GATEWAY_MEASURES.items() if k[1] in ("rssi", "snr")}
OPTIONS = frozenset({"profiles", "devices", "gateways"})

_EUI = re.compile(r"[0-9A-Fa-f]{16}")
_SIGNIFICANT = 12  # a converted value keeps 12 significant digits: 1234.5 L is 1.2345 m3, not 1.2345000000000002


def dev_eui(value: Any, key: str) -> str:
    """A DevEUI (16 hex digits) in lower case; anything else is ``bad_identifier``."""
    if not isinstance(value, str):
        raise DecodeError(BAD_TYPE if value is not None else MISSING_FIELD, f"{key}: expected a DevEUI string")
    if _EUI.fullmatch(value) is None:
        raise DecodeError(BAD_IDENTIFIER, f"{key}: {value[:40]!r} is not a DevEUI (16 hex digits)")
    return value.lower()


def gateway_id(value: Any, key: str) -> str:
    """A gateway id: an EUI in lower case, or a name (The Things Stack) kept as is."""
    ident = to_identifier(value, key)
    if ident is None:
        raise DecodeError(MISSING_FIELD, f"{key}: no gateway id")
    return ident.lower() if _EUI.fullmatch(ident) else ident


def sub_object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``obj[key]`` when it is an object, ``{}`` when absent or null, else ``bad_type``."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(BAD_TYPE, f"{key}: expected an object")
    return value


def sub_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """``obj[key]`` when it is a list, ``[]`` when absent or null, else ``bad_type``."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(BAD_TYPE, f"{key}: expected a list")
    return value


# --------------------------------------------------------------------------- profiles


Converter = Callable[[Any, str], Value | None]


def _tokens(value: Any, key: str) -> Value | None:
    tokens = to_tokens(value, key)
    return None if tokens is None else ",".join(tokens)


_CONVERTERS: dict[type, Converter] = {float: to_float, int: to_int, bool: to_bool}


@dataclass(frozen=True, slots=True)
class _Field:
    measure: str
    key: str
    path: tuple[str, ...]
    read: Converter
    conv: Conversion


@dataclass(frozen=True, slots=True)
class Profile:
    """One configured device profile: its family and how each measure is read."""

    name: str
    family: str
    fields: tuple[_Field, ...]

    @property
    def measures(self) -> dict[tuple[str, str], str]:
        return {(self.family, f.measure): f.conv.canonical for f in self.fields}

    def extract(self, obj: Mapping[str, Any]) -> dict[str, Value]:
        """The canonical values of the decoded object; ``missing_field`` when none is there."""
        values: dict[str, Value] = {}
        for f in self.fields:
            raw = _dig(obj, f.path)
            value = None if raw is None else f.read(raw, f.key)
            if value is None:
                continue
            if isinstance(value, float) and not f.conv.identity:
                value = float(f"{f.conv.apply(value):.{_SIGNIFICANT}g}")
            values[f.measure] = check_range(self.family, f.measure, value)
        if not values:
            raise DecodeError(MISSING_FIELD, f"profile {self.name!r}: none of {', '.join(f.key for f in self.fields)}")
        return values


def _dig(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _profile(name: str, raw: Any, where: str) -> Profile:
    where = f"{where}: profile {name!r}"
    if not isinstance(raw, Mapping) or set(raw) - {"family", "measures"}:
        raise ConfigError(f"{where}: expected {{family: <family>, measures: {{<measure>: <key> | "
                          f"{{key: <key>, unit: <unit>}}}}}}, got {raw!r}")
    fam = raw.get("family")
    if not isinstance(fam, str):
        raise ConfigError(f"{where}: family must be a family name of the catalogue, got {fam!r}")
    try:
        catalogue_family(fam)
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    measures = raw.get("measures")
    if not isinstance(measures, Mapping) or not measures:
        raise ConfigError(f"{where}: measures must map at least one canonical measure to a key")
    return Profile(name, fam, tuple(_field(fam, str(m), v, where) for m, v in measures.items()))


def _field(fam: str, measure: str, raw: Any, where: str) -> _Field:
    if isinstance(raw, str):
        raw = {"key": raw}
    if not isinstance(raw, Mapping) or set(raw) - {"key", "unit"} or not isinstance(raw.get("key", measure), str):
        raise ConfigError(f"{where}: {measure}: expected a key or {{key: <key>, unit: <unit>}}, got {raw!r}")
    key = str(raw.get("key", measure))
    conv = conversion(fam, measure, raw.get("unit"), where)
    s = spec(fam, measure)
    assert s is not None  # conversion() refused a measure the catalogue does not have
    if s.kind is str:
        if s.unit != "tokens":
            raise ConfigError(f"{where}: {measure}: text measures other than tokens are not read from LoRaWAN")
        read: Converter = _tokens
    else:
        read = _CONVERTERS[s.kind]
    return _Field(measure, key, tuple(key.split(".")), read, conv)


class LoraConfig:
    """The options both LoRaWAN drivers share, validated once at start."""

    __slots__ = ("by_eui", "gateways", "measures", "profiles", "where")

    def __init__(self, driver: str, options: Mapping[str, Any],
                 gateway_measures: Mapping[tuple[str, str], str]) -> None:
        self.where = where = f"driver {driver!r}"
        profiles = options.get("profiles") or {}
        if not isinstance(profiles, Mapping):
            raise ConfigError(f"{where}: profiles must map profile names to their measures, got {profiles!r}")
        self.profiles = {str(n): _profile(str(n), p, where) for n, p in profiles.items()}
        devices = options.get("devices") or {}
        if not isinstance(devices, Mapping):
            raise ConfigError(f"{where}: devices must map DevEUIs to profile names, got {devices!r}")
        self.by_eui: dict[str, Profile] = {}
        for eui, name in devices.items():
            if not isinstance(eui, str) or _EUI.fullmatch(eui) is None:
                raise ConfigError(f"{where}: devices: {eui!r} is not a DevEUI (16 hex digits)")
            if name not in self.profiles:
                raise ConfigError(f"{where}: devices: {eui}: unknown profile {name!r}; "
                                  f"configured: {', '.join(self.profiles) or 'none'}")
            self.by_eui[eui.lower()] = self.profiles[name]
        self.gateways = _gateways(options.get("gateways", "all"), where)
        self.measures: dict[tuple[str, str], str] = dict(gateway_measures)
        for p in self.profiles.values():
            self.measures.update(p.measures)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((GATEWAY_FAMILY, *(p.family for p in self.profiles.values()))))

    def profile(self, eui: str, server_name: Any) -> Profile:
        """The profile of a device: by DevEUI, else by the name its network server gives."""
        hit = self.by_eui.get(eui)
        if hit is None and isinstance(server_name, str):
            hit = self.profiles.get(server_name)
        if hit is None:
            raise DecodeError(UNKNOWN_PROFILE, f"device {eui}: device profile {server_name!r} is not configured "
                              "(options profiles, devices)")
        return hit

    def reports(self, gateway: str) -> bool:
        return self.gateways is None or gateway in self.gateways


def _gateways(raw: Any, where: str) -> frozenset[str] | None:
    """``None`` reports every gateway; a set reports those (empty: none)."""
    if raw == "all":
        return None
    if raw == "none":
        return frozenset()
    if isinstance(raw, Sequence) and not isinstance(raw, str) and all(isinstance(g, str) and g for g in raw):
        return frozenset(g.lower() if _EUI.fullmatch(g) else g for g in raw)
    raise ConfigError(f"{where}: gateways must be 'all', 'none' or a list of gateway ids, got {raw!r}")


# --------------------------------------------------------------------------- gateways


def best_per_gateway(heard: list[tuple[str, float | None, float | None]]) -> dict[str, dict[str, Value]]:
    """One ``{rssi, snr}`` per gateway: the antenna with the strongest signal wins."""
    best: dict[str, dict[str, Value]] = {}
    for gw, rssi, snr in heard:
        values: dict[str, Value] = {}
        if rssi is not None:
            values["rssi"] = check_range(GATEWAY_FAMILY, "rssi", rssi)
        if snr is not None:
            values["snr"] = check_range(GATEWAY_FAMILY, "snr", snr)
        if not values:
            continue
        kept = best.get(gw)
        if kept is None or float(values.get("rssi", -1e9)) > float(kept.get("rssi", -1e9)):
            best[gw] = values
    return best


def gateway_readings(cfg: LoraConfig, heard: list[tuple[str, float | None, float | None]],
                     ts: float | None) -> list[Reading]:
    """The ``lorawan`` readings of the gateways ``cfg`` reports, one per gateway."""
    kept = [h for h in heard if cfg.reports(h[0])]
    return [Reading(gw, GATEWAY_FAMILY, values, ts) for gw, values in best_per_gateway(kept).items()]
