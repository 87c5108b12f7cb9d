"""Stall zone planning: check, create, update, approve, retire, query, export, planner page.

Rule violations come back as 422 with `violations`, a list of GeoJSON Features (the offending
part of the zone, rule id, message_zh, message_en). An invalid polygon comes back as 422 with
the reason and, as an offer only, ST_MakeValid's repair in `repair`. The route commits; a
refused write stores nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.analysis_cache import cached, stamp
from api.auth import PlannerDep, StaffDep, staff_only
from api.deps import SessionDep, SettingsDep
from api.params import SaneDatetime
from api.routes.pages import invalidate_pages
from api.shell import shell_for
from gis.platform.errors import InvalidInputError
from gis.zones import service
from gis.zones.errors import InvalidZoneGeometryError, ZoneRulesError
from gis.zones.export import export_zones, zones_collection
from gis.zones.queries import active_zones, allowed_here, planner_layers
from gis.zones.rules import ZoneRules, load_rules
from maps.assets import render_html
from maps.planner import planner_map
from maps.shell import inject_shell

router = APIRouter(tags=["zones"], dependencies=[staff_only])

FeatureBody = Annotated[dict[str, Any], Body(
    description="GeoJSON Feature: Polygon in EPSG:4326, properties name, zone_type, "
                "time_slots, seasons, capacity, operator",
    examples=[{"type": "Feature", "properties": {
        "name": "山大路夜市", "zone_type": "night_market", "capacity": 40, "operator": "某街道办",
        "time_slots": [{"days": [5, 6], "start": "18:00", "end": "02:00"}], "seasons": []},
        "geometry": {"type": "Polygon", "coordinates": [[[117.05, 36.66], [117.0505, 36.66],
                                                         [117.0505, 36.6603],
                                                         [117.05, 36.6603], [117.05, 36.66]]]}}],
)]
ZoneId = Annotated[int, Path(ge=1, le=2**31 - 1, description="stall zone id")]
AtQuery = Annotated[SaneDatetime, Query(
    description="local city time (naive) or with offset, e.g. 2026-06-01T19:30",
    examples=["2026-06-01T19:30"])]


def get_rules(request: Request) -> ZoneRules:
    """The city's zone rules, loaded once per app."""
    rules: ZoneRules | None = getattr(request.app.state, "zone_rules", None)
    if rules is None:
        rules = request.app.state.zone_rules = load_rules()
    return rules


def _refusal(exc: ZoneRulesError | InvalidZoneGeometryError) -> JSONResponse:
    if isinstance(exc, ZoneRulesError):
        body: dict[str, Any] = {"detail": str(exc), "violations": exc.violations}
    else:
        body = {"detail": str(exc), "reason": exc.reason,
                "repair": {"offered": exc.repair is not None, "applied": False,
                           "method": "ST_MakeValid", "geometry": exc.repair}}
    return JSONResponse(body, status_code=422)


@router.post("/zones/check", summary="检查摊群点 (dry run: violations, nothing stored)")
def check_zone(feature: FeatureBody, request: Request, session: SessionDep,
               settings: SettingsDep) -> JSONResponse:
    """Run every rule on a drawn zone and return the violations without storing anything."""
    try:
        _, _, result = service.check_feature(session, feature=feature, rules=get_rules(request),
                                             city=settings.city)
    except InvalidZoneGeometryError as exc:
        return _refusal(exc)
    finally:
        session.rollback()
    return JSONResponse({
        "passed": result.passed, "area_m2": round(result.area_m2, 2),
        "district_code": result.district_code, "grid_codes": [c for c, _ in result.grids],
        "violations": [v.to_feature() for v in result.violations]})


@router.post("/zones", status_code=201, summary="新建摊群点 (create a draft zone)")
def create_zone(feature: FeatureBody, request: Request, session: SessionDep,
                settings: SettingsDep, user: PlannerDep) -> Response:
    """Create a draft zone; 422 with violations when it breaks a rule."""
    try:
        zone = service.create_zone(session, feature=feature, changed_by=user.username,
                                   rules=get_rules(request), city=settings.city)
    except (ZoneRulesError, InvalidZoneGeometryError) as exc:
        session.rollback()
        return _refusal(exc)
    session.commit()
    invalidate_pages(request.app)
    return JSONResponse(zone, status_code=201, headers={"Location": f"/zones/{zone['id']}"})


