"""Route a hotline export (CSV / Excel, 100k+ rows) set-based in PostGIS, one pass per chunk.

Rows are checked and converted in pandas/numpy; the valid ones are COPYed (binary, in spatial
order) into a temporary table and routed by set-based joins (containing grid or nearest within
the snap distance, nearest station, other grid near the boundary, linked component, candidate
stall zones), then one query joins them with the owner of the day and is read back by COPY TO.
The database is only read: the temporary tables die with the transaction. The result has one
row per input row, in input order, with the input columns first and a `reason` for every row
that could not be routed. `batch_postgis.locate_grids` is the containment step alone.

Rules as in gis.dispatch.routing, with one difference: the nearest *other* grid is reported
only when it lies within `boundary_m` (that is all `near_boundary` needs, and it keeps the
search to a small window instead of a nearest-neighbour scan for every point); for a point
snapped from just outside, within `max_snap_m + boundary_m`. A coordinate that is not a
finite number (inf, 1e999) is refused with that reason.

The steps: gis.dispatch.batch_input reads and checks the rows, gis.dispatch.batch_postgis
routes them chunk by chunk with the statements of gis.dispatch.batch_sql; this module joins
the result columns (owner fallback, responsible unit, open stall zone) and writes the file.
"""

from __future__ import annotations

import logging
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

from gis.dispatch.batch_input import ALIASES, prepare, read_table
from gis.dispatch.batch_postgis import Clock, route_chunk
from gis.dispatch.batch_sql import ROUTED_FIELDS
from gis.dispatch.engine.batch import route_chunk_indexed
from gis.dispatch.engine.grid import EngineUnsupportedError
from gis.dispatch.routing_settings import RoutingSettings
from gis.geocoding.batch import explain_refusals, geocode_addresses
from gis.platform.exports_safety import write_csv
from gis.platform.settings import CitySettings
from gis.zones.timeslots import parse_schedule

_log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
RESULT_COLUMNS = [
    "lon_wgs84", "lat_wgs84", "grid_code", "community_code", "community_name", "snapped",
    "snap_distance_m", "owner_name", "owner_kind", "owner_phone", "owner_fallback",
    "station_code", "station_name", "station_distance_m", "component_code_linked",
    "component_distance_m", "responsible_unit", "near_boundary", "nearest_other_grid",
    "other_grid_distance_m", "stall_zone", "stall_operator", "reason",
]


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
    linked = out["component_code_linked"].notna().to_numpy()
    if linked.any():
        ctype = np.where(linked, "component", prepared["category_type"])
        ccode = np.where(linked, out["linked_class"].fillna(""), prepared["category_code"])
    else:  # the usual batch: no component linked, the categories as given
        ctype = prepared["category_type"].to_numpy()
        ccode = prepared["category_code"].to_numpy()
    unit = out["owner_name"].copy()
    # Few distinct categories: decide the rule per category, then apply it to its rows. The
    # (type, code) pairs are factorised as arrays (a groupby first made a frame of a million
    # texts); rows with a missing type or code have no rule, as groupby drops them.
    type_no, types = pd.factorize(ctype)
    code_no, codes = pd.factorize(ccode)
    pair = np.where((type_no < 0) | (code_no < 0), -1, type_no * max(len(codes), 1) + code_no)
    for rows in _rows_by_value(pair):
        t, c = types[type_no[rows[0]]], codes[code_no[rows[0]]]
        match = max((r for r in rules if r.category_type == t and c.startswith(r.code_prefix)),
                    key=lambda r: len(r.code_prefix), default=None)
        if match is None or match.rule_kind == "grid_owner":
            continue
        if match.rule_kind == "fixed":
            unit.iloc[rows] = match.responsible_unit
            continue
        fallback = match.responsible_unit or class_owners.get(c)
        comp_owner = out["comp_owner"].iloc[rows]
        unit.iloc[rows] = comp_owner.where(comp_owner.notna(), fallback or
                                           out["owner_name"].iloc[rows]).to_numpy()
    return unit


def _rows_by_value(pair: np.ndarray) -> list[np.ndarray]:
    """Row positions of each value >= 0 of `pair`: a pass per value when there are few (a
    batch's handful of categories), else one stable sort."""
    counts = np.bincount(pair[pair >= 0]) if (pair >= 0).any() else np.zeros(0, dtype=np.int64)
    present = np.flatnonzero(counts)
    if len(present) <= 16:
        return [np.flatnonzero(pair == value) for value in present]
    order = np.argsort(pair, kind="stable")
    order = order[pair[order] >= 0]
    return np.split(order, np.flatnonzero(np.diff(pair[order])) + 1)


def route_frame(conn: Connection, frame: pd.DataFrame, *, settings: RoutingSettings,
                city: CitySettings | None = None, default_crs: str = "wgs84",
                progress: Progress | None = None, now: datetime | None = None,
                timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Route every row of `frame`; the input columns plus RESULT_COLUMNS, in input order.

    `timings`, when given, receives the seconds spent in each stage (for bench/route.py).
    """
    city = city or CitySettings()
    clock = Clock(timings)
    frame = frame.reset_index(drop=True)
    frame = geocode_addresses(conn, frame, city=city, aliases=ALIASES)  # address-only rows
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
    routed: Any = pd.concat(chunks) if chunks else pd.DataFrame(columns=ROUTED_FIELDS)
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
    return explain_refusals(result)


def _route_chunk(conn: Connection, part: pd.DataFrame, *, settings: RoutingSettings,
                 city: CitySettings, timings: dict[str, float] | None) -> pd.DataFrame:
    if settings.batch_engine == "index":
        try:
            return route_chunk_indexed(conn, part, settings=settings, city=city, timings=timings)
        except EngineUnsupportedError as exc:  # e.g. overlapping grids: PostGIS decides
            _log.warning("routing index refused the grid (%s); routing in PostGIS", exc)
    return route_chunk(conn, part, settings=settings, city=city, timings=timings)


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
