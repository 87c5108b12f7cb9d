"""The batch engine's near-boundary shortcuts keep every answer of the full search.

`nearest_other(inside=True)` runs the compiled loop of gis/dispatch/engine/kernels.py: it
skips points farther than the reach from their own grid's rings, takes candidates from the
raster cells of each point's reach box, and measures in GeographicLib only the pairs whose
sphere angle lets them win. The numpy search (`GridRaster.box_pairs`, every pair measured)
is the reference.
Both are checked against the plain search on shapes with shared edges and vertices, a hole
with its island, a slanted edge and points on, just inside and just beyond the reach.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import shapely

from gis.dispatch.engine.grid import GridRaster
from gis.dispatch.engine.index import RoutingIndex

LAT = 36.66
PER_DEGREE = 111_320.0 * math.cos(math.radians(LAT))
REACH = 10.0 * 1.01 / PER_DEGREE  # boundary_m = 10 as batch routing asks


def _shapes() -> np.ndarray:
    """A 5 x 4 block of ~90 m cells, a cell with a hole and its island, two triangles."""
    step = 0.001
    cells = [shapely.box(117.0 + i * step, LAT + j * step, 117.0 + (i + 1) * step,
                         LAT + (j + 1) * step) for i in range(5) for j in range(4)]
    x0, y0 = 117.005, LAT
    holed = shapely.Polygon(
        [(x0, y0), (x0 + 0.002, y0), (x0 + 0.002, y0 + 0.002), (x0, y0 + 0.002)],
        [[(x0 + 0.0005, y0 + 0.0005), (x0 + 0.0015, y0 + 0.0005),
          (x0 + 0.0015, y0 + 0.0015), (x0 + 0.0005, y0 + 0.0015)]])
    island = shapely.box(x0 + 0.0005, y0 + 0.0005, x0 + 0.0015, y0 + 0.0015)
    tri_a = shapely.Polygon([(117.0, LAT + 0.004), (117.002, LAT + 0.004), (117.0, LAT + 0.005)])
    tri_b = shapely.Polygon([(117.002, LAT + 0.004), (117.002, LAT + 0.005),
                             (117.0, LAT + 0.005)])
    return np.array([*cells, holed, island, tri_a, tri_b], dtype=object)


def _points(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random points, every vertex, and points at 0.5, 1 and 1.5 x the reach from edges."""
    rng = np.random.default_rng(16)
    x1, y1, x2, y2 = shapely.total_bounds(polys)
    xs = [rng.uniform(x1 - 0.0003, x2 + 0.0003, 20_000)]
    ys = [rng.uniform(y1 - 0.0003, y2 + 0.0003, 20_000)]
    vertices = shapely.get_coordinates(polys)
    xs.append(vertices[:, 0])
    ys.append(vertices[:, 1])
    for k in (0.5, 0.999, 1.0, 1.001, 1.5):
        for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1), (0.7071, 0.7071)):
            xs.append(vertices[:, 0] + 0.0002 + dx * k * REACH)
            ys.append(vertices[:, 1] + 0.0003 + dy * k * REACH)
    return np.concatenate(xs), np.concatenate(ys)


def _index(polys: np.ndarray) -> RoutingIndex:
    # Only the grid part of the index is exercised: no database needed for these checks.
    index = RoutingIndex.__new__(RoutingIndex)
    index.grid = GridRaster(polys)
    index.snap_factor = 1.01 / math.cos(math.radians(LAT + 0.01))
    index._lock, index._frames = threading.Lock(), None
    return index


def test_box_pairs_hold_every_grid_within_the_reach() -> None:
    polys = _shapes()
    grid = GridRaster(polys)
    x, y = _points(polys)
    pt, poly = grid.box_pairs(x, y, REACH)
    found = set(zip(pt.tolist(), poly.tolist(), strict=True))
    assert len(found) == len(pt)  # unique pairs
    want_pt, want_poly = grid.tree.query(shapely.points(x, y), predicate="dwithin",
                                         distance=REACH)
    missing = set(zip(want_pt.tolist(), want_poly.tolist(), strict=True)) - found
    assert len(want_pt) > 20_000 and not missing


def test_far_points_skip_the_search_without_changing_an_answer() -> None:
    polys = _shapes()
    index = _index(polys)
    x, y = _points(polys)
    assert index.grid is not None
    grid_no = index.grid.locate(x, y)
    inside = grid_no >= 0
    x, y, grid_no = x[inside], y[inside], grid_no[inside]
    fast_no, fast_m = index.nearest_other(x, y, grid_no, REACH, inside=True)
    full_no, full_m = index.nearest_other(x, y, grid_no, REACH)
    np.testing.assert_array_equal(fast_no, full_no)
    np.testing.assert_array_equal(fast_m, full_m)
    # Both kinds occur: points with another grid within reach and points far from every edge.
    assert (full_no >= 0).sum() > 3000 and (full_no < 0).sum() > 3000
