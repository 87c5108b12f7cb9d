"""Route a hotline export (CSV / Excel, 100k+ rows) set-based in PostGIS, one pass per chunk.

Rows are checked and converted in pandas/numpy; the valid ones are COPYed (binary, in spatial
order) into a temporary table and routed by set-based joins (containing grid or nearest within
the snap distance, nearest station, other grid near the boundary, linked component, candidate
stall zones), then one query joins them with the owner of the day and is read back by COPY TO.
The database is only read: the temporary tables die with the transaction. The result has one
row per input row, in input order, with the input columns first and a `reason` for every row
that could not be routed. `locate_grids` is the containment step alone (grid code only).

Rules as in gis.dispatch.routing, with one difference: the nearest *other* grid is reported
only when it lies within `boundary_m` (that is all `near_boundary` needs, and it keeps the
search to a small window instead of a nearest-neighbour scan for every point).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from gis.dispatch.routing import (
    _KNN_CANDIDATES,
    CATEGORY_CODE,
    COMPONENT_CODE,
    COVER_CLASSES,
    STREETLIGHT_CLASS,
)
from gis.dispatch.routing_settings import RoutingSettings
from gis.geo.coords import SUPPORTED_CRS, in_china, normalise_crs, to_wgs84_many, valid_lonlat
from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.exports_safety import write_csv
from gis.platform.settings import CitySettings
from gis.zones.timeslots import parse_schedule

Progress = Callable[[str, int, int], None]
# Columns _ROUTE_SQL returns (needed to shape an empty result when no row is routable).
_ROUTED_FIELDS = ["idx", "code", "dist", "snapped", "community_code", "community_name",
                  "subdistrict_name", "owner_name", "owner_kind", "owner_phone", "station_code",
                  "station_name", "station_m", "comp_code", "comp_owner", "comp_class", "comp_m",
                  "other_code", "other_m", "zone_ids"]

# Column names hotline systems use, first match wins (case-insensitive, trimmed).
ALIASES: dict[str, tuple[str, ...]] = {
    "x": ("x", "lon", "lng", "longitude", "经度"),
    "y": ("y", "lat", "latitude", "纬度"),
    "crs": ("crs", "坐标系"),
    "at": ("at", "reported_at", "time", "datetime", "受理时间", "时间"),
    "category_type": ("category_type", "类型"),
    "category_code": ("category_code", "category", "类别", "类别编码"),
    "component_code": ("component_code", "部件编码"),
}
RESULT_COLUMNS = [
    "lon_wgs84", "lat_wgs84", "grid_code", "community_code", "community_name", "snapped",
    "snap_distance_m", "owner_name", "owner_kind", "owner_phone", "owner_fallback",
    "station_code", "station_name", "station_distance_m", "component_code_linked",
    "component_distance_m", "responsible_unit", "near_boundary", "nearest_other_grid",
    "other_grid_distance_m", "stall_zone", "stall_operator", "reason",
]

# Points arrive by binary COPY in a spatial (Morton) order, so that index pages and heap pages
# of neighbouring points are neighbours too: with the default 8 MB of temp_buffers a 1M-row
# temporary table in input order is read back and forth from disk by the polygon probes below
# (measured: 44 s instead of 3 s for the containment join at 1M points / 90k cells).
# The point geometry is a generated column: no UPDATE, so no second version of every row.
_POINTS_TABLE = """
CREATE TEMP TABLE route_points (
    idx integer NOT NULL, lon float8 NOT NULL, lat float8 NOT NULL, day date NOT NULL,
    g geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED
) ON COMMIT DROP
"""
# The few rows that name a component or a component category: only they need the link search.
_COMPONENTS_TABLE = """
CREATE TEMP TABLE route_components (
    idx integer PRIMARY KEY, lon float8 NOT NULL, lat float8 NOT NULL, comp_class char(4),
    comp_code char(16),
    g geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED
) ON COMMIT DROP
"""
_TEMP_TABLES = ("route_linked", "route_zones", "route_near", "route_stations", "route_voronoi",
                "route_hits", "route_components", "route_points")

# Containment, station and stall zone are joined from the few big side (grid cells, station
# Voronoi cells, zones) into a GiST index on the points: each polygon is probed once and
# PostGIS reuses its prepared form for all the points it holds, instead of one index probe per
# point (a GiST probe costs ~30 us here: 1M probes are 30 s, 90k probes ~3 s). The LATERAL ...
# OFFSET 0 keeps the polygons outside: at 1M points the planner otherwise turns the join round
# (measured 50 s instead of 2.5 s for the containing grid). The station Voronoi diagram is
# built in the metric CRS so "nearest" means metres, and densified to 100 m before going back
# to degrees so its edges stay true; it reaches 20 km past the stations, beyond that a KNN
# takes over. Temporary tables are never scanned by parallel workers, so these joins run on
# one core whatever max_parallel_workers_per_gather says. Each search that only a few points
# need (snapping, station KNN, components) runs on those points alone, so that the final
# query is nothing but hash joins on idx.
_PREPARE_SQL: list[tuple[str, str]] = [
    ("settings", "SET LOCAL jit = off"),  # compiling these plans costs more than it saves
    ("settings", "SET LOCAL work_mem = '128MB'"),  # the 1M-row sorts and hashes stay in memory
    ("points index", "CREATE INDEX route_points_g ON route_points USING gist (g)"),
    ("points index", "ANALYZE route_points"),
    ("containing grid", """CREATE TEMP TABLE route_hits ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, c.code, 0.0::float8 AS dist, false AS snapped
       FROM grid_cells c
       CROSS JOIN LATERAL (SELECT idx FROM route_points WHERE ST_Intersects(c.geom, g)
                           OFFSET 0) p
       ORDER BY p.idx, c.code"""),
    ("snapped grid", f"""INSERT INTO route_hits
       SELECT p.idx, k.code, k.dist, true FROM route_points p
       CROSS JOIN LATERAL (
           SELECT n.code, ST_Distance(n.geom::geography, p.g::geography) AS dist
           FROM (SELECT code, geom FROM grid_cells
                 ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) n
           ORDER BY 2, 1 LIMIT 1) k
       WHERE NOT EXISTS (SELECT FROM route_hits h WHERE h.idx = p.idx)"""),
    ("analyze", "ANALYZE route_hits"),
    ("station voronoi", """CREATE TEMP TABLE route_voronoi ON COMMIT DROP AS
       SELECT s.code, ST_Transform(ST_Segmentize(d.geom, 100), 4326) AS geom
       FROM (SELECT ST_Collect(ST_Transform(geom, :epsg)) AS pts FROM stations) a,
            LATERAL ST_Dump(ST_VoronoiPolygons(a.pts, 0,
                            ST_Expand(ST_Envelope(a.pts), 20000))) d
       JOIN stations s ON ST_Intersects(d.geom, ST_Transform(s.geom, :epsg))"""),
    # The metres to the station are computed here, once per point.
    ("nearest station", """CREATE TEMP TABLE route_stations ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, s.code,
              ST_Distance(s.geom::geography, p.g::geography) AS dist
       FROM route_voronoi v
       CROSS JOIN LATERAL (SELECT idx, g FROM route_points WHERE ST_Intersects(v.geom, g)
                           OFFSET 0) p
       JOIN stations s ON s.code = v.code ORDER BY p.idx, v.code"""),
    # Fewer than two distinct stations (no diagram) or a point beyond it: KNN in metres.
    ("station fallback", f"""INSERT INTO route_stations
       SELECT p.idx, s.code, s.dist FROM route_points p
       CROSS JOIN LATERAL (
           SELECT k.code, ST_Distance(k.geom::geography, p.g::geography) AS dist
           FROM (SELECT code, geom FROM stations
                 ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) k
           ORDER BY 2, 1 LIMIT 1) s
       WHERE NOT EXISTS (SELECT FROM route_stations r WHERE r.idx = p.idx)"""),
    # Other grids within :edge_deg (degrees of longitude, the longer of the two, so the window
    # is never too small) of points inside a grid; exact metres decide near_boundary later.
    ("near boundary", """CREATE TEMP TABLE route_near ON COMMIT DROP AS
       SELECT DISTINCT ON (idx) idx, code, dist FROM (
           SELECT p.idx, c.code, ST_Distance(c.geom::geography, p.g::geography) AS dist
           FROM grid_cells c
           CROSS JOIN LATERAL (SELECT idx, g FROM route_points
                               WHERE ST_DWithin(c.geom, g, :edge_deg) OFFSET 0) p
           JOIN route_hits h ON h.idx = p.idx AND h.code <> c.code AND NOT h.snapped) n
       ORDER BY idx, dist, code"""),
    # Candidate stall zones (opening hours are checked in Python, on few rows).
    ("stall zones", """CREATE TEMP TABLE route_zones ON COMMIT DROP AS
       SELECT p.idx, array_agg(z.id ORDER BY z.id) AS ids FROM stall_zones z
       JOIN route_points p ON ST_Covers(z.geom, p.g) WHERE z.status = 'approved'
       GROUP BY p.idx"""),
    # Named component (primary key) or, for a component category, the nearest of its class
    # (GiST); separate branches so each uses its index.
    ("components", """CREATE TEMP TABLE route_linked ON COMMIT DROP AS
       SELECT r.idx, comp.* FROM route_components r
       CROSS JOIN LATERAL (
           SELECT c.code, c.owner, c.cls, ST_Distance(c.geom::geography, r.g::geography) AS dist
           FROM (SELECT code, owner, '0118'::char(4) AS cls, geom FROM streetlights
                 WHERE r.comp_code IS NOT NULL AND code = r.comp_code
                 UNION ALL
                 SELECT code, owner, cover_class, geom FROM manhole_covers
                 WHERE r.comp_code IS NOT NULL AND code = r.comp_code
                 UNION ALL
                 SELECT code, owner, '0118'::char(4), geom FROM streetlights
                 WHERE r.comp_code IS NULL AND r.comp_class = '0118' AND in_use
                   AND ST_DWithin(geom, r.g, :link_deg)
                 UNION ALL
                 SELECT code, owner, cover_class, geom FROM manhole_covers
                 WHERE r.comp_code IS NULL AND r.comp_class IS NOT NULL
                   AND cover_class = r.comp_class AND in_use
                   AND ST_DWithin(geom, r.g, :link_deg)) c
           WHERE r.comp_code IS NOT NULL
              OR ST_DWithin(c.geom::geography, r.g::geography, :link_m)
           ORDER BY dist, c.code LIMIT 1) comp"""),
    ("analyze", "ANALYZE route_stations"),
    ("analyze", "ANALYZE route_near"),
    ("analyze", "ANALYZE route_zones"),
    ("analyze", "ANALYZE route_linked"),
]

# Statements that only fill the gaps the one before left; skipped when it found every point
# (the usual case: the anti-join alone costs ~0.5 s per 1M points).
_FILLS_GAPS_OF = {"snapped grid": "containing grid", "station fallback": "nearest station"}

# One row per routed point: hash joins on idx, plus the owner valid on the point's local day
# (ids only: names are looked up in Python from a few thousand rows, not sent 1M times).
# Read back with COPY TO: no Python object per value.
_ROUTE_SQL = """
SELECT p.idx, h.code, h.dist, h.snapped, o.id AS owner_id, rs.code AS station_code,
       rs.dist AS station_m, comp.code AS comp_code, comp.owner AS comp_owner,
       comp.cls AS comp_class, comp.dist AS comp_m, other.code AS other_code,
       other.dist AS other_m, zs.ids AS zone_ids
