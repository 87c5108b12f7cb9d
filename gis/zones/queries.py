"""Read-side questions about zones: open at a time, allowed at a place, layers for the planner."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import geopandas as gpd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import OutsideCityError
from gis.platform.settings import CitySettings
from gis.zones.checks import SITE_LABELS, STREET_LABELS
from gis.zones.rules import ZoneRules
from gis.zones.service import zone_feature
from gis.zones.timeslots import parse_schedule

ZONE_STATUSES = ("draft", "approved", "retired")
_ZONE_SELECT = """
    SELECT id, name, zone_type, district_code, time_slots, seasons, capacity, operator, status,
           simulated, version, updated_at, ST_AsGeoJSON(geom, 8) AS geometry,
           ARRAY(SELECT grid_code FROM zone_grids g WHERE g.zone_id = z.id
                 ORDER BY grid_code) AS grid_codes
    FROM stall_zones z
"""


def local_time(at: datetime, rules: ZoneRules) -> datetime:
    """`at` as naive city time: aware datetimes are converted, naive ones are taken as local."""
    if at.tzinfo is None:
        return at
    return at.astimezone(rules.tz).replace(tzinfo=None)


def active_zones(session: Session, *, at: datetime, rules: ZoneRules,
                 statuses: Sequence[str] = ("approved",)) -> list[dict[str, Any]]:
    """Zones in `statuses` open at `at`, as GeoJSON Features."""
    local = local_time(at, rules)
    rows = session.execute(text(_ZONE_SELECT + " WHERE status = ANY(:statuses) ORDER BY id"),
                           {"statuses": list(statuses)}).mappings().all()
    return [zone_feature(dict(r)) for r in rows
            if parse_schedule(r["time_slots"], r["seasons"]).is_open(local)]


def list_zones(session: Session, *,
               statuses: Sequence[str] = ("draft", "approved")) -> list[dict[str, Any]]:
    """Zones in `statuses`, as GeoJSON Features ordered by id."""
    rows = session.execute(text(_ZONE_SELECT + " WHERE status = ANY(:statuses) ORDER BY id"),
                           {"statuses": list(statuses)}).mappings().all()
    return [zone_feature(dict(r)) for r in rows]


def allowed_here(session: Session, *, lon: float, lat: float, at: datetime, rules: ZoneRules,
                 city: CitySettings) -> dict[str, Any]:
    """What a street vendor may do at (lon, lat) at `at`: zones open, street, sites nearby."""
    x1, y1, x2, y2 = city.bbox
    # Far outside, the metric CRS cannot even be computed (PostGIS: outside projection domain).
    if not (x1 <= lon <= x2 and y1 <= lat <= y2):
        raise OutsideCityError(f"point ({lon}, {lat}) is outside {city.name} "
                               f"(lon {x1}..{x2}, lat {y1}..{y2}, EPSG:4326)")
    local = local_time(at, rules)
    params = {"lon": lon, "lat": lat, "epsg": city.metric_epsg}
    point = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    rows = session.execute(text(_ZONE_SELECT + f"""
        WHERE status = 'approved' AND ST_Covers(geom, {point}) ORDER BY id
    """), params).mappings().all()
    zones = []
    for r in rows:
        feature = zone_feature(dict(r))
        feature["properties"]["open_now"] = parse_schedule(
            r["time_slots"], r["seasons"]).is_open(local)
        zones.append(feature)
    streets = [
        {"road_id": r.id, "name": r.name, "street_class": r.street_class,
         "street_class_zh": STREET_LABELS[r.street_class][0], "width_m": r.width_m,
         "distance_m": round(r.distance, 2)}
        for r in session.execute(text(f"""
            SELECT id, name, street_class, width_m,
                   ST_Distance(ST_Transform(geom, :epsg), ST_Transform({point}, :epsg))
                       AS distance
            FROM roads
            WHERE ST_DWithin(geom::geography, {point}::geography, width_m / 2 + 5)
            ORDER BY distance, id LIMIT 5
        """), params)]
    limits = {**rules.sensitive_distance_m.model_dump(),
              "fire_lane": rules.fire_lane.clear_width_m / 2}
    sites = [
        {"site_id": r.id, "name": r.name, "kind": r.kind, "kind_zh": SITE_LABELS[r.kind][0],
         "distance_m": round(r.distance, 2), "limit_m": limits[r.kind]}
        for r in session.execute(text(f"""
            SELECT id, name, kind,
                   ST_Distance(ST_Transform(geom, :epsg), ST_Transform({point}, :epsg))
                       AS distance
            FROM sensitive_sites
            WHERE ST_DWithin(geom::geography, {point}::geography, :reach)
            ORDER BY distance, id
        """), {**params, "reach": max(limits.values())})
        if r.distance < limits[r.kind]]
    open_zones = [z for z in zones if z["properties"]["open_now"]]
    on_demonstration = any(s["street_class"] == "demonstration" for s in streets)
    if open_zones:
        summary_zh = "此处为开放中的摊群点：" + "、".join(
            z["properties"]["name"] for z in open_zones)
        summary_en = "inside an open stall zone"
    elif zones:
        summary_zh, summary_en = "此处摊群点当前未开放，禁止摆摊", "stall zone here is closed now"
    else:
        summary_zh, summary_en = "此处不在摊群点内，禁止摆摊", "not inside any stall zone"
    return {"lon": lon, "lat": lat, "at": local.isoformat(timespec="minutes"),
            "stalls_allowed_now": bool(open_zones), "summary_zh": summary_zh,
            "summary_en": summary_en, "zones": zones, "streets": streets,
            "on_demonstration_street": on_demonstration, "sensitive_sites_nearby": sites}


def planner_layers(session: Session) -> dict[str, gpd.GeoDataFrame]:
    """Roads, sensitive sites, district outlines and live zones for the planner page (4326)."""
    queries = {
        "districts": "SELECT code AS id, name, geom FROM districts ORDER BY code",
        "roads": "SELECT id, name, street_class, width_m, geom FROM roads ORDER BY id",
        "sensitive_sites": "SELECT id, name, kind, clear_width_m, geom FROM sensitive_sites "
                           "ORDER BY id",
        "stall_zones": "SELECT id, name, zone_type, status, capacity, operator, version, "
                       "time_slots::text AS time_slots, seasons::text AS seasons, geom "
                       "FROM stall_zones WHERE status <> 'retired' ORDER BY id",
    }
    frames = {}
    for name, sql in queries.items():
        gdf = gpd.read_postgis(text(sql), session.connection(), geom_col="geom")
        frames[name] = gdf.set_crs(4326, allow_override=True)
    # Slots travel as JSON so the page can decide what is open at the picked time.
    zones = frames["stall_zones"]
    for column in ("time_slots", "seasons"):
        zones[column] = [json.loads(v) for v in zones[column]]
    return frames
