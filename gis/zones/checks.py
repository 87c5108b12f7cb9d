"""The city's stall zone rules, checked in PostGIS; each violation is a GeoJSON Feature.

Every distance and area is measured in the city's metric CRS (CitySettings.metric_epsg,
EPSG:4548 for Jinan) and every violation carries the offending part of the zone, transformed
back to EPSG:4326: the part inside a buffer, the overlap with another zone, the part outside the
district. Decisions use exact distances (ST_Distance), not the polygonised buffers, so a zone
just outside a limit passes even where a buffer's chord would cut it.

Pedestrian clearance model. A road is its centreline with `width_m`, the cross-section between
building lines that walkers and stalls share while a zone is open. The part of a zone inside
that corridor (centreline buffered by width/2, flat ends) leaves a gap to each edge of the
corridor; pedestrians need one continuous gap, so the clearance left is the larger of the two
narrowest gaps: max(dist(part, left edge), dist(part, right edge)). A zone along one kerb of a
6 m street that is 3.5 m deep leaves 2.5 m; one across the middle leaves whichever side is wider.
Other zones are not subtracted: two zones open at the same time may not overlap anyway, and
zones facing each other across a street are a known gap of this model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import OutsideCityError
from gis.platform.settings import CitySettings
from gis.zones.errors import InvalidZoneGeometryError
from gis.zones.rules import ZoneRules
from gis.zones.timeslots import first_common_time, parse_schedule

SITE_LABELS = {"school_gate": ("学校大门", "school gate"),
               "kindergarten": ("幼儿园", "kindergarten"),
               "hospital": ("医院", "hospital"), "metro_exit": ("地铁出入口", "metro exit"),
               "fire_lane": ("消防通道", "fire lane")}
STREET_LABELS = {"demonstration": ("示范街", "demonstration street"),
                 "managed": ("规范街", "managed street"),
                 "commercial": ("商业街", "commercial street"), "other": ("其他道路", "road")}
WEEKDAYS_ZH = "一二三四五六日"
MIN_PART_M2 = 0.01  # parts smaller than this are shared edges, not intrusions

# The zone, once in storage and once in metres; `reach` bounds every search around it.
_ZONE_CTE = """
WITH z AS (
    SELECT g4326, ST_Transform(g4326, :epsg) AS g,
           ST_Transform(ST_Expand(ST_Transform(g4326, :epsg), :reach), 4326) AS search
    FROM (SELECT ST_SetSRID(CAST(:wkb AS geometry), 4326) AS g4326) AS input
)
"""
# GeoJSON of a metric geometry, back in 4326, with 8 decimals (about 1 mm).
_OUT = "ST_AsGeoJSON(ST_Transform({}, 4326), 8)"


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id, messages in Chinese and English, the offending geometry."""

    rule: str
    message_zh: str
    message_en: str
    geometry: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def to_feature(self) -> dict[str, Any]:
        """The violation as a GeoJSON Feature (EPSG:4326)."""
        return {"type": "Feature", "geometry": self.geometry,
                "properties": {"rule": self.rule, "message_zh": self.message_zh,
                               "message_en": self.message_en, **self.details}}


@dataclass
class ZoneCheck:
    """Outcome of checking one zone: violations, the district it lies in, the grids it touches."""

    violations: list[Violation]
    area_m2: float
    district_code: str | None
    grids: list[tuple[str, float]]

    @property
    def passed(self) -> bool:
        """True when no rule is broken."""
        return not self.violations


def check_geometry(session: Session, *, polygon: Polygon, city: CitySettings) -> str:
    """Hex WKB of `polygon` once PostGIS finds it valid; InvalidZoneGeometryError otherwise."""
    x1, y1, x2, y2 = polygon.bounds
    bx1, by1, bx2, by2 = city.bbox
    if x1 < bx1 or y1 < by1 or x2 > bx2 or y2 > by2:
        raise OutsideCityError(
            f"zone bounds ({x1:.6f}, {y1:.6f}, {x2:.6f}, {y2:.6f}) leave the city "
            f"{city.name} bbox {city.bbox} (EPSG:4326)")
    wkb = polygon.wkb_hex
    row = session.execute(text("""
        SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason,
               ST_Area(ST_Transform(g, :epsg)) AS area,
               CASE WHEN NOT ST_IsValid(g) THEN ST_AsGeoJSON(ST_MakeValid(g), 8) END AS repair
        FROM (SELECT ST_SetSRID(CAST(:wkb AS geometry), 4326) AS g) AS input
    """), {"wkb": wkb, "epsg": city.metric_epsg}).one()
    if not row.valid:
        raise InvalidZoneGeometryError(row.reason, repair=json.loads(row.repair))
    if row.area < MIN_PART_M2:
        raise InvalidZoneGeometryError(f"zone polygon has no area ({row.area:.4f} m²)")
    return str(wkb)