@router.get("/zones/active", summary="某时刻开放的摊群点 (zones open at a time)")
def zones_active(at: AtQuery, request: Request, session: SessionDep,
                 include_drafts: Annotated[bool, Query(
                     description="also drafts (planner preview)")] = False) -> dict[str, Any]:
    """Approved (optionally draft) zones open at `at`, as a FeatureCollection."""
    statuses = ("approved", "draft") if include_drafts else ("approved",)
    features = active_zones(session, at=at, rules=get_rules(request), statuses=statuses)
    return {"type": "FeatureCollection", "at": at.isoformat(timespec="minutes"),
            "features": features}


@router.get("/zones/at", summary="此处此时能否摆摊 (what is allowed here now)")
def zones_at(lon: Annotated[float, Query(ge=-180, le=180, description="WGS84 longitude")],
             lat: Annotated[float, Query(ge=-90, le=90, description="WGS84 latitude")],
             request: Request, session: SessionDep, settings: SettingsDep,
             at: Annotated[SaneDatetime | None, Query(
                 description="local city time; default now")] = None) -> dict[str, Any]:
    """Zones containing the point and open at `at`, the street class, sensitive sites nearby."""
    rules = get_rules(request)
    when = at or datetime.now(rules.tz)
    return allowed_here(session, lon=lon, lat=lat, at=when, rules=rules, city=settings.city)


@router.get("/zones/export", summary="导出摊群点 (export as GeoJSON or GeoPackage)",
            response_class=Response,
            responses={200: {"description": "the zones file", "content": {
                "application/geo+json": {}, "application/geopackage+sqlite3": {}}}})
def zones_export(session: SessionDep,
                 format: Annotated[Literal["geojson", "gpkg"], Query(
                     description="geojson or gpkg")] = "geojson",
                 status: Annotated[list[Literal["draft", "approved", "retired"]] | None, Query(
                     description="statuses to export; default draft and approved")] = None,
                 ) -> Response:
    """Zones as a GeoJSON or GeoPackage download (EPSG:4326)."""
    body, media_type, filename = export_zones(session, fmt=format,
                                              statuses=status or ("draft", "approved"))
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/zones", summary="摊群点列表 (zones as GeoJSON)")
def zones_list(session: SessionDep,
               status: Annotated[list[Literal["draft", "approved", "retired"]] | None, Query(
                   description="statuses; default draft and approved")] = None,
               ) -> dict[str, Any]:
    """Zones as a FeatureCollection."""
    return zones_collection(session, statuses=status or ("draft", "approved"))


@router.get("/zones/{zone_id}", summary="摊群点当前版本 (current version)")
def zone_get(zone_id: ZoneId, session: SessionDep) -> dict[str, Any]:
    """The current version of a zone."""
    return service.get_zone(session, zone_id=zone_id)


@router.put("/zones/{zone_id}", summary="修改摊群点 (new version; history kept)")
def zone_update(zone_id: ZoneId, feature: FeatureBody, request: Request, session: SessionDep,
                settings: SettingsDep, user: PlannerDep,
                if_match: Annotated[int | None, Header(
                    alias="If-Match", ge=1, le=2**31 - 1,
                    description="version the edit is based on")] = None,
                ) -> Response:
    """Store a new version (back to draft); 409 if `If-Match` names an older version."""
    base = if_match if if_match is not None else _version_of(feature)
    try:
        zone = service.update_zone(session, zone_id=zone_id, feature=feature,
                                   changed_by=user.username, rules=get_rules(request),
                                   city=settings.city, base_version=base)
    except (ZoneRulesError, InvalidZoneGeometryError) as exc:
        session.rollback()
        return _refusal(exc)
    session.commit()
    invalidate_pages(request.app)
    return JSONResponse(zone)


