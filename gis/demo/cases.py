"""A year of simulated complaints (案件), 2025-11-22 .. 2026-11-21, with planted hotspots.

Dates are fixed, never relative to today, so the demo reads the same whenever it is loaded.
Most points are uniform over the district outside a few empty areas (a park, a lake, a hill:
250-500 m across where nobody files a complaint); clusters give the hotspot analysis a target,
each a tight core (a night-market street full of barbecue smoke, a sewer that keeps
overflowing, ...) inside a halo several hundred metres wide, as real complaint clusters are.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gis.demo import METRIC_EPSG, STORAGE_EPSG
from gis.demo.partition import random_points_in
from gis.demo.spatial import containing_code

CASE_COUNT = 50_000
PERIOD_START = pd.Timestamp("2025-11-22 00:00", tz="Asia/Shanghai")
PERIOD_END = pd.Timestamp("2026-11-22 00:00", tz="Asia/Shanghai")  # exclusive
HOTSPOTS = 8
HOTSPOT_SHARE = 0.13
HOTSPOT_CORE_SHARE = 0.4  # of a cluster's points: the core (sigma 30-60 m), the rest the halo
HOTSPOT_HALO_SIGMA_M = (120.0, 220.0)  # the halo: 2 sigma across is 500-900 m
EMPTY_AREAS = 5
EMPTY_RADIUS_M = (250.0, 500.0)
COMPONENT_SHARE = 0.25
CHANNELS = {"hotline_12345": 0.45, "patrol": 0.30, "wechat": 0.20, "hotline_12319": 0.05}
# Relative frequency of event categories (unknown codes weigh 1).
EVENT_WEIGHTS = {"0101": 3, "0102": 8, "0103": 5, "0104": 6, "0201": 7, "0301": 4, "0302": 3,
                 "0401": 1, "0404": 3, "0406": 3, "0501": 6, "0504": 6, "0505": 8, "0510": 4}
COMPONENT_WEIGHTS = {"0118": 10, "0101": 1, "0102": 3, "0103": 3, "0104": 1, "0105": 1,
                     "0107": 1, "0114": 1}
HOTSPOT_CATEGORIES = [("event", "0510"), ("event", "0505"), ("event", "0102"),
                      ("component", "0118"), ("event", "0404"), ("event", "0201"),
                      ("event", "0302"), ("component", "0102")]
OPEN_STATUSES = ["collected", "filed", "dispatched", "handled", "reported"]
CASE_COLUMNS = ["case_no", "category_type", "category_code", "channel", "description", "raw_x",
                "raw_y", "raw_crs", "reported_at", "closed_at", "status", "grid_code",
                "simulated", "urgency", "area_type", "dispatched_at", "due_at", "replied_at",
                "satisfaction", "surveyed_at", "geometry"]
# Busy daytime hours, quiet nights: weight of each hour of the day for reporting.
HOUR_WEIGHTS = np.array([1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 9, 8, 8, 9, 9, 9, 8, 8, 8, 7, 5, 3, 2],
                        dtype=float)


def _weighted(codes: dict[str, str], weights: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(sorted(codes))
    w = np.array([weights.get(k, 1) for k in keys], dtype=float)
    return keys, w / w.sum()


def empty_areas(outline_m: BaseGeometry, rng: np.random.Generator) -> BaseGeometry:
    """Discs inside the district where no complaint is ever recorded (metric)."""
    centres = random_points_in(outline_m.buffer(-600), EMPTY_AREAS, rng)
    radii = rng.uniform(*EMPTY_RADIUS_M, size=EMPTY_AREAS)
    return shapely.union_all(shapely.buffer(shapely.points(centres), radii))


def _points(outline_m: BaseGeometry, rng: np.random.Generator,
            count: int) -> tuple[np.ndarray, np.ndarray]:
    """Case locations and the hotspot each belongs to (-1: none)."""
    empty = empty_areas(outline_m, rng)
    allowed = outline_m.difference(empty)
    hot_n = int(count * HOTSPOT_SHARE)
    xy = [random_points_in(allowed, count - hot_n, rng)]
    which = [np.full(count - hot_n, -1)]
    centres = random_points_in(outline_m.buffer(-300).difference(empty.buffer(300)),
                               HOTSPOTS, rng)
    sizes = rng.multinomial(hot_n, np.full(HOTSPOTS, 1 / HOTSPOTS))
    shapely.prepare(allowed)
    for h, (centre, size) in enumerate(zip(centres, sizes, strict=True)):
        core = int(size * HOTSPOT_CORE_SHARE)
        sigma = np.r_[np.full(core, rng.uniform(30, 60)),
                      np.full(size - core, rng.uniform(*HOTSPOT_HALO_SIGMA_M))]
        pts = np.empty((0, 2))
        need = np.arange(size)
        while len(need):  # redraw the points that fell outside, keeping each one's sigma
            cand = rng.normal(centre, sigma[need][:, None], size=(len(need), 2))
            ok = shapely.contains_xy(allowed, cand[:, 0], cand[:, 1])
            pts = np.vstack([pts, cand[ok]])
            need = need[~ok]
        xy.append(pts)
        which.append(np.full(size, h))
    return np.vstack(xy), np.concatenate(which)


def build_cases(outline_m: BaseGeometry, grid_m: gpd.GeoDataFrame, rng: np.random.Generator,
                *, events: dict[str, str], components: dict[str, str],
                count: int = CASE_COUNT) -> gpd.GeoDataFrame:
    """Complaints over the demo year (metric CRS); `events`/`components`: code → Chinese name."""
    xy, hotspot = _points(outline_m, rng, count)

    kind = np.where(rng.random(count) < COMPONENT_SHARE, "component", "event")
    ev_keys, ev_p = _weighted(events, EVENT_WEIGHTS)
    comp_codes = {c: n for c, n in components.items() if c in COMPONENT_WEIGHTS}
    co_keys, co_p = _weighted(comp_codes, COMPONENT_WEIGHTS)
    code = np.where(kind == "event", rng.choice(ev_keys, size=count, p=ev_p),
                    rng.choice(co_keys, size=count, p=co_p))
    for h, (hot_kind, hot_code) in enumerate(HOTSPOT_CATEGORIES[:HOTSPOTS]):
        # Most complaints in a hotspot are about the one problem that makes it a hotspot.
        mask = (hotspot == h) & (rng.random(count) < 0.8)
        kind[mask], code[mask] = hot_kind, hot_code
    names = {("event", c): n for c, n in events.items()}
    names |= {("component", c): n for c, n in components.items()}

    days = rng.integers(0, (PERIOD_END - PERIOD_START).days, size=count)
    hours = rng.choice(24, size=count, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = days * 86_400 + hours * 3_600 + rng.integers(0, 3_600, size=count)
    reported = PERIOD_START + pd.to_timedelta(seconds, unit="s")
    whole_s = "s"  # every derived time is rounded down to the second, like a real log
    order = np.argsort(seconds, kind="stable")
    xy, kind, code, reported, hotspot = (xy[order], kind[order], code[order],
                                         reported[order], hotspot[order])
    day_str = reported.strftime("%Y%m%d")
    serial = pd.Series(day_str).groupby(day_str).cumcount().to_numpy() + 1
    case_no = [f"LX{d}{s:04d}" for d, s in zip(day_str, serial, strict=True)]

    age_days = (PERIOD_END - reported).days.to_numpy()
    r = rng.random(count)
    old = age_days > 30
    status = np.where(old, np.select([r < 0.02, r < 0.5, r < 0.97], ["rejected", "closed",
                                                                     "evaluated"], "open"),
                      np.select([r < 0.05, r < 0.45, r < 0.6], ["rejected", "closed",
                                                                "evaluated"], "open"))
    status = status.astype(object)  # the fixed-width strings would truncate "dispatched"
    open_mask = status == "open"
    status[open_mask] = rng.choice(OPEN_STATUSES, size=int(open_mask.sum()))

    dispatched_states = ["dispatched", "handled", "reported", "closed", "evaluated"]
    dispatched = np.isin(status, dispatched_states)
    dispatched_at = (reported + pd.to_timedelta(rng.uniform(5, 60, count), unit="min")).floor(
        whole_s)
    # Three calendar days stands in for the rule table here: the demo needs plausible
    # deadlines, not the working-day arithmetic of gis.dispatch.deadlines.
    due_at = dispatched_at + pd.Timedelta(days=3)
    handle_hours = rng.lognormal(mean=3.0, sigma=0.9, size=count)  # median ~20 h, some late
    closed_at = (dispatched_at + pd.to_timedelta(handle_hours, unit="h")).floor(whole_s)
    closed = np.isin(status, ["closed", "evaluated"])
    too_late = closed & (closed_at >= PERIOD_END)
    status[too_late] = "handled"  # cannot have closed after the end of the demo year
    closed &= ~too_late
    evaluated = status == "evaluated"
    satisfaction = rng.choice(["satisfied", "basically", "unsatisfied"], size=count,
                              p=[0.86, 0.10, 0.04])
    surveyed_at = closed_at + pd.Timedelta(days=1)
    channel = rng.choice(list(CHANNELS), size=count, p=list(CHANNELS.values()))
    hotline = np.char.startswith(channel.astype(str), "hotline")
    replied_at = closed_at + pd.Timedelta(hours=2)

    def when(values: pd.DatetimeIndex, mask: np.ndarray) -> pd.Series:
        return pd.Series(values).where(mask)

    points = np.asarray(shapely.points(xy))
    lonlat = gpd.GeoSeries(points, crs=METRIC_EPSG).to_crs(STORAGE_EPSG)
    return gpd.GeoDataFrame({
        "case_no": case_no, "category_type": kind, "category_code": code, "channel": channel,
        "description": [f"{names[(k, c)]}（模拟案件）" for k, c in zip(kind, code, strict=True)],
        "raw_x": lonlat.x.round(7).to_numpy(), "raw_y": lonlat.y.round(7).to_numpy(),
        "raw_crs": "wgs84", "reported_at": reported,
        "closed_at": when(closed_at, closed), "status": status,
        "grid_code": containing_code(points, grid_m), "simulated": True,
        "urgency": np.where(rng.random(count) < 0.05, "urgent", "normal"), "area_type": "city",
        "dispatched_at": when(dispatched_at, dispatched), "due_at": when(due_at, dispatched),
        "replied_at": when(replied_at, closed & hotline),
        "satisfaction": pd.Series(satisfaction).where(evaluated),
        "surveyed_at": when(surveyed_at, evaluated),
    }, geometry=points, crs=METRIC_EPSG)[CASE_COLUMNS]
