"""``urban-supervisor bench``: scenarios that print measured figures (JSON and a table).

Each scenario is a module of this package exposing ``NAME``, ``HELP``, ``add_arguments(parser)``
(optional) and ``run(args) -> dict``. Scenarios bound themselves in count and time, measure their
baselines in the same run, and never assert on timings: they report.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SCENARIO_MODULES = ("ingest", "model", "rules", "reliability", "storm", "scale", "ngsi", "opendata", "retention",
                    "reload", "snmp", "traps", "console", "radio")


def scenarios() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    names = {m.name for m in pkgutil.iter_modules(__path__)}
    for name in SCENARIO_MODULES:
        if name in names:
            mod = importlib.import_module(f"{__name__}.{name}")
            found[mod.NAME] = mod
    return found
