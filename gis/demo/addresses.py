"""Simulated addresses for the demo city: doorplates along its roads, compounds with buildings.

Doorplates follow the usual rule (GB/T 23705): along each road, numbers increase in one
direction (west→east on east–west roads, north→south on north–south ones), odd numbers on the
left, even on the right, one pair every `PLATE_SPACING_M`; a share is left out so that numbers
between known plates must be interpolated, and a few carry a 甲 sibling. Each community gets a
residential compound (小区) of 2×3 numbered buildings away from the roads. Roads named
"模拟…" get the alias without the prefix, as an operator would say it. All rows are simulated.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

PLATE_SPACING_M = 40.0
PLATE_SETBACK_M = 6.0  # from the road's edge to the front door
DROP_SHARE = 0.15
JIA_SHARE = 0.03
COMPOUND_HALF_M = 55.0
COMPOUND_ROAD_CLEARANCE_M = 30.0
COMPOUND_SUFFIXES = ("一区", "小区", "花园", "新村", "家园", "二区")
SIMULATED_PREFIX = "模拟"


def _road_plates(name: str, segments: gpd.GeoDataFrame) -> list[tuple[Any, ...]]:
    """(road, number, suffix, x, y) for one road: odd left, even right, increasing along it."""
    minx, miny, maxx, maxy = shapely.total_bounds(segments.geometry.values)
    east_west = (maxx - minx) >= (maxy - miny)
    axis = np.array([1.0, 0.0]) if east_west else np.array([0.0, -1.0])
    origin = np.array([minx, maxy])
    plates: dict[int, tuple[Any, ...]] = {}
    for line, width in zip(segments.geometry.values, segments["width_m"], strict=True):
        length = line.length
        distances = np.arange(PLATE_SPACING_M / 2, length, PLATE_SPACING_M / 2)
        if len(distances) == 0:
            continue
        on = shapely.get_coordinates(shapely.line_interpolate_point(line, distances))
        ahead = shapely.get_coordinates(shapely.line_interpolate_point(
            line, np.minimum(distances + 1.0, length)))
        behind = shapely.get_coordinates(shapely.line_interpolate_point(
            line, np.maximum(distances - 1.0, 0.0)))
        tangent = ahead - behind
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        tangent *= np.sign(tangent @ axis)[:, None] + (tangent @ axis == 0)[:, None]
        left = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        along = (on - origin) @ axis
        setback = width / 2 + PLATE_SETBACK_M
        for (x, y), (lx, ly), t in zip(on, left, along, strict=True):
            k = int(t // PLATE_SPACING_M)
            odd = 2 * k + 1 if int(t // (PLATE_SPACING_M / 2)) % 2 == 0 else None
            if odd is not None:
                plates.setdefault(odd, (name, odd, "", x + lx * setback, y + ly * setback))
            else:
                even = 2 * k + 2
                plates.setdefault(even, (name, even, "", x - lx * setback, y - ly * setback))
    return [plates[n] for n in sorted(plates)]


def build_doorplates(roads_m: gpd.GeoDataFrame, outline_m: BaseGeometry,
                     rng: np.random.Generator) -> pd.DataFrame:
    """Road doorplates (road_name, number, suffix, x, y in the metric CRS)."""
    rows: list[tuple[Any, ...]] = []
    for name, segments in roads_m.groupby("name", sort=True):
        rows.extend(_road_plates(str(name), segments))
    frame = pd.DataFrame(rows, columns=["road_name", "number", "suffix", "x", "y"])
    keep = rng.random(len(frame)) >= DROP_SHARE
    frame = frame[keep].reset_index(drop=True)
    # 甲 plates: a door added later between two numbers, a few metres along.
    jia = frame[(frame["number"] % 2 == 1) & (rng.random(len(frame)) < JIA_SHARE)].copy()
    jia["suffix"] = "甲"
    jia["x"] += 5.0
    frame = pd.concat([frame, jia], ignore_index=True)
    inside = shapely.contains_xy(outline_m.buffer(-2.0), frame["x"], frame["y"])
    return frame[inside].reset_index(drop=True)


def build_compounds(communities_m: gpd.GeoDataFrame, roads_m: gpd.GeoDataFrame,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One compound per community where one fits: (compounds, buildings) frames."""
    from gis.demo.divisions import short_name

    tree = shapely.STRtree(roads_m.geometry.values)
    compounds, buildings = [], []
    for code, name, shape in zip(communities_m["code"], communities_m["name"],
                                 communities_m.geometry.values, strict=True):
        room = shape.buffer(-COMPOUND_HALF_M - 5.0)
        if room.is_empty:
            continue
        minx, miny, maxx, maxy = room.bounds
        for _ in range(30):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if not shapely.contains_xy(room, x, y):
                continue
            square = box(x - COMPOUND_HALF_M, y - COMPOUND_HALF_M, x + COMPOUND_HALF_M,
                         y + COMPOUND_HALF_M)
            near = tree.query(square.buffer(COMPOUND_ROAD_CLEARANCE_M), predicate="intersects")
            if len(near) == 0:
                break
        else:
            continue
        compound = f"{short_name(name)}{COMPOUND_SUFFIXES[int(rng.integers(0, 6))]}"
        compounds.append({"name": compound, "community_code": code, "geometry": square})
        number = 1
        for row in (1, -1):  # north row first, then south; west to east
            for col in (-1, 0, 1):
                buildings.append({"compound": compound, "building": str(number),
                                  "x": x + col * 30.0, "y": y + row * 20.0})
                number += 1
    return pd.DataFrame(compounds), pd.DataFrame(buildings)


