"""The entities of one city, found and built on demand: what ``GET /ngsi-ld/v1/entities`` runs.

Nothing is kept per entity: the model index (:class:`~supervisor.ngsi.entities.ModelIndex`) lists
the candidates of each type, sorted by entity id; a query filters them (``id``, ``idPattern``) and
builds only the page. ``q`` and ``geoQ`` are tested on a :class:`LazyKeyValues` of each candidate, in
chunks, each chunk's device states read in one call of ``live`` (which holds the supervisor's lock
for that chunk only): the attributes a query names are read from the model's columns (``location``)
and the device state (``deviceState``, the live Properties, through the builders' own
:data:`~supervisor.ngsi.entities.DEVICE_LIVE_ATTRS`); any other attribute builds the entity.
Measured with ``urban-supervisor bench ngsi`` (100,000 devices, 55,000 lamps, ``q`` on
``illuminanceLevel``): p50 12.7 s when every entity was built, see docs/ngsi-ld.md for after.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.ngsi.entities import (
    DEVICE_LIVE_ATTRS,
    ENTITY_TYPES,
    KIND_TYPES,
    Builder,
    Entity,
    Live,
    ModelIndex,
    key_values,
    split_urn,
    streetlight_status,
    urn,
)
from supervisor.ngsi.query import Predicate, located

if TYPE_CHECKING:
    from supervisor.model import CityModel
    from supervisor.state.registry import StateRegistry

#: the device states of a list of devices (absent: never heard of), read in one go
LiveReader = Callable[[Sequence[str]], Mapping[str, Live]]
CHUNK = 2000
_OBSERVED_KIND = {t: k for k, t in KIND_TYPES.items() if t.endswith("Observed")}


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entity that may be built: its id, type, the element it comes from and a channel."""

    id: str
    type: str
    ref: str
    channel: str | None = None
    source: str = "device"  # device | gateway | switch


@dataclass(frozen=True, slots=True)
class Query:
    types: tuple[str, ...]
    ids: frozenset[str] | None = None
    id_pattern: re.Pattern[str] | None = None
    q: Predicate | None = None
    geo: Callable[[float, float], bool] | None = None
    limit: int = 20
    offset: int = 0


_ABSENT = object()  # the entity has no such attribute
_UNKNOWN = object()  # not read cheaply: build the entity


class LazyKeyValues(dict[str, Any]):
    """The keyValues form of one candidate, attribute by attribute as a query reads it.

    What the builders would put under a name is read from the model's columns and the device
    state when :meth:`NgsiView.cheap` knows the name; any other name builds the whole entity once
    (the builder's own output, so a filter never disagrees with the entity it returns)."""

    __slots__ = ("_built", "_c", "_entity", "_st", "_view")

    def __init__(self, view: NgsiView, c: Candidate, st: Live | None) -> None:
        super().__init__()
        self._view = view
        self._c = c
        self._st = st
        self._built = False
        self._entity: Entity | None = None

    def entity(self) -> Entity:
        """The entity in the normalized form (built once)."""
        if self._entity is None:
            self._entity = self._view._build_one(self._c, self._st)
        return self._entity

    def _resolve(self, key: str) -> object:
        if self._built or dict.__contains__(self, key):
            return dict.get(self, key, _ABSENT)
        v = self._view.cheap(self._c, self._st, key)
        if v is _UNKNOWN:
            self._built = True
            self.clear()
            self.update(key_values(self.entity()))
            return dict.get(self, key, _ABSENT)
        if v is not _ABSENT:
            dict.__setitem__(self, key, v)
        return v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._resolve(key) is not _ABSENT

    def __getitem__(self, key: str) -> Any:
        v = self._resolve(key)
        if v is _ABSENT:
            raise KeyError(key)
        return v

    def get(self, key: str, default: Any = None) -> Any:
        v = self._resolve(key)
        return default if v is _ABSENT else v


