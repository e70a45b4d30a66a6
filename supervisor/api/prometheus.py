"""A small, dependency-free writer of the Prometheus text exposition format (version 0.0.4).

Each family gets ``# HELP`` and ``# TYPE`` lines followed by its samples; counter names end in
``_total``; label values escape backslash, double quote and newline; HELP text escapes backslash
and newline; values use Go float syntax (``+Inf``, ``-Inf``, ``NaN``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge"]
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


Sample = tuple[Mapping[str, str], float | int | bool]


class Exposition:
    """Collects metric families and renders them in the order they were added."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._parts: list[str] = []
        self._names: set[str] = set()

    def add(self, name: str, mtype: MetricType, help_text: str, samples: Iterable[Sample]) -> None:
        full = self.prefix + name
        if not _NAME.match(full):
            raise ValueError(f"invalid metric name {full!r}")
        if (mtype == "counter") != full.endswith("_total"):
            raise ValueError(f"metric {full!r}: counters, and only counters, end in _total")
        if full in self._names:
            raise ValueError(f"metric {full!r} added twice")
        self._names.add(full)
        self._parts.append(f"# HELP {full} {escape_help(help_text)}\n# TYPE {full} {mtype}\n")
        for labels, value in samples:
            self._parts.append(f"{full}{self._labels(labels)} {format_value(value)}\n")

    def counter(self, name: str, help_text: str, value: float | int) -> None:
        self.add(name, "counter", help_text, [({}, value)])

    def gauge(self, name: str, help_text: str, value: float | int | bool) -> None:
        self.add(name, "gauge", help_text, [({}, value)])

    @staticmethod
    def _labels(labels: Mapping[str, str]) -> str:
        if not labels:
            return ""
        for k in labels:
            if not _LABEL.match(k) or k.startswith("__"):
                raise ValueError(f"invalid label name {k!r}")
        inner = ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in labels.items())
        return "{" + inner + "}"

    def render(self) -> str:
        return "".join(self._parts)
