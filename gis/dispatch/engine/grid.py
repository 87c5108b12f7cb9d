"""The grid compiled into a raster: which grid holds a point, with exact checks only near edges.

A regular raster over the grid's extent (about `cells_per_grid` raster cells per grid cell)
knows for each raster cell either the one grid whose interior holds all of it, or that it is
outside every grid, or (when a grid boundary touches it) the grids whose edges touch it.
Points in the first two kinds are answered by one array lookup; the others by the exact
winding-number test (gis.dispatch.engine.polygons) against those few candidates.

Building: every edge is cut at the raster lines it crosses and every cut point marks the raster
cells whose closed box holds it, so every cell an edge touches is marked. Untouched cells form
connected regions that no boundary crosses; one point per region, looked up in an STRtree,
labels the whole region. Overlapping grids (a data error) are refused: with them a cell
could lie inside a grid none of whose edges touch it.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy import ndimage

from gis.dispatch.engine import kernels
from gis.dispatch.engine.polygons import Polygons

EMPTY, CHECK = -2, -1
_EPS = 1e-9  # raster units: a cut point this close to a raster line marks both sides


class EngineUnsupportedError(Exception):
    """The data has a shape the index does not handle; the SQL path must route it."""


class GridRaster:
    """Containment lookup for polygons 0..n-1 (smaller number wins on shared edges)."""

    def __init__(self, polys: np.ndarray, cells_per_grid: float = 16.0) -> None:
        self.polys = polys
        self.edges = Polygons.from_shapely(polys)
        self.tree = shapely.STRtree(polys)
        _refuse_overlaps(self.tree, polys)
        x1, y1 = self.edges.bounds[:, 0].min(), self.edges.bounds[:, 1].min()
        x2, y2 = self.edges.bounds[:, 2].max(), self.edges.bounds[:, 3].max()
        width, height = max(x2 - x1, 1e-9), max(y2 - y1, 1e-9)
        self.step = float(np.sqrt(width * height / (cells_per_grid * len(polys))))
        self.x0, self.y0 = float(x1), float(y1)
        self.nx = int(width / self.step) + 1
        self.ny = int(height / self.step) + 1
        cells, owners = self._touched()
        touched = np.zeros(self.nx * self.ny, dtype=bool)
        touched[cells] = True
        self.value = self._label_regions(touched)
        self.value[touched] = CHECK
        order = np.argsort(cells, kind="stable")
        self.cand_cell, self.cand_poly = cells[order], owners[order]
        self.cand_first = np.searchsorted(self.cand_cell, np.arange(self.nx * self.ny + 1))

    def _uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x - self.x0) / self.step, (y - self.y0) / self.step

    def _touched(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique (raster cell, polygon) pairs: cells each polygon's edges touch."""
        e = self.edges
        u1, v1 = self._uv(e.ax, e.ay)
        u2, v2 = self._uv(e.bx, e.by)
        poly = np.searchsorted(e.first, np.arange(len(e.ax)), side="right") - 1
        us, vs, ps = [u1, u2], [v1, v2], [poly, poly]
        for a1, a2, b1, b2 in ((u1, u2, v1, v2), (v1, v2, u1, u2)):
            lo, hi = np.ceil(np.minimum(a1, a2)), np.floor(np.maximum(a1, a2))
            count = np.where(a1 == a2, 0, np.maximum(hi - lo + 1, 0)).astype(np.int64)
            rep = np.repeat(np.arange(len(a1)), count)
            line = lo[rep] + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count,
                                                                     count))
            cut = b1[rep] + (line - a1[rep]) / (a2[rep] - a1[rep]) * (b2[rep] - b1[rep])
            vertical = a1 is u1  # cuts of the vertical raster lines (u fixed) or horizontal
            us.append(line if vertical else cut)
            vs.append(cut if vertical else line)
            ps.append(poly[rep])
        u, v, p = np.concatenate(us), np.concatenate(vs), np.concatenate(ps)
        keys = []
        for du in (-_EPS, _EPS):
            for dv in (-_EPS, _EPS):
                iu = np.clip(np.floor(u + du), 0, self.nx - 1).astype(np.int64)
                iv = np.clip(np.floor(v + dv), 0, self.ny - 1).astype(np.int64)
                keys.append((iv * self.nx + iu) * len(self.polys) + p)
        key = np.unique(np.concatenate(keys))
        return np.asarray(key // len(self.polys)), np.asarray(key % len(self.polys))

    def _label_regions(self, touched: np.ndarray) -> np.ndarray:
        """Each untouched cell: the grid holding its region, or EMPTY."""
        labels, count = ndimage.label(~touched.reshape(self.ny, self.nx))
        labels = labels.ravel()
        value = np.full(self.nx * self.ny, EMPTY, dtype=np.int32)
        if count == 0:
            return value
        _, first = np.unique(labels, return_index=True)
        first = first[labels[first] > 0]
        cx = self.x0 + (first % self.nx + 0.5) * self.step
        cy = self.y0 + (first // self.nx + 0.5) * self.step
        point, poly = self.tree.query(shapely.points(cx, cy), predicate="intersects")
        region_value = np.full(count + 1, EMPTY, dtype=np.int32)
        region_value[labels[first[point]]] = poly
        return region_value[labels]

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Polygon number holding each point (the smallest on shared edges), -1 for none."""
        u, v = self._uv(x, y)
        inside = (u >= 0) & (v >= 0) & (u < self.nx) & (v < self.ny)
        cell = np.where(inside, np.floor(v).clip(0, self.ny - 1) * self.nx
                        + np.floor(u).clip(0, self.nx - 1), 0).astype(np.int64)
        value = np.where(inside, self.value[cell], EMPTY)
        result = np.where(value >= 0, value, -1).astype(np.int64)
        check = np.flatnonzero(value == CHECK)
        # Candidates are sorted by polygon within a cell. Tested in that order, a point is done
        # at its first hit (the smallest, as on shared edges), so most test one or two; every
        # candidate may miss (a point just outside the grid).
        e = self.edges
        result[check] = kernels.locate_checked(
            np.ascontiguousarray(x[check], dtype=np.float64),
            np.ascontiguousarray(y[check], dtype=np.float64), cell[check], e.ax, e.ay, e.bx,
            e.by, e.ring, e.hole, e.first, self.cand_first, self.cand_poly)
        return result

    def spatial_order(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A permutation of the points by raster block: neighbours in space, neighbours in memory.

        Routing a point reads its raster cell, its grids' edges and the stations near it;
        points in random order make each of those a cache miss (the near-boundary loop ran
        2.5x faster over the same points sorted). Blocks are few enough for a 16-bit key, so
        numpy sorts them by radix in one pass.
        """
        side = max(16, int(np.ceil(np.sqrt(self.nx * self.ny / 65_000))))
        across = (self.nx + side - 1) // side
        u = np.clip((x - self.x0) / self.step, 0, self.nx - 1)
        v = np.clip((y - self.y0) / self.step, 0, self.ny - 1)
        # NaN coordinates are refused before routing; clip keeps any other value on the raster.
        key = (v.astype(np.int64) // side) * across + u.astype(np.int64) // side
        return np.argsort(key.astype(np.uint16), kind="stable")

    def box_pairs(self, x: np.ndarray, y: np.ndarray,
                  pad: float) -> tuple[np.ndarray, np.ndarray]:
        """Unique (point, polygon) pairs: polygons meeting the raster cells of each point's box.

        A superset of the polygons within `pad` (planar) of each point: such a polygon's
        nearest point lies in the box, hence in one of its cells, and each cell knows every
        polygon meeting it (its own grid, or the grids whose edges touch it).
        """
        u1, v1 = self._uv(x - pad, y - pad)
        u2, v2 = self._uv(x + pad, y + pad)
        iu1 = np.clip(np.floor(u1), 0, self.nx - 1).astype(np.int64)
        iv1 = np.clip(np.floor(v1), 0, self.ny - 1).astype(np.int64)
        iu2 = np.clip(np.floor(u2), 0, self.nx - 1).astype(np.int64)
        iv2 = np.clip(np.floor(v2), 0, self.ny - 1).astype(np.int64)
        pts, cells = [], []
        for du in range(int((iu2 - iu1).max(initial=0)) + 1):
            for dv in range(int((iv2 - iv1).max(initial=0)) + 1):
                live = np.flatnonzero((iu1 + du <= iu2) & (iv1 + dv <= iv2))
                pts.append(live)
                cells.append((iv1[live] + dv) * self.nx + iu1[live] + du)
        pt, cell = np.concatenate(pts), np.concatenate(cells)
        value = self.value[cell]
        whole = value >= 0
        check = np.flatnonzero(value == CHECK)
        counts = self.cand_first[cell[check] + 1] - self.cand_first[cell[check]]
        at = self.cand_first[cell[check]].repeat(counts) + (
            np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        key = np.sort(np.concatenate([
            pt[whole] * len(self.polys) + value[whole],
            pt[check].repeat(counts) * len(self.polys) + self.cand_poly[at]]))
        # np.unique took 30x longer than the sort (numpy 2.4, a few million keys).
        key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
        return key // len(self.polys), key % len(self.polys)

    def near_pairs(self, x: np.ndarray, y: np.ndarray,
                   factor: float) -> tuple[np.ndarray, np.ndarray]:
        """(point, polygon) pairs: every polygon within `factor` x each point's nearest one.

        With `factor` >= 1 / cos(latitude) the polygon nearest in metres, and every polygon
        nearer than it in degrees, is among these; the caller ranks them.
        """
        pts = shapely.points(x, y)
        idx, dist = self.tree.query_nearest(pts, return_distance=True, all_matches=False)
        reach = np.zeros(len(x))
        reach[idx[0]] = dist
        pairs = self.tree.query(pts, predicate="dwithin", distance=reach * factor + 1e-12)
        return pairs[0], pairs[1]


def _refuse_overlaps(tree: shapely.STRtree, polys: np.ndarray) -> None:
    for predicate in ("overlaps", "contains"):
        a, b = tree.query(polys, predicate=predicate)
        clash = a != b
        if clash.any():
            raise EngineUnsupportedError(
                f"grid cells {int(a[clash][0])} and {int(b[clash][0])} overlap")
