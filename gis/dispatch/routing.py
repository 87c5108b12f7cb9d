"""Route one complaint: its unit grid, the owner of the day, station, responsible unit, stall zone.

Rules a dispatcher can rely on:

* **Shared edges and vertices.** Grids are closed polygons, so a point on a shared edge or vertex
  lies in several. It goes to the grid with the smallest code among them (ST_Intersects, then
  ORDER BY code): deterministic, independent of insertion order, and easy to explain.
* **Just outside.** A point in no grid but within `max_snap_m` of one goes to the nearest grid
  (ties: smallest code), flagged `snapped` with the distance; farther away it is refused with an
  OutsideCityError naming the point and the city.
* **Owner of the day.** Ownership is versioned; the owner is the one valid on the complaint's
  local date. A grid without an owner that day falls to the local government of its street
  (属地兜底: "<street>办事处"), flagged `fallback`, so every case has exactly one responsible party.
* **Responsible unit.** From the responsibility_rules table (longest code prefix wins). A named
  component, or for a component category the nearest component of that class within
  `component_link_m`, is linked and its owner decides under a 'component_owner' rule.
* **Distances** are metres on the WGS84 spheroid (geography); index order (`<->`, degrees) only
  preselects candidates, which are then re-ranked in metres.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.routing_settings import RoutingSettings
from gis.geo.coords import normalise_crs, to_wgs84
from gis.platform.errors import InvalidInputError, NotFoundError, OutsideCityError
from gis.platform.settings import CitySettings
from gis.zones.timeslots import parse_schedule

CategoryType = Literal["event", "component"]
CATEGORY_CODE = re.compile(r"^[0-9]{4}$")
COMPONENT_CODE = re.compile(r"^[0-9]{16}$")
STREETLIGHT_CLASS = "0118"
COVER_CLASSES = frozenset(f"01{n:02d}" for n in range(1, 15))
# KNN preselects by planar degrees; this many candidates make the metric re-rank safe at
# mid latitudes where a degree of longitude is ~20% shorter than one of latitude.
_KNN_CANDIDATES = 8
_METRES_PER_DEGREE = 111_320.0


class OwnerInfo(BaseModel):
    """Who owns the grid on the complaint's date."""

    name: str
    kind: str
    phone: str | None
    valid_from: date | None = None
    valid_to: date | None = None
    fallback: bool = Field(False, description="True when no owner was recorded: 属地兜底")


class StationInfo(BaseModel):
    """The nearest community station."""

    code: str
    name: str
    phone: str
    distance_m: float


class ComponentInfo(BaseModel):
    """A component the complaint is linked to."""

    code: str
    component_class: str
    owner: str
    distance_m: float
    how: Literal["named", "nearby"]


class StallZoneInfo(BaseModel):
    """An approved stall zone open at the complaint's time and containing it."""

    id: int
    name: str
    zone_type: str
    operator: str


class RouteResult(BaseModel):
    """Where a complaint goes, with the facts that explain it."""

    raw_x: float
    raw_y: float
    raw_crs: str
    lon: float
    lat: float
    at: datetime
    grid_code: str
    community_code: str
    community_name: str
    snapped: bool
    snap_distance_m: float = Field(description="0 when the point lies in the grid")
    owner: OwnerInfo
    station: StationInfo | None
    category_type: CategoryType
    category_code: str | None
    responsible_unit: str
    responsibility_rule: str = Field(description="why this unit: the rule that decided")
    responsibility_rule_zh: str = Field(description="the same, in Chinese, for the pages")
    component: ComponentInfo | None
    nearest_other_grid: str | None
    other_grid_distance_m: float | None
    near_boundary: bool
    stall_zone: StallZoneInfo | None


@dataclass(frozen=True)
class Rule:
    """One row of responsibility_rules plus the class's default owner."""

    code_prefix: str
    rule_kind: str
    responsible_unit: str | None
    notes: str
    class_owner: str | None


