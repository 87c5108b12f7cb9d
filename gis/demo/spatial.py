"""Small geometric helpers shared by the demo generators (metric CRS throughout)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely


def points_beside(lines: np.ndarray, distance: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Points `distance` metres along each line, `offset` metres to its left (right if < 0)."""
    length = shapely.length(lines)
    ahead = shapely.line_interpolate_point(lines, np.minimum(distance + 1.0, length))
    behind = shapely.line_interpolate_point(lines, np.maximum(distance - 1.0, 0.0))
    on = shapely.get_coordinates(shapely.line_interpolate_point(lines, distance))
    d = shapely.get_coordinates(ahead) - shapely.get_coordinates(behind)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    left = np.column_stack([-d[:, 1], d[:, 0]])
    return shapely.points(on + left * offset[:, None])


def containing_code(points: np.ndarray, polygons: gpd.GeoDataFrame,
                    column: str = "code") -> np.ndarray:
    """For each point, `column` of the first polygon that covers it (None when none does)."""
    tree = shapely.STRtree(polygons.geometry.values)
    point_idx, poly_idx = tree.query(points, predicate="intersects")
    codes = np.full(len(points), None, dtype=object)
    order = np.lexsort((poly_idx, point_idx))
    point_idx, poly_idx = point_idx[order], poly_idx[order]
    # A point on a shared edge touches two cells: keep the first, deterministically.
    first = np.unique(point_idx, return_index=True)[1]
    codes[point_idx[first]] = polygons[column].to_numpy()[poly_idx[first]]
    return codes


def nearest_value(points: np.ndarray, frame: gpd.GeoDataFrame, column: str) -> np.ndarray:
    """For each point, `column` of the nearest feature of `frame`."""
    tree = shapely.STRtree(frame.geometry.values)
    idx = tree.query_nearest(points, return_distance=False, all_matches=False)[1]
    return frame[column].to_numpy()[idx]
