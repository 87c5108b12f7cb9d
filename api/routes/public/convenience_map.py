"""Read-only public routes (`/public/...`) and the convenience map page (`GET /public`).

Everything here comes from gis.public.convenience_map, which reads only the `pub` views. No
route writes, and no response carries a field outside the response models below, so internal
columns (owners, staff counts, drafts, complaints) cannot appear even by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.deps import BBoxDep, SettingsDep
from api.params import SaneDatetime
from api.read_routing import PublicReadSessionDep
from api.routes.dispatch.routing import RoutingSettingsDep
from api.routes.public.rendered_page import cached_page, inputs_key
from gis.dispatch.routing import local_time
from gis.public import convenience_map as public
from maps.assets import render_html
from maps.basemaps import basemap_for
from maps.public import public_map

router = APIRouter(prefix="/public", tags=["public"])

AtQuery = Annotated[SaneDatetime | None, Query(
    description="moment to judge 'open now' at: city time (naive) or with offset; default now",
    examples=["2026-06-05T23:30"])]


class PointGeometry(BaseModel):
    """A GeoJSON Point in WGS84."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


class FacilityFeature(BaseModel):
    """A facility as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry
    properties: public.PublicFacility


class StationFeature(BaseModel):
    """A community station as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry
    properties: public.PublicStation


class StallZoneProperties(BaseModel):
    """Public properties of a stall zone (its polygon is the feature's geometry)."""

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


class StallZoneFeature(BaseModel):
    """A stall zone as a GeoJSON Feature (Polygon)."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any]
    properties: StallZoneProperties


class FacilityCollection(BaseModel):
    """Facilities as a GeoJSON FeatureCollection, with the time 'open now' was judged at."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    at: str
    features: list[FacilityFeature]


class StationCollection(BaseModel):
    """Stations as a GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[StationFeature]


class StallZoneCollection(BaseModel):
    """Stall zones as a GeoJSON FeatureCollection, with the time they were judged at."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    at: str
    features: list[StallZoneFeature]


class KindOut(BaseModel):
    """A kind of place the public map knows, with its Chinese name."""

    id: str
    name_zh: str
    group: Literal["facility", "station", "stall_zone"]


def city_local(routing: RoutingSettingsDep, at: AtQuery = None) -> datetime:
    """`?at=` (or now) as naive city time."""
    return local_time(at or datetime.now(routing.tz), routing)


LocalDep = Annotated[datetime, Depends(city_local)]


@router.get("/kinds", response_model=list[KindOut], summary="可查询的类型 (kinds)")
def kinds() -> list[KindOut]:
    """Every kind `nearest` accepts, with its Chinese name."""
    def group(kind: str) -> Literal["facility", "station", "stall_zone"]:
        if kind in public.FACILITY_KINDS:
            return "facility"
        return "station" if kind == "station" else "stall_zone"

    return [KindOut(id=k, name_zh=public.KIND_ZH[k], group=group(k))
            for k in public.NEAREST_KINDS]


@router.get("/facilities", response_model=FacilityCollection,
            summary="便民设施 (facilities by kind)")
def facilities(
    session: PublicReadSessionDep, local: LocalDep, bbox: BBoxDep,
    kind: Annotated[str | None, Query(description="farmers_market, public_toilet, ev_charging, "
                                                  "parking or convenience_point")] = None,
    open_now: Annotated[bool, Query(description="only those open at `at` (free-text hours "
                                                "are kept)")] = False,
) -> FacilityCollection:
    """Public facilities, optionally of one kind, in a bbox, open at `at`."""
    found = public.list_facilities(session, local=local, kind=kind, bbox=bbox.bounds(),
                                   open_now=open_now)
    return FacilityCollection(at=local.isoformat(timespec="minutes"), features=[
        FacilityFeature(id=f.id, geometry=PointGeometry(coordinates=(f.lon, f.lat)),
                        properties=f) for f in found])


@router.get("/stations", response_model=StationCollection,
            summary="社区城管工作站 (community stations with phones)")