_LOCATE = f"""
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
-- MATERIALIZED keeps the planner on the GiST index instead of walking the code index.
containing AS MATERIALIZED (
    SELECT c.code FROM grid_cells c, p WHERE ST_Intersects(c.geom, p.g)),
hit AS (SELECT code, 0.0::float8 AS dist, false AS snapped FROM containing ORDER BY code LIMIT 1),
near AS (
    SELECT k.code, ST_Distance(k.geom::geography, p.g::geography) AS dist, true AS snapped
    FROM p, LATERAL (SELECT code, geom FROM grid_cells
                     ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) k
    WHERE NOT EXISTS (SELECT 1 FROM hit)
    ORDER BY dist, k.code LIMIT 1),
cell AS (SELECT * FROM hit UNION ALL SELECT * FROM near)
SELECT cell.code, cell.dist, cell.snapped, g.community_code, cm.name AS community_name,
       sd.name AS subdistrict_name,
       o.owner_name, o.owner_kind, o.phone AS owner_phone, o.valid_from, o.valid_to,
       st.code AS station_code, st.name AS station_name, st.phone AS station_phone,
       st.dist AS station_m, other.code AS other_code, other.dist AS other_m
FROM cell
JOIN grid_cells g ON g.code = cell.code
JOIN communities cm ON cm.code = g.community_code
JOIN subdistricts sd ON sd.code = cm.subdistrict_code
CROSS JOIN p
LEFT JOIN LATERAL (
    SELECT owner_name, owner_kind, phone, valid_from, valid_to FROM grid_owners
    WHERE grid_code = cell.code AND valid_from <= :day AND (valid_to IS NULL OR valid_to > :day)
    ORDER BY valid_from DESC LIMIT 1) o ON true
LEFT JOIN LATERAL (
    SELECT s.code, s.name, s.phone, ST_Distance(s.geom::geography, p.g::geography) AS dist
    FROM (SELECT code, name, phone, geom FROM stations
          ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) s
    ORDER BY dist, s.code LIMIT 1) st ON true
LEFT JOIN LATERAL (
    SELECT k.code, ST_Distance(k.geom::geography, p.g::geography) AS dist
    FROM (SELECT code, geom FROM grid_cells WHERE code <> cell.code
          ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) k
    ORDER BY dist, k.code LIMIT 1) other ON true
"""

_ZONES = """
SELECT id, name, zone_type, operator, time_slots, seasons FROM stall_zones
WHERE status = 'approved' AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
ORDER BY id
"""

_NAMED_COMPONENT = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS g)
SELECT code, component_class, owner, ST_Distance(geom::geography, p.g) AS dist
FROM p, (SELECT code, '0118' AS component_class, owner, geom FROM streetlights
         UNION ALL
         SELECT code, cover_class, owner, geom FROM manhole_covers) c
WHERE c.code = :code
"""

_NEARBY_COMPONENT = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
SELECT code, component_class, owner, ST_Distance(geom::geography, p.g::geography) AS dist
FROM p, (SELECT code, '0118'::char(4) AS component_class, owner, geom FROM streetlights
         WHERE in_use AND :cls = '0118'
         UNION ALL
         SELECT code, cover_class, owner, geom FROM manhole_covers
         WHERE in_use AND cover_class = :cls) c
-- Degrees first (GiST), metres second (exact).
WHERE ST_DWithin(c.geom, p.g, :deg) AND ST_DWithin(c.geom::geography, p.g::geography, :m)
ORDER BY dist, code LIMIT 1
"""

_RULE = """
SELECT r.code_prefix, r.rule_kind, r.responsible_unit, r.notes,
       (SELECT default_owner FROM component_classes WHERE code = :code) AS class_owner
FROM responsibility_rules r
WHERE r.category_type = :type AND :code LIKE r.code_prefix || '%'
ORDER BY length(r.code_prefix) DESC LIMIT 1
"""


def local_time(at: datetime, settings: RoutingSettings) -> datetime:
    """`at` as naive city time: aware datetimes converted, naive ones taken as city time."""
    if at.tzinfo is None:
        return at
    return at.astimezone(settings.tz).replace(tzinfo=None)


