"""Geocoding for staff: address text -> candidates and the grid (`GET /geocode`), a point ->
the address to write on a case (`GET /geocode/reverse`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import staff_only
from api.deps import SessionDep, SettingsDep
from api.params import SaneDatetime
from api.routes.dispatch.routing import RoutingSettingsDep
from gis.geocoding.normalize import MAX_ADDRESS_CHARS
from gis.geocoding.service import GeocodeResult, ReverseResult, geocode, reverse_geocode

router = APIRouter(tags=["geocoding"], dependencies=[staff_only])


@router.get("/geocode", response_model=GeocodeResult, summary="Geocode an address (地理编码)")
def geocode_address(
        session: SessionDep, settings: SettingsDep, routing: RoutingSettingsDep,
        q: Annotated[str, Query(min_length=1, max_length=MAX_ADDRESS_CHARS,
                                description="address as heard: 历下区泉城路180号, "
                                            "文化东路与历山路交叉口往东50米, 甸柳一区3号楼, "
                                            "省立医院东门")],
        limit: Annotated[int, Query(ge=1, le=20, description="most candidates")] = 5,
        route: Annotated[bool, Query(description="route the best candidate when confident")]
        = True,
        at: Annotated[SaneDatetime | None, Query(description="time for the owner of the day; "
                                                 "default now")] = None,
) -> GeocodeResult:
    """Candidates with level, score and why, WGS84 and GCJ-02 points, grids; empty if none."""
    when = at or datetime.now(routing.tz)
    return geocode(session, q, city=settings.city, limit=limit,
                   routing=routing if route else None, at=when)


@router.get("/geocode/reverse", response_model=ReverseResult,
            summary="Reverse geocode a point (逆地理编码)")
def geocode_reverse(
        session: SessionDep, settings: SettingsDep,
        lon: Annotated[float, Query(allow_inf_nan=False, description="longitude or x in `crs`")],
        lat: Annotated[float, Query(allow_inf_nan=False, description="latitude or y in `crs`")],
        crs: Annotated[str, Query(description="wgs84, gcj02, bd09, cgcs2000")] = "wgs84",
) -> ReverseResult:
    """Nearest doorplate (within 60 m), nearest road and the community, as address text."""
    return reverse_geocode(session, x=lon, y=lat, crs=crs, city=settings.city)
