"""Topic router: hands each MQTT topic to the driver whose subscription filter matches it.

Filters are compiled into a trie of topic levels (``+`` matches one level, ``#`` the rest), and
results are cached per topic in a bounded dict: a city's topics repeat, so the hot path is one
dict lookup per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers import Driver


class TopicCollisionError(ValueError):
    """Two drivers claim the same topic filter."""


class Ignored:
    """Marker for topics a driver knowingly skips (its own command topics)."""

    name = "ignored"


IGNORED = Ignored()


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    drivers: list[Driver | Ignored] = field(default_factory=list)  # filters ending here
    hash_drivers: list[Driver | Ignored] = field(default_factory=list)  # filters ending with '#' here


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT filter matching (``$``-topics are not matched by leading wildcards)."""
    f = filter_.split("/")
    t = topic.split("/")
    if t and t[0].startswith("$") and f[0] in ("+", "#"):
        return False
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part not in ("+", t[i]):
            return False
    return len(f) == len(t)


def valid_topic_name(topic: str) -> bool:
    """A topic name a publisher may use: no wildcards, no NUL, not empty, at most 65535 bytes."""
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


class Router:
    def __init__(self, drivers: list[Driver], cache_size: int = 200_000) -> None:
        self._root = _Node()
        self._cache: dict[str, Driver | Ignored | None] = {}
        self._cache_size = cache_size
        self.filters: list[tuple[str, Driver]] = []
        seen: dict[str, str] = {}
        for d in drivers:
            for flt in d.topics:
                if flt in seen:
                    raise TopicCollisionError(f"topic filter {flt!r} claimed by {seen[flt]!r} and {d.name!r}")
                seen[flt] = d.name
                self._insert(flt, d)
                self.filters.append((flt, d))
        for d in drivers:
            for flt in d.ignored:
                if flt not in seen:
                    self._insert(flt, IGNORED)

    def _insert(self, flt: str, driver: Driver | Ignored) -> None:
        node = self._root
        parts = flt.split("/")
        for i, part in enumerate(parts):
            if part == "#":
                if i != len(parts) - 1:
                    raise ValueError(f"'#' must be the last level of {flt!r}")
                node.hash_drivers.append(driver)
                return
            node = node.children.setdefault(part, _Node())
        node.drivers.append(driver)

    def route(self, topic: str) -> Driver | Ignored | None:
        """The driver for ``topic``, :data:`IGNORED` for a known topic to skip, ``None`` if unclaimed."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = self._walk(topic)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def candidates(self, topic: str) -> list[Driver]:
        """Every driver whose filters match ``topic`` (for ``decode --all``)."""
        return [d for flt, d in self.filters if topic_matches(flt, topic)]

    def _walk(self, topic: str) -> Driver | Ignored | None:
        parts = topic.split("/")
        dollar = topic.startswith("$")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if node.hash_drivers and not (dollar and i == 0):
                return node.hash_drivers[0]
            if i == len(parts):
                if node.drivers:
                    return node.drivers[0]
                continue
            plus = node.children.get("+")
            if plus is not None and not (dollar and i == 0):
                stack.append((plus, i + 1))
            exact = node.children.get(parts[i])
            if exact is not None:
                stack.append((exact, i + 1))  # exact level tried first (popped first)
        return None
