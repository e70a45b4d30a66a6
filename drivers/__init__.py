"""Device drivers: pure translation between MQTT payloads and canonical readings.

Public API: the contract types, the canonical schema and the registry. Each driver lives in its
own sub-package with a README, a sample configuration and test cases stored as files.
"""

from ._contract import (
    Command,
    ConfigError,
    Decoded,
    DecodeError,
    Driver,
    DriverError,
    EncodeError,
    Event,
    Observation,
    Publish,
    Reading,
    Value,
)
from ._registry import UnknownDriverError, available, get, register
from ._schema import CANONICAL, FAMILIES, MeasureSpec, measures_of, spec, unit_of

__all__ = [
    "CANONICAL",
    "FAMILIES",
    "Command",
    "ConfigError",
    "DecodeError",
    "Decoded",
    "Driver",
    "DriverError",
    "EncodeError",
    "Event",
    "MeasureSpec",
    "Observation",
    "Publish",
    "Reading",
    "UnknownDriverError",
    "Value",
    "available",
    "get",
    "measures_of",
    "register",
    "spec",
    "unit_of",
]