def check_category(category_type: str, category_code: str | None,
                   component_code: str | None) -> None:
    """InvalidInputError naming a bad category type, category code or component code."""
    if category_type not in ("event", "component"):
        raise InvalidInputError(
            f"category_type {category_type!r} must be 'event' or 'component'")
    if category_code is not None and not CATEGORY_CODE.match(category_code):
        raise InvalidInputError(f"category_code {category_code!r} must be 4 digits, e.g. 0501")
    if component_code is not None and not COMPONENT_CODE.match(component_code):
        raise InvalidInputError(
            f"component_code {component_code!r} must be 16 digits, e.g. 3701020102000001")


def fallback_owner(subdistrict_name: str) -> OwnerInfo:
    """属地兜底: the street office of the grid's subdistrict, used when no owner is recorded."""
    name = subdistrict_name if subdistrict_name.endswith("办事处") else f"{subdistrict_name}办事处"
    return OwnerInfo(name=name, kind="local_government", phone=None, fallback=True)


def find_rule(session: Session, *, category_type: str, category_code: str | None) -> Rule | None:
    """The responsibility rule with the longest prefix matching the category, if any."""
    row = session.execute(text(_RULE), {"type": category_type,
                                        "code": category_code or ""}).mappings().first()
    return Rule(**row) if row else None


def responsible_unit(rule: Rule | None, *, owner: OwnerInfo,
                     component: ComponentInfo | None) -> tuple[str, str, str]:
    """(unit, explanation, 中文说明) under `rule`; no rule means the grid owner (属地)."""
    if rule is None:
        return (owner.name, "no rule matches: grid owner (属地)",
                "无匹配规则：由网格责任人（属地）负责")
    prefix = f"rule {rule.code_prefix or '(default)'}"
    prefix_zh = f"规则 {rule.code_prefix or '（默认）'}"
    if rule.rule_kind == "fixed" and rule.responsible_unit:
        return (rule.responsible_unit, f"{prefix}: {rule.notes}",
                f"{prefix_zh}：此类案件固定由{rule.responsible_unit}负责")
    if rule.rule_kind == "component_owner":
        if component is not None:
            return (component.owner, f"{prefix}: owner of component {component.code}",
                    f"{prefix_zh}：由部件 {component.code} 的权属单位负责")
        unit = rule.responsible_unit or rule.class_owner
        if unit:
            return (unit, f"{prefix}: no component linked, {rule.notes}",
                    f"{prefix_zh}：未关联部件，由该类部件的默认权属单位负责")
    return owner.name, f"{prefix}: grid owner (属地)", f"{prefix_zh}：由网格责任人（属地）负责"


