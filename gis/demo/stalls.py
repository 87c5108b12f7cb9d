"""Stall zones (摊群点): small rectangles beside managed and commercial streets.

Each zone stands just off the carriageway (so it never takes the road itself), keeps clear of
every other road and zone, and stays well away from demonstration streets (示范街), where the
rules forbid stalls.
"""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from gis.demo import DISTRICT_CODE, METRIC_EPSG

ZONE_COUNT = 40
STALL_GROSS_M2 = 5.0  # one stall with its aisle share, as the default zone rules count
KERB_GAP_M = 1.0
DEMONSTRATION_CLEARANCE_M = 30.0  # well beyond the 10 m the default rules demand
ALL_WEEK = [1, 2, 3, 4, 5, 6, 7]
ZONE_COLUMNS = ["name", "zone_type", "district_code", "time_slots", "seasons", "capacity",
                "operator", "status", "simulated", "valid_from", "valid_to", "geometry"]
# Zone types approved for a fixed term (临时): their validity ends 1-10 months after the load.
FIXED_TERM_TYPES = {"convenience_point", "featured_outdoor"}

# zone_type -> (how many, Chinese label, time slot choices, seasons)
ZONE_TYPES: dict[str, tuple[int, str, list[list[dict[str, object]]], list[dict[str, str]]]] = {
    "morning_market": (10, "早市", [[{"days": ALL_WEEK, "start": "05:00", "end": "08:00"}]],
                       []),
    "night_market": (10, "夜市", [[{"days": ALL_WEEK, "start": "18:00", "end": "22:30"}],
                                  [{"days": ALL_WEEK, "start": "18:00", "end": "02:00"}]], []),
    "seasonal_produce": (6, "应季瓜果自产摊位",
                         [[{"days": ALL_WEEK, "start": "06:00", "end": "20:00"}]],
                         [{"from": "06-01", "to": "09-29"}]),
    "convenience_point": (8, "便民服务点",
                          [[{"days": ALL_WEEK, "start": "07:00", "end": "21:00"}]], []),
    "featured_outdoor": (6, "特色外摆", [[{"days": [5, 6, 7], "start": "17:00", "end": "23:30"}]],
                         []),
}
OPERATORS = ["{street}街道办事处", "历下区市场服务中心", "济南泉城市场管理有限公司（模拟）",
             "历下区商贸发展服务中心"]


def _rectangle(line: shapely.LineString, at: float, length: float, near: float, far: float,
               side: float) -> Polygon:
    """A rectangle beside `line` from `at` to `at + length`, `near`..`far` metres off it."""
    a = np.asarray(line.interpolate(at).coords[0])
    b = np.asarray(line.interpolate(at + length).coords[0])
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]]) * side
    return Polygon([a + n * near, b + n * near, b + n * far, a + n * far])


def build_stall_zones(outline_m: BaseGeometry, roads_m: gpd.GeoDataFrame,
                      subdistricts_m: gpd.GeoDataFrame,
                      rng: np.random.Generator, *, today: dt.date) -> gpd.GeoDataFrame:
    """About 40 zones of 200–1,500 m² with capacity, operator, schedule, status and a
    validity period around `today` (approved ones valid today, the retired one ended)."""
    carriageways = shapely.buffer(roads_m.geometry.values, roads_m["width_m"].to_numpy() / 2,
                                  cap_style="flat")
    road_tree = shapely.STRtree(carriageways)
    demo = roads_m[roads_m["street_class"] == "demonstration"]
    demo_area = shapely.union_all(shapely.buffer(
        demo.geometry.values, demo["width_m"].to_numpy() / 2 + DEMONSTRATION_CLEARANCE_M))
    hosts = np.flatnonzero(roads_m["street_class"].isin(["managed", "commercial"]).to_numpy()
                           & (roads_m.length.to_numpy() >= 120))
    types = [t for t, (count, *_rest) in ZONE_TYPES.items() for _ in range(count)]
    placed: list[Polygon] = []
    rows = []
    while len(placed) < len(types):
        k = int(rng.choice(hosts))
        line = roads_m.geometry.values[k]
        length = float(rng.uniform(20, 60))
        depth = float(rng.uniform(10, 25))
        if not 200 <= length * depth <= 1500:
            continue
        at = float(rng.uniform(30, line.length - length - 30))
        near = roads_m["width_m"].iat[k] / 2 + KERB_GAP_M
        zone = _rectangle(line, at, length, near, near + depth, float(rng.choice([-1, 1])))
        if (not zone.is_valid or not outline_m.contains(zone) or zone.intersects(demo_area)
                or len(road_tree.query(zone, predicate="intersects"))
                or any(zone.distance(p) < 20 for p in placed)):
            continue
        zone_type = types[len(placed)]
        _count, label, slot_choices, seasons = ZONE_TYPES[zone_type]
        overlap = shapely.area(shapely.intersection(subdistricts_m.geometry.values, zone))
        street_name = str(subdistricts_m["name"].iat[int(np.argmax(overlap))])
        placed.append(zone)
        rows.append({
            "name": f"{roads_m['name'].iat[k]}{label}",
            "zone_type": zone_type, "district_code": DISTRICT_CODE,
            "time_slots": json.dumps(slot_choices[int(rng.integers(len(slot_choices)))]),
            "seasons": json.dumps(seasons),
            # A m² of slack: the area measured after the trip through 4326 may be a hair less.
            "capacity": max(1, int((zone.area - 1.0) // STALL_GROSS_M2)),
            "operator": str(rng.choice(OPERATORS)).format(street=street_name.removesuffix("街道")),
            "simulated": True, "geometry": zone,
        })
    status = ["approved"] * len(rows)
    for i in rng.choice(len(rows), size=6, replace=False)[:5]:
        status[i] = "draft"
    status[int(np.flatnonzero(np.array(status) == "approved")[0])] = "retired"
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=METRIC_EPSG)
    # Two zones of one kind on one road are told apart by a number: 模拟纬九路夜市2号.
    rank = frame.groupby("name").cumcount().to_numpy() + 1
    frame["name"] = [n if r == 1 else f"{n}{r}号" for n, r in zip(frame["name"], rank,
                                                                   strict=True)]
    frame["status"] = status
    frame["valid_from"], frame["valid_to"] = _validity(status, list(frame["zone_type"]), rng,
                                                       today)
    return frame[ZONE_COLUMNS]


def _validity(status: list[str], zone_types: list[str], rng: np.random.Generator,
              today: dt.date) -> tuple[list[dt.date], list[dt.date | None]]:
    """Validity periods: approved 1 month to 3 years ago, fixed-term ones ending in 1-10
    months, the retired zone ended 10-60 days ago, drafts to start in two weeks."""
    began = rng.integers(30, 3 * 365, size=len(status))
    ends_in = rng.integers(30, 300, size=len(status))
    ended = rng.integers(10, 60, size=len(status))
    start: list[dt.date] = []
    end: list[dt.date | None] = []
    for i, (state, kind) in enumerate(zip(status, zone_types, strict=True)):
        if state == "draft":
            start.append(today + dt.timedelta(days=14))
            end.append(None)
            continue
        start.append(today - dt.timedelta(days=int(began[i])))
        if state == "retired":
            end.append(today - dt.timedelta(days=int(min(ended[i], began[i] - 1))))
        else:
            end.append(today + dt.timedelta(days=int(ends_in[i]))
                       if kind in FIXED_TERM_TYPES else None)
    return start, end
