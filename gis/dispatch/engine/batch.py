"""Batch routing on the in-process index: the same rows as batch_postgis.route_chunk.

Containment, snapping, owner of the day, nearest station, nearest other grid and candidate
stall zones come from the index (gis.dispatch.engine.index). The few rows that name a
component or a component category are linked in PostGIS by the SQL path's own statement
(components are many and change often; those rows are few).
"""

from __future__ import annotations

import io
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gis.dispatch.batch_postgis import Clock, _copy_out
from gis.dispatch.batch_sql import COMPONENTS_TABLE, PREPARE_SQL, ROUTED_FIELDS
from gis.dispatch.engine.index import RoutingIndex, routing_index
from gis.dispatch.engine.stations import nearest_stations, station_raster
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.settings import CitySettings

_COMPONENTS_SQL = dict(PREPARE_SQL)["components"]
_EPOCH = np.datetime64("1970-01-01", "D")
# Below this many points a share is not worth a thread of its own.
MIN_SHARE_ROWS = 50_000


def index_for(conn: Connection, city: CitySettings) -> RoutingIndex:
    """The routing index of the connection's database for this city's metric CRS."""
    index = routing_index(conn, metric_epsg=city.metric_epsg, max_lat=max(city.bbox[1::2]))
    station_raster(index)  # built with the index, not inside the first batch's timing
    return index


def _text(values: np.ndarray, rows: np.ndarray) -> Any:
    """values[rows] as a text column, NaN where rows is -1 (what the SQL path's CSV gives)."""
    # Taken in Arrow: a million Python strings would each be read again to build the str
    # column. -1 takes a null appended to the values (a masked take costs twice as much). A
    # column with no value at all stays object NaN, as pandas infers it from CSV.
    source = pa.array(np.append(values, np.array([None], dtype=object)), type=pa.large_string(),
                      from_pandas=True)
    taken = source.take(np.where(rows < 0, len(values), rows))
    if taken.null_count == len(taken):
        return np.full(len(rows), np.nan, dtype=object)
    return pd.array(taken, dtype="str")


def _zone_hits(index: RoutingIndex, lon: np.ndarray, lat: np.ndarray) -> dict[int, list[int]]:
    """index.zones_at's id lists for the points some approved zone covers (few), by position."""
    hits: dict[int, list[int]] = {}
    if index.zones is None:
        return hits
    for z, zone_id in enumerate(index.zone_ids):
        b = index.zones.bounds[z]
        pts = np.flatnonzero((lon >= b[0]) & (lon <= b[2]) & (lat >= b[1]) & (lat <= b[3]))
        hit = pts[index.zones.intersects(lon[pts], lat[pts], np.full(len(pts), z))]
        for i in hit.tolist():
            hits.setdefault(i, []).append(int(zone_id))
    return hits


def _zone_column(n: int, hits: dict[int, list[int]]) -> np.ndarray:
    """Candidate zone id lists as an object column, NaN where there is none."""
    column = np.full(n, np.nan, dtype=object)
    for i, ids in hits.items():
        column[i] = ids  # one by one: numpy would unpack lists of equal length
    return column