def road_aliases(road_names: list[str]) -> list[tuple[str, str]]:
    """(road, alias) for demo roads: the name an operator says, without 模拟."""
    return [(n, n[len(SIMULATED_PREFIX):]) for n in sorted(set(road_names))
            if n.startswith(SIMULATED_PREFIX) and len(n) > len(SIMULATED_PREFIX) + 1]


def write_demo_addresses(conn: Connection, *, roads_m: gpd.GeoDataFrame,
                         communities_m: gpd.GeoDataFrame, outline_m: BaseGeometry,
                         metric_epsg: int, seed: int) -> dict[str, int]:
    """Insert the demo's aliases, compounds and doorplates; rows written per table."""
    rng = np.random.default_rng([seed, 101])
    aliases = road_aliases(list(roads_m["name"]))
    if aliases:
        conn.execute(text("""
            INSERT INTO road_aliases (road_name, alias, simulated)
            SELECT r, a, true FROM unnest(CAST(:roads AS text[]), CAST(:aliases AS text[])) u(r, a)
            ON CONFLICT DO NOTHING
        """), {"roads": [r for r, _ in aliases], "aliases": [a for _, a in aliases]})
    plates = build_doorplates(roads_m, outline_m, rng)
    compounds, buildings = build_compounds(communities_m, roads_m, rng)
    ids: dict[str, int] = {}
    if len(compounds):
        rows = conn.execute(text(f"""
            INSERT INTO compounds (name, community_code, simulated, geom)
            SELECT n, c, true, ST_Transform(ST_GeomFromText(w, {metric_epsg}), 4326)
            FROM unnest(CAST(:names AS text[]), CAST(:codes AS text[]),
                        CAST(:wkts AS text[])) u(n, c, w)
            RETURNING id, name
        """), {"names": list(compounds["name"]), "codes": list(compounds["community_code"]),
               "wkts": [g.wkt for g in compounds["geometry"]]}).all()
        ids = {r.name: r.id for r in rows}
    conn.execute(text(f"""
        INSERT INTO doorplates (road_name, number, suffix, source, simulated, geom)
        SELECT r, n, s, 'simulated', true,
               ST_Transform(ST_SetSRID(ST_MakePoint(x, y), {metric_epsg}), 4326)
        FROM unnest(CAST(:roads AS text[]), CAST(:numbers AS int[]), CAST(:suffixes AS text[]),
                    CAST(:xs AS float8[]), CAST(:ys AS float8[])) u(r, n, s, x, y)
    """), {"roads": list(plates["road_name"]), "numbers": [int(n) for n in plates["number"]],
           "suffixes": list(plates["suffix"]), "xs": list(plates["x"]),
           "ys": list(plates["y"])})
    if len(buildings):
        conn.execute(text(f"""
            INSERT INTO doorplates (compound_id, building, source, simulated, geom)
            SELECT c, b, 'simulated', true,
                   ST_Transform(ST_SetSRID(ST_MakePoint(x, y), {metric_epsg}), 4326)
            FROM unnest(CAST(:ids AS int[]), CAST(:buildings AS text[]),
                        CAST(:xs AS float8[]), CAST(:ys AS float8[])) u(c, b, x, y)
        """), {"ids": [ids[c] for c in buildings["compound"]],
               "buildings": list(buildings["building"]), "xs": list(buildings["x"]),
               "ys": list(buildings["y"])})
    return {"road_aliases": len(aliases), "compounds": len(compounds),
            "doorplates": len(plates) + len(buildings)}

