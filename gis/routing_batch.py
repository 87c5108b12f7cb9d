"""Route a hotline export (CSV / Excel, 100k+ rows) in one set-based PostGIS query per chunk.

Rows are checked and converted in pandas/numpy; the valid ones are COPYed into a temporary table
and routed by one LATERAL join (containing grid or nearest within the snap distance, owner of
the day, nearest station, linked component, candidate stall zones). The database is only read:
the temporary table dies with the transaction. The result has one row per input row, in input
order, with the input columns first and a `reason` for every row that could not be routed.

The rules are those of gis.routing, with one difference: the nearest *other* grid is reported
only when it lies within `boundary_m` (that is all `near_boundary` needs, and it keeps the
search to a small window instead of a nearest-neighbour scan for every point).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from gis.coords import SUPPORTED_CRS, in_china, normalise_crs, to_wgs84_many, valid_lonlat
from gis.errors import InvalidInputError, NotFoundError
from gis.routing import (
    _KNN_CANDIDATES,
    CATEGORY_CODE,
    COMPONENT_CODE,
    COVER_CLASSES,
    STREETLIGHT_CLASS,
)
from gis.routing_settings import RoutingSettings
from gis.settings import CitySettings
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

_POINTS_TABLE = """
CREATE TEMP TABLE route_points (
    idx bigint PRIMARY KEY, lon float8 NOT NULL, lat float8 NOT NULL, day date NOT NULL,
    comp_class char(4), comp_code char(16), g geometry(Point, 4326)
) ON COMMIT DROP
"""

# Containment and nearest station are joined from the few big side (grid cells, station
# Voronoi cells) into a GiST index on the points: each polygon is probed once and PostGIS
# reuses its prepared form for all the points it holds, ~10x faster than one index probe per
# point. The station Voronoi diagram is built in the metric CRS so "nearest" means metres, and
# densified to 100 m before going back to degrees so its edges stay true; it reaches 20 km past
# the stations, beyond that the per-point KNN takes over.
_PREPARE_SQL = [
    "SET LOCAL jit = off",  # compiling these plans costs more than it saves
    "UPDATE route_points SET g = ST_SetSRID(ST_MakePoint(lon, lat), 4326)",
    "CREATE INDEX route_points_g ON route_points USING gist (g)",
    "ANALYZE route_points",
    """CREATE TEMP TABLE route_hits ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, c.code FROM grid_cells c
       JOIN route_points p ON ST_Intersects(c.geom, p.g) ORDER BY p.idx, c.code""",
    """CREATE TEMP TABLE route_voronoi ON COMMIT DROP AS
       SELECT s.code, ST_Transform(ST_Segmentize(d.geom, 100), 4326) AS geom
       FROM (SELECT ST_Collect(ST_Transform(geom, :epsg)) AS pts FROM stations) a,
            LATERAL ST_Dump(ST_VoronoiPolygons(a.pts, 0,
                            ST_Expand(ST_Envelope(a.pts), 20000))) d
       JOIN stations s ON ST_Intersects(d.geom, ST_Transform(s.geom, :epsg))""",
    """CREATE TEMP TABLE route_stations ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, v.code FROM route_voronoi v
       JOIN route_points p ON ST_Intersects(v.geom, p.g) ORDER BY p.idx, v.code""",
    "ANALYZE route_hits",
    # Other grids within :edge_deg (degrees of longitude, the longer of the two, so the window
    # is never too small) of points inside a grid; exact metres decide near_boundary later.
    """CREATE TEMP TABLE route_near ON COMMIT DROP AS
       SELECT DISTINCT ON (idx) idx, code, dist FROM (
           SELECT p.idx, c.code, ST_Distance(c.geom::geography, p.g::geography) AS dist
           FROM grid_cells c JOIN route_points p ON ST_DWithin(c.geom, p.g, :edge_deg)
           JOIN route_hits h ON h.idx = p.idx AND h.code <> c.code) n
       ORDER BY idx, dist, code""",
    "ANALYZE route_stations",
    "ANALYZE route_near",
]

# One row per routed point. The nearest-grid search runs only for points in no grid, the
# station KNN only where the Voronoi join found nothing (fewer than two distinct stations),
# and other grids are only looked for within boundary_m (so nearest_other_grid is reported
# only for points near a boundary).
_ROUTE_SQL = f"""
SELECT p.idx, cell.code, cell.dist, cell.snapped, g.community_code, cm.name AS community_name,
       sd.name AS subdistrict_name, o.owner_name, o.owner_kind, o.phone AS owner_phone,
       st.code AS station_code, st.name AS station_name, st.dist AS station_m,
       comp.code AS comp_code, comp.owner AS comp_owner, comp.cls AS comp_class,
       comp.dist AS comp_m, other.code AS other_code, other.dist AS other_m, zs.ids AS zone_ids
