"""Dispatcher routing: one complaint (`POST /route`), a hotline export (`POST /route/batch`),
and the dispatcher page (`GET /dispatch`, 调度台) that drives them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import DispatcherDep, staff_only
from api.deps import SessionDep, SettingsDep
from api.params import SaneDatetime
from api.routes.pages import cached_page
from api.uploads import received_upload
from gis.dispatch.desk import category_choices, deadline_matrix, dispatcher_layers
from gis.dispatch.engine.single import route_single
from gis.dispatch.routing import RouteResult
from gis.dispatch.routing_batch import route_file
from gis.dispatch.routing_settings import RoutingSettings
from maps.assets import render_html
from maps.dispatcher import dispatcher_map

router = APIRouter(tags=["dispatch"], dependencies=[staff_only])


def get_routing_settings(request: Request) -> RoutingSettings:
    """Routing settings, read from the environment once per app."""
    state = request.app.state
    if getattr(state, "routing_settings", None) is None:
        state.routing_settings = RoutingSettings()
    settings: RoutingSettings = state.routing_settings
    return settings


RoutingSettingsDep = Annotated[RoutingSettings, Depends(get_routing_settings)]


class RouteRequest(BaseModel):
    """A complaint's location, time and category."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(allow_inf_nan=False, description="longitude (or x) in `crs`",
                     examples=[117.0315])
    y: float = Field(allow_inf_nan=False, description="latitude (or y) in `crs`",
                     examples=[36.6605])
    crs: str = Field("wgs84", description="wgs84, gcj02 (WeChat/AMap), bd09 (Baidu), cgcs2000")
    at: SaneDatetime | None = Field(None, description="time of the complaint; default now. "
                                "Without an offset it is read as city time")
    category_type: Literal["event", "component"] = "event"
    category_code: str | None = Field(None, pattern=r"^[0-9]{4}$", examples=["0505"])
    component_code: str | None = Field(None, pattern=r"^[0-9]{16}$",
                                       description="a streetlight or manhole cover code")


@router.post("/route", response_model=RouteResult, summary="Route one complaint")
def route_one(body: RouteRequest, session: SessionDep, settings: SettingsDep,
              routing: RoutingSettingsDep) -> RouteResult:
    """Grid, owner of the day, station, responsible unit and stall zone of one complaint."""
    at = body.at or datetime.now(routing.tz)
    # CITYGRID_ROUTING_SINGLE_ENGINE: the in-process index (default) or the per-point SQL.
    return route_single(session, x=body.x, y=body.y, crs=body.crs, at=at,
                        category_type=body.category_type, category_code=body.category_code,
                        component_code=body.component_code, settings=routing,
                        city=settings.city)


@router.post("/route/batch", summary="Route a hotline export (CSV or .xlsx)",
             response_class=Response,
             responses={200: {"content": {"text/csv": {}}, "description": "routed rows"}})
def route_batch(request: Request, settings: SettingsDep, routing: RoutingSettingsDep,
                user: DispatcherDep,
                file: Annotated[UploadFile, File(description="CSV or .xlsx export")],
                crs: Annotated[str, Form(description="CRS of rows without a crs column")]
                = "wgs84") -> Response:
    """One result row per input row, in order, with a `reason` for rows not routed."""
    with received_upload(file, default="upload.csv", max_mb=settings.api.max_upload_mb,
                         prefix="citygrid-route-") as source:
        name = source.name
        target = route_file(request.app.state.engine, source, settings=routing,
                            city=settings.city, default_crs=crs,
                            out=source.with_name(".routed.csv"))
        content = target.read_bytes()
    # RFC 6266: an ASCII fallback plus the UTF-8 name, since exports are often named in Chinese.
    routed_name = quote(f"{Path(name).stem}.routed.csv")
    return Response(content, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=\"routed.csv\"; "
                               f"filename*=UTF-8''{routed_name}"})


@router.get("/dispatch", response_class=HTMLResponse, summary="调度台 (dispatcher page)")
def dispatch_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Locate a complaint, see grid, owner, station, unit and deadlines, file it; offline."""

    def route_paths(routes: Iterable[Any], prefix: str = "") -> set[str]:
        # FastAPI 0.165 keeps included routers as wrappers (original_router, include_context)
        # instead of copying their routes into app.routes: walk through them.
        found: set[str] = set()
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                found.add(prefix + path)
            inner = getattr(route, "original_router", None)
            if inner is not None:
                context = getattr(route, "include_context", None)
                found |= route_paths(inner.routes, prefix + getattr(context, "prefix", ""))
        return found

    def render() -> str:
        categories = category_choices(session)
        title = f"{settings.city.name} 调度台"
        layers = dispatcher_layers(session)
        # The page draws the grid from /ogc vector tiles; embedding it made 2.9 MB of HTML.
        layers.pop("grid_cells", None)
        paths = route_paths(request.app.routes)
        m = dispatcher_map(layers, center=settings.city.center,
                           categories=categories,
                           deadlines=deadline_matrix(session, categories=categories),
                           title=title, available_paths=paths)
        return render_html(m, title=title)

    # District and street outlines, stations, categories and deadline rules only (no grid
    # cells: vector tiles), the same page for every user
    # (no row-level-security table), so one render per process serves them all.
    return cached_page(request, "dispatch", render)