def link_component(session: Session, *, lon: float, lat: float, category_type: str,
                   category_code: str | None, component_code: str | None,
                   link_m: float) -> ComponentInfo | None:
    """The named component, or the nearest of the component category within `link_m`."""
    if component_code is not None:
        row = session.execute(text(_NAMED_COMPONENT), {"lon": lon, "lat": lat,
                                                       "code": component_code}).mappings().first()
        if row is None:
            raise NotFoundError(f"component {component_code} is neither a streetlight nor a "
                                "manhole cover on record")
        return ComponentInfo(code=row["code"], component_class=row["component_class"],
                             owner=row["owner"], distance_m=round(row["dist"], 2), how="named")
    if category_type != "component" or category_code is None:
        return None
    if category_code != STREETLIGHT_CLASS and category_code not in COVER_CLASSES:
        return None
    deg = link_m / (_METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    row = session.execute(text(_NEARBY_COMPONENT), {
        "lon": lon, "lat": lat, "cls": category_code, "deg": deg, "m": link_m,
    }).mappings().first()
    if row is None:
        return None
    return ComponentInfo(code=row["code"], component_class=row["component_class"],
                         owner=row["owner"], distance_m=round(row["dist"], 2), how="nearby")


def open_stall_zone(session: Session, *, lon: float, lat: float,
                    local: datetime) -> StallZoneInfo | None:
    """The approved zone (lowest id) containing the point and open at local time `local`."""
    for row in session.execute(text(_ZONES), {"lon": lon, "lat": lat}).mappings():
        if parse_schedule(row["time_slots"], row["seasons"]).is_open(local):
            return StallZoneInfo(id=row["id"], name=row["name"], zone_type=row["zone_type"],
                                 operator=row["operator"])
    return None


def _owner(row: Any) -> OwnerInfo:
    if row["owner_name"] is None:
        return fallback_owner(row["subdistrict_name"])
    return OwnerInfo(name=row["owner_name"], kind=row["owner_kind"], phone=row["owner_phone"],
                     valid_from=row["valid_from"], valid_to=row["valid_to"], fallback=False)


def checked_point(x: float, y: float, crs: str, category_type: str, category_code: str | None,
                  component_code: str | None) -> tuple[str, float, float]:
    """(CRS tag, lon, lat) of a complaint's point after checking its input; 4xx errors else."""
    tag = normalise_crs(crs)
    for name, value in (("x", x), ("y", y)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"{name} {value!r} is not a finite number")
    check_category(category_type, category_code, component_code)
    lon, lat = to_wgs84(x, y, tag)
    return tag, lon, lat


def route_point(session: Session, *, x: float, y: float, crs: str = "wgs84", at: datetime,
                category_type: str = "event", category_code: str | None = None,
                component_code: str | None = None, settings: RoutingSettings,
                city: CitySettings | None = None) -> RouteResult:
    """Route one complaint at (x, y) in `crs` reported at `at` (see the module docstring)."""
    city = city or CitySettings()
    tag, lon, lat = checked_point(x, y, crs, category_type, category_code, component_code)
    local = local_time(at, settings)
    row = session.execute(text(_LOCATE), {"lon": lon, "lat": lat,
                                          "day": local.date()}).mappings().first()
    if row is None or (row["snapped"] and row["dist"] > settings.max_snap_m):
        distance = "" if row is None else f"{row['dist']:.0f} m from the nearest grid, "
        raise OutsideCityError(
            f"point ({x}, {y}) {tag} = WGS84 ({lon:.6f}, {lat:.6f}) is outside {city.name}: "
            f"{distance}more than the {settings.max_snap_m:g} m a point may be snapped")
    owner = _owner(row)
    component = link_component(session, lon=lon, lat=lat, category_type=category_type,
                               category_code=category_code, component_code=component_code,
                               link_m=settings.component_link_m)
    # A linked component decides the category: its class is what the rules are keyed on.
    rule_type, rule_code = ((("component", component.component_class)) if component
                            else (category_type, category_code))
    rule = find_rule(session, category_type=rule_type, category_code=rule_code)
    unit, why, why_zh = responsible_unit(rule, owner=owner, component=component)
    station = None
    if row["station_code"] is not None:
        station = StationInfo(code=row["station_code"], name=row["station_name"],
                              phone=row["station_phone"], distance_m=round(row["station_m"], 2))
    other_m = None if row["other_m"] is None else round(row["other_m"], 2)
    return RouteResult(
        raw_x=x, raw_y=y, raw_crs=tag, lon=lon, lat=lat, at=at,
        grid_code=row["code"], community_code=row["community_code"],
        community_name=row["community_name"], snapped=row["snapped"],
        snap_distance_m=round(row["dist"], 2), owner=owner, station=station,
        category_type=category_type,  # type: ignore[arg-type]
        category_code=category_code, responsible_unit=unit, responsibility_rule=why,
        responsibility_rule_zh=why_zh,
        component=component, nearest_other_grid=row["other_code"], other_grid_distance_m=other_m,
        near_boundary=other_m is not None and other_m <= settings.boundary_m,
        stall_zone=open_stall_zone(session, lon=lon, lat=lat, local=local),
    )
