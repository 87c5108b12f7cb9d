"""Polygons as flat edge arrays: point-in-polygon and distances for (point, polygon) pairs.

Every test runs over all pairs at once in numpy (no Python loop per point). Point in polygon
is PostGIS' winding number (`ptarray_contains_point_partial`, with `lw_segment_side` and the
same "on the segment" test), so a point on an edge or a vertex intersects exactly when
ST_Intersects says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gis.dispatch.engine import geodesy


@dataclass(frozen=True)
class Polygons:
    """Edges of polygons 0..n-1 (exterior first, then holes), grouped by polygon and ring."""

    ax: np.ndarray
    ay: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    ring: np.ndarray  # ring number of each edge (global)
    hole: np.ndarray  # per ring: True for an interior ring
    first: np.ndarray  # per polygon: index of its first edge; first[n] = number of edges
    bounds: np.ndarray  # per polygon: minx, miny, maxx, maxy

    @classmethod
    def from_shapely(cls, polys: np.ndarray) -> Polygons:
        """Edges of shapely Polygons, in the order given."""
        rings, ring_poly = shapely.get_rings(polys, return_index=True)
        coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
        same = coord_ring[1:] == coord_ring[:-1]  # consecutive vertices of one ring
        ax, ay = coords[:-1, 0][same], coords[:-1, 1][same]
        bx, by = coords[1:, 0][same], coords[1:, 1][same]
        edge_ring = coord_ring[:-1][same]
        ring_first = np.r_[0, np.flatnonzero(ring_poly[1:] != ring_poly[:-1]) + 1]
        hole = np.ones(len(rings), dtype=bool)
        hole[ring_first] = False
        edge_poly = ring_poly[edge_ring]
        first = np.searchsorted(edge_poly, np.arange(len(polys) + 1))
        return cls(ax, ay, bx, by, edge_ring, hole, first,
                   np.asarray(shapely.bounds(polys)).reshape(-1, 4))

    def _expand(self, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pair of each edge row, edge index, start row of each pair) for all pairs' edges."""
        counts = self.first[poly + 1] - self.first[poly]
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        pair = np.repeat(np.arange(len(poly)), counts)
        edge = self.first[poly][pair] + (np.arange(int(counts.sum())) - starts[pair])
        return pair, edge, starts

    def intersects(self, px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
        """ST_Intersects(polygon[poly[i]], point i) for every pair i."""
        if len(poly) == 0:
            return np.zeros(0, dtype=bool)
        pair, edge, _ = self._expand(poly)
        inside, boundary = self._winding(px[pair], py[pair], edge, pair, len(poly))
        return inside | boundary

    def _winding(self, x: np.ndarray, y: np.ndarray, edge: np.ndarray, pair: np.ndarray,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
        ax, ay, bx, by = self.ax[edge], self.ay[edge], self.bx[edge], self.by[edge]
        live = ~((ax == bx) & (ay == by)) & (y <= np.maximum(ay, by)) & (y >= np.minimum(ay, by))
        side = (x - ax) * (by - ay) - (bx - ax) * (y - ay)
        on = live & (side == 0) & (x >= np.minimum(ax, bx)) & (x <= np.maximum(ax, bx))
        up = live & (side < 0) & (ay <= y) & (y < by)
        down = live & (side > 0) & (by <= y) & (y < ay)
        boundary = np.bincount(pair, weights=on, minlength=n) > 0
        # Winding number per (pair, ring); a pair is inside when its exterior winds and
        # none of its holes does.
        ring = self.ring[edge]
        starts = np.r_[0, np.flatnonzero((ring[1:] != ring[:-1]) | (pair[1:] != pair[:-1])) + 1]
        wn = np.add.reduceat(up.astype(np.int32) - down.astype(np.int32), starts)
        ring_in = wn != 0
        group_pair, group_hole = pair[starts], self.hole[ring[starts]]
        ext = np.zeros(n, dtype=bool)
        ext[group_pair[~group_hole & ring_in]] = True
        in_hole = np.zeros(n, dtype=bool)
        in_hole[group_pair[group_hole & ring_in]] = True
        return ext & ~in_hole, boundary

    def planar(self, px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
        """Planar distance (degrees) from point i to polygon poly[i]; 0 inside or on it."""
        if len(poly) == 0:
            return np.zeros(0)
        pair, edge, starts = self._expand(poly)
        x, y = px[pair], py[pair]
        d = geodesy.planar_seg_dist(x, y, self.ax[edge], self.ay[edge], self.bx[edge],
                                    self.by[edge])
        best = np.minimum.reduceat(d, starts)
        inside, boundary = self._winding(x, y, edge, pair, len(poly))
        return np.where(inside | boundary, 0.0, best)

    def geography(self, px: np.ndarray, py: np.ndarray, poly: np.ndarray,
                  factor: float) -> np.ndarray:
        """ST_Distance(polygon::geography, point::geography) in metres for every pair.

        Only edges within `factor` (>= 1 / cos(latitude)) x the pair's nearest planar edge can
        be nearest on the sphere; the others are dropped before the trigonometry.
        """
        if len(poly) == 0:
            return np.zeros(0)
        pair, edge, starts = self._expand(poly)
        x, y = px[pair], py[pair]
        inside, boundary = self._winding(x, y, edge, pair, len(poly))
        planar = geodesy.planar_seg_dist(x, y, self.ax[edge], self.ay[edge], self.bx[edge],
                                         self.by[edge])
        return self._metres(pair, edge, x, y, planar, np.minimum.reduceat(planar, starts),
                            inside | boundary, factor)

    def near_geography(self, px: np.ndarray, py: np.ndarray, poly: np.ndarray, reach: float,
                       factor: float) -> tuple[np.ndarray, np.ndarray]:
        """(pairs with planar() <= reach, their geography()): both from one set of edge rows.

        The same numbers as planar() then geography() on the near pairs, without expanding,
        winding and measuring the near pairs' edges a second time.
        """
        if len(poly) == 0:
            return np.zeros(0, dtype=bool), np.zeros(0)
        pair, edge, starts = self._expand(poly)
        x, y = px[pair], py[pair]
        planar = geodesy.planar_seg_dist(x, y, self.ax[edge], self.ay[edge], self.bx[edge],
                                         self.by[edge])
        best = np.minimum.reduceat(planar, starts)
        inside, boundary = self._winding(x, y, edge, pair, len(poly))
        hit = inside | boundary
        near = np.where(hit, 0.0, best) <= reach
        rows = near[pair]  # edge rows of near pairs, in order; pairs renumbered 0..m-1
        renumber = np.cumsum(near) - 1
        return near, self._metres(renumber[pair[rows]], edge[rows], x[rows], y[rows],
                                  planar[rows], best[near], hit[near], factor)

    def _metres(self, pair: np.ndarray, edge: np.ndarray, x: np.ndarray, y: np.ndarray,
                planar: np.ndarray, best: np.ndarray, hit: np.ndarray,
                factor: float) -> np.ndarray:
        """geography() from each edge row's planar distance and each pair's nearest one."""
        keep = planar <= best[pair] * factor + 1e-15
        pair, edge, x, y = pair[keep], edge[keep], x[keep], y[keep]
        plon, plat = geodesy.rad(x), geodesy.rad(y)
        sphere, nlon, nlat = geodesy.edge_nearest(
            plon, plat, geodesy.rad(self.ax[edge]), geodesy.rad(self.ay[edge]),
            geodesy.rad(self.bx[edge]), geodesy.rad(self.by[edge]))
        # The first edge with the smallest sphere distance gives the nearest point.
        order = np.lexsort((np.arange(len(pair)), sphere, pair))
        if len(pair) == 0:
            return np.zeros(0)
        pick = order[np.r_[0, np.flatnonzero(pair[order][1:] != pair[order][:-1]) + 1]]
        metres = geodesy.geodesic_m(plon[pick], plat[pick], nlon[pick], nlat[pick])
        return np.where(hit, 0.0, metres)

    def bbox_gap(self, px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
        """Planar distance from point i to the bounding box of poly[i] (a lower bound)."""
        b = self.bounds[poly]
        dx = np.maximum(np.maximum(b[:, 0] - px, px - b[:, 2]), 0.0)
        dy = np.maximum(np.maximum(b[:, 1] - py, py - b[:, 3]), 0.0)
        return np.sqrt(dx * dx + dy * dy)