def _linked(conn: Connection, prepared: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The SQL path's component step on the rows that name a component or its category."""
    linked = prepared["linked"].to_numpy(dtype=bool)
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


def _route_points(index: RoutingIndex, lon: np.ndarray, lat: np.ndarray, days: np.ndarray,
                  settings: RoutingSettings, per_degree: float,
                  timings: dict[str, float] | None) -> dict[str, Any]:
    """Every index field of one share of the points (numpy, shapely, pyproj: GIL released)."""
    clock = Clock(timings)
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
    owner = index.owner_rows(grid_no, days[routed])
    clock.lap("index: owner of the day")
    station, station_m = nearest_stations(index, lon, lat)
    clock.lap("index: nearest station")
    inside = np.flatnonzero(~snapped)
    other_no, other_m = index.nearest_other(lon[inside], lat[inside], grid_no[inside],
                                            settings.boundary_m * 1.01 / per_degree,
                                            inside=True)
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
    zones = _zone_hits(index, lon, lat)
    clock.lap("index: stall zones")
    return {"routed": routed, "grid_no": grid_no, "dist": dist, "snapped": snapped,
            "owner": owner, "station": station, "station_m": station_m, "other": other,
            "other_dist": other_dist, "zones": zones}


def _route_shares(index: RoutingIndex, lon: np.ndarray, lat: np.ndarray, days: np.ndarray,
                  settings: RoutingSettings, per_degree: float,
                  timings: dict[str, float] | None) -> dict[str, Any]:
    """_route_points on `batch_threads` contiguous shares at once, joined in input order."""
    threads = min(settings.batch_threads, max(len(lon) // MIN_SHARE_ROWS, 1))
    if threads == 1:
        return _route_points(index, lon, lat, days, settings, per_degree, timings)
    bounds = np.linspace(0, len(lon), threads + 1).astype(np.int64)
    shares = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    clocks: list[dict[str, float]] = [{} for _ in shares]
    # Each stage is numpy/shapely/pyproj work that releases the GIL, so the shares really run
    # on separate cores; every point's answer depends on that point alone.
    with ThreadPoolExecutor(threads, thread_name_prefix="route-share") as pool:
        parts = list(pool.map(
            lambda k: _route_points(index, lon[shares[k]], lat[shares[k]], days[shares[k]],
                                    settings, per_degree, clocks[k]), range(threads)))
    if timings is not None:  # the stage times of the slowest share (they overlap in time)
        for stage in clocks[0]:
            timings[stage] = timings.get(stage, 0.0) + max(c.get(stage, 0.0) for c in clocks)
    joined: dict[str, Any] = {"routed": np.concatenate(
        [part["routed"] + share.start for part, share in zip(parts, shares, strict=True)])}
    for key in ("grid_no", "dist", "snapped", "owner", "station", "station_m", "other",
                "other_dist"):
        joined[key] = np.concatenate([part[key] for part in parts])
    # Zone hits are keyed by row of the routed arrays: a share's rows follow the routed rows
    # of the shares before it (not its first input position: some points are not routed).
    offsets = np.cumsum([0] + [len(part["routed"]) for part in parts[:-1]])
    joined["zones"] = {i + int(offset): ids for part, offset in zip(parts, offsets, strict=True)
                       for i, ids in part["zones"].items()}
    return joined


def _route_in_space_order(index: RoutingIndex, lon: np.ndarray, lat: np.ndarray,
                          days: np.ndarray, settings: RoutingSettings, per_degree: float,
                          timings: dict[str, float] | None) -> dict[str, Any]:
    """_route_shares over the points sorted by place, its answers put back in input order."""
    clock = Clock(timings)
    if index.grid is None:
        return _route_shares(index, lon, lat, days, settings, per_degree, timings)
    order = index.grid.spatial_order(lon, lat)
    clock.lap("index: order by place")
    found = _route_shares(index, lon[order], lat[order], days[order], settings, per_degree,
                          timings)
    clock.lap("")
    # Answers go back in input order: `taken[m]` is the answer row of the m-th routed point
    # counted in input order, `slot` its inverse (for the stall-zone hits, keyed by row).
    at_input = order[found["routed"]]
    back = np.full(len(lon), -1, dtype=np.int64)
    back[at_input] = np.arange(len(at_input))
    routed = np.flatnonzero(back >= 0)
    taken = back[routed]
    slot = np.empty(len(taken), dtype=np.int64)
    slot[taken] = np.arange(len(taken))
    out: dict[str, Any] = {"routed": routed}
    for key in ("grid_no", "dist", "snapped", "owner", "station", "station_m", "other",
                "other_dist"):
        out[key] = found[key][taken]
    out["zones"] = {int(slot[i]): ids for i, ids in found["zones"].items()}
    clock.lap("index: order by place")
    return out


def route_chunk_indexed(conn: Connection, prepared: pd.DataFrame, *,
                        settings: RoutingSettings, city: CitySettings,
                        timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Route one chunk of prepared rows on the index; the columns of batch_postgis.route_chunk."""
    clock = Clock(timings)
    index = index_for(conn, city)
    clock.lap("index: version check / build")
    lon = prepared["lon"].to_numpy(dtype=np.float64)
    lat = prepared["lat"].to_numpy(dtype=np.float64)
    days = (prepared["local"].to_numpy().astype("datetime64[D]") - _EPOCH).astype(np.int64)
    per_degree = 111_320.0 * max(math.cos(math.radians(max(city.bbox[1::2]))), 0.01)
    found = _route_in_space_order(index, lon, lat, days, settings, per_degree, timings)
    clock.lap("")
    routed, grid_no, dist, snapped = (found["routed"], found["grid_no"], found["dist"],
                                      found["snapped"])
    owner, station, station_m = found["owner"], found["station"], found["station_m"]
    other, other_dist, zones = found["other"], found["other_dist"], found["zones"]
    cells, owners, stations = index.cells, index.owners, index.stations
    sources = {
        "code": (index.codes, grid_no),
        "community_code": (cells["community_code"].to_numpy(object), grid_no),
        "community_name": (cells["community_name"].to_numpy(object), grid_no),
        "subdistrict_name": (cells["subdistrict_name"].to_numpy(object), grid_no),
        "owner_name": (owners["owner_name"].to_numpy(object), owner),
        "owner_kind": (owners["owner_kind"].to_numpy(object), owner),
        "owner_phone": (owners["phone"].to_numpy(object), owner),
        "station_code": (stations["code"].to_numpy(object), station),
        "station_name": (stations["name"].to_numpy(object), station),
        "other_code": (index.codes, other),
    }
    # Arrow's take releases the GIL too: the text columns are built side by side.
    with ThreadPoolExecutor(settings.batch_threads, thread_name_prefix="route-text") as pool:
        texts = dict(zip(sources, pool.map(lambda source: _text(*source), sources.values()),
                         strict=True))
    rows = pd.DataFrame({
        "idx": routed, "dist": dist, "snapped": snapped, "station_m": station_m,
        "other_m": other_dist, **texts, "zone_ids": _zone_column(len(routed), zones),
    })
    per_link = {"link_deg": settings.component_link_m * 1.01 / per_degree,
                "link_m": settings.component_link_m}
    linked = _linked(conn, prepared, per_link).set_index("idx")
    comp_columns = (("comp_code", "code"), ("comp_owner", "owner"), ("comp_class", "cls"),
                    ("comp_m", "dist"))
    if linked.empty:  # the usual batch: no row names a component; pandas need not scan NaNs
        for column, _ in comp_columns:
            rows[column] = pd.Series(np.full(len(rows), np.nan, dtype=object), index=rows.index,
                                     dtype=object)
    else:
        matched = linked.reindex(rows["idx"].to_numpy().astype(float))
        for column, source in comp_columns:
            rows[column] = matched[source].to_numpy()
    clock.lap("components (PostGIS) and result rows")
    return rows[ROUTED_FIELDS]