def _version_of(feature: dict[str, Any]) -> int | None:
    """`properties.version` of a posted Feature, checked (any JSON may arrive here)."""
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        return None  # the service names the missing properties
    version = properties.get("version")
    if version is None:
        return None
    if isinstance(version, str) and version.isascii() and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
        raise InvalidInputError(f"properties.version {str(version)[:40]!r} must be a version "
                                "number (a positive integer)")
    return version


@router.post("/zones/{zone_id}/approve", summary="批准摊群点 (approve a draft)")
def zone_approve(zone_id: ZoneId, request: Request, session: SessionDep, settings: SettingsDep,
                 user: PlannerDep) -> Response:
    """Approve a draft after checking it again; 422 with violations if it now fails."""
    try:
        zone = service.approve_zone(session, zone_id=zone_id, changed_by=user.username,
                                    rules=get_rules(request), city=settings.city)
    except ZoneRulesError as exc:
        session.rollback()
        return _refusal(exc)
    session.commit()
    invalidate_pages(request.app)
    return JSONResponse(zone)


@router.post("/zones/{zone_id}/retire", summary="撤销摊群点 (retire)")
def zone_retire(zone_id: ZoneId, request: Request, session: SessionDep,
                user: PlannerDep) -> dict[str, Any]:
    """Retire a zone; its history stays."""
    zone = service.retire_zone(session, zone_id=zone_id, changed_by=user.username)
    session.commit()
    invalidate_pages(request.app)
    return zone


@router.post("/zones/{zone_id}/split", status_code=201,
             summary="分割摊群点 (split along a line into new drafts; original retired)")
def zone_split(zone_id: ZoneId, line: Annotated[dict[str, Any], Body(
                   description="GeoJSON LineString (EPSG:4326) drawn across the zone",
                   examples=[{"type": "LineString",
                              "coordinates": [[117.0502, 36.6599], [117.0502, 36.6604]]}])],
               request: Request, session: SessionDep, settings: SettingsDep,
               user: PlannerDep) -> Response:
    """Split a zone; 422 with violations if a part breaks a rule, and then nothing changes."""
    geometry = line.get("geometry", line) if line.get("type") == "Feature" else line
    try:
        parts = service.split_zone(session, zone_id=zone_id, line=geometry,
                                   changed_by=user.username, rules=get_rules(request),
                                   city=settings.city)
    except (ZoneRulesError, InvalidZoneGeometryError) as exc:
        session.rollback()
        return _refusal(exc)
    session.commit()
    invalidate_pages(request.app)
    return JSONResponse({"type": "FeatureCollection", "features": parts}, status_code=201)


@router.get("/zones/{zone_id}/versions", summary="摊群点历史版本 (every version)")
def zone_versions(zone_id: ZoneId, session: SessionDep) -> dict[str, Any]:
    """Every version of a zone, oldest first, as a FeatureCollection."""
    return {"type": "FeatureCollection",
            "features": service.zone_versions(session, zone_id=zone_id)}


@router.get("/planner", response_class=HTMLResponse, summary="摊群点规划 (planner page)")
def planner_page(request: Request, session: SessionDep, settings: SettingsDep,
                 user: StaffDep) -> HTMLResponse:
    """The planner map: draw a zone, fill the form, save, see violations; offline assets."""
    rules = get_rules(request)
    title = f"{settings.city.name} 摊群点规划"

    def render() -> str:
        m = planner_map(planner_layers(session), center=settings.city.center, title=title,
                        limits=rules.model_dump(mode="json"), time_zone=settings.city.time_zone)
        return render_html(m, title=title, shell=None)

    # Reading and rendering every road, site and zone took ~0.6-0.8 s a visit: the map part is
    # kept while the data versions of those tables stay (migration 0036), so a zone saved by
    # any worker shows on the next visit; the shell (this user's name and menu) is added each
    # time.
    page = cached(request, session, "planner_page",
                  (rules.model_dump_json(), tuple(settings.city.center),
                   settings.city.time_zone, title), render)
    html = inject_shell(page.value, shell_for(request, user, settings))
    return stamp(HTMLResponse(html), page)