FROM route_points p
LEFT JOIN route_hits h ON h.idx = p.idx
LEFT JOIN route_stations rs ON rs.idx = p.idx
CROSS JOIN LATERAL (
    SELECT h.code, 0.0::float8 AS dist, false AS snapped WHERE h.code IS NOT NULL
    UNION ALL
    (SELECT k.code, ST_Distance(k.geom::geography, p.g::geography), true
     FROM (SELECT code, geom FROM grid_cells WHERE h.code IS NULL
           ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) k
     ORDER BY 2, 1 LIMIT 1)
    LIMIT 1) cell
JOIN grid_cells g ON g.code = cell.code
JOIN communities cm ON cm.code = g.community_code
JOIN subdistricts sd ON sd.code = cm.subdistrict_code
LEFT JOIN grid_owners o ON o.grid_code = cell.code AND o.valid_from <= p.day
    AND (o.valid_to IS NULL OR o.valid_to > p.day)
LEFT JOIN LATERAL (
    SELECT s.code, s.name, ST_Distance(s.geom::geography, p.g::geography) AS dist
    FROM stations s WHERE s.code = rs.code
    UNION ALL
    (SELECT s.code, s.name, ST_Distance(s.geom::geography, p.g::geography) AS dist
     FROM (SELECT code, name, geom FROM stations WHERE rs.code IS NULL
           ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) s
     ORDER BY dist, s.code LIMIT 1)
    LIMIT 1) st ON true
LEFT JOIN route_near other ON other.idx = p.idx
-- Named component (primary key) or, for a component category, the nearest of its class (GiST);
-- separate branches so each uses its index, gated so other rows skip both.
LEFT JOIN LATERAL (
    SELECT c.code, c.owner, c.cls, ST_Distance(c.geom::geography, p.g::geography) AS dist
    FROM (SELECT code, owner, '0118'::char(4) AS cls, geom FROM streetlights
          WHERE p.comp_code IS NOT NULL AND code = p.comp_code
          UNION ALL
          SELECT code, owner, cover_class, geom FROM manhole_covers
          WHERE p.comp_code IS NOT NULL AND code = p.comp_code
          UNION ALL
          SELECT code, owner, '0118'::char(4), geom FROM streetlights
          WHERE p.comp_code IS NULL AND p.comp_class = '0118' AND in_use
            AND ST_DWithin(geom, p.g, :link_deg)
          UNION ALL
          SELECT code, owner, cover_class, geom FROM manhole_covers
          WHERE p.comp_code IS NULL AND p.comp_class IS NOT NULL AND cover_class = p.comp_class
            AND in_use AND ST_DWithin(geom, p.g, :link_deg)) c
    WHERE p.comp_code IS NOT NULL
       OR ST_DWithin(c.geom::geography, p.g::geography, :link_m)
    ORDER BY dist, c.code LIMIT 1) comp ON true
LEFT JOIN LATERAL (
    SELECT array_agg(z.id ORDER BY z.id) AS ids FROM stall_zones z
    WHERE z.status = 'approved' AND ST_Covers(z.geom, p.g)) zs ON true
