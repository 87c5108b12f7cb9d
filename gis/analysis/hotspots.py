"""Complaint hotspots (投诉热点区域): counts on H3 hexagons of the study area, Gi* tested.

A dense cell is not yet a hotspot: with enough cells some are dense by chance. The study area
is a district, street or community polygon (gis.analysis.study_area) clipped in H3 cells, so
empty cells outside where complaints can occur never dilute the mean. Each cell's
neighbourhood (the cell and its k rings) is tested with Getis-Ord Gi* (esda.G_Local) by
permutation (9999 seeded random neighbourhoods by default) and the pseudo p-values are
corrected with the Benjamini-Hochberg false discovery rate (gis.analysis.gi_star). What is
significant is the neighbourhood, so the label says "热点区域", and only a cell with at least
`min_cases` complaints of its own carries it.

Documented error rate: on complaints spread uniformly at random over the district, a run
shows any hot cell in at most about 1 run in 10 (the FDR level of the weakest bin, 0.10,
bounds the chance of any false discovery when there is no cluster at all);
tests/analysis/test_hotspots.py checks it on 20 seeds and checks that a planted cluster is found.

Repeat complaints weigh more: each case counts 1 + `repeat_weight` when it repeats an earlier
one (cases.repeat_of set), so a corner that keeps coming back outranks one-off noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.about import AnalysisAbout, now_in_china
from gis.analysis.common import BBox
from gis.analysis.gi_star import (
    DEFAULT_MIN_CASES,
    DEFAULT_PERMUTATIONS,
    DEFAULT_SEED,
    FDR_LEVELS,
    Inference,
    classify_hotspots,
    fdr_adjust,
    gi_star,
    min_detectable_cells,
)
from gis.analysis.labels import GI_BIN_LABELS
from gis.analysis.study_area import StudyArea, area_cells, check_resolution, load_study_area
from gis.platform.errors import InvalidInputError

__all__ = ["HotspotResult", "cell_totals", "classify_hotspots", "fdr_adjust", "find_hotspots",
           "gi_star", "hex_cells", "hex_counts", "hotspots_from_cells", "hotspots_from_points",
           "study_area_cells"]


_INFERENCE_ZH = {"total": "随机抽取同样大小的邻域",
                 "conditional": "固定本单元、置换邻居（esda 条件置换）"}


@dataclass(frozen=True)
class HotspotResult:
    """Cells of a hotspot run and what the run was (method, parameters, area, as-of)."""

    cells: gpd.GeoDataFrame
    about: AnalysisAbout


def hex_cells(lon: Iterable[float], lat: Iterable[float], *, resolution: int) -> list[str]:
    """H3 cell of each point.

    Examples
    --------
    >>> hex_cells([117.0], [36.66], resolution=9)
    ['89...']
    """
    check_resolution(resolution)
    to_cell = h3.latlng_to_cell
    return [to_cell(y, x, resolution) for x, y in zip(lon, lat, strict=True)]


def hex_counts(cells: Sequence[str], *, weights: Sequence[float] | None = None) -> pd.Series:
    """Sum of `weights` (1 each by default) per cell, largest first.

    Examples
    --------
    >>> hex_counts(["a", "b", "a"]).to_dict()
    {'a': 2.0, 'b': 1.0}
    """
    values = np.ones(len(cells)) if weights is None else np.asarray(weights, dtype=float)
    series = pd.Series(values, index=pd.Index(cells, name="cell")).groupby(level=0).sum()
    return series.sort_values(ascending=False, kind="stable")


def study_area_cells(bbox: BBox, *, resolution: int) -> list[str]:
    """H3 cells whose centre lies in `bbox` (for synthetic areas; real runs use a polygon)."""
    return area_cells(box(*bbox), resolution=resolution)


def find_hotspots(
    session: Session,
    *,
    start: dt.datetime,
    end: dt.datetime,
    area_code: str | None = None,
    bbox: BBox | None = None,
    categories: Sequence[str] | None = None,
    resolution: int = 9,
    k: int = 1,
    repeat_weight: float = 0.5,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
    min_cases: int = DEFAULT_MIN_CASES,
    inference: Inference = "total",
) -> HotspotResult:
    """Complaint hotspots in [start, end) on the H3 cells of a district, street or community.

    Parameters
    ----------
    session : Session
        Open session; only read.
    start, end : datetime
        Time window (timezone-aware) on the report time.
    area_code : str, optional
        Study area: 6-digit district, 9-digit street or 12-digit community code; all
        districts when None.
    bbox : tuple of float, optional
        lon_min, lat_min, lon_max, lat_max (EPSG:4326) clipping the study area further.
    categories : list of str, optional
        Category codes to keep (e.g. ["0504", "0505"] for street trading).
    resolution : int
        H3 resolution (9: cells of about 0.1 km², 10: about 0.015 km²).
    k : int
        Gi* neighbourhood in rings.
    repeat_weight : float
        Extra weight of a repeat complaint (0 counts every case once).
    permutations, seed : int
        Conditional permutations of the pseudo p-values, and their seed.
    min_cases : int
        Complaints a cell needs of its own to be labelled hot.
    inference : {"total", "conditional"}
        Random neighbourhoods drawn whole, or esda's conditional draws (see gi_star).

    Returns
    -------
    HotspotResult
        ``cells``: the study-area cells with complaints or a non-zero class (EPSG:4326
        hexagons): ``cell``, ``cases``, ``repeats``, ``supervised``, ``weight``, ``z``,
        ``p_sim``, ``p_fdr``, ``gi_bin`` (the neighbourhood's bin, +3 ... -3), ``hot_class``
        (the bin a map shows), ``label`` (Chinese), ``hotspot``; ``about``: method,
        parameters, study area and as-of time.

    Examples
    --------
    >>> week = period_containing("weekly", dt.date(2024, 5, 8))  # doctest: +SKIP
    >>> run = find_hotspots(session, start=week.start, end=week.end,
    ...                     area_code="370102")  # doctest: +SKIP
    >>> run.cells[run.cells.hotspot].head()  # doctest: +SKIP
    """
    if not start < end:
        raise InvalidInputError(f"window start {start.isoformat()} is not before end "
                                f"{end.isoformat()}")
    if repeat_weight < 0:
        raise InvalidInputError(f"repeat_weight must be >= 0, not {repeat_weight!r}")
    check_resolution(resolution)
    area = load_study_area(session, code=area_code, bbox=bbox)
    rows = session.execute(text("""
        SELECT ST_X(c.geom), ST_Y(c.geom), c.repeat_of IS NOT NULL, c.supervised
        FROM cases c
        WHERE c.reported_at >= :start AND c.reported_at < :end
          AND ST_Intersects(c.geom, ST_GeomFromWKB(:area, 4326))
          AND (CAST(:categories AS text[]) IS NULL OR c.category_code = ANY(:categories))
    """), {"start": start, "end": end, "categories": list(categories) if categories else None,
           "area": shapely.to_wkb(area.geometry)}).all()
    points = pd.DataFrame(rows, columns=["lon", "lat", "repeat", "supervised"])
    cells = area_cells(area.geometry, resolution=resolution)
    result = hotspots_from_points(points, cells, resolution=resolution, k=k,
                                  repeat_weight=repeat_weight, permutations=permutations,
                                  seed=seed, min_cases=min_cases, inference=inference)
    outside = len(points) - int(result["cases"].sum())
    parameters: dict[str, Any] = {
                  "start": start.isoformat(), "end": end.isoformat(), "area_code": area_code,
                  "bbox": list(bbox) if bbox else None,
                  "categories": list(categories) if categories else None,
                  "resolution": resolution, "k": k, "repeat_weight": repeat_weight,
                  "permutations": permutations, "seed": seed, "min_cases": min_cases,
                  "inference": inference,
                  "fdr_levels": list(FDR_LEVELS)}
    return HotspotResult(result, hotspot_about(area, cells=len(cells), cases=len(points),
                                               outside=outside, parameters=parameters,
                                               as_of=min(end, now_in_china())))


def hotspot_about(area: StudyArea, *, cells: int, cases: int, outside: int,
                  parameters: dict[str, Any], as_of: dt.datetime) -> AnalysisAbout:
    """The method statement of a hotspot run."""
    permutations = int(parameters["permutations"])
    inference = str(parameters["inference"])
    notes = [f"研究区内 H3 单元 {cells} 个（单元中心在研究区内），时间窗内投诉 {cases} 件。"]
    if outside:
        notes.append(f"{outside} 件投诉位于中心在研究区外的边缘单元，未计入统计。")
    needed = min_detectable_cells(cells, permutations=permutations)
    notes.append(f"{permutations} 次置换下，约需 {needed} 个单元同时达到最小伪 p 值，"
                 "才可能在 FDR 0.10 下显著；否则不会出现热点区域。")
    return AnalysisAbout(
        title="投诉热点区域",
        method=(f"Getis-Ord Gi*：每个 H3 单元（分辨率 {parameters['resolution']}）及其 "
                f"{parameters['k']} 圈邻域的投诉数（重复投诉加权 1+{parameters['repeat_weight']}）"
                f"与整个研究区比较；置换检验 {permutations} 次（{_INFERENCE_ZH[inference]}，"
                f"种子 {parameters['seed']}），"
                "伪 p 值经 Benjamini-Hochberg 错误发现率 (FDR) 校正，q ≤ 0.01/0.05/0.10 "
                "对应 99%/95%/90%。检验的是邻域，故标为“热点区域”；单元自身投诉少于 "
                f"{parameters['min_cases']} 件不标注。"),
        parameters=parameters, study_area=area.label_zh, as_of=as_of,
        validated="esda.G_Local(star=True, transform='B') 与 libpysal 权重；FDR 与 "
                  "Benjamini-Hochberg 一致；均匀随机点与人工聚集点测试",
        notes=notes)


def hotspots_from_points(points: pd.DataFrame, area: Sequence[str], *, resolution: int,
                         k: int = 1, repeat_weight: float = 0.5,
                         permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                         min_cases: int = DEFAULT_MIN_CASES,
                         inference: Inference = "total") -> gpd.GeoDataFrame:
    """The pure part of `find_hotspots`: points (lon, lat, repeat, supervised) and area cells.

    Points in cells outside `area` are left out: the study area is fixed beforehand, never
    grown by the data.
    """
    return hotspots_from_cells(cell_totals(points, resolution=resolution,
                                           repeat_weight=repeat_weight), area, k=k,
                               permutations=permutations, seed=seed, min_cases=min_cases,
                               inference=inference)


def cell_totals(points: pd.DataFrame, *, resolution: int,
                repeat_weight: float = 0.5) -> pd.DataFrame:
    """Per H3 cell of points (lon, lat, repeat, supervised): cases, repeats, supervised, weight.

    Totals of disjoint sets of points add up cell by cell (weights are multiples of 1 and
    `repeat_weight`), so gis.analysis.distributed sums them over monthly partitions.
    """
    points = points.assign(cell=hex_cells(points["lon"], points["lat"], resolution=resolution))
    points = points.assign(weight=1.0 + repeat_weight * points["repeat"].astype(float))
    return points.groupby("cell").agg(cases=("cell", "size"), repeats=("repeat", "sum"),
                                      supervised=("supervised", "sum"),
                                      weight=("weight", "sum"))


def hotspots_from_cells(per_cell: pd.DataFrame, area: Sequence[str], *, k: int = 1,
                        permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
                        min_cases: int = DEFAULT_MIN_CASES,
                        inference: Inference = "total") -> gpd.GeoDataFrame:
    """Gi* hotspot cells from `cell_totals` (cells outside `area` are left out)."""
    index = pd.Index(sorted(set(area)), name="cell")
    table = per_cell.reindex(index, fill_value=0)
    table = table.astype({"cases": int, "repeats": int, "supervised": int, "weight": float})
    table = table.join(classify_hotspots(table["weight"], k=k, permutations=permutations,
                                         seed=seed, counts=table["cases"],
                                         min_cases=min_cases, inference=inference))
    table = table[(table["cases"] > 0) | (table["hot_class"] != 0)].reset_index()
    table["label"] = table["hot_class"].map(GI_BIN_LABELS)
    table["hotspot"] = table["hot_class"] > 0
    geometry = [Polygon([(x, y) for y, x in h3.cell_to_boundary(c)]) for c in table["cell"]]
    return gpd.GeoDataFrame(table, geometry=geometry, crs=4326).sort_values(
        ["hot_class", "z"], ascending=False, kind="stable").reset_index(drop=True)
