"""What the public convenience map may show, read only from the views of schema `pub`.

Every query here names a `pub.*` view, never an internal table: the views (migration 0006)
hold only publishable columns, so owners, staff counts, drafts and complaints cannot leak
through this module even when a table grows a new internal column. Results are pydantic
models with a fixed set of fields, which the API returns as they are.

"Open now" for stall zones uses the zones' weekly slots and seasons (gis.zones.timeslots);
for facilities it reads the simple opening-hours strings the facilities carry ("06:00-20:00",
"24小时") and says None when a string is not in one of those forms.

Walking distance is the straight-line (geodesic) distance times a detour factor
(PublicMapSettings.walk_detour_factor, default 1.3): cheap, honest about being an estimate,
and independent of the simulated street network.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import geopandas as gpd
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.geo.coords import to_wgs84, wgs84_to_gcj02
from gis.platform.errors import InvalidInputError, OutsideCityError
from gis.platform.settings import CitySettings, PublicMapSettings
from gis.zones.timeslots import Schedule, parse_minute, parse_schedule

# Kept equal to the CHECK on facilities.kind (migration 0001).
FACILITY_KINDS = ("farmers_market", "public_toilet", "ev_charging", "parking",
                  "convenience_point")
ZONE_TYPES = ("morning_market", "night_market", "seasonal_produce", "convenience_point",
              "featured_outdoor")
# What `nearest` can look for: a facility kind, a community station, or an open stall zone.
NEAREST_KINDS = (*FACILITY_KINDS, "station", "stall_zone")
KIND_ZH = {"farmers_market": "农贸市场", "public_toilet": "公厕", "ev_charging": "充电桩",
           "parking": "停车场", "convenience_point": "便民服务点", "station": "社区城管工作站",
           "stall_zone": "摊群点"}
ZONE_TYPE_ZH = {"morning_market": "早市", "night_market": "夜市",
                "seasonal_produce": "应季瓜果自产", "convenience_point": "便民服务点",
                "featured_outdoor": "特色外摆"}
DISPLAY_CRS = ("wgs84", "gcj02")
_ALL_DAY = {"24小时", "24h", "24H", "全天", "00:00-24:00"}
_HOURS = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–~至]\s*(\d{1,2}:\d{2})\s*$")
_WEEK_ZH = "一二三四五六日"


class PublicFacility(BaseModel):
    """A public facility as residents see it."""

    id: int
    name: str
    kind: str
    kind_zh: str
    address: str
    opening_hours: str
    phone: str | None
    open_now: bool | None
    lon: float
    lat: float


class PublicStation(BaseModel):
    """A community station (社区城管工作站) with its public phone."""

    id: int
    name: str
    address: str
    phone: str
    opening_hours: str
    lon: float
    lat: float


class PublicStallZone(BaseModel):
    """An approved stall zone: where, what, when, and whether it is open at the asked time."""

    id: int
    name: str
    zone_type: str
    zone_type_zh: str
    schedule_zh: str
    time_slots: list[dict[str, Any]]
    seasons: list[dict[str, Any]]
    capacity: int
    operator: str
    open_now: bool
    lon: float
    lat: float
    geometry: dict[str, Any]


class NearestPlace(BaseModel):
    """One place found by `nearest`, with straight-line and estimated walking distance."""

    kind: str
    id: int
    name: str
    address: str | None
    phone: str | None
    opening_hours: str
    open_now: bool | None
    lon: float
    lat: float
    display: tuple[float, float] | None
    distance_m: float
    walking_distance_m: float
    walking_minutes: int


class NearestResult(BaseModel):
    """Places of one kind nearest to a point, nearest first."""

    kind: str
    kind_zh: str
    origin: tuple[float, float]
    origin_display: tuple[float, float] | None
    at: str
    detour_factor: float
    places: list[NearestPlace]


def check_kind(kind: str, choices: tuple[str, ...] = NEAREST_KINDS) -> str:
    """`kind` if it is one of `choices`; InvalidInputError naming it otherwise."""
    if kind not in choices:
        raise InvalidInputError(f"kind {kind!r} is not one of {', '.join(choices)}")
    return kind


def check_point(lon: float, lat: float, *, crs: str = "wgs84",
                city: CitySettings) -> tuple[float, float]:
    """(lon, lat) in WGS84 of a point given in `crs`, refused when not a point of the city."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInputError(f"point ({lon}, {lat}) must be finite numbers")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInputError(f"point ({lon}, {lat}) is not a lon/lat pair: lon must lie in "
                                "-180..180 and lat in -90..90")
    x, y = to_wgs84(lon, lat, crs)
    x1, y1, x2, y2 = city.bbox
    if not (x1 <= x <= x2 and y1 <= y <= y2):
        raise OutsideCityError(f"point ({lon}, {lat}) {crs} is outside {city.name} "
                               f"(lon {x1}..{x2}, lat {y1}..{y2})")
    return x, y


