"""Unit conversion into the catalogue's canonical units, for drivers whose units are configured.

A configured source unit is converted into the canonical unit of a ``(family, measure)`` of
:mod:`drivers.catalogue` by an affine map ``canonical = value * scale + offset``. Units of one
dimension convert into each other; anything else is refused when the configuration is read
(:class:`~drivers._contract.ConfigError`, naming both units and the measure), never on a message.
A unit this table does not know converts only into itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._contract import ConfigError
from ._schema import spec

__all__ = ["Conversion", "conversion", "known_units"]

# dimension -> {unit: (scale, offset) into the dimension's first unit}; aliases are separate rows
_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "temperature": {"°C": (1.0, 0.0), "degC": (1.0, 0.0), "Cel": (1.0, 0.0), "K": (1.0, -273.15),
                    "°F": (5.0 / 9.0, -160.0 / 9.0), "degF": (5.0 / 9.0, -160.0 / 9.0)},
    "volume": {"m3": (1.0, 0.0), "m³": (1.0, 0.0), "L": (1e-3, 0.0), "l": (1e-3, 0.0), "dm3": (1e-3, 0.0)},
    "flow": {"m3/h": (1.0, 0.0), "L/h": (1e-3, 0.0), "l/h": (1e-3, 0.0), "L/min": (0.06, 0.0), "L/s": (3.6, 0.0)},
    "power": {"W": (1.0, 0.0), "kW": (1e3, 0.0), "mW": (1e-3, 0.0)},
    "energy": {"kWh": (1.0, 0.0), "Wh": (1e-3, 0.0), "MWh": (1e3, 0.0)},
    "voltage": {"V": (1.0, 0.0), "mV": (1e-3, 0.0)},
    "current": {"A": (1.0, 0.0), "mA": (1e-3, 0.0)},
    "share": {"%": (1.0, 0.0), "ratio": (100.0, 0.0)},  # ratio: a fraction 0..1
    "concentration": {"µg/m3": (1.0, 0.0), "ug/m3": (1.0, 0.0), "mg/m3": (1e3, 0.0)},
    "speed": {"km/h": (1.0, 0.0), "m/s": (3.6, 0.0)},
    "duration": {"s": (1.0, 0.0), "ms": (1e-3, 0.0), "min": (60.0, 0.0), "h": (3600.0, 0.0)},
}
_DIMENSION: dict[str, str] = {unit: dim for dim, units in _TABLE.items() for unit in units}


@dataclass(frozen=True, slots=True)
class Conversion:
    """``canonical = value * scale + offset``; ``identity`` when the unit is the canonical one."""

    unit: str
    canonical: str
    scale: float = 1.0
    offset: float = 0.0

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def apply(self, value: float) -> float:
        return value * self.scale + self.offset


def known_units() -> tuple[str, ...]:
    """Every unit the table converts (for error messages and documentation)."""
    return tuple(_DIMENSION)


def conversion(family: str, measure: str, unit: str | None, where: str) -> Conversion:
    """How a value in ``unit`` becomes ``family.measure`` in its canonical unit.

    ``unit`` ``None`` means "already canonical". ``where`` prefixes the :class:`ConfigError`
    (e.g. ``driver 'chirpstack': profile 'meter'``).
    """
    s = spec(family, measure)
    if s is None:
        raise ConfigError(f"{where}: {family}.{measure} is not a canonical measure of the catalogue")
    if unit is None or unit == s.unit:
        return Conversion(s.unit, s.unit)
    if not isinstance(unit, str):
        raise ConfigError(f"{where}: {measure}: unit must be a string, got {unit!r}")
    dim, canonical_dim = _DIMENSION.get(unit), _DIMENSION.get(s.unit)
    if dim is None:
        raise ConfigError(f"{where}: {measure}: unknown unit {unit!r}; known: {', '.join(known_units())}")
    if dim != canonical_dim:
        raise ConfigError(f"{where}: {measure}: unit {unit!r} ({dim}) cannot be converted to "
                          f"{s.unit!r}, the canonical unit of {family}.{measure}")
    if s.kind is not float:
        raise ConfigError(f"{where}: {measure}: {family}.{measure} is stored as {s.kind.__name__}; "
                          f"only its canonical unit {s.unit!r} is accepted, not {unit!r}")
    a, b = _TABLE[dim][unit]
    c, d = _TABLE[dim][s.unit]
    # value -> dimension base (a*v+b) -> canonical ((base-d)/c)
    return Conversion(unit, s.unit, a / c, (b - d) / c)