FROM route_points p
JOIN route_hits h ON h.idx = p.idx
LEFT JOIN grid_owners o ON o.grid_code = h.code AND o.valid_from <= p.day
    AND (o.valid_to IS NULL OR o.valid_to > p.day)
LEFT JOIN route_stations rs ON rs.idx = p.idx
LEFT JOIN route_near other ON other.idx = p.idx
LEFT JOIN route_zones zs ON zs.idx = p.idx
LEFT JOIN route_linked comp ON comp.idx = p.idx
"""
_NUMERIC_FIELDS = ("idx", "dist", "owner_id", "station_m", "comp_m", "other_m")
_CELLS_SQL = """
SELECT g.code, g.community_code, cm.name AS community_name, sd.name AS subdistrict_name
FROM grid_cells g JOIN communities cm ON cm.code = g.community_code
JOIN subdistricts sd ON sd.code = cm.subdistrict_code
"""
_OWNERS_SQL = "SELECT id AS owner_id, owner_name, owner_kind, phone AS owner_phone FROM grid_owners"
_STATIONS_SQL = "SELECT code AS station_code, name AS station_name FROM stations"


def _resolve_columns(frame: pd.DataFrame) -> dict[str, str]:
    lookup = {str(c).strip().lower(): c for c in frame.columns}
    found: dict[str, str] = {}
    for key, names in ALIASES.items():
        for name in names:
            if name in lookup:
                found[key] = lookup[name]
                break
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise InvalidInputError(
            f"no {' / '.join(missing)} column: expected one of "
            + "; ".join(", ".join(ALIASES[k]) for k in missing)
            + f"; found {', '.join(map(str, frame.columns))}")
    return found


def read_table(path: Path) -> pd.DataFrame:
    """Every cell of a CSV or .xlsx export as text (numbers are checked per row later)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            import openpyxl  # noqa: F401  (pandas needs it; checked here for a clear message)
        except ImportError:
            raise InvalidInputError(
                f"{path.name}: reading Excel needs the openpyxl package; install it or save "
                "the sheet as CSV") from None
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            return pd.read_excel(path, dtype=str, keep_default_na=False)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, InvalidFileException) as exc:
            # openpyxl's own errors name no path; pandas' and zipfile's are short.
            raise InvalidInputError(f"{path.name}: not a readable Excel workbook "
                                    f"({type(exc).__name__})") from None
    if suffix in (".csv", ".txt"):
        for encoding in ("utf-8-sig", "gb18030"):  # hotline systems on Windows export GBK
            try:
                return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            except UnicodeDecodeError:
                continue
            except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
                raise InvalidInputError(f"{path.name}: not a readable CSV table "
                                        f"({str(exc).splitlines()[0][:200]})") from None
        raise InvalidInputError(f"{path.name}: text is neither UTF-8 nor GB18030")
    raise InvalidInputError(f"{path.name}: unsupported file type {suffix!r}; use .csv or .xlsx")


