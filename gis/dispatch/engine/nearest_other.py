"""The nearest other grid of a point inside a grid, from candidate lists made at index build.

POST /route names the grid other than the point's own nearest in metres among the 8 nearest
in degrees (gis/dispatch/engine/single.py `_nearest_other`). Searching an STRtree per request,
then measuring the candidates' edges twice (degrees, then metres) cost most of a route.
Instead, `NeighbourLists` keeps per grid g the grids whose bounding boxes lie within
r(g) = max(width, height of g) x snap_factor of g's box, with their edge rows laid out
in advance, and a request only runs the numpy steps on those rows, once.

Same answer, by this argument: a point p inside g is at least dist(g, h) from any grid h, so
every h with planar(p, h) <= r(g) is in g's list. When the list's nearest in degrees, m,
satisfies m x snap_factor + 1e-12 <= r(g) (the window the full search ranks in), every grid
of that window is in the list, so ranking the list gives the full search's 8 and its winner.
Otherwise (an isolated grid, a snapped point outside its grid) `nearest_other` returns None
and the caller runs the full search.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from gis.dispatch.engine import geodesy, scalar_geodesy
from gis.dispatch.engine.polygons import Polygons

_KNN = 8  # as gis.dispatch.routing._KNN_CANDIDATES


class NeighbourLists:
    """Per grid: candidate other grids (ascending), their edge rows, and the reach r(g)."""

    def __init__(self, edges: Polygons, tree: shapely.STRtree, factor: float) -> None:
        self.edges = edges
        self.factor = factor
        b = edges.bounds
        n = len(b)
        self.reach = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * factor
        # Boxes grown a little beyond the reach: bounding boxes only, a superset of the grids
        # within reach whatever the rounding of the polygons' own distances.
        grow = self.reach * (1 + 1e-9) + 1e-12
        boxes = shapely.box(b[:, 0] - grow, b[:, 1] - grow, b[:, 2] + grow, b[:, 3] + grow)
        own, other = tree.query(boxes)
        keep = own != other
        own, other = own[keep], other[keep]
        order = np.lexsort((other, own))
        own, other = own[order], other[order]
        self.cand = other.astype(np.int64)
        self.cand_first = np.searchsorted(own, np.arange(n + 1))
        # Edge rows of each grid's candidates, in candidate order then edge order (as
        # Polygons._expand lays them out for the same candidates).
        counts = edges.first[self.cand + 1] - edges.first[self.cand]
        cand_rows = np.r_[0, np.cumsum(counts)]
        self.row_first = cand_rows[self.cand_first]
        starts = cand_rows[:-1]
        self.edge = (np.repeat(edges.first[self.cand] - starts, counts)
                     + np.arange(int(counts.sum()))).astype(np.int64)
        # Per row: the candidate's position within its grid's list; per candidate: its first
        # row, relative to its grid's first row.
        local = np.arange(len(self.cand)) - self.cand_first[own]
        self.pair = np.repeat(local, counts).astype(np.int64)
        self.start = (starts - self.row_first[own]).astype(np.int64)

    def nearest_other(self, lon: float, lat: float, own: int) -> tuple[int, float] | None:
        """(grid, metres) as the full search gives for a point inside `own`; None: search."""
        c0, c1 = self.cand_first[own], self.cand_first[own + 1]
        if c1 == c0:
            return None
        edges = self.edges
        cand = self.cand[c0:c1]
        r0, r1 = self.row_first[own], self.row_first[own + 1]
        edge, pair, starts = self.edge[r0:r1], self.pair[r0:r1], self.start[c0:c1]
        x, y = np.full(len(edge), lon), np.full(len(edge), lat)
        planar_rows = geodesy.planar_seg_dist(x, y, edges.ax[edge], edges.ay[edge],
                                              edges.bx[edge], edges.by[edge])
        best = np.minimum.reduceat(planar_rows, starts)
        hit = self._hit(lon, lat, cand, edge, pair)
        planar = np.where(hit, 0.0, best)
        window = float(planar.min()) * self.factor + 1e-12
        if window > self.reach[own]:
            return None
        kept = np.flatnonzero(planar <= window)
        knn = kept[np.lexsort((cand[kept], planar[kept]))][:_KNN]
        # The metres of the 8 from the rows already measured: renumber their pairs 0..k-1.
        slot = np.full(len(cand), -1, dtype=np.int64)
        slot[knn] = np.arange(len(knn))
        rows = slot[pair] >= 0
        metres = _metres(edges, lon, lat, slot[pair[rows]], edge[rows], planar_rows[rows],
                         best[knn], hit[knn], self.factor)
        polys = cand[knn]
        win = np.lexsort((polys, metres))[0]
        return int(polys[win]), float(metres[win])

    def _hit(self, lon: float, lat: float, cand: np.ndarray, edge: np.ndarray,
             pair: np.ndarray) -> np.ndarray:
        """Per candidate: ST_Intersects(candidate, point), winding only where it can be true.

        A point outside a polygon's closed bounding box is neither inside it nor on its
        boundary, so only the candidates whose box holds the point (usually 0-3 of ~26)
        are wound; their rows keep their order, pairs renumbered 0..k-1.
        """
        b = self.edges.bounds[cand]
        boxed = (b[:, 0] <= lon) & (lon <= b[:, 2]) & (b[:, 1] <= lat) & (lat <= b[:, 3])
        hit = np.zeros(len(cand), dtype=bool)
        if not boxed.any():
            return hit
        rows = boxed[pair]
        renumber = np.cumsum(boxed) - 1
        sub = renumber[pair[rows]]
        k = int(boxed.sum())
        inside, boundary = self.edges._winding(np.full(len(sub), lon),
                                               np.full(len(sub), lat), edge[rows], sub, k)
        hit[boxed] = inside | boundary
        return hit


def _metres(edges: Polygons, lon: float, lat: float, pair: np.ndarray, edge: np.ndarray,
            planar: np.ndarray, best: np.ndarray, hit: np.ndarray,
            factor: float) -> np.ndarray:
    """Polygons._metres for one point: the few kept edges measured in plain floats.

    Same rows kept, same first-smallest sphere distance per pair, same geodesic call on the
    chosen nearest points (gis/dispatch/engine/scalar_geodesy.py for why and how exact).
    """
    keep = np.flatnonzero(planar <= best[pair] * factor + 1e-15)
    plon, plat = scalar_geodesy.rad(lon), scalar_geodesy.rad(lat)
    n = len(best)
    sphere = [math.inf] * n
    near = [(0.0, 0.0)] * n
    seen = [False] * n
    for row in keep.tolist():
        e, p = int(edge[row]), int(pair[row])
        d, nlon, nlat = scalar_geodesy.edge_nearest(
            plon, plat, scalar_geodesy.rad(float(edges.ax[e])),
            scalar_geodesy.rad(float(edges.ay[e])), scalar_geodesy.rad(float(edges.bx[e])),
            scalar_geodesy.rad(float(edges.by[e])))
        # The first edge with the smallest sphere distance gives the nearest point.
        if not seen[p] or d < sphere[p]:
            seen[p], sphere[p], near[p] = True, d, (nlon, nlat)
    if n == 0:
        return np.zeros(0)
    to = np.array(near)
    metres = geodesy.geodesic_m(np.full(n, plon), np.full(n, plat), to[:, 0], to[:, 1])
    return np.where(hit, 0.0, metres)
