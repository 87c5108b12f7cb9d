"""Nearest station for batch routing by raster pixel: most points need no search at all.

The SQL path gives a point the station of its Voronoi cell in the city's metric CRS (the
index answers that with a KD-tree after projecting the point). Over the grid raster's pixels
(gis.dispatch.engine.grid) that answer is constant almost everywhere: a pixel whose projected
extent lies within `r` of its projected centre, whose nearest station there is nearer by more
than `2 r` than the second, gives every point inside it that station (for a point p,
|p - s1| <= d1 + r < d2 - r <= |p - s2| and every other station is farther than s2). Only
points in the thin bands along Voronoi edges, or beyond the stations' envelope, are projected
and searched as before. The metres are short_geodesic's: PostGIS' once rounded to the centimetre.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from gis.dispatch.engine.index import RoutingIndex
from gis.dispatch.engine.short_geodesic import centimetre_metres

# Projected pixels are tiny quadrilaterals whose sides bend by far less than this share of
# their size; the absolute margin covers rounding of points on a pixel's edge.
_RELATIVE_MARGIN = 1e-3
_ABSOLUTE_MARGIN_M = 1e-3
_NONE = -1


class StationRaster:
    """Station row per grid-raster pixel where the whole pixel has one nearest station."""

    def __init__(self, index: RoutingIndex) -> None:
        grid = index.grid
        assert grid is not None and index._kd is not None
        self.x0, self.y0, self.step = grid.x0, grid.y0, grid.step
        self.nx, self.ny = grid.nx, grid.ny
        xs = self.x0 + np.arange(self.nx + 1) * self.step
        ys = self.y0 + np.arange(self.ny + 1) * self.step
        # Corners (ny + 1) x (nx + 1) and centres ny x nx, projected once.
        cx, cy = index._to_metric.transform(*np.meshgrid(xs, ys))
        mx, my = index._to_metric.transform(*np.meshgrid(xs[:-1] + self.step / 2,
                                                         ys[:-1] + self.step / 2))
        radius = np.zeros(mx.shape)
        for dy in (0, 1):
            for dx in (0, 1):
                corner_x = cx[dy:dy + self.ny, dx:dx + self.nx]
                corner_y = cy[dy:dy + self.ny, dx:dx + self.nx]
                radius = np.maximum(radius, np.hypot(corner_x - mx, corner_y - my))
        radius = radius * (1 + _RELATIVE_MARGIN) + _ABSOLUTE_MARGIN_M
        mx, my, radius = mx.ravel(), my.ravel(), radius.ravel()
        dist, k = index._kd.query(np.c_[mx, my], k=2)
        x1, y1, x2, y2 = index._envelope
        # Beyond the envelope the index measures every station in metres instead.
        within = ((mx - radius > x1) & (mx + radius < x2) & (my - radius > y1)
                  & (my + radius < y2))
        sure = within & (dist[:, 1] - dist[:, 0] > 2 * radius)
        self.station = np.where(sure, index._kd_rows[k[:, 0]], _NONE).astype(np.int64)

    def rows(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Station row of each point's pixel, -1 where the pixel's answer is not certain."""
        u = (lon - self.x0) / self.step
        v = (lat - self.y0) / self.step
        inside = (u >= 0) & (v >= 0) & (u < self.nx) & (v < self.ny)
        cell = np.where(inside, np.floor(v).clip(0, self.ny - 1) * self.nx
                        + np.floor(u).clip(0, self.nx - 1), 0).astype(np.int64)
        return np.where(inside, self.station[cell], _NONE)


_RASTERS: weakref.WeakKeyDictionary[RoutingIndex, StationRaster | None] = (
    weakref.WeakKeyDictionary())
_LOCK = threading.Lock()


def station_raster(index: RoutingIndex) -> StationRaster | None:
    """The index's station raster (built once per index), None without a grid or 2 stations."""
    with _LOCK:
        if index in _RASTERS:
            return _RASTERS[index]
        built = (StationRaster(index) if index.grid is not None and index._kd is not None
                 else None)
        _RASTERS[index] = built
        return built


def nearest_stations(index: RoutingIndex, lon: np.ndarray,
                     lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """index.nearest_station's rows, and its metres as far as rounding to 0.01 m can tell."""
    raster = station_raster(index)
    if raster is None or len(lon) == 0:
        return index.nearest_station(lon, lat)
    row = raster.rows(lon, lat)
    unsure = np.flatnonzero(row < 0)
    if len(unsure):
        row[unsure] = index.nearest_station(lon[unsure], lat[unsure])[0]
    st_lon = index.stations["lon"].to_numpy(float)[row]
    st_lat = index.stations["lat"].to_numpy(float)[row]
    # Batch results give the metres to the centimetre (see short_geodesic).
    return row, centimetre_metres(st_lon, st_lat, lon, lat)
