"""Batch routing in PostGIS: binary COPY in (spatial order), the SQL of batch_sql, COPY out.

`route_chunk` routes one chunk of prepared rows in temporary tables that die with the
transaction; `locate_grids` is its containment step alone.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gis.dispatch.batch_sql import (
    CELLS_SQL,
    COMPONENTS_TABLE,
    FILLS_GAPS_OF,
    NUMERIC_FIELDS,
    OWNERS_SQL,
    POINTS_TABLE,
    PREPARE_SQL,
    ROUTE_SQL,
    STATIONS_SQL,
    TEMP_TABLES,
)
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.settings import CitySettings

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_PG_EPOCH = np.datetime64("2000-01-01", "D")


def _spatial_order(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Positions sorted along a Morton (Z-order) curve over the points' extent."""
    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64)
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    def scaled(v: np.ndarray) -> np.ndarray:
        span = float(v.max() - v.min()) or 1.0
        return ((v - v.min()) / span * 65535).astype(np.uint64)

    if len(lon) == 0:
        return np.arange(0)
    key = spread(scaled(lon)) | (spread(scaled(lat)) << np.uint64(1))
    return np.argsort(key, kind="stable")


def _copy_point_rows(conn: Connection, lon: np.ndarray, lat: np.ndarray,
                     days: np.ndarray) -> None:
    """Binary COPY of (idx, lon, lat, day) into route_points, in spatial order."""
    order = _spatial_order(lon, lat)
    # One binary COPY tuple: field count, then (length, value) per field, all big-endian.
    layout = np.dtype([("fields", ">i2"), ("l_idx", ">i4"), ("idx", ">i4"), ("l_lon", ">i4"),
                       ("lon", ">f8"), ("l_lat", ">i4"), ("lat", ">f8"), ("l_day", ">i4"),
                       ("day", ">i4")])
    rows = np.empty(len(lon), dtype=layout)
    rows["fields"], rows["l_idx"], rows["l_lon"], rows["l_lat"], rows["l_day"] = 4, 4, 8, 8, 4
    rows["idx"], rows["lon"], rows["lat"], rows["day"] = order, lon[order], lat[order], days[order]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()
    try:
        cursor.copy_expert("COPY route_points (idx, lon, lat, day) FROM STDIN (FORMAT binary)",
                           io.BytesIO(_PGCOPY_HEADER + rows.tobytes() + b"\xff\xff"))
    finally:
        cursor.close()


def _copy_points(conn: Connection, prepared: pd.DataFrame) -> None:
    """The points (see _copy_point_rows), and the rows naming components to their own table."""
    lon = prepared["lon"].to_numpy(dtype=np.float64)
    lat = prepared["lat"].to_numpy(dtype=np.float64)
    days = (prepared["local"].to_numpy().astype("datetime64[D]") - _PG_EPOCH).astype(np.int32)
    _copy_point_rows(conn, lon, lat, days)
    linked = prepared["linked"].to_numpy(dtype=bool)
    components = io.StringIO()
    pd.DataFrame({
        "idx": np.flatnonzero(linked), "lon": lon[linked], "lat": lat[linked],
        "comp_class": prepared["link_class"].to_numpy()[linked],
        "comp_code": prepared["component_code"].to_numpy()[linked],
    }).replace("", None).to_csv(components, index=False, header=False)
    components.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()
    try:
        cursor.copy_expert("COPY route_components (idx, lon, lat, comp_class, comp_code) "
                           "FROM STDIN (FORMAT csv)", components)
    finally:
        cursor.close()