def _numbers(raw: pd.Series, name: str, reason: Any) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw):  # already numbers (a DataFrame, not a file)
        values = raw.to_numpy(dtype=np.float64)
        reason[np.isnan(values) & (reason == "").to_numpy()] = "missing coordinates"
        return values
    # to_numeric skips surrounding blanks itself; only the failures need the text stripped.
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    failed = np.isnan(values)
    text_values = raw[failed].astype(str).str.strip()
    empty = np.zeros(len(raw), dtype=bool)
    empty[failed] = (text_values == "").to_numpy()
    empty &= (reason == "").to_numpy()
    reason[empty] = "missing coordinates"
    bad = failed & ~empty & (reason == "").to_numpy()
    reason[bad] = [f"{name} {v!r} is not a number" for v in text_values[bad[failed]]]
    return values


def _by_value(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`fn` applied to each distinct value once (CRS tags, categories: a handful in 1M rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = fn(pd.Series(uniques, dtype=object)).to_numpy()
    return pd.Series(mapped[codes], index=values.index, dtype=mapped.dtype)


def prepare(frame: pd.DataFrame, *, default_crs: str = "wgs84",
            settings: RoutingSettings, city: CitySettings,
            now: datetime | None = None) -> pd.DataFrame:
    """Per-row checks and WGS84 conversion: lon, lat, local time, codes and a `reason` column."""
    default_crs = normalise_crs(default_crs)
    cols = _resolve_columns(frame)
    n = len(frame)
    # Any: pandas-stubs has no overload for boolean-mask assignment of a list.
    reason: Any = pd.Series([""] * n, index=frame.index, dtype=object)

    def column(key: str, default: str = "") -> pd.Series:
        if key in cols:
            return _by_value(frame[cols[key]], lambda v: v.astype(str).str.strip())
        return pd.Series([default] * n, index=frame.index, dtype=object)

    x = _numbers(frame[cols["x"]], "x", reason)
    y = _numbers(frame[cols["y"]], "y", reason)
    crs = _by_value(column("crs"),
                    lambda v: v.str.lower().str.replace("-", "").str.replace("_", ""))
    crs = crs.where(crs != "", default_crs)
    unknown = ~crs.isin(SUPPORTED_CRS) & (reason == "")
    reason[unknown] = [f"unknown coordinate system {c!r}" for c in column("crs")[unknown]]
    in_range: Any = valid_lonlat(x, y)
    bad_range = ~in_range & np.isfinite(x) & np.isfinite(y) & (reason == "").to_numpy()
    reason[bad_range] = [f"({a}, {b}) is not lon/lat" for a, b in zip(x[bad_range],
                                                                       y[bad_range], strict=True)]
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    for tag in SUPPORTED_CRS:
        rows = ((crs == tag) & (reason == "")).to_numpy()
        if rows.any():
            lon[rows], lat[rows] = to_wgs84_many(x[rows], y[rows], tag)
    ok = (reason == "").to_numpy()
    outside_china = ok & ~np.asarray(in_china(lon, lat), dtype=bool)
    reason[outside_china] = [f"({a:.6f}, {b:.6f}) is outside China" for a, b in
                             zip(lon[outside_china], lat[outside_china], strict=True)]
    x1, y1, x2, y2 = city.bbox
    # The snap distance may reach a little past the bbox; widen it by that much.
    pad = settings.max_snap_m / 80_000.0
    outside_city = ((reason == "").to_numpy()
                    & ~((lon >= x1 - pad) & (lon <= x2 + pad) & (lat >= y1 - pad)
                        & (lat <= y2 + pad)))
    reason[outside_city] = [f"({a:.6f}, {b:.6f}) is outside {city.name}" for a, b in
                            zip(lon[outside_city], lat[outside_city], strict=True)]

    at_text = column("at")
    parsed = pd.to_datetime(at_text.where(at_text != ""), errors="coerce", format="mixed")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(settings.timezone).dt.tz_localize(None)
    bad_time = parsed.isna() & (at_text != "") & (reason == "")
    reason[bad_time] = [f"time {t!r} is not a date and time" for t in at_text[bad_time]]
    # An export without times is routed as of now (the owner of today).
    local = parsed.dt.as_unit("us").fillna(pd.Timestamp(local_now(settings, now)).as_unit("us"))

    ctype = _by_value(column("category_type", "event"),
                      lambda v: v.str.lower().replace("", "event"))
    bad_type = ~ctype.isin(["event", "component"]) & (reason == "")
    reason[bad_type] = [f"category_type {t!r} must be event or component"
                        for t in ctype[bad_type]]
    ccode = column("category_code")
    bad_code = ((ccode != "") & ~_by_value(ccode, lambda v: v.str.match(CATEGORY_CODE.pattern))
                & (reason == ""))
    reason[bad_code] = [f"category_code {c!r} must be 4 digits" for c in ccode[bad_code]]
    comp = column("component_code")
    bad_comp = ((comp != "") & ~_by_value(comp, lambda v: v.str.match(COMPONENT_CODE.pattern))
                & (reason == ""))
    reason[bad_comp] = [f"component_code {c!r} must be 16 digits" for c in comp[bad_comp]]
    link_class = ccode.where((ctype == "component")
                             & ccode.isin([STREETLIGHT_CLASS, *COVER_CLASSES]), "")
    return pd.DataFrame({
        "lon": lon, "lat": lat, "local": local, "category_type": ctype,
        "category_code": ccode, "component_code": comp, "link_class": link_class,
        "reason": reason,
    }, index=frame.index)


def local_now(settings: RoutingSettings, now: datetime | None = None) -> datetime:
    """The current (or given) time as naive city time."""
    moment = now or datetime.now(settings.tz)
    return moment.astimezone(settings.tz).replace(tzinfo=None) if moment.tzinfo else moment


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
    linked = ((prepared["link_class"] != "") | (prepared["component_code"] != "")).to_numpy()
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
    for table in _TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(_POINTS_TABLE))
    _copy_point_rows(conn, lon, lat, np.zeros(len(lon), dtype=np.int32))
    for label, statement in _PREPARE_SQL:
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
    """_ROUTE_SQL with the names of grids, communities, streets, owners and stations."""
    rows = _copy_out(conn, _ROUTE_SQL, params, _NUMERIC_FIELDS)
    rows["idx"] = rows["idx"].astype(np.int64)
    rows["snapped"] = rows["snapped"].map({"t": True, "f": False})
    ids = rows["zone_ids"].dropna()
    rows["zone_ids"] = pd.Series([[int(v) for v in z.strip("{}").split(",")] for z in ids],
                                 index=ids.index, dtype=object).reindex(rows.index)
    for sql, key in ((_CELLS_SQL, "code"), (_OWNERS_SQL, "owner_id"),
                     (_STATIONS_SQL, "station_code")):
        lookup = _copy_out(conn, sql, numeric=("owner_id",)).set_index(key)
        matched = lookup.reindex(rows[key].to_numpy())
        for column in lookup.columns:
            rows[column] = matched[column].to_numpy()
    return rows


def _route_chunk(conn: Connection, prepared: pd.DataFrame, *,
                 settings: RoutingSettings, city: CitySettings,
                 timings: dict[str, float] | None = None) -> pd.DataFrame:
    clock = _Clock(timings)
    for table in _TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(_POINTS_TABLE))
    conn.execute(text(_COMPONENTS_TABLE))
    _copy_points(conn, prepared)
    clock.lap("copy in")
    # Metres to degrees of longitude at the city's highest latitude: a window never too small.
    per_degree = 111_320.0 * max(math.cos(math.radians(max(city.bbox[1::2]))), 0.01)
    params = {"epsg": city.metric_epsg, "edge_deg": settings.boundary_m * 1.01 / per_degree,
              "link_deg": settings.component_link_m * 1.01 / per_degree,
              "link_m": settings.component_link_m}
    found: dict[str, int] = {}
    for label, statement in _PREPARE_SQL:
        if label in _FILLS_GAPS_OF and found.get(_FILLS_GAPS_OF[label]) == len(prepared):
            continue
        found[label] = conn.execute(text(statement), params).rowcount
        clock.lap(f"sql: {label}")
    rows = _read_routed(conn, params)
    clock.lap("sql: main query + COPY out")
    for table in _TEMP_TABLES:
        conn.execute(text(f"DROP TABLE {table}"))
    return rows


