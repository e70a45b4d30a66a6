"""Device drivers: pure translation between MQTT payloads and canonical readings.

Public API: the contract types, the family catalogue (:mod:`drivers.catalogue`), the canonical
schema (a view over the catalogue) and the driver registry. Each driver lives in its
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
from .catalogue import DeviceKind, Family, register_family

__all__ = [
    "CANONICAL",
    "FAMILIES",
    "Command",
    "ConfigError",
    "DecodeError",
    "Decoded",
    "DeviceKind",
    "Driver",
    "DriverError",
    "EncodeError",
    "Event",
    "Family",
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
    "register_family",
    "spec",
    "unit_of",
]
