"""The routing index's containment raster on the edge of its grid."""

from __future__ import annotations

import numpy as np
import shapely

from gis.dispatch.engine.grid import GridRaster


def test_points_just_outside_that_miss_every_candidate_get_none() -> None:
    # A triangle: its raster cells along the slanted edge need the exact test, and a point
    # just beyond that edge misses its only candidate (this raised IndexError before).
    raster = GridRaster(np.array([shapely.Polygon([(0, 0), (1, 0), (0, 1)])]))
    outside = raster.locate(np.array([0.51]), np.array([0.51]))
    assert outside.tolist() == [-1]
    mixed = raster.locate(np.array([0.51, 0.2, 5.0]), np.array([0.51, 0.2, 5.0]))
    assert mixed.tolist() == [-1, 0, -1]
