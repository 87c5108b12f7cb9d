"""The nearest other grid from neighbour lists made at index build equals the full search.

gis/dispatch/engine/nearest_other.py answers a point inside its grid from that grid's
precomputed candidates, or returns None when its window could reach past them (then
single._nearest_other searches the STRtree as before). Compared here, point by point, with
the full search over the whole demo city (all three districts, 6,000 random points in random
cells' boxes, and a point on every sliver overlap); and on two far-apart grids, where the
list is empty and the full search must answer.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.dispatch.engine.nearest_other import NeighbourLists
from gis.dispatch.engine.polygons import Polygons
from gis.dispatch.engine.single import PointIndex, _nearest_other
from gis.platform.settings import CitySettings


def test_neighbour_lists_answer_as_the_full_search_on_the_demo_city(
        demo_engine: Engine) -> None:
    city = CitySettings()
    with demo_engine.connect() as conn:
        index = PointIndex(conn, metric_epsg=city.metric_epsg, max_lat=max(city.bbox[1::2]))
        slivers = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_Intersection(a.geom, "
            "b.geom)) AS p FROM grid_cells a JOIN grid_cells b ON a.code < b.code "
            "AND ST_Overlaps(a.geom, b.geom)) s WHERE NOT ST_IsEmpty(p)")).all()
    assert index.grid is not None and index.neighbours is not None
    bounds = index.grid.edges.bounds
    rng = np.random.default_rng(16)
    box = bounds[rng.integers(0, len(bounds), 6000)]
    points = list(zip(rng.uniform(box[:, 0], box[:, 2]), rng.uniform(box[:, 1], box[:, 3]),
                      strict=True)) + [(float(x), float(y)) for x, y in slivers]
    fast = 0
    for lon, lat in points:
        own = int(index.locate(np.array([lon]), np.array([lat]))[0])
        if own < 0:
            continue
        listed = index.neighbours.nearest_other(lon, lat, own)
        full = _nearest_other(index, lon, lat, own, inside=False)
        if listed is not None:
            fast += 1
            assert listed == full, (lon, lat, index.codes[own])
        assert _nearest_other(index, lon, lat, own, inside=True) == full
    assert fast > 5500 and len(slivers) > 50


def test_an_isolated_grid_falls_back_to_the_full_search() -> None:
    # Two 100 m squares 5 km apart: neither is in the other's list.
    polys = np.array([shapely.box(117.0, 36.6, 117.001, 36.601),
                      shapely.box(117.05, 36.6, 117.051, 36.601)])
    edges = Polygons.from_shapely(polys)
    lists = NeighbourLists(edges, shapely.STRtree(polys),
                           1.01 / math.cos(math.radians(37.0)))
    assert lists.nearest_other(117.0005, 36.6005, 0) is None
    assert lists.nearest_other(117.0505, 36.6005, 1) is None
