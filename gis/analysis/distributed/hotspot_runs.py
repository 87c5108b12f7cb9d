"""Hotspots per period (month, quarter or year) and category over many months, on dask.

Map: each worker reads one month and adds its cases up per period, category and H3 cell with
gis.analysis.hotspots.cell_totals. Reduce: the partial totals of a period are summed cell by
cell (exact: counts and multiples of the repeat weight), and Gi* runs once per period and
category with hotspots_from_cells, the tasks again spread over the workers. The result equals
gis.analysis.hotspots.hotspots_from_points on all of a period's points at once
(`hotspots_single_process`, the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd

from gis.analysis.distributed.archive import Month
from gis.analysis.distributed.cluster import run_map
from gis.analysis.distributed.sources import Source, china_periods
from gis.analysis.gi_star import DEFAULT_MIN_CASES, DEFAULT_PERMUTATIONS, DEFAULT_SEED
from gis.analysis.hotspots import cell_totals, hotspots_from_cells, hotspots_from_points

if TYPE_CHECKING:
    from distributed import Client

ALL = "*"  # the category key of a run over all categories together
HotspotKey = tuple[str, str]  # (period label, category code or ALL)
_COLUMNS = ["reported_at", "category_code", "repeat", "supervised"]


def _group_keys(points: pd.DataFrame, period: str, by_category: bool) -> pd.DataFrame:
    """Points with their `period` and `category` keys."""
    category = points["category_code"].astype(str) if by_category else ALL
    return points.assign(period=china_periods(points["reported_at"], period), category=category)


def _month_totals(month: Month, *, source: Source, period: str, by_category: bool,
                  categories: Sequence[str] | None, resolution: int,
                  repeat_weight: float) -> dict[HotspotKey, pd.DataFrame]:
    """Map step: cell totals of one month's cases per (period, category)."""
    points = source.read(month, _COLUMNS, points=True)
    if categories:
        points = points[points["category_code"].isin(list(categories))]
    points = _group_keys(points, period, by_category)
    return {(str(p), str(c)): cell_totals(group, resolution=resolution,
                                          repeat_weight=repeat_weight)
            for (p, c), group in points.groupby(["period", "category"], sort=True)}


def _classify(item: tuple[HotspotKey, pd.DataFrame], *, area: Sequence[str], k: int,
              permutations: int, seed: int, min_cases: int) -> gpd.GeoDataFrame:
    """Second step: Gi* of one period and category from its summed cell totals."""
    return hotspots_from_cells(item[1], area, k=k, permutations=permutations, seed=seed,
                               min_cases=min_cases)


def distributed_hotspots(source: Source, months: Sequence[Month], area: Sequence[str], *,
                         client: Client | None, period: str = "month",
                         by_category: bool = False, categories: Sequence[str] | None = None,
                         resolution: int = 9, k: int = 1, repeat_weight: float = 0.5,
                         permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                         min_cases: int = DEFAULT_MIN_CASES,
                         ) -> dict[HotspotKey, gpd.GeoDataFrame]:
    """Hotspot cells of every (period, category) of the cases of `months`, month-parallel.

    `area` is the study area's H3 cells (gis.analysis.study_area.area_cells); `client` None
    runs the same steps in this process.
    """
    partials = run_map(client, _month_totals, list(months), source=source, period=period,
                       by_category=by_category, categories=categories,
                       resolution=resolution, repeat_weight=repeat_weight)
    summed: dict[HotspotKey, list[pd.DataFrame]] = {}
    for partial in partials:
        for key, totals in partial.items():
            summed.setdefault(key, []).append(totals)
    items = [(key, pd.concat(parts).groupby(level=0).sum())
             for key, parts in sorted(summed.items())]
    results = run_map(client, _classify, items, area=list(area), k=k,
                      permutations=permutations, seed=seed, min_cases=min_cases)
    return {key: result for (key, _), result in zip(items, results, strict=True)}


def hotspots_single_process(source: Source, months: Sequence[Month], area: Sequence[str], *,
                            period: str = "month", by_category: bool = False,
                            categories: Sequence[str] | None = None, resolution: int = 9,
                            k: int = 1, repeat_weight: float = 0.5,
                            permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                            min_cases: int = DEFAULT_MIN_CASES,
                            ) -> dict[HotspotKey, gpd.GeoDataFrame]:
    """The reference: all points of a period at once through hotspots_from_points."""
    points = pd.concat([source.read(m, _COLUMNS, points=True) for m in months],
                       ignore_index=True)
    if categories:
        points = points[points["category_code"].isin(list(categories))]
    points = _group_keys(points, period, by_category)
    return {(str(p), str(c)): hotspots_from_points(
                group, area, resolution=resolution, k=k, repeat_weight=repeat_weight,
                permutations=permutations, seed=seed, min_cases=min_cases)
            for (p, c), group in points.groupby(["period", "category"], sort=True)}
