"""Turning the objects of the other parts (model, alarms, rules) into JSON-ready values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fastapi.encoders import jsonable_encoder


def to_jsonable(obj: Any) -> Any:
    """``obj.as_dict()`` when it has one, else dataclass fields, else FastAPI's encoder.

    ``as_dict`` is the project's convention for an object's public view, so it wins over a raw
    field dump; the result goes through ``jsonable_encoder`` for tuples, sets, enums and paths.
    """
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return jsonable_encoder(as_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable_encoder({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    return jsonable_encoder(obj)
