"""单元网格 unit grid cells and their versioned owners (网格员).

A 100 m square lattice in the metric CRS is cut by every community; pieces under
`SLIVER_M2` join the neighbouring cell of the same community with which they share the longest
edge, so every cell is about 10,000 m² and the cells still tile the district exactly.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from gis.demo import METRIC_EPSG

CELL_M = 100.0
SLIVER_M2 = 2_000.0
OWNERS_FROM = dt.date(2025, 1, 1)
OWNER_CHANGE = dt.date(2026, 7, 1)
OWNER_CHANGE_SHARE = 0.05

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡")
GIVEN = ["芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "文", "华", "鹏", "红", "玉兰",
         "海燕", "志强", "晓东", "丽娜", "建国", "春梅", "国庆", "雪", "婷", "浩", "宇", "晨"]
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152",
                   "155", "156", "157", "158", "159", "176", "177", "178", "180", "182", "183",
                   "185", "186", "187", "188", "189", "198", "199"]


def lattice(bounds: tuple[float, float, float, float], cell_m: float = CELL_M) -> np.ndarray:
    """Square cells of `cell_m` covering `bounds`, aligned to whole multiples of it."""
    minx, miny, maxx, maxy = (np.floor(bounds[0] / cell_m) * cell_m,
                              np.floor(bounds[1] / cell_m) * cell_m,
                              np.ceil(bounds[2] / cell_m) * cell_m,
                              np.ceil(bounds[3] / cell_m) * cell_m)
    xs, ys = np.meshgrid(np.arange(minx, maxx, cell_m), np.arange(miny, maxy, cell_m))
    return shapely.box(xs.ravel(), ys.ravel(), xs.ravel() + cell_m, ys.ravel() + cell_m)


def _shared_edge(a: BaseGeometry, b: BaseGeometry) -> float:
    return float(shapely.length(shapely.intersection(a.boundary, b.boundary)))


def merge_slivers(pieces: list[Polygon], sliver_m2: float = SLIVER_M2) -> list[Polygon]:
    """Join pieces under `sliver_m2` into the touching piece sharing the longest edge."""
    pieces = list(pieces)
    while True:
        slivers = sorted((i for i, p in enumerate(pieces) if p.area < sliver_m2),
                         key=lambda i: (pieces[i].area, i))
        for i in slivers:
            best, best_len = None, 1e-6
            for j, other in enumerate(pieces):
                if j == i or not pieces[i].intersects(other):
                    continue
                length = _shared_edge(pieces[i], other)
                if length > best_len:
                    best, best_len = j, length
            if best is None:
                continue  # an isolated bit of the community: it stays a (small) cell
            merged = shapely.union(pieces[i], pieces[best])
            if not isinstance(merged, Polygon):
                continue
            pieces[best] = merged
            del pieces[i]
            break
        else:
            return pieces


def cells_of(community: BaseGeometry, cells: np.ndarray, tree: shapely.STRtree,
             sliver_m2: float = SLIVER_M2) -> list[Polygon]:
    """Lattice cells cut by one community, exploded to polygons, slivers merged."""
    hits = tree.query(community, predicate="intersects")
    cut = shapely.intersection(cells[hits], community)
    pieces = [p for p in shapely.get_parts(shapely.get_parts(cut))
              if isinstance(p, Polygon) and p.area > 1e-6]
    return merge_slivers(pieces, sliver_m2)


def number_cells(pieces: list[Polygon], top: float, cell_m: float = CELL_M) -> list[Polygon]:
    """Order cells west→east within lattice rows, rows north→south (DB11 numbering)."""
    def key(p: Polygon) -> tuple[int, float, float]:
        c = p.centroid
        return int((top - c.y) // cell_m), c.x, -c.y
    return sorted(pieces, key=key)


def build_grid_cells(communities_m: gpd.GeoDataFrame,
                     cell_m: float = CELL_M) -> gpd.GeoDataFrame:
    """Unit grid cells (metric CRS) with 15-digit codes: community code + 3-digit sequence.

    `cell_m` above CELL_M gives a coarser (lighter) grid; slivers scale with the cell area."""
    bounds = tuple(communities_m.total_bounds)
    cells = lattice(bounds, cell_m)  # type: ignore[arg-type]
    tree = shapely.STRtree(cells)
    top = float(np.ceil(bounds[3] / cell_m) * cell_m)
    sliver_m2 = SLIVER_M2 * (cell_m / CELL_M) ** 2
    codes: list[str] = []
    community_codes: list[str] = []
    geoms: list[BaseGeometry] = []
    for community in communities_m.itertuples():
        pieces = number_cells(cells_of(community.geometry, cells, tree, sliver_m2), top, cell_m)
        if len(pieces) > 999:
            raise ValueError(f"community {community.code} needs {len(pieces)} cells (> 999)")
        for seq, piece in enumerate(pieces, start=1):
            codes.append(f"{community.code}{seq:03d}")
            community_codes.append(community.code)
            geoms.append(shapely.make_valid(piece) if not piece.is_valid else piece)
    return gpd.GeoDataFrame({"code": codes, "community_code": community_codes,
                             "simulated": True}, geometry=geoms, crs=METRIC_EPSG)


def person_name(rng: np.random.Generator) -> str:
    """A simulated Chinese personal name."""
    return str(rng.choice(SURNAMES)) + str(rng.choice(GIVEN))


def mobile(rng: np.random.Generator) -> str:
    """A simulated 11-digit mainland mobile number (matches ^1[3-9]\\d{9}$)."""
    return str(rng.choice(MOBILE_PREFIXES)) + f"{int(rng.integers(0, 100_000_000)):08d}"


def build_grid_owners(grid_codes: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """One 网格员 per grid from 2025-01-01; about 5 % hand over on 2026-07-01."""
    rows = []
    for code in grid_codes:
        changes = rng.random() < OWNER_CHANGE_SHARE
        first = {"grid_code": code, "owner_name": "网格员" + person_name(rng),
                 "owner_kind": "grid_worker", "phone": mobile(rng), "valid_from": OWNERS_FROM,
                 "valid_to": OWNER_CHANGE if changes else None}
        rows.append(first)
        if changes:
            rows.append({"grid_code": code, "owner_name": "网格员" + person_name(rng),
                         "owner_kind": "grid_worker", "phone": mobile(rng),
                         "valid_from": OWNER_CHANGE, "valid_to": None})
    return pd.DataFrame(rows)
