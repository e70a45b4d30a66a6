"""Identity mapping: a source's own identifiers → devices of the network model.

A Tasmota topic, a Zigbee2MQTT friendly name, a wM-Bus meter id, a Frigate camera name or an NGSI
id is mapped, per deployment and per driver, to the device id of the city model (configuration
``identity.map``). Without a model every identifier is accepted as is. With a model, an identifier
that maps to no device of the model is counted and reported, then, by ``identity.unknown``:

- ``refuse`` (default): the message is refused (reason ``unknown_device``), nothing is stored;
- ``unplaced``: the device is auto-registered in zone ``unplaced`` and its data stored;
- ``accept``: stored as is (an integration phase, before the city file is complete).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

UNPLACED = "unplaced"
Policy = Literal["refuse", "unplaced", "accept"]


class IdentityMap:
    """Resolve ``(driver, source id)`` to ``(device id, zone)``, or ``None`` to refuse."""

    def __init__(self, mapping: Mapping[str, Mapping[str, str]] | None = None, devices: Mapping[str, Any] | None = None,
                 unknown: Policy = "refuse", report_limit: int = 1000) -> None:
        self._map = {drv: dict(m) for drv, m in (mapping or {}).items()}
        self._reverse = {drv: {dev: src for src, dev in m.items()} for drv, m in self._map.items()}
        self._devices = devices
        self.unknown_policy = unknown
        self._cache: dict[tuple[str, str], tuple[str, str | None] | None] = {}
        self.unknown: Counter[tuple[str, str]] = Counter()  # (driver, source id) -> messages
        self._report_limit = report_limit
        self.unplaced: set[str] = set()

    def rebind(self, devices: Mapping[str, Any]) -> None:
        """Resolve against a reloaded model's devices from now on (the cache is dropped; the report of
        unknown identifiers is kept). Called under the supervisor's lock, between batches."""
        self._devices = devices
        self._cache.clear()
        self.unplaced.difference_update([d for d in self.unplaced if d in devices])

    @property
    def passthrough(self) -> bool:
        """True when every identifier resolves to itself with no zone (no model, no mapping)."""
        return self._devices is None and not any(self._map.values())

    def resolve(self, driver: str, source: str) -> tuple[str, str | None] | None:
        key = (driver, source)
        try:
            hit = self._cache[key]
        except KeyError:
            hit = self._cache[key] = self._resolve(driver, source)
            if len(self._cache) > 500_000:
                self._cache.clear()
        if (hit is None or hit[1] == UNPLACED) and (key in self.unknown or len(self.unknown) < self._report_limit):
            self.unknown[key] += 1
        return hit

    def _resolve(self, driver: str, source: str) -> tuple[str, str | None] | None:
        device = self._map.get(driver, {}).get(source, source)
        if self._devices is None:
            return device, None
        info = self._devices.get(device)
        if info is not None:
            return device, str(info.zone)
        if self.unknown_policy == "refuse":
            return None
        if self.unknown_policy == "unplaced":
            self.unplaced.add(device)
            return device, UNPLACED
        return device, None

    def source_of(self, driver: str, device: str) -> str:
        """The identifier the driver's devices know ``device`` by (for encoding commands)."""
        return self._reverse.get(driver, {}).get(device, device)

    def report(self) -> list[dict[str, Any]]:
        """Unknown identifiers, most frequent first (bounded)."""
        return [{"driver": d, "source": s, "messages": n, "policy": self.unknown_policy}
                for (d, s), n in self.unknown.most_common()]
