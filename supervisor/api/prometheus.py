"""The Prometheus text exposition (version 0.0.4), through ``prometheus_client``.

:class:`Exposition` collects metric families for one scrape, checks our naming rules (counter
names, and only theirs, end in ``_total``; label names are valid; no family twice), and hands
them to ``prometheus_client``, which writes the text: ``# HELP``/``# TYPE`` lines, label values
escaping backslash, double quote and newline, HELP text escaping backslash and newline, values in
Go float syntax (``+Inf``, ``-Inf``, ``NaN``). Each app has its own
:class:`~prometheus_client.CollectorRegistry` (never the process-wide default one, so that two
apps in one process, as in the tests, never share metrics).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

_go_float: Callable[[float], str] = floatToGoString  # the library's own float syntax (untyped there)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

MetricType = Literal["counter", "gauge"]
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TOTAL = "_total"


def escape_label_value(value: str) -> str:
    """How a label value reads in the exposition (what ``prometheus_client`` writes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float | int | bool) -> str:
    """A sample value as the exposition writes it; integers and booleans without a decimal point."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return _go_float(value)


Sample = tuple[Mapping[str, str], float | int | bool]


class Exposition:
    """The metric families of one scrape, rendered in the order they were added."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._families: list[Metric] = []
        self._names: set[str] = set()

    def add(self, name: str, mtype: MetricType, help_text: str, samples: Iterable[Sample]) -> None:
        full = self.prefix + name
        if not _NAME.match(full):
            raise ValueError(f"invalid metric name {full!r}")
        if (mtype == "counter") != full.endswith(_TOTAL):
            raise ValueError(f"metric {full!r}: counters, and only counters, end in _total")
        if full in self._names:
            raise ValueError(f"metric {full!r} added twice")
        # prometheus_client names a counter family without _total and adds it to the samples
        family = Metric(full.removesuffix(_TOTAL) if mtype == "counter" else full, help_text, mtype)
        for labels, value in samples:
            for k in labels:
                if not _LABEL.match(k) or k.startswith("__"):
                    raise ValueError(f"invalid label name {k!r}")
            family.add_sample(full, {k: str(v) for k, v in labels.items()}, float(value))
        self._names.add(full)
        self._families.append(family)

    def counter(self, name: str, help_text: str, value: float | int) -> None:
        self.add(name, "counter", help_text, [({}, value)])

    def gauge(self, name: str, help_text: str, value: float | int | bool) -> None:
        self.add(name, "gauge", help_text, [({}, value)])

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def render(self) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry).decode()


class ScrapeCollector:
    """A collector that builds a fresh :class:`Exposition` on every scrape with ``fill``."""

    def __init__(self, prefix: str, fill: Callable[[Exposition], None]) -> None:
        self._prefix = prefix
        self._fill = fill

    def collect(self) -> Iterator[Metric]:
        out = Exposition(self._prefix)
        self._fill(out)
        return out.collect()


def app_registry(prefix: str, fill: Callable[[Exposition], None]) -> CollectorRegistry:
    """A registry of its own for one app, whose every scrape calls ``fill``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(prefix, fill))
    return registry


def render(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()