def stations(session: PublicReadSessionDep, bbox: BBoxDep) -> StationCollection:
    """Community stations with their public phone numbers."""
    return StationCollection(features=[
        StationFeature(id=s.id, geometry=PointGeometry(coordinates=(s.lon, s.lat)),
                       properties=s) for s in public.list_stations(session, bbox=bbox.bounds())])


@router.get("/stall-zones", response_model=StallZoneCollection,
            summary="摊群点 (approved stall zones, open now by default)")
def stall_zones(
    session: PublicReadSessionDep, local: LocalDep, bbox: BBoxDep,
    open_now: Annotated[bool, Query(description="true: only zones open at `at`; false: all "
                                                "approved zones, each with open_now")] = True,
    zone_type: Annotated[str | None, Query(description="morning_market, night_market, "
                                                       "seasonal_produce, convenience_point, "
                                                       "featured_outdoor")] = None,
) -> StallZoneCollection:
    """Approved stall zones open at `at` (weekly slots across midnight, seasonal ranges)."""
    zones = public.list_stall_zones(session, local=local, open_only=open_now,
                                    zone_type=zone_type, bbox=bbox.bounds())
    return StallZoneCollection(at=local.isoformat(timespec="minutes"), features=[
        StallZoneFeature(id=z.id, geometry=z.geometry,
                         properties=StallZoneProperties(**z.model_dump(exclude={"geometry"})))
        for z in zones])


@router.get("/nearest", response_model=public.NearestResult,
            summary="离我最近 (nearest places with walking distance)")
def nearest(
    session: PublicReadSessionDep, settings: SettingsDep, local: LocalDep,
    lon: Annotated[float, Query(description="longitude in `crs`", examples=[117.03])],
    lat: Annotated[float, Query(description="latitude in `crs`", examples=[36.66])],
    kind: Annotated[str, Query(description="a kind from /public/kinds")],
    crs: Annotated[str, Query(description="wgs84 (browser GPS), gcj02 (WeChat/AMap), bd09, "
                                          "cgcs2000")] = "wgs84",
    display_crs: Annotated[str, Query(description="gcj02 adds coordinates shifted for a "
                                                  "GCJ-02 base map")] = "wgs84",
    limit: Annotated[int | None, Query(description="how many (1-50)")] = None,
    open_now: Annotated[bool, Query(description="only places open at `at` (stall zones "
                                                "are always only open ones)")] = False,
) -> public.NearestResult:
    """Nearest places of `kind`, walking distance = straight line × detour factor."""
    return public.nearest(session, lon=lon, lat=lat, kind=kind, local=local,
                          settings=settings.public, city=settings.city, crs=crs,
                          display_crs=display_crs, limit=limit, open_only=open_now)


@router.get("", response_class=HTMLResponse, summary="便民服务地图 (public map page)",
            include_in_schema=True)
def public_page(request: Request, session: PublicReadSessionDep, settings: SettingsDep,
                local: LocalDep) -> HTMLResponse:
    """The phone-first convenience map; `?at=` fixes the time 'open now' is judged at."""
    city = settings.city
    facilities = [f.model_dump() for f in public.list_facilities(session, local=local)]
    stations = [s.model_dump() for s in public.list_stations(session)]
    zones = [z.model_dump() for z in
             public.list_stall_zones(session, local=local, open_only=False)]
    districts = public.district_outlines(session)
    basemap = basemap_for(settings.public)
    at = local.isoformat(timespec="minutes")
    at_fixed = "at" in request.query_params
    api_base = str(request.scope.get("root_path", ""))
    title = f"{city.name} 便民服务地图"

    def render() -> str:
        m = public_map(facilities=facilities, stations=stations, stall_zones=zones,
                       districts=districts, basemap=basemap, center=city.center, at=at,
                       at_fixed=at_fixed, title=title, api_base=api_base)
        # Anonymous page: no staff app shell (shell=None).
        return render_html(m, title=title, shell=None)

    key = inputs_key([facilities, stations, zones, repr(basemap), list(city.center), at,
                      at_fixed, title, api_base], districts)
    html, reused = cached_page(request.app.state, key, render)
    return HTMLResponse(html, headers={"Cache-Control": "no-cache",
                                       "X-Page-Cache": "hit" if reused else "miss"})
