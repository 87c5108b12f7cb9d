"""Simulated street network: a jittered lattice of main and minor roads, cut at crossings.

Lines run north–south and east–west every `MINOR_SPACING_M` (every second one a main road),
with their vertices nudged sideways so streets are not ruler-straight. They are clipped to the
district shrunk by `EDGE_MARGIN_M` (so lights and covers set beside a road stay inside it),
noded at every crossing, and a share of minor segments is dropped to leave T-junctions and
larger blocks, as real street networks have.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from gis.demo import METRIC_EPSG

MINOR_SPACING_M = 250.0
VERTEX_STEP_M = 125.0
JITTER_M = 12.0
EDGE_MARGIN_M = 25.0  # > half the widest road, so roadside points stay in the district
MIN_SEGMENT_M = 20.0
DROP_MINOR_SHARE = 0.2
DEMONSTRATION_MAINS = 3
ROADS_COLUMNS = ["name", "street_class", "width_m", "simulated", "geometry"]

_NUMERALS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1..99 in Chinese numerals: 1 -> 一, 12 -> 十二, 30 -> 三十."""
    if n < 10:
        return _NUMERALS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _NUMERALS[tens]) + "十" + (_NUMERALS[ones] if ones else "")


def _source_lines(bounds: np.ndarray, rng: np.random.Generator,
                  spacing_m: float = MINOR_SPACING_M) -> list[dict[str, object]]:
    """The lattice lines before clipping, with name, class and width."""
    minx, miny, maxx, maxy = bounds
    lines: list[dict[str, object]] = []
    for axis, (lo, hi, across_lo, across_hi) in enumerate(
            [(minx, maxx, miny, maxy), (maxy, miny, minx, maxx)]):
        # axis 0: north–south lines numbered west→east (经); axis 1: east–west, north→south (纬).
        step = spacing_m if hi > lo else -spacing_m
        positions = np.arange(lo + step / 2, hi, step)
        along = np.arange(across_lo - VERTEX_STEP_M, across_hi + 2 * VERTEX_STEP_M,
                          VERTEX_STEP_M)
        main_ranks = [k for k in range(len(positions)) if k % 2 == 0]
        middle = len(main_ranks) // 2
        demo = set(main_ranks[middle - 1: middle - 1 + DEMONSTRATION_MAINS - axis])
        for k, pos in enumerate(positions):
            main = k % 2 == 0
            offset = pos + rng.normal(0, JITTER_M, len(along)).clip(-2 * JITTER_M, 2 * JITTER_M)
            xy = np.column_stack([offset, along] if axis == 0 else [along, offset])
            if main:
                street_class = ("demonstration" if k in demo
                                else str(rng.choice(["managed", "commercial"], p=[0.65, 0.35])))
                width = float(rng.integers(24, 41))
            else:
                street_class = str(rng.choice(["managed", "commercial", "other"],
                                              p=[0.6, 0.2, 0.2]))
                width = float(rng.integers(8, 21))
            name = f"模拟{'经纬'[axis]}{chinese_number(k + 1)}{'大街' if main else '路'}"
            lines.append({"name": name, "street_class": street_class, "width_m": width,
                          "main": main, "geometry": LineString(xy)})
    return lines


def build_roads(outline_m: BaseGeometry, rng: np.random.Generator,
                spacing_m: float = MINOR_SPACING_M) -> gpd.GeoDataFrame:
    """Road segments (LineString, metric CRS) between crossings, named and classed.

    `spacing_m` is the distance between lattice lines (every other one a main road)."""
    source = gpd.GeoDataFrame(_source_lines(np.asarray(outline_m.bounds), rng, spacing_m),
                              geometry="geometry", crs=METRIC_EPSG)
    inner = outline_m.buffer(-EDGE_MARGIN_M)
    clipped = shapely.intersection(source.geometry.values, inner)
    noded = shapely.get_parts(shapely.union_all(clipped))
    noded = noded[shapely.get_type_id(noded) == 1]  # LineString only
    noded = noded[shapely.length(noded) >= MIN_SEGMENT_M]
    # A segment belongs to the lattice line it runs along: the one nearest its midpoint.
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    _, nearest = shapely.STRtree(source.geometry.values).query_nearest(
        mids, return_distance=False, all_matches=False)
    segments = source.iloc[nearest].reset_index(drop=True).set_geometry(noded)
    keep = ~segments["main"].to_numpy() & (rng.random(len(segments)) < DROP_MINOR_SHARE)
    segments = segments[~keep]
    # A stable order (by lattice line, then along it) makes ids and serials reproducible.
    lines = source.geometry.values[nearest[~keep]]
    segments = segments.assign(_line=nearest[~keep],
                               _along=shapely.line_locate_point(lines, mids[~keep]))
    segments = segments.sort_values(["_line", "_along"], kind="stable")
    segments["simulated"] = True
    return segments[ROADS_COLUMNS].reset_index(drop=True)