def check_zone(session: Session, *, wkb: str, capacity: int, time_slots: list[dict[str, Any]],
               seasons: list[dict[str, Any]], rules: ZoneRules, city: CitySettings,
               district_code: str | None = None, zone_id: int | None = None) -> ZoneCheck:
    """Run every rule on a valid zone polygon (hex WKB, EPSG:4326); `zone_id` excludes itself."""
    sens = rules.sensitive_distance_m.model_dump()
    reach = 150.0 + max([*sens.values(), rules.demonstration_street.buffer_m,
                         rules.fire_lane.clear_width_m])
    params: dict[str, Any] = {"wkb": wkb, "epsg": city.metric_epsg, "reach": reach}
    violations: list[Violation] = []
    violations += _demonstration_streets(session, params, rules)
    violations += _sensitive_sites(session, params, rules)
    violations += _fire_lanes(session, params, rules)
    violations += _pedestrian_clearance(session, params, rules)
    area_m2, capacity_violations = _capacity(session, params, rules, capacity)
    violations += capacity_violations
    violations += _time_overlaps(session, params, rules, time_slots, seasons, zone_id)
    found_district, district_violations = _district(session, params, rules, district_code)
    violations += district_violations
    return ZoneCheck(violations, area_m2, found_district, _grids(session, params))


def _demonstration_streets(session: Session, params: dict[str, Any],
                           rules: ZoneRules) -> list[Violation]:
    buffer_m = rules.demonstration_street.buffer_m
    rows = session.execute(text(_ZONE_CTE + f"""
        SELECT r.id, r.name, r.width_m, ST_Distance(z.g, rg) AS distance,
               r.width_m / 2 + :buffer_m AS limit_m,
               {_OUT.format(_part_sql("z.g", "rg", "r.width_m / 2 + :buffer_m"))} AS part
        FROM z JOIN roads r ON r.geom && z.search
        CROSS JOIN LATERAL (SELECT ST_Transform(r.geom, :epsg) AS rg) AS t
        WHERE r.street_class = 'demonstration'
          AND ST_Distance(z.g, rg) < r.width_m / 2 + :buffer_m
        ORDER BY r.id
    """), {**params, "buffer_m": buffer_m}).all()
    return [Violation(
        "demonstration_street",
        f"摊群点不得设在示范街{r.name}上或其两侧{buffer_m:g}米范围内",
        f"zone lies on demonstration street {r.name} or within {buffer_m:g} m of it",
        json.loads(r.part),
        {"road_id": r.id, "road_name": r.name,
         "distance_m": round(max(0.0, r.distance - r.width_m / 2), 2), "limit_m": buffer_m})
        for r in rows]


def _sensitive_sites(session: Session, params: dict[str, Any],
                     rules: ZoneRules) -> list[Violation]:
    limits = rules.sensitive_distance_m.model_dump()
    rows = session.execute(text(_ZONE_CTE + f"""
        SELECT s.id, s.name, s.kind, ST_Distance(z.g, sg) AS distance, lim.metres,
               {_OUT.format(_part_sql("z.g", "sg", "lim.metres"))} AS part
        FROM z JOIN sensitive_sites s ON s.geom && z.search
        JOIN (SELECT key AS kind, value::float AS metres
              FROM jsonb_each_text(CAST(:limits AS jsonb))) AS lim ON lim.kind = s.kind
        CROSS JOIN LATERAL (SELECT ST_Transform(s.geom, :epsg) AS sg) AS t
        WHERE ST_Distance(z.g, sg) < lim.metres
        ORDER BY s.kind, s.id
    """), {**params, "limits": json.dumps(limits)}).all()
    out = []
    for r in rows:
        zh, en = SITE_LABELS[r.kind]
        out.append(Violation(
            f"sensitive_site.{r.kind}",
            f"距{zh}“{r.name}”仅{r.distance:.1f}米，应不少于{r.metres:g}米",
            f"zone is {r.distance:.1f} m from {en} {r.name!r}; at least {r.metres:g} m required",
            json.loads(r.part),
            {"site_id": r.id, "site_name": r.name, "site_kind": r.kind,
             "distance_m": round(r.distance, 2), "limit_m": r.metres}))
    return out


