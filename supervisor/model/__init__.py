"""The layered network model of the city: physical, layer 2 and layer 3, with its devices.

Public API::

    load_city(path) -> CityModel               # JSON (or YAML for small hand-written files)
    city_from_dict(data, source="<dict>") -> CityModel
    CityModel.devices / zones / streets / services / elements / timezone / center
    CityModel.dependencies(device) / dependents(element) / impact(element)
    CityModel.shared_infrastructure() / root_causes(silent)
    CityModel.devices_within / devices_near_line / lights_along / nearest_device
    model_benchmark(devices) -> dict
    diff_models(old, new) -> ModelDiff            # what a reload adds, removes and changes

The file format is documented in ``docs/city-file.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor.model._bench import model_benchmark
from supervisor.model._diff import ModelDiff, diff_models
from supervisor.model._load import read_city_file, validate
from supervisor.model._model import CityModel, DeviceMap
from supervisor.model._types import (
    CityFileError,
    DeviceInfo,
    ElementInfo,
    Impact,
    Problem,
    RootCause,
    RootCauseResult,
    UnknownElementError,
)

__all__ = [
    "CityFileError",
    "CityModel",
    "DeviceInfo",
    "DeviceMap",
    "ElementInfo",
    "Impact",
    "ModelDiff",
    "Problem",
    "RootCause",
    "RootCauseResult",
    "UnknownElementError",
    "city_from_dict",
    "diff_models",
    "load_city",
    "model_benchmark",
]


def city_from_dict(data: dict[str, Any], source: str = "<dict>") -> CityModel:
    """Validate ``data`` (the content of a city file) and build the model.

    Raises :class:`CityFileError` listing every problem found.
    """
    if not isinstance(data, dict):
        raise CityFileError([Problem(source, "<root>", f"top level must be an object, got {type(data).__name__}")])
    with _no_gc():
        return CityModel(validate(data, source))


def load_city(path: str | Path) -> CityModel:
    """Read, validate and build the model of a city file (``.json``, ``.yaml`` or ``.yml``)."""
    with _no_gc():
        data, source = read_city_file(path)
        city = validate(data, source)
        del data  # the parsed file (GBs at a million devices) is not needed by the model
        if city.devices is not None:
            city.devices.compact_ids()
        _release_free_memory()
        return CityModel(city)


def _release_free_memory() -> None:
    """Give the freed parse back to the OS (glibc keeps freed heap pages otherwise)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic collector while millions of acyclic objects are created.

    Otherwise it rescans the growing heap again and again and loading takes several times longer.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
