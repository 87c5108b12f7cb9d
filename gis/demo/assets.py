"""Components (部件) along the roads: streetlights (0118) and manhole covers (0101–0114).

A component's state is a snapshot of the moment the demo is loaded: a damaged or missing cover
changed state hours to weeks before `as_of` (log-uniform from 30 minutes to 6 weeks, seeded),
so the cover-risk rules (low under 4 h, medium to 24 h, high after, missing always high) all
occur when the demo is opened. The offsets are fixed by the seed; only `as_of` moves.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.demo import DISTRICT_CODE, METRIC_EPSG
from gis.demo.spatial import containing_code, points_beside

LIGHT_CLASS = "0118"
LIGHT_SPACING_M = (30.0, 35.0)
LIGHT_OWNER = "济南市城市照明服务中心"
LIGHT_MAINTAINERS = ["济南市城市照明服务中心养护一所", "济南市城市照明服务中心养护二所"]
LIGHT_BROKEN_SHARE = 0.03
PLANTED_GAPS = 12  # runs of 3–6 dark lights in a row, for the dark-street analysis to find
RECORDED_AT = "2025-01-01T09:00:00+08:00"

# Relative frequency of each cover class: sewer, storm, power and telecom dominate.
COVER_WEIGHTS = {"0101": 8, "0102": 18, "0103": 18, "0104": 6, "0105": 12, "0106": 5,
                 "0107": 12, "0108": 3, "0109": 4, "0110": 5, "0111": 4, "0112": 2,
                 "0113": 2, "0114": 1}
COVER_COUNT = 30_000
COVER_BROKEN_SHARE = 0.02
COVER_BROKEN_HOURS = (0.5, 6 * 7 * 24.0)  # damaged/missing since: 30 minutes to 6 weeks ago

LIGHT_COLUMNS = ["code", "state", "lit", "in_use", "owner", "maintainer", "grid_code",
                 "recorded_at", "updated_at", "simulated", "geometry"]
COVER_COLUMNS = ["code", "state", "in_use", "owner", "maintainer", "grid_code", "recorded_at",
                 "updated_at", "simulated", "geometry"]


def build_streetlights(roads_m: gpd.GeoDataFrame, grid_m: gpd.GeoDataFrame,
                       rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Lights every 30–35 m along each road, alternating sides at half the road width."""
    road_idx: list[np.ndarray] = []
    dist: list[np.ndarray] = []
    for i, line in enumerate(roads_m.geometry.values):
        spacing = rng.uniform(*LIGHT_SPACING_M)
        positions = np.arange(spacing / 2, line.length, spacing)
        road_idx.append(np.full(len(positions), i))
        dist.append(positions)
    idx = np.concatenate(road_idx)
    along = np.concatenate(dist)
    # Alternate sides light by light along each road.
    side = np.where(np.concatenate([np.arange(len(d)) % 2 for d in dist]) == 0, 1.0, -1.0)
    offset = side * roads_m["width_m"].to_numpy()[idx] / 2
    points = points_beside(roads_m.geometry.values[idx], along, offset)

    n = len(points)
    lit = np.ones(n, dtype=bool)
    state = np.full(n, "intact", dtype=object)
    broken = rng.random(n) < LIGHT_BROKEN_SHARE
    state[broken] = np.where(rng.random(broken.sum()) < 0.7, "damaged", "missing")
    lit[broken] = False
    # Deliberate dark stretches: whole runs of lights out on a few non-showcase streets.
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    counts = np.diff(np.r_[starts, n])
    classes = roads_m["street_class"].to_numpy()[idx[starts]]
    candidates = np.flatnonzero((counts >= 7) & (classes != "demonstration"))
    for k in rng.choice(candidates, size=PLANTED_GAPS, replace=False):
        # A lit light stays at both ends, so the gap lies inside the road segment.
        run = int(rng.integers(3, min(6, counts[k] - 2) + 1))
        first = starts[k] + int(rng.integers(1, counts[k] - run))
        state[first: first + run] = "damaged"
        lit[first: first + run] = False

    return gpd.GeoDataFrame({
        "code": [f"{DISTRICT_CODE}{LIGHT_CLASS}{k:06d}" for k in range(1, n + 1)],
        "state": state, "lit": lit, "in_use": True, "owner": LIGHT_OWNER,
        "maintainer": rng.choice(LIGHT_MAINTAINERS, size=n),
        "grid_code": containing_code(points, grid_m), "recorded_at": RECORDED_AT,
        "updated_at": RECORDED_AT, "simulated": True,
    }, geometry=points, crs=METRIC_EPSG)[LIGHT_COLUMNS]


def build_manhole_covers(roads_m: gpd.GeoDataFrame, grid_m: gpd.GeoDataFrame,
                         owners: dict[str, str], rng: np.random.Generator,
                         count: int = COVER_COUNT, *,
                         as_of: pd.Timestamp | None = None) -> gpd.GeoDataFrame:
    """Covers at random spots on the roads; the class decides the owner (`owners`).

    Broken covers changed state hours to weeks before `as_of` (default: now, to the minute).
    """
    lengths = roads_m.length.to_numpy()
    idx = np.sort(rng.choice(len(roads_m), size=count, p=lengths / lengths.sum()))
    along = rng.uniform(0, lengths[idx])
    half = roads_m["width_m"].to_numpy()[idx] / 2
    points = points_beside(roads_m.geometry.values[idx], along, rng.uniform(-half, half))

    classes = np.array(list(COVER_WEIGHTS))
    weights = np.array(list(COVER_WEIGHTS.values()), dtype=float)
    cover_class = rng.choice(classes, size=count, p=weights / weights.sum())
    serial = np.zeros(count, dtype=int)
    for cls in classes:  # serials count up within each class
        mask = cover_class == cls
        serial[mask] = np.arange(1, mask.sum() + 1)
    state = np.full(count, "intact", dtype=object)
    broken = rng.random(count) < COVER_BROKEN_SHARE
    state[broken] = np.where(rng.random(broken.sum()) < 0.6, "damaged", "missing")
    owner = np.array([owners[c] for c in cover_class], dtype=object)
    # Drawn for every cover so the other columns keep their random stream; used where broken.
    low, high = np.log(COVER_BROKEN_HOURS)
    hours_ago = np.exp(rng.uniform(low, high, size=count))
    now = (as_of if as_of is not None else pd.Timestamp.now(tz="Asia/Shanghai")).floor("min")
    since = (now - pd.to_timedelta(hours_ago, unit="h")).floor("s")
    recorded = pd.Timestamp(RECORDED_AT)
    updated = pd.Series(since).where(broken, recorded).where(lambda t: t >= recorded, recorded)
    return gpd.GeoDataFrame({
        "code": [f"{DISTRICT_CODE}{c}{s:06d}" for c, s in zip(cover_class, serial, strict=True)],
        "state": state, "in_use": True, "owner": owner, "maintainer": owner,
        "grid_code": containing_code(points, grid_m), "recorded_at": RECORDED_AT,
        "updated_at": updated, "simulated": True,
    }, geometry=points, crs=METRIC_EPSG)[COVER_COLUMNS]