class _Clock:
    """Adds the seconds since the last lap to `timings[label]` (nothing when timings is None)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, label: str) -> None:
        now = time.perf_counter()
        if self.timings is not None and label:
            self.timings[label] = self.timings.get(label, 0.0) + now - self.last
        self.last = now


def _zones(conn: Connection) -> dict[int, Any]:
    return {r.id: (r.name, r.operator, parse_schedule(r.time_slots, r.seasons)) for r in
            conn.execute(text("SELECT id, name, operator, time_slots, seasons FROM stall_zones "
                              "WHERE status = 'approved'"))}


def _rules(conn: Connection) -> tuple[list[Any], dict[str, str]]:
    rules = conn.execute(text("SELECT category_type, code_prefix, rule_kind, responsible_unit "
                              "FROM responsibility_rules")).all()
    owners: dict[str, str] = dict(conn.execute(text(
        "SELECT code, default_owner FROM component_classes WHERE default_owner IS NOT NULL"
    )).all())
    return list(rules), owners


def _responsible(out: pd.DataFrame, prepared: pd.DataFrame, conn: Connection) -> pd.Series:
    rules, class_owners = _rules(conn)
    linked = out["component_code_linked"].notna()
    ctype = np.where(linked, "component", prepared["category_type"])
    ccode = np.where(linked, out["linked_class"].fillna(""), prepared["category_code"])
    unit = out["owner_name"].copy()
    # Few distinct categories: decide the rule per category, then apply it to its rows.
    groups: Any = pd.DataFrame({"t": ctype, "c": ccode}, index=out.index).groupby(["t", "c"])
    for (t, c), index in groups.groups.items():
        match = max((r for r in rules if r.category_type == t and c.startswith(r.code_prefix)),
                    key=lambda r: len(r.code_prefix), default=None)
        if match is None or match.rule_kind == "grid_owner":
            continue
        if match.rule_kind == "fixed":
            unit[index] = match.responsible_unit
            continue
        fallback = match.responsible_unit or class_owners.get(c)
        comp_owner = out.loc[index, "comp_owner"]
        unit[index] = comp_owner.where(comp_owner.notna(), fallback or out.loc[index,
                                                                              "owner_name"])
    return unit


def route_frame(conn: Connection, frame: pd.DataFrame, *, settings: RoutingSettings,
                city: CitySettings | None = None, default_crs: str = "wgs84",
                progress: Progress | None = None, now: datetime | None = None,
                timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Route every row of `frame`; the input columns plus RESULT_COLUMNS, in input order.

    `timings`, when given, receives the seconds spent in each stage (for bench/route.py).
    """
    city = city or CitySettings()
    clock = _Clock(timings)
    frame = frame.reset_index(drop=True)
    prepared = prepare(frame, default_crs=default_crs, settings=settings, city=city, now=now)
    clock.lap("checks and conversion")
    valid = prepared.index[prepared["reason"] == ""]
    total = len(valid)
    chunks = []
    if progress:
        progress("routing", 0, total)
    for start in range(0, total, settings.batch_chunk_rows):
        part = prepared.loc[valid[start:start + settings.batch_chunk_rows]]
        rows = _route_chunk(conn, part, settings=settings, city=city, timings=timings)
        rows.index = part.index[rows["idx"].to_numpy()]
        chunks.append(rows)
        if progress:
            progress("routing", min(start + settings.batch_chunk_rows, total), total)
    clock.lap("")
    routed: Any = pd.concat(chunks) if chunks else pd.DataFrame(columns=_ROUTED_FIELDS)
    routed = routed.reindex(prepared.index)
    out = pd.DataFrame(index=prepared.index)
    out["lon_wgs84"] = prepared["lon"].round(8)
    out["lat_wgs84"] = prepared["lat"].round(8)
    out["grid_code"] = routed["code"]
    out["community_code"] = routed["community_code"]
    out["community_name"] = routed["community_name"]
    out["snapped"] = routed["snapped"]
    out["snap_distance_m"] = routed["dist"].astype(float).round(2)
    fallback = routed["code"].notna() & routed["owner_name"].isna()
    out["owner_name"] = routed["owner_name"].where(~fallback,
                                                   routed["subdistrict_name"].astype(str)
                                                   + "办事处")
    out["owner_kind"] = routed["owner_kind"].where(~fallback, "local_government")
    out["owner_phone"] = routed["owner_phone"]
    out["owner_fallback"] = fallback.where(routed["code"].notna())
    out["station_code"] = routed["station_code"]
    out["station_name"] = routed["station_name"]
    out["station_distance_m"] = routed["station_m"].astype(float).round(2)
    out["component_code_linked"] = routed["comp_code"]
    out["linked_class"] = routed["comp_class"]
    out["comp_owner"] = routed["comp_owner"]
    out["component_distance_m"] = routed["comp_m"].astype(float).round(2)
    out["nearest_other_grid"] = routed["other_code"]
    out["other_grid_distance_m"] = routed["other_m"].astype(float).round(2)
    out["near_boundary"] = (out["other_grid_distance_m"] <= settings.boundary_m).where(
        routed["code"].notna())
    out["stall_zone"], out["stall_operator"] = _open_zones(conn, routed, prepared)
    too_far = routed["code"].notna() & routed["snapped"].fillna(False).astype(bool) & (
        routed["dist"].astype(float) > settings.max_snap_m)
    reason: Any = prepared["reason"].copy()
    reason[too_far] = [f"{d:.0f} m from the nearest grid of {city.name} (more than "
                       f"{settings.max_snap_m:g} m)" for d in routed.loc[too_far, "dist"]]
    if too_far.any():
        cleared = [c for c in out.columns if c not in ("lon_wgs84", "lat_wgs84")]
        out[cleared] = out[cleared].astype(object)
        out.loc[too_far, cleared] = None
    out["responsible_unit"] = _responsible(out, prepared, conn).where(out["grid_code"].notna())
    out["reason"] = reason
    result = frame.copy()
    for column in RESULT_COLUMNS:
        result[column] = out[column]
    clock.lap("result columns, owners, stall hours")
    return result