def _chunks(items: Sequence[Candidate], size: int = CHUNK) -> Iterator[Sequence[Candidate]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class NgsiView:
    """The NGSI-LD view of one model (build once, it indexes the model)."""

    def __init__(self, model: CityModel) -> None:
        self.model = model
        self.index = ModelIndex(model)
        self.builder = Builder(model, self.index)
        self._static: dict[str, list[Candidate]] = {}

    # -- candidates ------------------------------------------------------------------------------
    def _static_of(self, type_: str) -> list[Candidate]:
        found = self._static.get(type_)
        if found is None:
            if type_ == "Device":
                found = [Candidate(urn("Device", d), "Device", d) for d in self.index.by_kind["camera"]]
                found += [Candidate(urn("Device", g), "Device", g, source="gateway") for g in self.index.gateways]
                found += [Candidate(urn("Device", s), "Device", s, source="switch") for s in self.index.switches]
                found.sort(key=lambda c: c.id)
            else:
                kind = next(k for k, t in KIND_TYPES.items() if t == type_)
                found = [Candidate(urn(type_, d), type_, d) for d in self.index.by_kind[kind]]
            self._static[type_] = found
        return found

    def _dynamic_of(self, type_: str, live: LiveReader) -> list[Candidate]:
        """Groups (a cabinet's circuits) and observations (devices that reported, with their channels)."""
        kind = "lighting_cabinet" if type_ == "StreetlightGroup" else _OBSERVED_KIND[type_]
        out: list[Candidate] = []
        devices = self.index.by_kind[kind]
        for i in range(0, len(devices), CHUNK):
            part = devices[i:i + CHUNK]
            states = live(part)
            for d in part:
                st = states.get(d)
                if type_ == "StreetlightGroup":
                    out.append(Candidate(urn(type_, d), type_, d))
                elif st is None or not st.last_ts:
                    continue
                else:
                    out.append(Candidate(urn(type_, d), type_, d))
                for c in st.channels() if st is not None else ():
                    out.append(Candidate(urn(type_, f"{d}:{c}"), type_, d, c))
        out.sort(key=lambda c: c.id)
        return out

    def candidates(self, types: Iterable[str], live: LiveReader) -> list[Candidate]:
        found: list[Candidate] = []
        wanted = [t for t in ENTITY_TYPES if t in set(types)]
        for t in wanted:
            dynamic = t == "StreetlightGroup" or t in _OBSERVED_KIND
            found += self._dynamic_of(t, live) if dynamic else self._static_of(t)
        if len(wanted) > 1:
            found.sort(key=lambda c: c.id)
        return found

    # -- building --------------------------------------------------------------------------------
    def build(self, cands: Sequence[Candidate], live: LiveReader) -> list[Entity]:
        states = live([c.ref for c in cands if c.source == "device"])
        return [self._build_one(c, states.get(c.ref)) for c in cands]

    def _build_one(self, c: Candidate, st: Live | None) -> Entity:
        b = self.builder
        if c.source == "gateway":
            return b.gateway(c.ref)
        if c.source == "switch":
            return b.switch(c.ref)
        info = self.model.devices[c.ref]
        if c.type == "Streetlight":
            return b.streetlight(info, st)
        if c.type == "StreetlightControlCabinet":
            return b.cabinet(info, st)
        if c.type == "StreetlightGroup":
            return b.group(info, c.channel, st)
        if c.type == "Device":
            return b.camera(info, st)
        assert st is not None  # an observation is a candidate only once its device reported
        return b.observed(c.type, info, st, c.channel)

    # -- queries ---------------------------------------------------------------------------------
    def find(self, query: Query, live: LiveReader) -> tuple[int, list[Entity]]:
        """(entities matching, the page ``[offset, offset + limit)``), sorted by entity id."""
        cands = self.candidates(query.types, live)
        if query.ids is not None:
            cands = [c for c in cands if c.id in query.ids]
        if query.id_pattern is not None:
            pattern = query.id_pattern
            cands = [c for c in cands if pattern.search(c.id)]
        end = query.offset + query.limit
        if query.q is None and query.geo is None:
            return len(cands), self.build(cands[query.offset:end], live)
        count = 0
        page: list[Entity] = []
        for chunk in _chunks(cands):
            states = live([c.ref for c in chunk if c.source == "device"])
            for c in chunk:
                st = states.get(c.ref)
                if c.type in DEVICE_LIVE_ATTRS and c.source == "device" and c.channel is None:
                    lazy = LazyKeyValues(self, c, st)
                    if self._matches(lazy, query):
                        if query.offset <= count < end:
                            page.append(lazy.entity())
                        count += 1
                    continue
                e = self._build_one(c, st)
                if self._matches(key_values(e), query):
                    if query.offset <= count < end:
                        page.append(e)
                    count += 1
        return count, page

    def cheap(self, c: Candidate, st: Live | None, name: str) -> object:
        """What the builder of ``c`` (a device's entity, no channel, of a type of ``DEVICE_LIVE_ATTRS``) puts
        under ``name``, read without building it; ``_UNKNOWN`` for an attribute this does not read."""
        if name == "id":
            return c.id
        if name == "type":
            return c.type
        if name == "location":
            pos = self.model.devices.position(c.ref)
            return _UNKNOWN if pos is None else {"type": "Point", "coordinates": [pos[0], pos[1]]}
        if name == "deviceState":
            return _ABSENT if st is None else st.status
        if name == "status" and c.type == "Streetlight":
            return streetlight_status(st)
        a = DEVICE_LIVE_ATTRS[c.type].get(name)
        if a is None:
            return _UNKNOWN
        if st is None or a.measure not in st.values:
            return _ABSENT
        v = a.convert(st.values[a.measure])
        return _ABSENT if v is None else v

    @staticmethod
    def _matches(kv: dict[str, Any], query: Query) -> bool:
        if query.geo is not None:
            pos = located(kv)
            if pos is None or not query.geo(*pos):
                return False
        return query.q is None or query.q(kv)

    def entity(self, entity_id: str, live: LiveReader) -> Entity | None:
        """One entity by id, or None when there is no such entity."""
        try:
            type_, _ = split_urn(entity_id)
        except ValueError:
            return None
        if type_ not in ENTITY_TYPES:
            return None
        found = [c for c in self._lookup(type_, entity_id, live) if c.id == entity_id]
        return self.build(found[:1], live)[0] if found else None

    def _lookup(self, type_: str, entity_id: str, live: LiveReader) -> list[Candidate]:
        """The candidate that may carry ``entity_id``, found from its id, not by listing the type."""
        local = split_urn(entity_id)[1]
        if type_ == "Device":
            return [c for c in self._static_of("Device") if c.id == entity_id]
        channel = ""
        if local not in self.model.devices and type_ != "Streetlight":
            local, _, channel = local.rpartition(":")
        info = self.model.devices.get(local)
        kind = "lighting_cabinet" if type_ == "StreetlightGroup" else next(
            k for k, t in KIND_TYPES.items() if t == type_)
        if info is None or info.kind != kind:
            return []
        if type_ in ("Streetlight", "StreetlightControlCabinet"):
            return [Candidate(entity_id, type_, local)]
        st = live([local]).get(local)
        if type_ != "StreetlightGroup" and (st is None or not st.last_ts):
            return []
        if channel and (st is None or channel not in st.channels()):
            return []
        return [Candidate(entity_id, type_, local, channel or None)]

    def types(self) -> list[str]:
        return list(ENTITY_TYPES)


def read_live(registry: StateRegistry, devices: Sequence[str]) -> dict[str, Live]:
    """Copies of the states of ``devices`` (the caller holds the supervisor's lock)."""
    out: dict[str, Live] = {}
    for d in devices:
        st = registry.get(d)
        if st is not None:
            out[d] = Live(st.status, st.last_ts, dict(st.values))
    return out
