"""A large synthetic case history written as the monthly GeoParquet archive (benchmarks).

Vectorised numpy, one month in memory at a time (generated in chunks of `chunk` rows), so
tens of millions of cases fit on a small machine: memory follows the largest month, disk the
whole history. The numbers are plausible, not real: about 30 % of complaints fall in fixed
clusters (a few more appear only in some months) so hotspot runs find something; deadlines,
closures, late closures, reworks, extensions, replies and surveys follow simple distributions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.analysis.common import BBox
from gis.analysis.distributed.archive import Month, month_bounds, months_between, write_month

# 济南市 历下区, 市中区, 槐荫区: the bbox is cut into three bands west to east, one per code.
DISTRICTS = ("370104", "370103", "370102")
DEFAULT_BBOX: BBox = (116.90, 36.58, 117.16, 36.72)
CATEGORIES = (("event", "0101", 0.30), ("event", "0504", 0.20), ("event", "0505", 0.15),
              ("component", "0118", 0.15), ("component", "0201", 0.20))
CHANNELS = (("hotline_12345", 0.45), ("patrol", 0.30), ("wechat", 0.20),
            ("hotline_12319", 0.05))
_HOUR = np.timedelta64(3600, "s")
_NAT = np.datetime64("NaT", "us")


def generate_history(root: Path, *, cases: int, first: Month, last: Month, seed: int = 7,
                     bbox: BBox = DEFAULT_BBOX, chunk: int = 500_000,
                     progress: Callable[[Month, int], object] | None = None) -> list[Path]:
    """Write `cases` synthetic cases spread evenly over the months first..last under `root`."""
    months = months_between(first, last)
    rng = np.random.default_rng(seed)
    # Fixed clusters all history long, and seasonal ones present in a third of the months.
    x1, y1, x2, y2 = bbox
    fixed = np.column_stack([rng.uniform(x1, x2, 20), rng.uniform(y1, y2, 20)])
    seasonal = np.column_stack([rng.uniform(x1, x2, 12), rng.uniform(y1, y2, 12)])
    per_month = np.full(len(months), cases // len(months))
    per_month[: cases % len(months)] += 1
    paths, next_id = [], 1
    for month, size in zip(months, per_month, strict=True):
        parts = []
        for offset in range(0, int(size), chunk):
            n = min(chunk, int(size) - offset)
            month_rng = np.random.default_rng([seed, month[0], month[1], offset])
            active = seasonal[month_rng.random(len(seasonal)) < 1 / 3]
            parts.append(_chunk(month_rng, n, month, bbox, fixed, active, next_id + offset))
        frame = pd.concat(parts, ignore_index=True)
        geometry = gpd.points_from_xy(frame.pop("lon"), frame.pop("lat"), crs=4326)
        paths.append(write_month(gpd.GeoDataFrame(frame, geometry=geometry), root, month))
        next_id += int(size)
        if progress:
            progress(month, int(size))
    return paths


def _chunk(rng: np.random.Generator, n: int, month: Month, bbox: BBox, fixed: np.ndarray,
           seasonal: np.ndarray, first_id: int) -> pd.DataFrame:
    """`n` cases reported in `month`."""
    x1, y1, x2, y2 = bbox
    lon, lat = rng.uniform(x1, x2, n), rng.uniform(y1, y2, n)
    centres = np.vstack([fixed, seasonal]) if len(seasonal) else fixed
    clustered = rng.random(n) < 0.3
    pick = centres[rng.integers(0, len(centres), n)]
    # About 150 m around a centre (0.0015 degrees).
    lon = np.where(clustered, pick[:, 0] + rng.normal(0, 0.0015, n), lon).clip(x1, x2)
    lat = np.where(clustered, pick[:, 1] + rng.normal(0, 0.0015, n), lat).clip(y1, y2)
    band = np.minimum(((lon - x1) / (x2 - x1) * len(DISTRICTS)).astype(int), len(DISTRICTS) - 1)
    district = np.asarray(DISTRICTS, dtype=np.int64)[band]
    grid = (district * 100_000_000 + rng.integers(1, 13, n) * 100_000
            + rng.integers(1, 9, n) * 100 + rng.integers(1, 7, n))
    category = rng.choice(len(CATEGORIES), n, p=[c[2] for c in CATEGORIES])
    limit_h = np.array([24.0, 4.0, 2.0, 72.0, 48.0])[category]

    start, end = month_bounds(month)
    start64 = np.datetime64(start.astimezone(dt.UTC).replace(tzinfo=None), "us")
    span_s = (end - start).total_seconds()
    reported = start64 + (rng.uniform(0, span_s, n) * 1e6).astype("timedelta64[us]")

    def hours(values: np.ndarray) -> np.ndarray:
        return (values * 3_600e6).astype("timedelta64[us]")

    u = rng.random(n)
    rejected, waiting = u < 0.03, (u >= 0.03) & (u < 0.04)
    dispatched_ok = u >= 0.04
    dispatched = np.where(dispatched_ok, reported + hours(rng.exponential(2.0, n)), _NAT)
    extended = dispatched_ok & (rng.random(n) < 0.04)
    due = np.where(dispatched_ok, dispatched + hours(limit_h + 48.0 * extended), _NAT)
    closed_ok = dispatched_ok & (rng.random(n) < 0.95)
    closed = np.where(closed_ok, dispatched + hours(rng.exponential(0.7, n) * limit_h), _NAT)
    surveyed_ok = closed_ok & (rng.random(n) < 0.6)
    surveyed = np.where(surveyed_ok, closed + hours(rng.exponential(24.0, n)), _NAT)
    answers = np.array(["satisfied", "basically", "unsatisfied"], dtype=object)
    satisfaction = answers[rng.choice(3, n, p=[0.8, 0.12, 0.08])]
    satisfaction[~surveyed_ok] = None
    replied_ok = rng.random(n) < 0.7
    replied = np.where(replied_ok, np.where(closed_ok, closed, reported) + 2 * _HOUR, _NAT)
    open_status = np.array(["dispatched", "handled", "reported"], dtype=object)
    status = np.where(surveyed_ok, "evaluated", np.where(closed_ok, "closed",
                      open_status[rng.integers(0, 3, n)])).astype(object)
    status[rejected], status[waiting] = "rejected", "filed"
    channel = rng.choice(len(CHANNELS), n, p=[c[1] for c in CHANNELS])

    def utc(values: np.ndarray) -> pd.Series:
        return pd.Series(values).dt.tz_localize("UTC")

    return pd.DataFrame({
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "category_type": np.array([c[0] for c in CATEGORIES], dtype=object)[category],
        "category_code": np.array([c[1] for c in CATEGORIES], dtype=object)[category],
        "channel": np.array([c[0] for c in CHANNELS], dtype=object)[channel],
        "grid_code": grid.astype(str),
        "status": status,
        "reported_at": utc(reported), "dispatched_at": utc(dispatched), "due_at": utc(due),
        "closed_at": utc(closed), "replied_at": utc(replied), "surveyed_at": utc(surveyed),
        "satisfaction": satisfaction,
        "reworked_count": (closed_ok & (rng.random(n) < 0.05)).astype(np.int16),
        "extended_count": extended.astype(np.int16),
        "repeat": rng.random(n) < 0.08,
        "supervised": rng.random(n) < 0.03,
        "lon": lon, "lat": lat,
    })
