"""The entities of one city, found and built on demand: what ``GET /ngsi-ld/v1/entities`` runs.

Nothing is kept per entity: the model index (:class:`~supervisor.ngsi.entities.ModelIndex`) lists
the candidates of each type, sorted by entity id; a query filters them (``id``, ``idPattern``) and
builds only what it must: the page alone when there is no ``q`` nor ``geoQ``, otherwise every
candidate, in chunks, each chunk's device states read in one call of ``live`` (which holds the
supervisor's lock for that chunk only).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor.ngsi.entities import (
    ENTITY_TYPES,
    KIND_TYPES,
    Builder,
    Entity,
    Live,
    ModelIndex,
    key_values,
    split_urn,
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
            for e in self.build(chunk, live):
                if self._matches(e, query):
                    if query.offset <= count < end:
                        page.append(e)
                    count += 1
        return count, page

    @staticmethod
    def _matches(e: Entity, query: Query) -> bool:
        kv = key_values(e)
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