def facility_open(hours: str, local: datetime) -> bool | None:
    """Open at naive city time `local` per an hours string; None when the string is free text."""
    value = hours.strip()
    if value in _ALL_DAY:
        return True
    match = _HOURS.match(value)
    if match is None:
        return None
    try:
        start = parse_minute(match[1])
        end = 24 * 60 if match[2] == "24:00" else parse_minute(match[2])
    except InvalidInputError:
        return None
    minute = local.hour * 60 + local.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # past midnight, e.g. 18:00-02:00


def schedule_zh(time_slots: list[dict[str, Any]], seasons: list[dict[str, Any]]) -> str:
    """A zone's schedule in Chinese, e.g. '每天 18:00–02:00（次日）；6月1日至9月29日'."""
    parts = []
    for slot in time_slots:
        days = sorted(int(d) for d in slot["days"])
        if days == list(range(1, 8)):
            when = "每天"
        else:
            when = "周" + "、".join(_WEEK_ZH[d - 1] for d in days)
        overnight = "（次日）" if slot["end"] <= slot["start"] else ""
        parts.append(f"{when} {slot['start']}–{slot['end']}{overnight}")
    text_ = "；".join(parts)
    if seasons:
        text_ += "；" + "、".join(f"{_month_day_zh(s['from'])}至{_month_day_zh(s['to'])}"
                                 for s in seasons)
    return text_


def list_facilities(session: Session, *, local: datetime, kind: str | None = None,
                    bbox: tuple[float, float, float, float] | None = None,
                    open_now: bool = False) -> list[PublicFacility]:
    """Public facilities (optionally of one kind, in a bbox, open at `local`), by id."""
    if kind is not None:
        check_kind(kind, FACILITY_KINDS)
    rows = session.execute(text(f"""
        SELECT id, name, kind, address, opening_hours, phone, ST_X(geom) AS lon,
               ST_Y(geom) AS lat
        FROM pub.facilities
        WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) AND {_BBOX}
        ORDER BY id"""), {"kind": kind, **_bbox_params(bbox)}).mappings().all()
    found = [PublicFacility(**row, kind_zh=KIND_ZH[row["kind"]],
                            open_now=facility_open(row["opening_hours"], local)) for row in rows]
    # Free-text hours (open_now None) are kept: the resident reads them in the popup.
    return [f for f in found if f.open_now is not False] if open_now else found


def list_stations(session: Session, *,
                  bbox: tuple[float, float, float, float] | None = None) -> list[PublicStation]:
    """Community stations with their public phone numbers, by id."""
    rows = session.execute(text(f"""
        SELECT id, name, address, phone, opening_hours, ST_X(geom) AS lon, ST_Y(geom) AS lat
        FROM pub.stations WHERE {_BBOX} ORDER BY id"""), _bbox_params(bbox)).mappings().all()
    return [PublicStation(**row) for row in rows]


def list_stall_zones(session: Session, *, local: datetime, open_only: bool = True,
                     zone_type: str | None = None,
                     bbox: tuple[float, float, float, float] | None = None
                     ) -> list[PublicStallZone]:
    """Approved stall zones (only those open at `local` unless `open_only` is False), by id."""
    if zone_type is not None:
        if zone_type not in ZONE_TYPES:
            raise InvalidInputError(
                f"zone_type {zone_type!r} is not one of {', '.join(ZONE_TYPES)}")
    rows = session.execute(text(f"""
        SELECT id, name, zone_type, time_slots, seasons, capacity, operator,
               ST_AsGeoJSON(geom, 7) AS geometry, ST_X(ST_PointOnSurface(geom)) AS lon,
               ST_Y(ST_PointOnSurface(geom)) AS lat
        FROM pub.stall_zones
        WHERE (CAST(:zone_type AS text) IS NULL OR zone_type = :zone_type) AND {_BBOX}
        ORDER BY id"""), {"zone_type": zone_type, **_bbox_params(bbox)}).mappings().all()
    zones = []
    for row in rows:
        is_open = _schedule(row).is_open(local)
        if open_only and not is_open:
            continue
        zones.append(PublicStallZone(
            id=row["id"], name=row["name"], zone_type=row["zone_type"],
            zone_type_zh=ZONE_TYPE_ZH.get(row["zone_type"], row["zone_type"]),
            schedule_zh=schedule_zh(row["time_slots"], row["seasons"]),
            time_slots=row["time_slots"], seasons=row["seasons"], capacity=row["capacity"],
            operator=row["operator"], open_now=is_open, lon=row["lon"], lat=row["lat"],
            geometry=json.loads(row["geometry"])))
    return zones


