"""Complaint hotspots (投诉热点): counts on H3 hexagons tested with Getis-Ord Gi*.

A dense cell is not yet a hotspot: with enough cells some are dense by chance. Gi* compares
each cell's neighbourhood (the cell and its k rings, binary weights) with the whole study area;
the z-scores are tested two-sided and corrected for the number of cells with the
Benjamini-Hochberg false discovery rate, so uniform noise yields no hotspot while a real
cluster does. Gi* is written here with numpy/scipy.sparse (the formula of Getis & Ord 1995,
as in esda.G_Local(star=True) with binary weights) rather than pulling in esda and libpysal
for one statistic.

Repeat complaints weigh more: each case counts 1 + `repeat_weight` when it repeats an earlier
one (cases.repeat_of set), so a corner that keeps coming back outranks one-off noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import norm
from shapely.geometry import Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import BBox, bbox_filter, bbox_params
from gis.analysis.labels import GI_BIN_LABELS
from gis.platform.errors import InvalidInputError


def hex_cells(lon: Iterable[float], lat: Iterable[float], *, resolution: int) -> list[str]:
    """H3 cell of each point.

    Examples
    --------
    >>> hex_cells([117.0], [36.66], resolution=9)
    ['89...']
    """
    _check_resolution(resolution)
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
    """Every H3 cell whose centre lies in `bbox` (lon_min, lat_min, lon_max, lat_max)."""
    _check_resolution(resolution)
    x1, y1, x2, y2 = bbox
    shape = h3.LatLngPoly([(y1, x1), (y1, x2), (y2, x2), (y2, x1)])
    return sorted(h3.polygon_to_cells(shape, resolution))


def getis_ord_gi_star(values: pd.Series, *, k: int = 1) -> pd.DataFrame:
    """Gi* z-score of every cell of `values` (cell -> value, zeros included) over k rings.

    The study area is exactly the index of `values`; neighbours outside it are ignored.

    Parameters
    ----------
    values : Series
        H3 cell -> count (or weighted count), one entry per cell of the study area.
    k : int
        Neighbourhood radius in rings (1 = the cell and its 6 neighbours).

    Returns
    -------
    DataFrame
        Indexed like `values`: ``z`` (Gi* z-score), ``p`` (two-sided) and ``neighbours``.

    Examples
    --------
    >>> centre = h3.latlng_to_cell(36.66, 117.0, 9)
    >>> area = pd.Series(0.0, index=sorted(h3.grid_disk(centre, 4)))
    >>> area[centre] = 30.0
    >>> gi = getis_ord_gi_star(area)
    >>> round(float(gi.loc[centre, "z"]), 2)  # shared by the 7 cells whose ring holds it
    2.78
    """
    if k < 1:
        raise InvalidInputError(f"k must be at least 1 ring, not {k!r}")
    cells = list(values.index)
    n = len(cells)
    if n < 3:
        raise InvalidInputError(f"Gi* needs at least 3 cells in the study area, not {n}")
    position = {cell: i for i, cell in enumerate(cells)}
    rows, cols = [], []
    for i, cell in enumerate(cells):
        for other in h3.grid_disk(cell, k):
            j = position.get(other)
            if j is not None:
                rows.append(i)
                cols.append(j)
    w = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    x = values.to_numpy(dtype=float)
    mean = x.mean()
    s = np.sqrt((x**2).mean() - mean**2)
    w_sum = np.asarray(w.sum(axis=1)).ravel()  # binary weights: sum of squares is the same
    local = w @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (local - mean * w_sum) / (s * np.sqrt((n * w_sum - w_sum**2) / (n - 1)))
    z = np.where(np.isfinite(z), z, 0.0)  # constant field: nothing stands out
    return pd.DataFrame({"z": z, "p": 2 * norm.sf(np.abs(z)), "neighbours": w_sum.astype(int)},
                        index=values.index)


def fdr_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (monotone, capped at 1).

    Examples
    --------
    >>> fdr_adjust(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p, dtype=float)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(n)
    out[order] = adjusted
    return out


def classify_hotspots(values: pd.Series, *, k: int = 1) -> pd.DataFrame:
    """Gi* with FDR-adjusted p-values and confidence bins (+3 hot 99 % ... -3 cold 99 %).

    Examples
    --------
    >>> centre = h3.latlng_to_cell(36.66, 117.0, 9)
    >>> area = pd.Series(1.0, index=sorted(h3.grid_disk(centre, 5)))
    >>> area[centre] = 40.0
    >>> int(classify_hotspots(area).loc[centre, "gi_bin"])
    3
    """
    gi = getis_ord_gi_star(values, k=k)
    gi["p_fdr"] = fdr_adjust(gi["p"].to_numpy())
    level = np.select([gi["p_fdr"] <= 0.01, gi["p_fdr"] <= 0.05, gi["p_fdr"] <= 0.10],
                      [3, 2, 1], default=0)
    gi["gi_bin"] = (np.sign(gi["z"]) * level).astype(int)
    return gi


def find_hotspots(
    session: Session,
    *,
    start: dt.datetime,
    end: dt.datetime,
    bbox: BBox,
    categories: Sequence[str] | None = None,
    resolution: int = 9,
    k: int = 1,
    repeat_weight: float = 0.5,
) -> gpd.GeoDataFrame:
    """Complaint hotspots in [start, end) on H3 cells of the study area `bbox`.

    Parameters
    ----------
    session : Session
        Open session; only read.
    start, end : datetime
        Time window (timezone-aware) on the report time.
    bbox : tuple of float
        Study area, lon_min, lat_min, lon_max, lat_max (EPSG:4326): every H3 cell centred in
        it or holding a case in it takes part, empty ones with zero; cases outside it are
        ignored.
    categories : list of str, optional
        Category codes to keep (e.g. ["0504", "0505"] for street trading).
    resolution : int
        H3 resolution (9: cells of about 0.1 km², 10: about 0.015 km²).
    k : int
        Gi* neighbourhood in rings.
    repeat_weight : float
        Extra weight of a repeat complaint (0 counts every case once).

    Returns
    -------
    GeoDataFrame
        Cells with complaints or a significant Gi* (EPSG:4326 hexagons): ``cell``, ``cases``,
        ``repeats``, ``supervised``, ``weight``, ``z``, ``p``, ``p_fdr``, ``gi_bin``
        (+3 hot 99 % ... -3 cold 99 %), ``label`` (Chinese), ``hotspot`` (bin > 0 and at
        least one complaint in the cell itself).

    Examples
    --------
    >>> week = period_containing("weekly", dt.date(2024, 5, 8))  # doctest: +SKIP
    >>> spots = find_hotspots(session, start=week.start, end=week.end,
    ...                       bbox=(116.95, 36.55, 117.25, 36.75))  # doctest: +SKIP
    >>> spots[spots.hotspot].sort_values("z", ascending=False).head()  # doctest: +SKIP
    """
    if not start < end:
        raise InvalidInputError(f"window start {start.isoformat()} is not before end "
                                f"{end.isoformat()}")
    if repeat_weight < 0:
        raise InvalidInputError(f"repeat_weight must be >= 0, not {repeat_weight!r}")
    rows = session.execute(text(f"""
        SELECT ST_X(c.geom), ST_Y(c.geom), c.repeat_of IS NOT NULL, c.supervised
        FROM cases c
        WHERE c.reported_at >= :start AND c.reported_at < :end AND {bbox_filter('c.geom')}
          AND (CAST(:categories AS text[]) IS NULL OR c.category_code = ANY(:categories))
    """), {"start": start, "end": end, "categories": list(categories) if categories else None,
           **bbox_params(bbox)}).all()
    area = study_area_cells(bbox, resolution=resolution)
    points = pd.DataFrame(rows, columns=["lon", "lat", "repeat", "supervised"])
    return hotspots_from_points(points, area, k=k, repeat_weight=repeat_weight,
                                resolution=resolution)


def hotspots_from_points(points: pd.DataFrame, area: Sequence[str], *, resolution: int,
                         k: int = 1, repeat_weight: float = 0.5) -> gpd.GeoDataFrame:
    """The pure part of `find_hotspots`: points (lon, lat, repeat, supervised) and study area.

    The study area is `area` plus the cells holding the points.
    """
    points = points.assign(cell=hex_cells(points["lon"], points["lat"], resolution=resolution))
    # A point near the edge may fall in a cell centred just outside: that cell joins the area.
    area = sorted(set(area) | set(points["cell"]))
    points = points.assign(weight=1.0 + repeat_weight * points["repeat"].astype(float))
    per_cell = points.groupby("cell").agg(cases=("cell", "size"), repeats=("repeat", "sum"),
                                          supervised=("supervised", "sum"),
                                          weight=("weight", "sum"))
    table = per_cell.reindex(pd.Index(area, name="cell"), fill_value=0)
    table = table.astype({"cases": int, "repeats": int, "supervised": int, "weight": float})
    table = table.join(classify_hotspots(table["weight"], k=k))
    table = table[(table["cases"] > 0) | (table["gi_bin"] != 0)].reset_index()
    table["label"] = table["gi_bin"].map(GI_BIN_LABELS)
    # An empty cell can sit in a hot neighbourhood; only cells with complaints are called hot.
    table["hotspot"] = (table["gi_bin"] > 0) & (table["cases"] > 0)
    geometry = [Polygon([(x, y) for y, x in h3.cell_to_boundary(c)]) for c in table["cell"]]
    return gpd.GeoDataFrame(table, geometry=geometry, crs=4326).sort_values(
        "z", ascending=False, kind="stable").reset_index(drop=True)


def _check_resolution(resolution: int) -> None:
    if not 5 <= resolution <= 12:
        raise InvalidInputError(f"H3 resolution must be 5 to 12 for city analysis, "
                                f"not {resolution!r}")
