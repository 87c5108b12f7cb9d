"""Residents' 随手拍 without sign-in: the form, posting a report, the tracking page, photos.

Writes run as the runtime role `citygrid_app` (like Open311 POST), tagged as an anonymous
request in the audit log; reads of the tracking page and of published photos run as
`citygrid_public` through the views `pub.service_requests` and `pub.case_photos`. Posting is
rate-limited per client address (in this process). A photo is served only by its 256-bit
random public name, and only the EXIF-free public copy.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import bind_user
from api.deps import PublicSessionDep, SessionDep, SettingsDep
from api.routes.dispatch.media import (
    ERROR_CONTENT,
    MediaStoreDep,
    http_media_error,
    read_limited,
)
from api.routes.dispatch.routing import RoutingSettingsDep
from gis.access.shared_throttle import count_hit
from gis.media import service as media
from gis.media.errors import MediaTooLargeError, UnsupportedMediaError
from gis.public import resident_report as reports
from gis.public.convenience_map import district_outlines
from maps.resident_report import report_form_page, tracking_page

router = APIRouter(tags=["public"])
PUBLIC_NAME = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
CaseNo = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                             description="the tracking number (case number)")]


class ReportPosted(BaseModel):
    """The answer to a posted report."""

    case_no: str
    tracking_url: str


def _limiter(request: Request, per_hour: int) -> reports.ReportRateLimiter:
    limiter: reports.ReportRateLimiter | None = getattr(request.app.state,
                                                        "report_limiter", None)
    if limiter is None:
        limiter = reports.ReportRateLimiter(per_hour)
        request.app.state.report_limiter = limiter
    return limiter


def _shared_quota(session: Session, address: str, per_hour: int) -> int:
    """Count the report in the quota every app process shares; seconds to wait, or 0."""
    wait = count_hit(session, scope="public_report", key=address, limit=per_hour)
    # Committed on its own, so a refused upload (not an image, too large) still counts.
    session.commit()
    return wait


@router.get("/public/report", response_class=HTMLResponse, include_in_schema=False)
def report_form(session: PublicSessionDep, settings: SettingsDep) -> HTMLResponse:
    """The 随手拍 page: photo, plain-language category, place, optional contact."""
    outlines = district_outlines(session)
    return HTMLResponse(report_form_page(
        categories=[{"key": c.key, "label": c.label, "hint": c.hint}
                    for c in reports.CATEGORIES],
        outlines=outlines.__geo_interface__ if len(outlines) else {"features": []},
        center=settings.city.center, bbox=settings.city.bbox, city=settings.city.name,
        max_mb=settings.media.max_mb))


@router.post("/public/report", status_code=201, response_model=ReportPosted,
             responses={303: {"description": "form post without script: to the tracking page"},
                        415: {"description": "not a JPEG, PNG or HEIC photo",
                              "content": ERROR_CONTENT},
                        429: {"description": "too many reports from this address",
                              "content": ERROR_CONTENT}})
async def post_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: MediaStoreDep,
    routing: RoutingSettingsDep,
    file: Annotated[UploadFile | None, File(description="the photo")] = None,
    category: Annotated[str, Form(max_length=40, description="a key of the form's choices")] = "",
    lat: Annotated[float | None, Form(ge=-90, le=90, allow_inf_nan=False)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180, allow_inf_nan=False)] = None,
    description: Annotated[str, Form(max_length=500)] = "",
    contact: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """File a resident's report with its photo; the tracking number and page."""
    address = request.client.host if request.client else "unknown"
    per_hour = settings.media.public_reports_per_hour
    wait = _limiter(request, per_hour).allow(address)
    if not wait and settings.api.shared_throttle:
        wait = await run_in_threadpool(_shared_quota, session, address, per_hour)
    if wait:
        raise HTTPException(status_code=429, headers={"Retry-After": str(int(wait) + 1)},
                            detail=f"at most {per_hour} reports "
                                   "per hour from one address; try again later")
    photo = await read_limited(file, settings.media) if file is not None else b""
    if not photo:
        raise HTTPException(status_code=422, detail="a photo (file) is required")
    if lat is None or lon is None:
        raise HTTPException(status_code=422, detail="the place (lat, lon in WGS84) is required")
    bind_user(session, None, request=f"{request.method} {request.url.path}")
    base = settings.api.public_url or str(request.base_url)
    try:
        # Off the event loop: decoding a photo takes a CPU for a while.
        case_no = await run_in_threadpool(
            reports.submit_report, session, store, reports.ResidentReport(
                category=category, lat=lat, lon=lon, photo=photo, description=description,
                contact=contact or None),
            at=dt.datetime.now(dt.UTC), public_base=base, routing=routing,
            city=settings.city, media_settings=settings.media)
    except (UnsupportedMediaError, MediaTooLargeError) as exc:
        raise http_media_error(exc) from None
    session.commit()
    url = f"/public/report/{case_no}"
    if "application/json" not in request.headers.get("accept", ""):
        return RedirectResponse(url, status_code=303)
    return JSONResponse(ReportPosted(case_no=case_no, tracking_url=url).model_dump(),
                        status_code=201)


@router.get("/public/report/{case_no}", response_class=HTMLResponse, include_in_schema=False)
def report_status(case_no: CaseNo, session: SessionDep, reader: PublicSessionDep,
                  settings: SettingsDep, routing: RoutingSettingsDep) -> HTMLResponse:
    """The tracking page: steps, dates, responsible unit, and the published photos."""
    found = reports.tracking(session, case_no, routing=routing, city=settings.city,
                             reader=reader)
    posted = found["request"]
    return HTMLResponse(tracking_page(
        case_no=posted.service_request_id, service_name=posted.service_name,
        description=posted.description, steps=found["steps"], step=found["step"],
        rejected=found["rejected"], requested=posted.requested_datetime,
        updated=posted.updated_datetime, expected=posted.expected_datetime,
        agency=posted.agency_responsible,
        report_photos=[f"/public/media/{p['public_name']}.jpg" for p in found["report_photos"]],
        after_photos=[f"/public/media/{p['public_name']}.jpg" for p in found["after_photos"]],
        tz=ZoneInfo(settings.city.time_zone), city=settings.city.name))


@router.get("/public/media/{name}.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def public_photo(name: Annotated[str, Path(max_length=100)], session: PublicSessionDep,
                 store: MediaStoreDep) -> Response:
    """A published photo's EXIF-free copy, by its unguessable public name."""
    found = media.published_photo(session, name) if PUBLIC_NAME.match(name) else None
    if found is None:
        raise HTTPException(status_code=404, detail="no published photo of that name")
    return Response(store.read("public", found[0]), media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=3600"})
