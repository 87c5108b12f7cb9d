"""Community stations (社区城管工作站) and public facilities of the convenience map."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gis.demo import METRIC_EPSG
from gis.demo.divisions import short_name
from gis.demo.partition import random_points_in
from gis.demo.spatial import nearest_value

CITY_PREFIX = "济南市历下区"
STATION_HOURS = "08:30-17:30"
STATION_COLUMNS = ["code", "name", "address", "phone", "staff", "opening_hours",
                   "community_code", "simulated", "geometry"]
FACILITY_COLUMNS = ["name", "kind", "address", "opening_hours", "phone", "simulated",
                    "geometry"]
FACILITY_EDGE_M = 15.0  # keep facilities clear of the district edge

# kind -> (how many, name suffix, opening hours to choose from, has a phone)
FACILITY_KINDS: dict[str, tuple[int, str, list[str], bool]] = {
    "farmers_market": (25, "农贸市场", ["06:00-20:00", "05:30-19:00", "06:30-21:00"], True),
    "public_toilet": (120, "公厕", ["24小时", "24小时", "05:30-23:00"], False),
    "ev_charging": (60, "充电站", ["24小时"], True),
    "parking": (60, "停车场", ["24小时", "07:00-22:00"], True),
    "convenience_point": (35, "便民服务点", ["08:00-20:00", "07:00-21:00"], False),
}


def landline(rng: np.random.Generator) -> str:
    """A simulated Jinan landline, 0531-8xxxxxxx."""
    return f"0531-8{int(rng.integers(0, 10_000_000)):07d}"


def build_stations(communities_m: gpd.GeoDataFrame, roads_m: gpd.GeoDataFrame,
                   rng: np.random.Generator) -> gpd.GeoDataFrame:
    """One 城管工作站 per community, at a point on the community's surface."""
    points = shapely.point_on_surface(communities_m.geometry.values)
    roads = nearest_value(points, roads_m, "name")
    short = [short_name(n) for n in communities_m["name"]]
    return gpd.GeoDataFrame({
        "code": [f"ST-{c}" for c in communities_m["code"]],
        "name": [f"{s}城管工作站" for s in short],
        "address": [f"{CITY_PREFIX}{r}{int(rng.integers(1, 300))}号" for r in roads],
        "phone": [landline(rng) for _ in short],
        "staff": rng.integers(3, 9, size=len(short)),
        "opening_hours": STATION_HOURS,
        "community_code": communities_m["code"].to_numpy(), "simulated": True,
    }, geometry=points, crs=METRIC_EPSG)[STATION_COLUMNS]


def build_facilities(outline_m: BaseGeometry, roads_m: gpd.GeoDataFrame,
                     rng: np.random.Generator) -> gpd.GeoDataFrame:
    """About 300 public facilities of five kinds at random spots in the district."""
    inner = outline_m.buffer(-FACILITY_EDGE_M)
    frames = []
    for kind, (count, suffix, hours, has_phone) in FACILITY_KINDS.items():
        points = np.asarray(shapely.points(random_points_in(inner, count, rng)))
        roads = nearest_value(points, roads_m, "name")
        seen: dict[str, int] = {}
        names = []
        for road in roads:
            seen[road] = seen.get(road, 0) + 1
            names.append(f"{road}{suffix}" + (f"{seen[road]}号" if seen[road] > 1 else ""))
        frames.append(gpd.GeoDataFrame({
            "name": names, "kind": kind,
            "address": [f"{CITY_PREFIX}{r}{int(rng.integers(1, 300))}号" for r in roads],
            "opening_hours": rng.choice(hours, size=count),
            "phone": [landline(rng) if has_phone else None for _ in roads],
            "simulated": True,
        }, geometry=points, crs=METRIC_EPSG))
    return gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), crs=METRIC_EPSG)[FACILITY_COLUMNS]
