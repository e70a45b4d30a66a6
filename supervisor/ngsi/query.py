"""The query language of ``GET /ngsi-ld/v1/entities``: ``q`` and ``geoQ``, parsed by hand (no eval).

``q`` grammar (a subset of NGSI-LD's, ETSI GS CIM 009 clause 4.9)::

    query      := or
    or         := and ( "|" and )*
    and        := term ( ";" term )*
    term       := "(" or ")" | attr [ op value ]          # attr alone: the attribute exists
    attr       := NAME ( "." NAME )*                       # NAME: [A-Za-z_][A-Za-z0-9_]*
    op         := "==" | "!=" | ">=" | "<=" | ">" | "<" | "~="
    value      := scalar ( "," scalar )* | scalar ".." scalar   # a list (==, !=) or a range (==, !=)
    scalar     := NUMBER | "\"" chars "\"" | true | false | URI-or-word

Comparisons read the keyValues form of the entity (a Property's value, a Relationship's object);
a dotted ``attr`` goes into an object value (``location.type``). ``==`` with a list is "one of",
with a range "between, bounds included"; ``~=`` is a regular expression searched in a string
value. A comparison on a missing attribute, or between a number and a string, is false. Anything
else is a :class:`QueryError` naming the position, which the API answers with 400 BadRequestData.

``geoQ``: ``georel`` is ``near;maxDistance==<m>`` (or ``minDistance``) with ``geometry=Point``, or
``within`` with ``geometry=Polygon``; ``coordinates`` is the GeoJSON coordinates of that geometry,
``[lon,lat]`` or ``[[[lon,lat],...]]``; ``geoproperty`` may only be ``location``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Scalar = float | str | bool
Predicate = Callable[[dict[str, Any]], bool]
MAX_QUERY = 2000  # characters of q accepted
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|~=|>|<|\.\.)|(?P<punct>[();|,])
                    |(?P<word>[^\s();|,"=!<>~]+?)(?=\.\.|[\s();|,=!<>~]|$))""", re.X)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
EARTH_RADIUS_M = 6_371_008.8


class QueryError(ValueError):
    """A query that cannot be parsed or run: the message says what and where."""


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # str, op, punct, word
    text: str
    at: int


def _tokens(q: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        m = _TOKEN.match(q, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"q: unexpected character {q[pos:].lstrip()[:1]!r} at position {pos}")
        kind = m.lastgroup or "word"
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, q: str) -> None:
        if len(q) > MAX_QUERY:
            raise QueryError(f"q: longer than {MAX_QUERY} characters")
        self.toks = _tokens(q)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("q: unexpected end of the query")
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if not self.toks:
            raise QueryError("q: empty query")
        pred = self.or_()
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"q: unexpected {tok.text!r} at position {tok.at}")
        return pred

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while (tok := self.peek()) is not None and tok.text == "|":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda e: any(p(e) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.term()]
        while (tok := self.peek()) is not None and tok.text == ";":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda e: all(p(e) for p in parts))

    def term(self) -> Predicate:
        tok = self.take()
        if tok.text == "(":
            pred = self.or_()
            close = self.take()
            if close.text != ")":
                raise QueryError(f"q: expected ')' at position {close.at}, got {close.text!r}")
            return pred
        if tok.kind != "word" or not _NAME.fullmatch(tok.text):
            raise QueryError(f"q: expected an attribute name at position {tok.at}, got {tok.text!r}")
        path = tok.text.split(".")
        nxt = self.peek()
        if nxt is None or nxt.kind != "op" or nxt.text == "..":
            return lambda e: _lookup(e, path) is not _MISSING
        op = self.take().text
        return _comparison(path, op, self.value(op))

    def value(self, op: str) -> tuple[str, list[Scalar]]:
        first = self.scalar()
        nxt = self.peek()
        if nxt is not None and nxt.text == "..":
            self.take()
            return "range", [first, self.scalar()]
        items = [first]
        while (nxt := self.peek()) is not None and nxt.text == ",":
            self.take()
            items.append(self.scalar())
        return ("list" if len(items) > 1 else "one"), items

    def scalar(self) -> Scalar:
        tok = self.take()
        if tok.kind == "str":
            try:
                text = json.loads(tok.text)
            except ValueError:
                raise QueryError(f"q: bad string {tok.text} at position {tok.at}") from None
            return str(text)
        if tok.kind != "word":
            raise QueryError(f"q: expected a value at position {tok.at}, got {tok.text!r}")
        if _NUMBER.fullmatch(tok.text):
            return float(tok.text)
        if tok.text in ("true", "false"):
            return tok.text == "true"
        return tok.text


_MISSING = object()


def _lookup(entity: dict[str, Any], path: list[str]) -> object:
    v: object = entity
    for part in path:
        if not isinstance(v, dict) or part not in v:
            return _MISSING
        v = v[part]
    return v


def _values(v: object) -> list[object]:
    return list(v) if isinstance(v, list) else [v]


