"""Batch routing on the in-process index: the same rows as batch_postgis.route_chunk.

Containment, snapping, owner of the day, nearest station, nearest other grid and candidate
stall zones come from the index (gis.dispatch.engine.index). The few rows that name a
component or a component category are linked in PostGIS by the SQL path's own statement
(components are many and change often; those rows are few).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gis.dispatch.batch_postgis import Clock, _copy_out
from gis.dispatch.batch_sql import COMPONENTS_TABLE, PREPARE_SQL, ROUTED_FIELDS
from gis.dispatch.engine.index import RoutingIndex, routing_index
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.settings import CitySettings

_COMPONENTS_SQL = dict(PREPARE_SQL)["components"]
_EPOCH = np.datetime64("1970-01-01", "D")


def index_for(conn: Connection, city: CitySettings) -> RoutingIndex:
    """The routing index of the connection's database for this city's metric CRS."""
    return routing_index(conn, metric_epsg=city.metric_epsg, max_lat=max(city.bbox[1::2]))


def _text(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows] as objects, NaN where rows is -1 (what the SQL path's CSV gives)."""
    # Missing values become NaN once per value, not once per routed row, and a NaN appended
    # at the end is what row -1 picks: one take instead of three passes over a million rows.
    clean = np.where(pd.isna(values), np.nan, values).astype(object)
    return np.append(clean, np.array([np.nan], dtype=object))[rows]


def _linked(conn: Connection, prepared: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The SQL path's component step on the rows that name a component or its category."""
    linked = ((prepared["link_class"] != "") | (prepared["component_code"] != "")).to_numpy()
    if not linked.any():
        return pd.DataFrame(columns=["idx", "code", "owner", "cls", "dist"])
    for table in ("route_linked", "route_components"):
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(COMPONENTS_TABLE))
    buffer = io.StringIO()
    pd.DataFrame({
        "idx": np.flatnonzero(linked), "lon": prepared["lon"].to_numpy()[linked],
        "lat": prepared["lat"].to_numpy()[linked],
        "comp_class": prepared["link_class"].to_numpy()[linked],
        "comp_code": prepared["component_code"].to_numpy()[linked],
    }).replace("", None).to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()
    try:
        cursor.copy_expert("COPY route_components (idx, lon, lat, comp_class, comp_code) "
                           "FROM STDIN (FORMAT csv)", buffer)
    finally:
        cursor.close()
    conn.execute(text(_COMPONENTS_SQL), params)
    rows = _copy_out(conn, "SELECT idx, code, owner, cls, dist FROM route_linked",
                     numeric=("idx", "dist"))
    for table in ("route_linked", "route_components"):
        conn.execute(text(f"DROP TABLE {table}"))
    return rows


def route_chunk_indexed(conn: Connection, prepared: pd.DataFrame, *,
                        settings: RoutingSettings, city: CitySettings,
                        timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Route one chunk of prepared rows on the index; the columns of batch_postgis.route_chunk."""
    clock = Clock(timings)
    index = index_for(conn, city)
    clock.lap("index: version check / build")
    lon = prepared["lon"].to_numpy(dtype=np.float64)
    lat = prepared["lat"].to_numpy(dtype=np.float64)
    grid_no = index.locate(lon, lat)
    clock.lap("index: containing grid")
    dist = np.zeros(len(lon))
    outside = np.flatnonzero(grid_no < 0)
    snapped_no, snapped_m = index.snap(lon[outside], lat[outside])
    grid_no[outside], dist[outside] = snapped_no, snapped_m
    snapped = np.zeros(len(lon), dtype=bool)
    snapped[outside] = True
    clock.lap("index: snapped grid")
    routed = np.flatnonzero(grid_no >= 0)
    lon, lat, grid_no, dist, snapped = (lon[routed], lat[routed], grid_no[routed],
                                        dist[routed], snapped[routed])
    days = (prepared["local"].to_numpy().astype("datetime64[D]")[routed] - _EPOCH).astype(
        np.int64)
    owner = index.owner_rows(grid_no, days)
    clock.lap("index: owner of the day")
    station, station_m = index.nearest_station(lon, lat)
    clock.lap("index: nearest station")
    per_degree = 111_320.0 * max(math.cos(math.radians(max(city.bbox[1::2]))), 0.01)
    inside = np.flatnonzero(~snapped)
    other_no, other_m = index.nearest_other(lon[inside], lat[inside], grid_no[inside],
                                            settings.boundary_m * 1.01 / per_degree)
    other = np.full(len(lon), -1, dtype=np.int64)
    other_dist = np.full(len(lon), np.nan)
    other[inside], other_dist[inside] = other_no, other_m
    # Snapped points: the nearest other grid within max_snap_m + boundary_m of the point, as
    # the SQL path and single routing give it. Any such grid lies within that plus the snap
    # distance of the snapped grid, hence the wider neighbour reach.
    outside_pts = np.flatnonzero(snapped)
    if len(outside_pts):
        reach_m = settings.max_snap_m + settings.boundary_m
        far_no, far_m = index.nearest_other(
            lon[outside_pts], lat[outside_pts], grid_no[outside_pts],
            (reach_m + settings.max_snap_m) * 1.01 / per_degree)
        keep = far_m <= reach_m
        other[outside_pts] = np.where(keep, far_no, -1)
        other_dist[outside_pts] = np.where(keep, far_m, np.nan)
    clock.lap("index: near boundary")
    zones = index.zones_at(lon, lat)
    clock.lap("index: stall zones")
    cells, owners, stations = index.cells, index.owners, index.stations
    rows = pd.DataFrame({
        "idx": routed, "code": index.codes[grid_no], "dist": dist, "snapped": snapped,
        "community_code": cells["community_code"].to_numpy(object)[grid_no],
        "community_name": cells["community_name"].to_numpy(object)[grid_no],
        "subdistrict_name": cells["subdistrict_name"].to_numpy(object)[grid_no],
        "owner_name": _text(owners["owner_name"].to_numpy(object), owner),
        "owner_kind": _text(owners["owner_kind"].to_numpy(object), owner),
        "owner_phone": _text(owners["phone"].to_numpy(object), owner),
        "station_code": _text(stations["code"].to_numpy(object), station),
        "station_name": _text(stations["name"].to_numpy(object), station),
        "station_m": station_m,
        "other_code": _text(index.codes, other), "other_m": other_dist,
        "zone_ids": pd.Series(zones, dtype=object).where(
            pd.Series([z is not None for z in zones]), np.nan).to_numpy(object),
    })
    per_link = {"link_deg": settings.component_link_m * 1.01 / per_degree,
                "link_m": settings.component_link_m}
    linked = _linked(conn, prepared, per_link).set_index("idx")
    matched = linked.reindex(rows["idx"].to_numpy().astype(float))
    for column, source in (("comp_code", "code"), ("comp_owner", "owner"),
                           ("comp_class", "cls"), ("comp_m", "dist")):
        rows[column] = matched[source].to_numpy()
    clock.lap("components (PostGIS) and result rows")
    return rows[ROUTED_FIELDS]
