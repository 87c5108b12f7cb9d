"""Simulated complaints (案件) of the ~90 days before the demo is loaded, with planted hotspots.

Times are relative to the load (`now`), so the desk shows a working bureau's day whenever the
demo is loaded: old cases closed, recent ones in progress, a few overdue; each case's history
and deadlines come from gis/demo/case_history.py and the real deadline rules. Places and
categories do not depend on `now` (same seed, same points).
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
from gis.demo.case_history import RuleLookup, simulate_history
from gis.demo.partition import random_points_in
from gis.demo.spatial import containing_code
from gis.dispatch.deadlines import CHINA_TZ

CASE_COUNT = 50_000
PERIOD_DAYS = 90  # reported in the 90 days before the load, up to the load itself
CASE_PREFIX = "LX"  # 历下; CitySettings.case_prefix's default and load.DEMO_ROWS' mark
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
CASE_COLUMNS = ["case_no", "category_type", "category_code", "channel", "description", "raw_x",
                "raw_y", "raw_crs", "reported_at", "closed_at", "status", "grid_code",
                "simulated", "urgency", "area_type", "dispatch_due_at", "dispatched_at", "due_at",
                "verify_due_at", "due_approximate", "replied_at", "satisfaction", "surveyed_at",
                "geometry"]
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


def _report_times(rng: np.random.Generator, count: int, now: pd.Timestamp) -> pd.DatetimeIndex:
    """Report times over the PERIOD_DAYS before `now` (busy days, quiet nights), none later."""
    local_now = now.tz_convert(CHINA_TZ).floor("s")
    start = (local_now - pd.Timedelta(days=PERIOD_DAYS)).floor("D")
    days = rng.integers(0, (local_now.floor("D") - start).days + 1, size=count)
    hours = rng.choice(24, size=count, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = days * 86_400 + hours * 3_600 + rng.integers(0, 3_600, size=count)
    reported = start + pd.to_timedelta(seconds, unit="s")
    # Today's hours after `now` have not happened yet: those complaints came a day earlier.
    return reported.where(reported <= local_now, reported - pd.Timedelta(days=1))


def build_cases(outline_m: BaseGeometry, grid_m: gpd.GeoDataFrame, rng: np.random.Generator,
                *, events: dict[str, str], components: dict[str, str], now: pd.Timestamp,
                rule: RuleLookup, count: int = CASE_COUNT) -> gpd.GeoDataFrame:
    """Complaints up to `now` (metric CRS); `events`/`components`: code → Chinese name,
    `rule`: the deadline rule lookup (see gis.demo.case_history)."""
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

    reported = _report_times(rng, count, now)
    order = np.argsort(reported.asi8, kind="stable")
    xy, kind, code, reported, hotspot = (xy[order], kind[order], code[order],
                                         reported[order], hotspot[order])
    day_str = reported.strftime("%Y%m%d")
    serial = pd.Series(day_str).groupby(day_str).cumcount().to_numpy() + 1
    # The case-number format of gis.dispatch (migration 0019's next_case_no): prefix, city
    # date, serial of the day; numbered here in bulk rather than 50,000 locked calls.
    case_no = [f"{CASE_PREFIX}{d}{s:04d}" for d, s in zip(day_str, serial, strict=True)]

    urgency = np.where(rng.random(count) < 0.05, "urgent", "normal")
    channel = rng.choice(list(CHANNELS), size=count, p=list(CHANNELS.values()))
    area = np.full(count, "city")
    history = simulate_history(reported, kind.astype(str), code.astype(str), urgency, area,
                               channel, now=now, rule=rule, rng=rng)

    points = np.asarray(shapely.points(xy))
    lonlat = gpd.GeoSeries(points, crs=METRIC_EPSG).to_crs(STORAGE_EPSG)
    return gpd.GeoDataFrame({
        "case_no": case_no, "category_type": kind, "category_code": code, "channel": channel,
        "description": [f"{names[(k, c)]}（模拟案件）" for k, c in zip(kind, code, strict=True)],
        "raw_x": lonlat.x.round(7).to_numpy(), "raw_y": lonlat.y.round(7).to_numpy(),
        "raw_crs": "wgs84", "reported_at": reported, "closed_at": history.closed_at,
        "status": history.status, "grid_code": containing_code(points, grid_m),
        "simulated": True, "urgency": urgency, "area_type": area,
        "dispatch_due_at": history.dispatch_due_at, "dispatched_at": history.dispatched_at,
        "due_at": history.due_at, "verify_due_at": history.verify_due_at,
        "due_approximate": history.due_approximate, "replied_at": history.replied_at,
        "satisfaction": history.satisfaction, "surveyed_at": history.surveyed_at,
    }, geometry=points, crs=METRIC_EPSG)[CASE_COLUMNS]