def district_outlines(session: Session) -> gpd.GeoDataFrame:
    """District codes, names and outlines (EPSG:4326), the offline map's background."""
    return gpd.read_postgis(text("SELECT code, name, geom FROM pub.districts ORDER BY code"),
                            session.connection(), geom_col="geom")


def nearest(session: Session, *, lon: float, lat: float, kind: str, local: datetime,
            settings: PublicMapSettings, city: CitySettings, crs: str = "wgs84",
            display_crs: str = "wgs84", limit: int | None = None,
            open_only: bool = False) -> NearestResult:
    """The `limit` places of `kind` nearest to (lon, lat); stall zones only when open.

    `open_only` also drops facilities whose hours say they are closed at `local` (free-text
    hours are kept: unknown is not closed).
    """
    check_kind(kind)
    if display_crs not in DISPLAY_CRS:
        raise InvalidInputError(f"display_crs {display_crs!r} is not one of "
                                f"{', '.join(DISPLAY_CRS)}")
    limit = settings.nearest_limit if limit is None else limit
    if not 1 <= limit <= 50:
        raise InvalidInputError(f"limit {limit} must be between 1 and 50")
    x, y = check_point(lon, lat, crs=crs, city=city)
    # Enough KNN candidates that closed ones filtered out still leave `limit` places.
    params = {"x": x, "y": y, "kind": kind, "n": limit * (12 if open_only else 4) + 8}
    if kind == "stall_zone":
        # Few zones, and only open ones count: rank them all in metres (0 inside a zone).
        rows = session.execute(text(f"""
            SELECT id, name, NULL AS address, NULL AS phone, time_slots, seasons,
                   ST_X(ST_ClosestPoint(geom, {_POINT})) AS lon,
                   ST_Y(ST_ClosestPoint(geom, {_POINT})) AS lat,
                   ST_Distance(geom::geography, {_POINT}::geography) AS dist
            FROM pub.stall_zones"""), params).mappings().all()
        candidates: list[tuple[dict[str, Any], str, bool | None]] = [
            (dict(r), schedule_zh(r["time_slots"], r["seasons"]), True)
                      for r in rows if _schedule(r).is_open(local)]
    else:
        source = ("SELECT id, name, address, phone, opening_hours, geom FROM pub.stations"
                  if kind == "station" else
                  "SELECT id, name, address, phone, opening_hours, geom FROM pub.facilities "
                  "WHERE kind = :kind")
        # KNN in degrees preselects; geodesic metres decide the order.
        rows = session.execute(text(f"""
            SELECT id, name, address, phone, opening_hours, ST_X(geom) AS lon,
                   ST_Y(geom) AS lat, ST_Distance(geom::geography, {_POINT}::geography) AS dist
            FROM ({source}) s ORDER BY geom <-> {_POINT} LIMIT :n"""), params).mappings().all()
        # Stations list office hours only as text: open_now stays unknown (None).
        candidates = [(dict(r), r["opening_hours"],
                       None if kind == "station" else facility_open(r["opening_hours"], local))
                      for r in rows]
        if open_only:
            candidates = [c for c in candidates if c[2] is not False]
    candidates.sort(key=lambda c: (c[0]["dist"], c[0]["id"]))
    places = []
    for row, hours, is_open in candidates[:limit]:
        walking = row["dist"] * settings.walk_detour_factor
        places.append(NearestPlace(
            kind=kind, id=row["id"], name=row["name"], address=row["address"],
            phone=row["phone"], opening_hours=hours, open_now=is_open, lon=row["lon"],
            lat=row["lat"],
            display=_display(row["lon"], row["lat"], display_crs),
            distance_m=round(row["dist"], 1), walking_distance_m=round(walking),
            walking_minutes=max(1, math.ceil(walking / settings.walk_speed_m_per_min))))
    return NearestResult(kind=kind, kind_zh=KIND_ZH[kind], origin=(x, y),
                         origin_display=_display(x, y, display_crs),
                         at=local.isoformat(timespec="minutes"),
                         detour_factor=settings.walk_detour_factor, places=places)


_POINT = "ST_SetSRID(ST_MakePoint(:x, :y), 4326)"
_BBOX = ("(CAST(:x1 AS float8) IS NULL OR "
         "ST_Intersects(geom, ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326)))")


def _bbox_params(bbox: tuple[float, float, float, float] | None) -> dict[str, float | None]:
    x1, y1, x2, y2 = bbox if bbox is not None else (None, None, None, None)
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _schedule(row: Any) -> Schedule:
    return parse_schedule(row["time_slots"], row["seasons"])


def _display(lon: float, lat: float, display_crs: str) -> tuple[float, float] | None:
    if display_crs == "wgs84":
        return None
    gx, gy = wgs84_to_gcj02(lon, lat)
    return round(float(gx), 7), round(float(gy), 7)


def _month_day_zh(value: str) -> str:
    month, day = value.split("-")
    return f"{int(month)}月{int(day)}日"