def _compare(a: object, op: str, b: Scalar) -> bool:
    if isinstance(b, bool) or isinstance(a, bool):
        return (a == b) == (op == "==") if op in ("==", "!=") and isinstance(a, bool) == isinstance(b, bool) \
            else op == "!="
    if isinstance(b, float):
        if not isinstance(a, int | float):
            return op == "!="
        x, y = float(a), b
    elif isinstance(a, str):
        x, y = a, b  # type: ignore[assignment]
    else:
        return op == "!="
    return {"==": x == y, "!=": x != y, ">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y}[op]


def _comparison(path: list[str], op: str, value: tuple[str, list[Scalar]]) -> Predicate:
    shape, items = value
    if shape != "one" and op not in ("==", "!="):
        raise QueryError(f"q: a list or a range goes only with == or !=, not {op}")
    if op == "~=":
        pattern = items[0]
        if not isinstance(pattern, str):
            raise QueryError("q: ~= needs a string pattern")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise QueryError(f"q: bad pattern {pattern!r}: {exc}") from None
        return lambda e: any(isinstance(v, str) and regex.search(v) is not None for v in _values(_lookup(e, path)))

    def match(v: object) -> bool:
        if shape == "range":
            return _compare(v, ">=", items[0]) and _compare(v, "<=", items[1])
        return any(_compare(v, "==", it) for it in items)

    def pred(e: dict[str, Any]) -> bool:
        found = _lookup(e, path)
        if found is _MISSING:
            return False
        if shape == "one" and op not in ("==", "!="):
            return any(_compare(v, op, items[0]) for v in _values(found))
        hit = any(match(v) for v in _values(found))
        return hit if op == "==" else not hit

    return pred


def parse_q(q: str) -> Predicate:
    """A predicate on a keyValues entity; :class:`QueryError` when ``q`` is not in the grammar."""
    return _Parser(q).parse()


# ---------------------------------------------------------------------------------------------
# geoQ


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _position(v: object, what: str) -> tuple[float, float]:
    if (not isinstance(v, list) or len(v) != 2 or any(isinstance(x, bool) or not isinstance(x, int | float)
                                                      for x in v)):
        raise QueryError(f"geoQ: {what} must be a position [lon, lat], got {json.dumps(v)[:80]}")
    lon, lat = float(v[0]), float(v[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise QueryError(f"geoQ: {what} [{lon}, {lat}] is outside [-180, 180] x [-90, 90]")
    return lon, lat


def _near(georel: str, coords: object, geometry: str) -> Callable[[float, float], bool]:
    if geometry != "Point":
        raise QueryError(f"geoQ: near needs geometry=Point, got {geometry!r}")
    lon0, lat0 = _position(coords, "coordinates")
    _, _, rest = georel.partition(";")
    m = re.fullmatch(r"(maxDistance|minDistance)==(\d+(?:\.\d+)?)", rest)
    if m is None:
        raise QueryError(f"geoQ: expected near;maxDistance==<metres> or near;minDistance==<metres>, got {georel!r}")
    limit = float(m.group(2))
    if m.group(1) == "maxDistance":
        return lambda lon, lat: distance_m(lon0, lat0, lon, lat) <= limit
    return lambda lon, lat: distance_m(lon0, lat0, lon, lat) >= limit


def _within(coords: object, geometry: str) -> Callable[[float, float], bool]:
    import shapely

    if geometry != "Polygon":
        raise QueryError(f"geoQ: within needs geometry=Polygon, got {geometry!r}")
    if not isinstance(coords, list) or not coords or not all(isinstance(r, list) for r in coords):
        raise QueryError("geoQ: a Polygon's coordinates are a list of rings [[[lon, lat], ...]]")
    rings = [[_position(p, "a Polygon vertex") for p in ring] for ring in coords]
    for ring in rings:
        if len(ring) < 4 or ring[0] != ring[-1]:
            raise QueryError("geoQ: each Polygon ring needs at least 4 positions, the last equal to the first")
    poly = shapely.Polygon(rings[0], rings[1:])
    if not poly.is_valid:
        raise QueryError(f"geoQ: the Polygon is not valid ({shapely.is_valid_reason(poly)})")
    shapely.prepare(poly)
    return lambda lon, lat: bool(poly.covers(shapely.Point(lon, lat)))


def parse_geo(georel: str, geometry: str | None, coordinates: str | None,
              geoproperty: str | None = None) -> Callable[[float, float], bool]:
    """A test on a (lon, lat) position from the geoQ parameters; :class:`QueryError` when they are wrong."""
    if geoproperty not in (None, "location"):
        raise QueryError(f"geoQ: only geoproperty=location is supported, got {geoproperty!r}")
    if geometry is None or coordinates is None:
        raise QueryError("geoQ: georel needs geometry and coordinates")
    try:
        coords = json.loads(coordinates)
    except ValueError:
        raise QueryError(f"geoQ: coordinates is not JSON: {coordinates[:80]!r}") from None
    kind = georel.partition(";")[0]
    if kind == "near":
        return _near(georel, coords, geometry)
    if kind == "within" and georel == "within":
        return _within(coords, geometry)
    raise QueryError(f"geoQ: georel {georel!r} is not supported (near;maxDistance==N, near;minDistance==N, within)")


def located(entity: dict[str, Any]) -> tuple[float, float] | None:
    """(lon, lat) of a keyValues entity's Point location, or None."""
    loc = entity.get("location")
    if isinstance(loc, dict) and loc.get("type") == "Point":
        c = loc.get("coordinates")
        if isinstance(c, list) and len(c) == 2:
            return float(c[0]), float(c[1])
    return None