"""


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
        return pd.read_excel(path, dtype=str, keep_default_na=False)
    if suffix in (".csv", ".txt"):
        for encoding in ("utf-8-sig", "gb18030"):  # hotline systems on Windows export GBK
            try:
                return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            except UnicodeDecodeError:
                continue
        raise InvalidInputError(f"{path.name}: text is neither UTF-8 nor GB18030")
    raise InvalidInputError(f"{path.name}: unsupported file type {suffix!r}; use .csv or .xlsx")


def _numbers(raw: pd.Series, name: str, reason: Any) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw):  # already numbers (a DataFrame, not a file)
        values = raw.to_numpy(dtype=np.float64)
        reason[np.isnan(values) & (reason == "").to_numpy()] = "missing coordinates"
        return values
    text_values = raw.astype(str).str.strip()
    values = pd.to_numeric(text_values, errors="coerce").to_numpy(dtype=np.float64)
    empty = (text_values == "") & (reason == "")
    reason[empty.to_numpy()] = "missing coordinates"
    bad = np.isnan(values) & ~empty.to_numpy() & (reason == "").to_numpy()
    reason[bad] = [f"{name} {v!r} is not a number" for v in text_values[bad]]
    return values


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
            return frame[cols[key]].astype(str).str.strip()
        return pd.Series([default] * n, index=frame.index, dtype=object)

    x = _numbers(frame[cols["x"]], "x", reason)
    y = _numbers(frame[cols["y"]], "y", reason)
    crs = column("crs").str.lower().str.replace("-", "").str.replace("_", "")
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

    ctype = column("category_type", "event").str.lower().replace("", "event")
    bad_type = ~ctype.isin(["event", "component"]) & (reason == "")
    reason[bad_type] = [f"category_type {t!r} must be event or component"
                        for t in ctype[bad_type]]
    ccode = column("category_code")
    bad_code = (ccode != "") & ~ccode.str.match(CATEGORY_CODE.pattern) & (reason == "")
    reason[bad_code] = [f"category_code {c!r} must be 4 digits" for c in ccode[bad_code]]
    comp = column("component_code")
    bad_comp = (comp != "") & ~comp.str.match(COMPONENT_CODE.pattern) & (reason == "")
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


def _copy_points(conn: Connection, prepared: pd.DataFrame) -> None:
    buffer = io.StringIO()
    pd.DataFrame({
        "idx": np.arange(len(prepared)), "lon": prepared["lon"].to_numpy(),
        "lat": prepared["lat"].to_numpy(), "day": prepared["local"].dt.date,
        "comp_class": prepared["link_class"].replace("", None),
        "comp_code": prepared["component_code"].replace("", None), "g": None,
    }).to_csv(buffer, index=False, header=False, float_format="%.10f")
    buffer.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()
    try:
        cursor.copy_expert("COPY route_points FROM STDIN (FORMAT csv)", buffer)
    finally:
        cursor.close()


def _route_chunk(conn: Connection, prepared: pd.DataFrame, *,
                 settings: RoutingSettings, city: CitySettings) -> pd.DataFrame:
    for table in ("route_near", "route_stations", "route_voronoi", "route_hits",
                  "route_points"):
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(text(_POINTS_TABLE))
    _copy_points(conn, prepared)
    # Metres to degrees of longitude at the city's highest latitude: a window never too small.
    per_degree = 111_320.0 * max(math.cos(math.radians(max(city.bbox[1::2]))), 0.01)
    params = {"epsg": city.metric_epsg, "edge_deg": settings.boundary_m * 1.01 / per_degree,
              "link_deg": settings.component_link_m * 1.01 / per_degree,
              "link_m": settings.component_link_m}
    for statement in _PREPARE_SQL:
        conn.execute(text(statement), params)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    # Straight from the driver: SQLAlchemy Row objects cost more than the query at 1M rows.
    cursor = raw.cursor()
    cursor.execute(text(_ROUTE_SQL).compile(dialect=conn.dialect).string, params)
    rows = pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    cursor.close()
    for table in ("route_near", "route_stations", "route_voronoi", "route_hits",
                  "route_points"):
        conn.execute(text(f"DROP TABLE {table}"))
    return rows


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
                progress: Progress | None = None, now: datetime | None = None) -> pd.DataFrame:
    """Route every row of `frame`; the input columns plus RESULT_COLUMNS, in input order."""
    city = city or CitySettings()
    frame = frame.reset_index(drop=True)
    prepared = prepare(frame, default_crs=default_crs, settings=settings, city=city, now=now)
    valid = prepared.index[prepared["reason"] == ""]
    total = len(valid)
    chunks = []
    if progress:
        progress("routing", 0, total)
    for start in range(0, total, settings.batch_chunk_rows):
        part = prepared.loc[valid[start:start + settings.batch_chunk_rows]]
        rows = _route_chunk(conn, part, settings=settings, city=city)
        rows.index = part.index[rows["idx"].to_numpy()]
        chunks.append(rows)
        if progress:
            progress("routing", min(start + settings.batch_chunk_rows, total), total)
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
        # utf-8-sig so that Excel on a dispatcher's desk shows the Chinese names.
        result.to_csv(tmp, index=False, encoding="utf-8-sig")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
