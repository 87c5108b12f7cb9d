"""Parsed address + index -> ranked candidates, each with a match level, a score and why.

Scores are in 0..1: the level sets the ceiling (a doorplate found 1.0, interpolated between
two known plates of the same side 0.85, an intersection 0.9, a landmark 0.85, a road or a
community alone 0.5 or less: that names an area, not a point) and a name matched only
approximately lowers it. An offset (往东50米) moves the point and costs a little confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from gis.geocoding.index import Entry, GeocodeIndex
from gis.geocoding.parse import BEARINGS, ParsedAddress

ROAD_KINDS = frozenset({"road"})
COMPOUND_KINDS = frozenset({"compound"})
LANDMARK_KINDS = frozenset({"compound", "station", "facility", "stall_zone", "site"})
AREA_LEVEL = {"community": ("community", 0.5), "subdistrict": ("community", 0.3),
              "road": ("road", 0.5)}
SIDE_SHIFT_M = 30.0  # a point landmark's 东门 / 北侧: this far in that direction
INTERSECTION_GAP_M = 30.0  # two roads that end this close still make a crossing
EXTRAPOLATE_NUMBERS = 6  # a number this close past the last known plate takes that plate


@dataclass(frozen=True)
class Candidate:
    """One possible location of an address, in the metric CRS."""

    level: str
    score: float
    x: float
    y: float
    name: str
    why: str


def match(parsed: ParsedAddress, index: GeocodeIndex, *, limit: int = 5) -> list[Candidate]:
    """Candidates for `parsed`, best first, at most `limit`, duplicates at one spot merged."""
    if parsed.cross:
        found = _intersection(index, *parsed.cross)
    elif parsed.road is not None and parsed.number is not None:
        found = _doorplate(index, parsed) or _building(index, parsed.road, str(parsed.number))
    elif parsed.place is not None and parsed.building is not None:
        found = _building(index, parsed.place, parsed.building)
    elif parsed.place is not None:
        found = _place(index, parsed.place, parsed.side)
    else:
        found = []
    if not found and parsed.text and not parsed.cross:
        # 模拟经六路公厕2号 is a place's whole name, not road + number: try it as one.
        found = _place(index, parsed.text, None)
    if parsed.offset:
        found = [_offset(c, *parsed.offset) for c in found]
    found.sort(key=lambda c: (-c.score, c.name))
    unique: list[Candidate] = []
    for c in found:
        if all(math.hypot(c.x - u.x, c.y - u.y) > 5.0 for u in unique):
            unique.append(c)
    return unique[:limit]


def _doorplate(index: GeocodeIndex, parsed: ParsedAddress) -> list[Candidate]:
    assert parsed.road is not None and parsed.number is not None
    out: list[Candidate] = []
    number, suffix = parsed.number, parsed.suffix
    for entry, sim in index.lookup(parsed.road, ROAD_KINDS):
        road = entry.canonical
        label = f"{road}{number}{suffix if suffix in '甲乙丙丁' else ''}号"
        exact = index.plates.get((road, number, suffix))
        if exact is not None:
            out.append(Candidate("doorplate", round(sim, 3), *exact, f"{road}{number}{suffix}号",
                                 "门牌精确匹配"))
            continue
        base = index.plates.get((road, number, ""))
        if base is not None:
            out.append(Candidate("doorplate", round(0.9 * sim, 3), *base, label,
                                 f"门牌{number}号存在，附号{suffix}未登记，取{number}号"))
            continue
        out.extend(_interpolate(index, road, number, sim, label, entry))
    return out


def _interpolate(index: GeocodeIndex, road: str, number: int, sim: float, label: str,
                 entry: Entry) -> list[Candidate]:
    plates = index.road_sides(road, number)
    side = "单号" if number % 2 else "双号"
    if plates is not None and len(plates.numbers):
        nums = plates.numbers
        i = int(np.searchsorted(nums, number))
        if 0 < i < len(nums):
            lo, hi = int(nums[i - 1]), int(nums[i])
            t = (number - lo) / (hi - lo)
            x, y = plates.xy[i - 1] + t * (plates.xy[i] - plates.xy[i - 1])
            return [Candidate("interpolated", round(0.85 * sim, 3), float(x), float(y), label,
                              f"在{side}侧已知门牌{lo}号与{hi}号之间内插")]
        end = 0 if i == 0 else len(nums) - 1
        if abs(int(nums[end]) - number) <= EXTRAPOLATE_NUMBERS:
            x, y = plates.xy[end]
            return [Candidate("interpolated", round(0.7 * sim, 3), float(x), float(y), label,
                              f"门牌号超出已知范围，取{side}侧最近的{int(nums[end])}号")]
    x, y = _middle(entry.geom)
    return [Candidate("road", round(0.4 * sim, 3), x, y, road,
                      f"{road}无{number}号附近的门牌，只能定位到道路")]


def _building(index: GeocodeIndex, place: str, building: str) -> list[Candidate]:
    out: list[Candidate] = []
    for entry, sim in index.lookup(place, COMPOUND_KINDS):
        at = index.buildings.get((entry.key, building))
        if at is not None:
            out.append(Candidate("doorplate", round(0.95 * sim, 3), *at,
                                 f"{entry.name}{building}号楼", "小区楼栋号匹配"))
        else:
            x, y = _middle(entry.geom)
            out.append(Candidate("landmark", round(0.6 * sim, 3), x, y, entry.name,
                                 f"{entry.name}无{building}号楼的记录，定位到小区"))
    return out


def _intersection(index: GeocodeIndex, a: str, b: str) -> list[Candidate]:
    out: list[Candidate] = []
    for ea, sa in index.lookup(a, ROAD_KINDS)[:2]:
        for eb, sb in index.lookup(b, ROAD_KINDS)[:2]:
            if ea.canonical == eb.canonical:
                continue
            point = _crossing(ea.geom, eb.geom)
            if point is not None:
                out.append(Candidate("intersection", round(0.9 * min(sa, sb), 3), *point,
                                     f"{ea.canonical}与{eb.canonical}交叉口", "两条道路的交点"))
    return out


def _crossing(ga: BaseGeometry, gb: BaseGeometry) -> tuple[float, float] | None:
    meet = shapely.intersection(ga, gb)
    if not meet.is_empty:
        points = shapely.get_coordinates(meet)
        return float(points[0][0]), float(points[0][1])
    pa, pb = nearest_points(ga, gb)
    if pa.distance(pb) <= INTERSECTION_GAP_M:
        return (pa.x + pb.x) / 2, (pa.y + pb.y) / 2
    return None


def _place(index: GeocodeIndex, name: str, side: str | None) -> list[Candidate]:
    out: list[Candidate] = []
    for entry, sim in index.lookup(name):
        if entry.kind in AREA_LEVEL:
            level, ceiling = AREA_LEVEL[entry.kind]
            x, y = _middle(entry.geom)
            label = entry.canonical
            out.append(Candidate(level, round(ceiling * sim, 3), x, y, label,
                                 "只匹配到道路，未给门牌号" if level == "road"
                                 else "只匹配到社区或街道，范围太大"))
            continue
        x, y = _middle(entry.geom)
        why = "地名匹配"
        if side:
            x, y, why = _beside(index, entry, side, (x, y))
        out.append(Candidate("landmark", round(0.85 * sim, 3), x, y,
                             entry.name + (side or ""), why))
    return out


def _beside(index: GeocodeIndex, entry: Entry, side: str,
            at: tuple[float, float]) -> tuple[float, float, str]:
    """A landmark's 东门 / 北侧 / 对面: the point moved to that side of it."""
    if side == "对面":
        road = index.nearest_road(at)
        if road is None:
            return *at, "地名匹配（无道路可判断对面）"
        _, on = nearest_points(shapely.Point(at), road.geom)
        return 2 * on.x - at[0], 2 * on.y - at[1], f"{entry.name}隔{road.canonical}的对面"
    direction = side.rstrip("门侧面边口头")
    if direction not in BEARINGS:
        return *at, "地名匹配（门的方位不明）"
    bearing = math.radians(BEARINGS[direction])
    dx, dy = math.sin(bearing), math.cos(bearing)
    if entry.geom.geom_type in ("Polygon", "MultiPolygon"):
        far = shapely.Point(at[0] + dx * 5000, at[1] + dy * 5000)
        ray = shapely.LineString([at, (far.x, far.y)])
        edge = shapely.intersection(ray, entry.geom.boundary)
        if not edge.is_empty:
            px, py = shapely.get_coordinates(edge)[0]
            return float(px), float(py), f"{entry.name}的{side}（边界上）"
    return (at[0] + dx * SIDE_SHIFT_M, at[1] + dy * SIDE_SHIFT_M,
            f"{entry.name}向{direction}{SIDE_SHIFT_M:g}米（{side}）")


def _middle(geom: BaseGeometry) -> tuple[float, float]:
    """A representative point: a point itself, a line's middle, an area's inside."""
    if isinstance(geom, shapely.Point):
        return geom.x, geom.y
    if geom.geom_type in ("LineString", "MultiLineString"):
        lines = list(getattr(geom, "geoms", [geom]))
        longest = max(lines, key=lambda g: g.length)
        p = longest.interpolate(0.5, normalized=True)
        return p.x, p.y
    p = geom.point_on_surface()
    return p.x, p.y


def _offset(c: Candidate, bearing_deg: float, metres: float) -> Candidate:
    b = math.radians(bearing_deg)
    return replace(c, x=c.x + math.sin(b) * metres, y=c.y + math.cos(b) * metres,
                   score=round(c.score * 0.95, 3), why=f"{c.why}；再偏移{metres:g}米")