def _open_zones(conn: Connection, routed: pd.DataFrame,
                prepared: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    names: Any = pd.Series([None] * len(routed), index=routed.index, dtype=object)
    operators = names.copy()
    candidates = routed["zone_ids"].dropna() if "zone_ids" in routed else pd.Series([])
    if candidates.empty:
        return names, operators
    zones = _zones(conn)
    for index, ids in candidates.items():
        stamp: Any = prepared.at[index, "local"]
        local: datetime = stamp.to_pydatetime()
        for zone_id in ids:
            name, operator, schedule = zones[zone_id]
            if schedule.is_open(local):
                names[index], operators[index] = name, operator
                break
    return names, operators


def route_file(bind: Engine | Connection, path: Path | str, *, settings: RoutingSettings,
               city: CitySettings | None = None, out: Path | str | None = None,
               default_crs: str = "wgs84", progress: Progress | None = None) -> Path:
    """Route a CSV/.xlsx export and write `<name>.routed.csv`; returns the result's path."""
    path = Path(path)
    target = Path(out) if out else path.with_name(f"{path.stem}.routed.csv")
    frame = read_table(path)
    if progress:
        progress("read", len(frame), len(frame))
    if isinstance(bind, Engine):
        with bind.connect() as conn, conn.begin():
            result = route_frame(conn, frame, settings=settings, city=city,
                                 default_crs=default_crs, progress=progress)
    else:
        result = route_frame(bind, frame, settings=settings, city=city,
                             default_crs=default_crs, progress=progress)
    write_result(result, target)
    return target


def write_result(result: pd.DataFrame, target: Path) -> None:
    """Write the result CSV atomically: a failed run leaves no half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # utf-8-sig so that Excel on a dispatcher's desk shows the Chinese names; text cells
        # that Excel would run as formulas (an uploaded cell, a zone operator) are quoted.
        write_csv(result, tmp, encoding="utf-8-sig")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
