"""NGSI-LD: the city's model and live state as Smart Data Models entities (issue 15, part 1).

- :mod:`supervisor.ngsi.entities`: the entity types, their ids, attributes and relationships;
- :mod:`supervisor.ngsi.units`: the UN/CEFACT unit codes, keyed by the catalogue's units;
- :mod:`supervisor.ngsi.query`: the ``q`` and ``geoQ`` languages (a hand-written parser);
- :mod:`supervisor.ngsi.view`: the entities of a city, found and built on demand.

The read API is :mod:`supervisor.api.routes.ngsi` (``/ngsi-ld/v1/``); the documentation is
``docs/ngsi-ld.md``.
"""

from supervisor.ngsi.entities import CONTEXT, ENTITY_TYPES, Entity, Live, key_values, split_urn, urn
from supervisor.ngsi.query import QueryError, parse_geo, parse_q
from supervisor.ngsi.view import NgsiView, Query

__all__ = ["CONTEXT", "ENTITY_TYPES", "Entity", "Live", "NgsiView", "Query", "QueryError", "key_values",
           "parse_geo", "parse_q", "split_urn", "urn"]