def _fire_lanes(session: Session, params: dict[str, Any], rules: ZoneRules) -> list[Violation]:
    rows = session.execute(text(_ZONE_CTE + f"""
        SELECT s.id, s.name, w.clear, ST_Distance(z.g, sg) AS distance,
               {_OUT.format(_part_sql("z.g", "sg", "w.clear / 2"))} AS part
        FROM z JOIN sensitive_sites s ON s.geom && z.search
        CROSS JOIN LATERAL (SELECT ST_Transform(s.geom, :epsg) AS sg) AS t
        CROSS JOIN LATERAL (SELECT COALESCE(s.clear_width_m, :default_clear) AS clear) AS w
        WHERE s.kind = 'fire_lane' AND ST_Distance(z.g, sg) < w.clear / 2
        ORDER BY s.id
    """), {**params, "default_clear": rules.fire_lane.clear_width_m}).all()
    return [Violation(
        "fire_lane",
        f"占用消防通道“{r.name}”，须保持{r.clear:g}米净宽畅通",
        f"zone blocks fire lane {r.name!r}, which must keep {r.clear:g} m clear",
        json.loads(r.part),
        {"site_id": r.id, "site_name": r.name, "clear_width_m": r.clear}) for r in rows]


def _pedestrian_clearance(session: Session, params: dict[str, Any],
                          rules: ZoneRules) -> list[Violation]:
    required = rules.pedestrian_clearance_m.model_dump()
    rows = session.execute(text(_ZONE_CTE + f"""
        SELECT r.id, r.name, r.street_class, r.width_m, need.metres,
               GREATEST(ST_Distance(p.part, ST_OffsetCurve(rg, r.width_m / 2)),
                        ST_Distance(p.part, ST_OffsetCurve(rg, -r.width_m / 2))) AS clearance,
               {_OUT.format("p.part")} AS part
        FROM z JOIN roads r ON r.geom && z.search
        JOIN (SELECT key AS street_class, value::float AS metres
              FROM jsonb_each_text(CAST(:required AS jsonb))) AS need
             ON need.street_class = r.street_class
        CROSS JOIN LATERAL (SELECT ST_Transform(r.geom, :epsg) AS rg) AS t
        CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(
            z.g, ST_Buffer(rg, r.width_m / 2, 'endcap=flat join=mitre')), 3) AS part) AS p
        WHERE ST_Intersects(z.g, ST_Buffer(rg, r.width_m / 2, 'endcap=flat join=mitre'))
          AND ST_Area(p.part) > :min_part
        ORDER BY r.id
    """), {**params, "required": json.dumps(required), "min_part": MIN_PART_M2}).all()
    out = []
    for r in rows:
        if r.clearance >= r.metres:
            continue
        zh, en = STREET_LABELS[r.street_class]
        out.append(Violation(
            "pedestrian_clearance",
            f"占用{zh}“{r.name}”（宽{r.width_m:g}米）后仅余{r.clearance:.2f}米人行通道，"
            f"应不少于{r.metres:g}米",
            f"zone leaves {r.clearance:.2f} m of walkway on {en} {r.name!r} "
            f"({r.width_m:g} m wide); at least {r.metres:g} m required",
            json.loads(r.part),
            {"road_id": r.id, "road_name": r.name, "street_class": r.street_class,
             "clearance_m": round(r.clearance, 2), "limit_m": r.metres}))
    return out


