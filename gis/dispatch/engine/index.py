"""The routing index: grid, owners, stations and stall zones compiled from PostGIS, versioned.

PostGIS stays the source of truth. `routing_index(conn, ...)` reads `routing_version` (moved
by the triggers of migration 0016 in the same transaction as any edit of the tables compiled
here) and returns the index built for that version, building it first when the version
moved. Version numbers come from a sequence, so an index built inside a transaction that is
later rolled back never matches a committed version.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gis.dispatch.engine import geodesy, kernels, short_geodesic, sphere
from gis.dispatch.engine.grid import GridRaster
from gis.dispatch.engine.polygons import Polygons

_CELLS = """
SELECT g.code, g.community_code, cm.name AS community_name, sd.name AS subdistrict_name,
       ST_AsBinary(g.geom) AS wkb
FROM grid_cells g JOIN communities cm ON cm.code = g.community_code
JOIN subdistricts sd ON sd.code = cm.subdistrict_code
"""
_OWNERS = ("SELECT id, grid_code, owner_name, owner_kind, phone, valid_from, valid_to "
           "FROM grid_owners")
_STATIONS = "SELECT code, name, phone, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM stations"
_ZONES = ("SELECT id, ST_AsBinary(geom) AS wkb FROM stall_zones WHERE status = 'approved' "
          "ORDER BY id")
_EPOCH = np.datetime64("1970-01-01", "D")
_KNN = 8  # as gis.dispatch.routing._KNN_CANDIDATES


def _days(values: pd.Series, missing: int) -> np.ndarray:
    out = pd.to_datetime(values).to_numpy().astype("datetime64[D]")
    days = (out - _EPOCH).astype(np.int64)
    return np.where(pd.isna(values).to_numpy(), missing, days)


class RoutingIndex:
    """Everything batch routing needs in memory, for one routing_version of one database."""

    def __init__(self, conn: Connection, *, metric_epsg: int, max_lat: float) -> None:
        cells = pd.DataFrame(conn.execute(text(_CELLS)).mappings().all(),
                             columns=["code", "community_code", "community_name",
                                      "subdistrict_name", "wkb"])
        cells = cells.sort_values("code", kind="stable").reset_index(drop=True)
        self.cells = cells.drop(columns="wkb")
        self.codes = cells["code"].to_numpy(dtype=object)
        self.grid = (GridRaster(shapely.from_wkb(cells["wkb"].map(bytes).to_numpy()))
                     if len(cells) else None)
        # One degree of longitude is cos(lat) of one of latitude: reach for the metric nearest.
        self.snap_factor = 1.01 / max(math.cos(math.radians(max_lat)), 0.01)
        self._load_owners(conn)
        self._load_stations(conn, metric_epsg)
        zones = conn.execute(text(_ZONES)).all()
        self.zone_ids = np.array([z.id for z in zones], dtype=np.int64)
        zone_polys = shapely.from_wkb([bytes(z.wkb) for z in zones])
        self.zones = Polygons.from_shapely(np.asarray(zone_polys)) if len(zones) else None
        self._neighbours: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._frames: np.ndarray | None = None
        self.compile_kernels()

    def _load_owners(self, conn: Connection) -> None:
        owners = pd.DataFrame(conn.execute(text(_OWNERS)).mappings().all(),
                              columns=["id", "grid_code", "owner_name", "owner_kind", "phone",
                                       "valid_from", "valid_to"])
        grid = pd.Series(np.arange(len(self.codes)), index=self.codes)
        owners["grid"] = grid.reindex(owners["grid_code"]).to_numpy()
        owners = owners.dropna(subset=["grid"])
        owners["start"] = _days(owners["valid_from"], 0)
        owners["end"] = _days(owners["valid_to"], np.iinfo(np.int64).max)
        owners = owners.sort_values(["grid", "start"], kind="stable").reset_index(drop=True)
        self.owners = owners
        self._owner_key = owners["grid"].to_numpy(np.int64) * 10_000_000 + owners["start"]

    def _load_stations(self, conn: Connection, metric_epsg: int) -> None:
        st = pd.DataFrame(conn.execute(text(_STATIONS)).mappings().all(),
                          columns=["code", "name", "phone", "lon", "lat"])
        self.stations = st.sort_values("code", kind="stable").reset_index(drop=True)
        self._to_metric = Transformer.from_crs(4326, metric_epsg, always_xy=True)
        lon, lat = self.stations["lon"].to_numpy(float), self.stations["lat"].to_numpy(float)
        mx, my = self._to_metric.transform(lon, lat)
        xy = np.c_[mx, my]
        # Stations at one spot share a Voronoi cell, which goes to the smallest code.
        _, first = np.unique(xy, axis=0, return_index=True) if len(xy) else (None, np.zeros(0))
        self._kd_rows = np.sort(first).astype(np.int64)
        self._kd = cKDTree(xy[self._kd_rows]) if len(self._kd_rows) >= 2 else None
        if len(xy):
            self._envelope = (mx.min() - 20_000, my.min() - 20_000, mx.max() + 20_000,
                              my.max() + 20_000)

    # -- grid ------------------------------------------------------------------------------
    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid number (index into codes) holding each point, -1 outside every grid."""
        if self.grid is None:
            return np.full(len(x), -1, dtype=np.int64)
        return self.grid.locate(x, y)

    def snap(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grid nearest in metres among the 8 nearest in degrees, and the metres."""
        grid_no = np.full(len(x), -1, dtype=np.int64)
        metres = np.full(len(x), np.nan)
        if self.grid is None or len(x) == 0:
            return grid_no, metres
        pt, poly = self.grid.near_pairs(x, y, self.snap_factor)
        planar = self.grid.edges.planar(x[pt], y[pt], poly)
        order = np.lexsort((poly, planar, pt))
        pt, poly, planar = pt[order], poly[order], planar[order]
        rank = np.arange(len(pt)) - np.searchsorted(pt, pt)
        keep = rank < _KNN
        pt, poly = pt[keep], poly[keep]
        dist = self.grid.edges.geography(x[pt], y[pt], poly, self.snap_factor)
        order = np.lexsort((poly, dist, pt))
        first = order[np.r_[True, pt[order][1:] != pt[order][:-1]]]
        grid_no[pt[first]], metres[pt[first]] = poly[first], dist[first]
        return grid_no, metres

    def nearest_other(self, x: np.ndarray, y: np.ndarray, grid_no: np.ndarray,
                      reach_deg: float, *,
                      inside: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Other grid within `reach_deg` (planar) of each point nearest in metres, and metres.

        `inside`: every point lies in its grid, so one farther than `reach_deg` from that
        grid's rings has no other grid within reach (the way there crosses those rings).
        """
        other = np.full(len(x), -1, dtype=np.int64)
        metres = np.full(len(x), np.nan)
        if self.grid is None or len(x) == 0:
            return other, metres
        if inside:
            # Most points are far from every edge: the compiled loop stops at their own rings.
            return self._nearest_other_inside(x, y, grid_no, reach_deg)
        # Grids in the raster cells of the point's box grown by the reach: a superset of those
        # within reach (bbox_gap and near_geography decide exactly), at a cost per point.
        pt, poly = self.grid.box_pairs(x, y, reach_deg * (1 + 1e-9) + 1e-12)
        other_grid = poly != grid_no[pt]
        pt, poly = pt[other_grid], poly[other_grid]
        edges = self.grid.edges
        near = edges.bbox_gap(x[pt], y[pt], poly) <= reach_deg
        pt, poly = pt[near], poly[near]
        near, dist = edges.near_geography(x[pt], y[pt], poly, reach_deg, self.snap_factor)
        pt, poly = pt[near], poly[near]
        order = np.lexsort((poly, dist, pt))
        pick = order[np.r_[True, pt[order][1:] != pt[order][:-1]]] if len(pt) else order
        other[pt[pick]], metres[pt[pick]] = poly[pick], dist[pick]
        return other, metres

    def compile_kernels(self) -> None:
        """Compile (or load from numba's cache) the near-boundary kernel for this index's types."""
        # Numba compiles on first use (or loads its cache, ~0.1 s): here, not in a request.
        if self.grid is not None:
            empty = np.zeros(0)
            self._nearest_other_inside(empty, empty, np.zeros(0, dtype=np.int64), 1e-4)
            self.grid.locate(np.full(1, np.nan), np.full(1, np.nan))
            geodesy.edge_nearest(empty, empty, empty, empty, empty, empty)
            short_geodesic.centimetre_metres(empty, empty, empty, empty)

    def _edge_frames(self) -> np.ndarray:
        """sphere.edge_frames of the grid's edges, computed once per index."""
        with self._lock:
            if self._frames is None:
                assert self.grid is not None
                e = self.grid.edges
                self._frames = sphere.edge_frames(e.ax, e.ay, e.bx, e.by)
            return self._frames

    def _nearest_other_inside(self, x: np.ndarray, y: np.ndarray, grid_no: np.ndarray,
                              reach_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """nearest_other for points inside their grids, from kernels.near_pairs."""
        grid = self.grid
        assert grid is not None
        e = grid.edges
        pt, poly, hit, _, nlon, nlat, needed = kernels.near_pairs(
            np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
            np.ascontiguousarray(grid_no, dtype=np.int64), float(reach_deg),
            float(self.snap_factor), e.ax, e.ay, e.bx, e.by, e.ring, e.hole, e.first, e.bounds,
            grid.x0, grid.y0, grid.step, grid.nx, grid.ny, grid.value, grid.cand_first,
            grid.cand_poly, self._edge_frames())
        pt, poly, hit = pt[needed], poly[needed], hit[needed]
        nlon, nlat = nlon[needed], nlat[needed]
        dist = np.zeros(len(pt))
        far = np.flatnonzero(~hit)
        dist[far] = geodesy.geodesic_m(geodesy.rad(x[pt[far]]), geodesy.rad(y[pt[far]]),
                                       nlon[far], nlat[far])
        other = np.full(len(x), -1, dtype=np.int64)
        metres = np.full(len(x), np.nan)
        order = np.lexsort((poly, dist, pt))
        pick = order[np.r_[True, pt[order][1:] != pt[order][:-1]]] if len(pt) else order
        other[pt[pick]], metres[pt[pick]] = poly[pick], dist[pick]
        return other, metres

    # -- owners, stations, zones -------------------------------------------------------------
    def owner_rows(self, grid_no: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Row of `owners` valid on `day` (days since 1970) for each grid, -1 for none."""
        key = grid_no * 10_000_000 + day
        row = np.searchsorted(self._owner_key, key, side="right") - 1
        safe = np.clip(row, 0, max(len(self.owners) - 1, 0))
        if len(self.owners) == 0:
            return np.full(len(grid_no), -1, dtype=np.int64)
        ok = ((row >= 0) & (self.owners["grid"].to_numpy(np.int64)[safe] == grid_no)
              & (self.owners["end"].to_numpy(np.int64)[safe] > day))
        return np.where(ok, row, -1)

    def nearest_station(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Station row nearest in the metric CRS (the SQL path's Voronoi cells), and metres."""
        row = np.full(len(lon), -1, dtype=np.int64)
        if len(self.stations) == 0 or len(lon) == 0:
            return row, np.full(len(lon), np.nan)
        mx, my = self._to_metric.transform(lon, lat)
        if self._kd is not None:
            _, k = self._kd.query(np.c_[mx, my], k=1)
            row = self._kd_rows[k]
            x1, y1, x2, y2 = self._envelope
            beyond = np.flatnonzero((mx < x1) | (mx > x2) | (my < y1) | (my > y2))
        else:
            beyond = np.arange(len(lon))
        if len(beyond):
            row[beyond] = self._station_by_metres(lon[beyond], lat[beyond])
        st_lon = self.stations["lon"].to_numpy(float)[row]
        st_lat = self.stations["lat"].to_numpy(float)[row]
        return row, geodesy.point_point_m(st_lon, st_lat, lon, lat)

    def _station_by_metres(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Fewer than two stations or a point far beyond them: the nearest in metres."""
        st_lon = self.stations["lon"].to_numpy(float)
        st_lat = self.stations["lat"].to_numpy(float)
        best = np.full(len(lon), -1, dtype=np.int64)
        best_m = np.full(len(lon), np.inf)
        for s in range(len(st_lon)):  # only ever a few points or a few stations
            m = geodesy.point_point_m(np.full(len(lon), st_lon[s]), np.full(len(lon), st_lat[s]),
                                      lon, lat)
            better = m < best_m
            best[better], best_m[better] = s, m[better]
        return best

    def zones_at(self, lon: np.ndarray, lat: np.ndarray) -> list[Any]:
        """For each point the ids (ascending) of the approved stall zones covering it, or None."""
        out: list[Any] = [None] * len(lon)
        if self.zones is None:
            return out
        for z, zone_id in enumerate(self.zone_ids):
            b = self.zones.bounds[z]
            pts = np.flatnonzero((lon >= b[0]) & (lon <= b[2]) & (lat >= b[1]) & (lat <= b[3]))
            hit = pts[self.zones.intersects(lon[pts], lat[pts], np.full(len(pts), z))]
            for i in hit:
                out[i] = [int(zone_id)] if out[i] is None else [*out[i], int(zone_id)]
        return out


_CACHE: OrderedDict[tuple[Any, ...], RoutingIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def routing_index(conn: Connection, *, metric_epsg: int, max_lat: float) -> RoutingIndex:
    """The index for the database's current routing_version, built when the version moved."""
    version, database = conn.execute(text(
        "SELECT version, current_database() FROM routing_version")).one()
    key = (database, int(version), metric_epsg, max_lat)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    built = RoutingIndex(conn, metric_epsg=metric_epsg, max_lat=max_lat)
    with _CACHE_LOCK:
        _CACHE[key] = built
        while len(_CACHE) > 2:  # the current version and the one before (for open requests)
            _CACHE.popitem(last=False)
    return built
