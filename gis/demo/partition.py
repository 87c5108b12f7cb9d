"""Simulated 街道 and 社区 polygons: Voronoi partitions (Lloyd-relaxed) of the real outline.

No polygons of streets or communities ship offline for Chinese cities, so they are drawn here:
seeded points, relaxed a few times towards their cell centroids so cells come out compact,
then Voronoi cells clipped to the parent polygon. Neighbouring cells share their edges exactly,
so the children partition the parent with no gap or overlap.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gis.demo import DISTRICT_CODE, METRIC_EPSG
from gis.demo.divisions import communities_of, subdistricts

LLOYD_ITERATIONS = 5


def polygons_of(geom: BaseGeometry) -> MultiPolygon:
    """The polygonal parts of any geometry (drops points and lines left by clipping)."""
    geom = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    nested = [p for g in shapely.get_parts(geom) if isinstance(g, MultiPolygon)
              for p in g.geoms]
    return MultiPolygon(parts + nested)


def random_points_in(polygon: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` uniform random points (x, y) inside `polygon`, by rejection in its bounding box."""
    minx, miny, maxx, maxy = polygon.bounds
    shapely.prepare(polygon)
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        xy = rng.uniform((minx, miny), (maxx, maxy), size=(max(4 * n, 64), 2))
        inside = xy[shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])]
        found.append(inside)
        count += len(inside)
    return np.concatenate(found)[:n]


def voronoi_cells(polygon: BaseGeometry, seeds: np.ndarray) -> list[MultiPolygon]:
    """Voronoi cells of `seeds` clipped to `polygon`, in seed order."""
    if len(seeds) == 1:
        return [polygons_of(polygon)]
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=polygon, ordered=True)
    return [polygons_of(shapely.intersection(cell, polygon)) for cell in cells.geoms]


def partition(polygon: BaseGeometry, n: int, rng: np.random.Generator) -> list[MultiPolygon]:
    """Split `polygon` into `n` compact non-empty parts, ordered north→south, west→east."""
    seeds = random_points_in(polygon, n, rng)
    for _ in range(LLOYD_ITERATIONS):
        cells = voronoi_cells(polygon, seeds)
        # A centroid can fall outside a concave cell; its point on surface never does.
        seeds = np.array([shapely.get_coordinates(
            c.centroid if c.contains(c.centroid) else c.point_on_surface())[0] for c in cells])
    cells = voronoi_cells(polygon, seeds)
    if any(c.is_empty for c in cells):
        raise ValueError("a Voronoi cell came out empty; try another seed")
    # Round to 100 m rows so the order is west→east within a row, rows north→south.
    order = sorted(range(n), key=lambda i: (-round(seeds[i][1], -2), seeds[i][0]))
    return [cells[i] for i in order]


def build_subdistricts(outline_m: BaseGeometry, rng: np.random.Generator,
                       district_code: str = DISTRICT_CODE) -> gpd.GeoDataFrame:
    """The simulated 街道 polygons (metric CRS) with their real codes and names (13 in 历下区)."""
    streets = subdistricts(district_code)
    cells = partition(outline_m, len(streets), rng)
    return gpd.GeoDataFrame(
        {"code": [s.code for s in streets], "name": [s.name for s in streets],
         "district_code": district_code, "simulated": True},
        geometry=cells, crs=METRIC_EPSG)


def build_communities(subdistricts_m: gpd.GeoDataFrame,
                      rng: np.random.Generator) -> gpd.GeoDataFrame:
    """The simulated 社区 polygons, each inside its real parent street (metric CRS)."""
    rows: list[dict[str, object]] = []
    for street in subdistricts_m.itertuples():
        members = communities_of(street.code)
        for member, cell in zip(members, partition(street.geometry, len(members), rng),
                                strict=True):
            rows.append({"code": member.code, "name": member.name,
                         "subdistrict_code": street.code, "simulated": True, "geometry": cell})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=METRIC_EPSG)