def _capacity(session: Session, params: dict[str, Any], rules: ZoneRules,
              capacity: int) -> tuple[float, list[Violation]]:
    row = session.execute(text(_ZONE_CTE + f"SELECT ST_Area(z.g) AS area, {_OUT.format('z.g')} "
                               "AS part FROM z"), params).one()
    gross = rules.capacity.gross_m2
    needed = capacity * gross
    if needed <= row.area + MIN_PART_M2:  # float noise of the round trip through degrees
        return row.area, []
    fits = int(row.area // gross)
    return row.area, [Violation(
        "capacity",
        f"面积{row.area:.1f}平方米，按每摊{gross:g}平方米（含通道）最多容纳{fits}个摊位，"
        f"申报{capacity}个",
        f"zone of {row.area:.1f} m² fits at most {fits} stalls at {gross:g} m² each "
        f"(aisle included); {capacity} requested",
        json.loads(row.part),
        {"area_m2": round(row.area, 2), "capacity": capacity, "max_capacity": fits,
         "m2_per_stall": gross})]


def _time_overlaps(session: Session, params: dict[str, Any], rules: ZoneRules,
                   time_slots: list[dict[str, Any]], seasons: list[dict[str, Any]],
                   zone_id: int | None) -> list[Violation]:
    rows = session.execute(text(_ZONE_CTE + f"""
        SELECT s.id, s.name, s.status, s.time_slots, s.seasons, ST_Area(o.g) AS area,
               {_OUT.format("o.g")} AS part
        FROM z JOIN stall_zones s ON s.geom && z.g4326
        CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(
            z.g, ST_Transform(s.geom, :epsg)), 3) AS g) AS o
        WHERE s.status = ANY(:statuses) AND s.id IS DISTINCT FROM :zone_id
          AND ST_Intersects(z.g4326, s.geom) AND ST_Area(o.g) > :min_area
        ORDER BY s.id
    """), {**params, "statuses": list(rules.overlap.statuses), "zone_id": zone_id,
           "min_area": rules.overlap.min_area_m2}).all()
    mine = parse_schedule(time_slots, seasons)
    out = []
    for r in rows:
        common = first_common_time(mine, parse_schedule(r.time_slots, r.seasons))
        if common is None:
            continue
        day, weekday, hhmm = common
        out.append(Violation(
            "time_overlap",
            f"与摊群点“{r.name}”（#{r.id}）空间重叠{r.area:.1f}平方米且经营时段冲突"
            f"（如{day} 周{WEEKDAYS_ZH[weekday - 1]} {hhmm}）",
            f"zone overlaps zone {r.name!r} (#{r.id}) by {r.area:.1f} m² and both are open "
            f"at the same time (e.g. {day}, ISO weekday {weekday}, {hhmm})",
            json.loads(r.part),
            {"other_zone_id": r.id, "other_zone_name": r.name, "overlap_m2": round(r.area, 2),
             "common_time": {"date": day, "weekday": weekday, "time": hhmm}}))
    return out


def _district(session: Session, params: dict[str, Any], rules: ZoneRules,
              requested: str | None) -> tuple[str | None, list[Violation]]:
    row = session.execute(text(_ZONE_CTE + f"""
        SELECT d.code, d.name, ST_Area(o.outside) AS outside_m2,
               {_OUT.format("o.outside")} AS outside,
               (SELECT count(*) FROM districts d2 WHERE ST_Intersects(d2.geom, z.g4326)) AS n
        FROM z JOIN districts d ON ST_Intersects(d.geom, z.g4326)
        CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(
            z.g, ST_Transform(d.geom, :epsg)), 3) AS outside) AS o
        ORDER BY ST_Area(o.outside), d.code
        LIMIT 1
    """), params).one_or_none()
    if row is None:
        whole = session.execute(text(_ZONE_CTE + f"SELECT {_OUT.format('z.g')} AS g FROM z"),
                                params).scalar_one()
        return None, [Violation("district", "摊群点不在任何行政区内",
                                "zone lies in no district", json.loads(whole))]
    if row.outside_m2 > rules.district.tolerance_m2:
        return row.code, [Violation(
            "district",
            f"摊群点须完整位于一个行政区内，有{row.outside_m2:.1f}平方米超出{row.name}",
            f"zone must lie inside one district; {row.outside_m2:.1f} m² lie outside "
            f"{row.name} ({row.code})",
            json.loads(row.outside),
            {"district_code": row.code, "outside_m2": round(row.outside_m2, 2)})]
    if requested is not None and requested != row.code:
        whole = session.execute(text(_ZONE_CTE + f"SELECT {_OUT.format('z.g')} AS g FROM z"),
                                params).scalar_one()
        return row.code, [Violation(
            "district", f"摊群点位于{row.name}（{row.code}），而非申报的{requested}",
            f"zone lies in {row.name} ({row.code}), not in district {requested} as given",
            json.loads(whole), {"district_code": row.code, "requested": requested})]
    return row.code, []


def _grids(session: Session, params: dict[str, Any]) -> list[tuple[str, float]]:
    rows = session.execute(text(_ZONE_CTE + """
        SELECT c.code, ST_Area(ST_Intersection(z.g, ST_Transform(c.geom, :epsg))) AS m2
        FROM z JOIN grid_cells c ON c.geom && z.g4326 AND ST_Intersects(c.geom, z.g4326)
        ORDER BY c.code
    """), params).all()
    return [(r.code, round(r.m2, 2)) for r in rows if r.m2 > MIN_PART_M2]


def _part_sql(zone: str, other: str, distance: str) -> str:
    """SQL for the part of `zone` within `distance` of `other`; the nearest point if the
    polygonised buffer misses it (a zone just inside the limit near a chord)."""
    inter = (f"ST_CollectionExtract(ST_Intersection({zone}, "
             f"ST_Buffer({other}, {distance}, 'quad_segs=16')), 3)")
    return (f"(CASE WHEN ST_IsEmpty({inter}) THEN ST_ClosestPoint({zone}, {other}) "
            f"ELSE {inter} END)")
