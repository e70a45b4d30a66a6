"""Geography: WGS84 to the model's metric CRS, and an STRtree over the device points."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from supervisor.model._types import CityFileError, Coord, Problem


def resolve_crs(crs: str, center: Coord, source: str) -> pyproj.CRS:
    """The metric CRS named in the file; ``utm`` picks the UTM zone of the centre."""
    if crs.lower() == "utm":
        lon, lat = center
        zone = min(60, int((lon + 180.0) // 6.0) + 1)
        code = (32600 if lat >= 0 else 32700) + zone
        return pyproj.CRS.from_epsg(code)
    try:
        out = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CityFileError([Problem(source, "<root>", f"unknown crs {crs!r}: {exc}")]) from exc
    units = {a.unit_name for a in out.axis_info}
    if not out.is_projected or not units <= {"metre", "meter"}:
        raise CityFileError(
            [Problem(source, "<root>", f"crs {crs!r} is not a projected CRS in metres (distances need one)")]
        )
    return out


class GeoIndex:
    """Device points in metres, indexed on first use (building it costs ~1 s per million points)."""

    def __init__(self, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], crs: pyproj.CRS) -> None:
        self.crs = crs
        self._to_metric = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._lon = lon
        self._lat = lat
        self._lock = threading.Lock()
        self._tree: shapely.STRtree | None = None
        self._points: npt.NDArray[np.object_] | None = None

    def to_metric(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self._to_metric.transform(lon, lat)
        return float(x), float(y)

    def line_to_metric(self, coords: Sequence[Coord]) -> shapely.LineString:
        xs, ys = self._to_metric.transform([c[0] for c in coords], [c[1] for c in coords])
        return shapely.LineString(np.column_stack([xs, ys]))

    def _index(self) -> tuple[shapely.STRtree, npt.NDArray[np.object_]]:
        with self._lock:
            if self._tree is None or self._points is None:
                x, y = self._to_metric.transform(self._lon, self._lat)
                self._points = shapely.points(np.asarray(x), np.asarray(y))
                self._tree = shapely.STRtree(self._points)
            return self._tree, self._points

    def within(self, geom: shapely.Geometry, radius: float) -> npt.NDArray[np.int64]:
        """Indices of the points within ``radius`` metres of ``geom``, nearest first."""
        tree, points = self._index()
        idx = np.asarray(tree.query(geom, predicate="dwithin", distance=radius), dtype=np.int64)
        if idx.size == 0:
            return idx
        d = shapely.distance(points[idx], geom)
        order = np.lexsort((idx, d))
        return np.asarray(idx[order], dtype=np.int64)

    def along(self, line: shapely.LineString, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """``idx`` reordered by their position along ``line`` (from its first vertex)."""
        _, points = self._index()
        if idx.size == 0:
            return idx
        pos = shapely.line_locate_point(line, points[idx])
        return np.asarray(idx[np.lexsort((idx, pos))], dtype=np.int64)

    def nearest(self, lon: float, lat: float, mask: npt.NDArray[np.bool_] | None) -> int | None:
        tree, points = self._index()
        if len(points) == 0:
            return None
        pt = shapely.Point(*self.to_metric(lon, lat))
        if mask is None:
            return int(tree.nearest(pt))
        if not mask.any():
            return None
        # widen a search radius until a match of the wanted subset appears (bounded: 40 doublings)
        radius = 100.0
        for _ in range(40):
            idx = self.within(pt, radius)
            hit = idx[mask[idx]]
            if hit.size:
                return int(hit[0])
            radius *= 2.0
        cand = np.nonzero(mask)[0]  # pragma: no cover - beyond 100 km * 2**40
        return int(cand[np.argmin(shapely.distance(points[cand], pt))])  # pragma: no cover