def locate_grids(conn: Connection, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The grid code containing each WGS84 point (None outside every grid), nothing else.

    The containment step of route_frame on its own (same COPY, index and join, same tie rule:
    the smallest code on a shared edge), without snapping, owners or stations: the work a
    plain spatial join does, for comparing like with like in bench/route.py.
    """
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    for table in TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(POINTS_TABLE))
    _copy_point_rows(conn, lon, lat, np.zeros(len(lon), dtype=np.int32))
    for label, statement in PREPARE_SQL:
        if label in ("settings", "points index", "containing grid"):
            conn.execute(text(statement))
    hits = _copy_out(conn, "SELECT idx, code FROM route_hits", numeric=("idx",))
    codes = np.full(len(lon), None, dtype=object)
    codes[hits["idx"].to_numpy(dtype=np.int64)] = hits["code"].to_numpy()
    conn.execute(text("DROP TABLE route_hits"))
    conn.execute(text("DROP TABLE route_points"))
    return codes


def _copy_out(conn: Connection, sql: str, params: dict[str, Any] | None = None,
              numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """A query's rows by COPY TO (CSV), parsed by pandas' C reader; text stays text."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()
    query = cursor.mogrify(text(sql).compile(dialect=conn.dialect).string, params or {})
    buffer = io.BytesIO()
    try:
        cursor.copy_expert(b"COPY (" + query + b") TO STDOUT (FORMAT csv, HEADER)", buffer)
    finally:
        cursor.close()
    buffer.seek(0)
    header = pd.read_csv(io.BytesIO(buffer.getvalue().split(b"\n", 1)[0]), nrows=0).columns
    return pd.read_csv(buffer, dtype={f: (np.float64 if f in numeric else object)
                                      for f in header}, keep_default_na=False,
                       na_values={f: [""] for f in header})


def _read_routed(conn: Connection, params: dict[str, Any]) -> pd.DataFrame:
    """ROUTE_SQL with the names of grids, communities, streets, owners and stations."""
    rows = _copy_out(conn, ROUTE_SQL, params, NUMERIC_FIELDS)
    rows["idx"] = rows["idx"].astype(np.int64)
    rows["snapped"] = rows["snapped"].map({"t": True, "f": False})
    ids = rows["zone_ids"].dropna()
    rows["zone_ids"] = pd.Series([[int(v) for v in z.strip("{}").split(",")] for z in ids],
                                 index=ids.index, dtype=object).reindex(rows.index)
    for sql, key in ((CELLS_SQL, "code"), (OWNERS_SQL, "owner_id"),
                     (STATIONS_SQL, "station_code")):
        lookup = _copy_out(conn, sql, numeric=("owner_id",)).set_index(key)
        matched = lookup.reindex(rows[key].to_numpy())
        for column in lookup.columns:
            rows[column] = matched[column].to_numpy()
    return rows


def route_chunk(conn: Connection, prepared: pd.DataFrame, *,
                settings: RoutingSettings, city: CitySettings,
                timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Route one chunk of prepared rows; one row per routed point, with the looked-up names."""
    clock = Clock(timings)
    for table in TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(POINTS_TABLE))
    conn.execute(text(COMPONENTS_TABLE))
    _copy_points(conn, prepared)
    clock.lap("copy in")
    # Metres to degrees of longitude at the city's highest latitude: a window never too small.
    per_degree = 111_320.0 * max(math.cos(math.radians(max(city.bbox[1::2]))), 0.01)
    params = {"epsg": city.metric_epsg, "edge_deg": settings.boundary_m * 1.01 / per_degree,
              "link_deg": settings.component_link_m * 1.01 / per_degree,
              "link_m": settings.component_link_m,
              "snap_reach_m": settings.max_snap_m + settings.boundary_m}
    found: dict[str, int] = {}
    for label, statement in PREPARE_SQL:
        if label in FILLS_GAPS_OF and found.get(FILLS_GAPS_OF[label]) == len(prepared):
            continue
        found[label] = conn.execute(text(statement), params).rowcount
        clock.lap(f"sql: {label}")
    rows = _read_routed(conn, params)
    clock.lap("sql: main query + COPY out")
    for table in TEMP_TABLES:
        conn.execute(text(f"DROP TABLE {table}"))
    return rows


class Clock:
    """Adds the seconds since the last lap to `timings[label]` (nothing when timings is None)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, label: str) -> None:
        """Count the time since the last lap under `label` (an empty label only resets)."""
        now = time.perf_counter()
        if self.timings is not None and label:
            self.timings[label] = self.timings.get(label, 0.0) + now - self.last
        self.last = now
