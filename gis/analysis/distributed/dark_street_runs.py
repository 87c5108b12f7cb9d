"""Dark streets on dask: roads split into spatial tiles, each tile with the lights around it.

Partition. Roads (metric lines) go to the square tile (`tile_m`) holding the centre of their
bounding box; a tile's roads are one task. The task gets only the working lights inside its
*reach box*: every road's bounding box grown by max(`buffer_m`, half its diagonal + the
threshold + 1 m), joined. Each task runs gis.analysis.dark_streets.dark_gaps_in_chunks (the
function of the single-process cKDTree path) on its roads and those lights.

Why the answers equal the single-process path's. A gap depends on (1) each sample's nearest
light and its distance and (2) the lights `_lights_near` finds around each gap window (a disc
of half the window's diagonal + the threshold around its centre), which the exact cut uses.
(2) lies inside the road's box grown by half its diagonal + the threshold, so inside the reach
box by construction. For (1), a sample whose nearest local light is at d <= `buffer_m` has its
true nearest light there too (any light farther out is outside the reach box, so more than
`buffer_m` away); lit samples are within the threshold, so only dark samples can be farther, and
the largest of their distances in a run is the run's `max_distance_m`. A tile where some run has
`max_distance_m` > `buffer_m` (or no local light at all) is computed again with every light: a
second round, normally for a few tiles at the edge of the lit city. Gaps never cross roads, so
the tiles' gaps put back in road order are the single run's gaps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy.orm import Session

from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox
from gis.analysis.dark_streets import (
    DarkStreetOptions,
    dark_gaps_frame,
    dark_gaps_in_chunks,
    read_dark_street_inputs,
)
from gis.analysis.distributed.cluster import run_map

if TYPE_CHECKING:
    from distributed import Client

DEFAULT_TILE_M = 2000.0
DEFAULT_BUFFER_M = 300.0  # 10x the default threshold: dark runs farther out are rare
GapArrays = dict[str, np.ndarray]


def road_tiles(lines: np.ndarray, tile_m: float) -> list[np.ndarray]:
    """Indices of `lines` per square tile of `tile_m` metres holding their box centre.

    Examples
    --------
    >>> roads = np.array([shapely.LineString([(x, 0), (x + 10, 0)]) for x in (0, 50, 2500)])
    >>> [t.tolist() for t in road_tiles(roads, 1000)]
    [[0, 1], [2]]
    """
    if not len(lines):
        return []
    x1, y1, x2, y2 = shapely.bounds(lines).T
    col = np.floor((x1 + x2) / 2 / tile_m).astype(np.int64)
    row = np.floor((y1 + y2) / 2 / tile_m).astype(np.int64)
    keys = pd.Series(np.arange(len(lines))).groupby([row, col], sort=True)
    return [group.to_numpy() for _, group in keys]


def reach_box(lines: np.ndarray, *, threshold_m: float, buffer_m: float) -> np.ndarray:
    """x1, y1, x2, y2 of the lights a tile of `lines` needs (see the module notes)."""
    x1, y1, x2, y2 = shapely.bounds(lines).T
    grow = np.maximum(buffer_m, np.hypot(x2 - x1, y2 - y1) / 2 + threshold_m * 1.001 + 1.0)
    return np.array([(x1 - grow).min(), (y1 - grow).min(), (x2 + grow).max(),
                     (y2 + grow).max()])


def _tile_gaps(item: tuple[np.ndarray, np.ndarray, np.ndarray, bool], *, threshold_m: float,
               step_m: float, buffer_m: float) -> GapArrays | None:
    """Map step: gaps of one tile's roads, or None when its local lights cannot be trusted."""
    index, lines, lights, every_light = item
    gaps = dark_gaps_in_chunks(lines, lights, threshold_m=threshold_m, step_m=step_m)
    farthest = gaps["max_distance_m"]
    if not every_light and len(farthest) and not (farthest <= buffer_m).all():
        return None  # a dark sample may have its nearest light outside the reach box
    gaps["road_index"] = index[gaps["road_index"]]
    return gaps


def distributed_dark_gaps(lines: np.ndarray, lights: np.ndarray, *, client: Client | None,
                          threshold_m: float = 30.0, step_m: float = 5.0,
                          tile_m: float = DEFAULT_TILE_M, buffer_m: float = DEFAULT_BUFFER_M,
                          stats: dict[str, Any] | None = None) -> GapArrays:
    """The gap arrays of `dark_gaps_in_chunks(lines, lights)`, computed tile by tile."""
    options = DarkStreetOptions(threshold_m, step_m)
    buffer_m = max(buffer_m, options.threshold_m)
    tiles = road_tiles(lines, tile_m)
    items = []
    for index in tiles:
        x1, y1, x2, y2 = reach_box(lines[index], threshold_m=options.threshold_m,
                                   buffer_m=buffer_m)
        near = ((lights[:, 0] >= x1) & (lights[:, 0] <= x2) & (lights[:, 1] >= y1)
                & (lights[:, 1] <= y2)) if len(lights) else np.zeros(0, bool)
        items.append((index, lines[index], lights[near], bool(near.all())))
    kwargs = {"threshold_m": options.threshold_m, "step_m": options.step_m,
              "buffer_m": buffer_m}
    results = run_map(client, _tile_gaps, items, **kwargs)
    again = [i for i, result in enumerate(results) if result is None]
    if again:
        redo = run_map(client, _tile_gaps,
                       [(items[i][0], items[i][1], lights, True) for i in again], **kwargs)
        for i, result in zip(again, redo, strict=True):
            results[i] = result
    if stats is not None:
        stats.update(tiles=len(items), second_round=len(again),
                     lights_per_tile=[len(item[2]) for item in items])
    parts = [r for r in results if r is not None]
    if not parts:  # no roads: the empty arrays of one call
        return dark_gaps_in_chunks(lines, lights, threshold_m=options.threshold_m,
                                   step_m=options.step_m)
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    # Back to road order; a stable sort keeps each road's gaps in their order along it.
    order = np.argsort(merged["road_index"], kind="stable")
    return {key: values[order] for key, values in merged.items()}


def distributed_dark_streets(session: Session, *, client: Client | None,
                             threshold_m: float = 30.0, step_m: float = 5.0,
                             bbox: BBox | None = None,
                             metric_epsg: int = DEFAULT_METRIC_EPSG,
                             tile_m: float = DEFAULT_TILE_M, buffer_m: float = DEFAULT_BUFFER_M,
                             stats: dict[str, Any] | None = None) -> gpd.GeoDataFrame:
    """Same table as gis.analysis.dark_streets.find_dark_streets_kdtree, tiles on dask.

    Roads and lights are read here (one query each), tiles are measured on the workers, and
    the grid, street and district of each stretch are looked up here again.
    """
    DarkStreetOptions(threshold_m, step_m)
    roads, lines, lights = read_dark_street_inputs(session, bbox=bbox, metric_epsg=metric_epsg)
    gaps = distributed_dark_gaps(lines, lights, client=client, threshold_m=threshold_m,
                                 step_m=step_m, tile_m=tile_m, buffer_m=buffer_m, stats=stats)
    return dark_gaps_frame(session, roads, gaps, metric_epsg=metric_epsg)
