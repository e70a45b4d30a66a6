"""UN/CEFACT Recommendation 20 unit codes, keyed by the catalogue's canonical units: the one table.

NGSI-LD carries a Property's unit in its ``unitCode`` sub-property, as a UN/CEFACT common code.
Every canonical unit of :mod:`drivers.catalogue` is a key here (a test checks it), plus the few
units the entities convert to (``kW``, ``kvar``, ``L``, ``L/h``, ``1``) because the Smart Data Models
attribute says so. A unit that has no Rec 20 code (``veh/h``, ``fps``, booleans, tokens...) maps to
``None``: its Property carries no ``unitCode`` rather than a made-up one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

UNIT_CODES: Mapping[str, str | None] = MappingProxyType({
    # canonical units of the catalogue
    "veh/h": None,  # no Rec 20 code for vehicles per hour
    "km/h": "KMH",
    "%": "P1",
    "veh": "H87",  # piece
    "s": "SEC",
    "ped/h": None,
    "bool": None,
    "W": "WTT",
    "kWh": "KWH",
    "V": "VLT",
    "A": "AMP",
    "1": "C62",  # one (dimensionless)
    "count": "H87",
    "K": "KEL",
    "dBm": None,  # Rec 20 has the decibel (2N), not the decibel-milliwatt
    "dB": "2N",  # decibel (a signal-to-noise ratio)
    "lm": "LUM",
    "LQI": None,
    "var": None,
    "tokens": None,
    "fps": None,
    "kbit/s": "C74",
    "ms": "C26",
    "m3": "MTQ",
    "m3/h": "MQH",
    "°C": "CEL",
    "µg/m3": "GQ",
    "level": None,
    # units the entities convert to
    "kW": "KWT",
    "kvar": "KVR",
    "L": "LTR",
    "L/h": "E32",
})


def unit_code(unit: str) -> str | None:
    """The Rec 20 code of ``unit`` (``None``: the unit has none); a unit missing from the table is a
    programming error, raised as ``KeyError`` naming it."""
    try:
        return UNIT_CODES[unit]
    except KeyError:
        raise KeyError(f"unit {unit!r} is not in supervisor.ngsi.units.UNIT_CODES") from None
