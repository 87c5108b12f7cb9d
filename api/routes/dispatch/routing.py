"""Dispatcher routing: one complaint (`POST /route`), a hotline export (`POST /route/batch`),
and the dispatcher page (`GET /dispatch`, 调度台) that drives them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import (
    STAFF,
    DispatcherDep,
    checked_role,
    oauth2_scheme,
    optional_user,
    request_token,
    staff_only,
)
from api.deps import SessionDep, SettingsDep, get_session
from api.params import SaneDatetime
from api.routes.pages import cached_page
from api.uploads import received_upload
from gis.access import auth as auth_users
from gis.access.auth import User
from gis.dispatch.desk import category_choices, deadline_matrix, dispatcher_layers
from gis.dispatch.engine.route_cache import RouteCache, RouteCacheSettings
from gis.dispatch.engine.signed import CHECK_KEYS, check_engine, signed_check, token_digest
from gis.dispatch.engine.single import (
    PointIndex,
    cached_point_index,
    point_index,
    route_on_index,
    route_single,
)
from gis.dispatch.routing import RouteResult
from gis.dispatch.routing_batch import route_file
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.db import libpq_dsn, role_url
from gis.platform.errors import AuthenticationError
from gis.platform.settings import Settings
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


# POST /route signs its caller in itself (route_caller), in the statement that also checks the
# routing index: not behind `router`'s staff_only, which would cost four more round trips.
single_router = APIRouter(tags=["dispatch"])
_ENGINE_LOCK = threading.Lock()


@dataclass(frozen=True)
class RouteCaller:
    """The signed-in caller of POST /route, and what the index path needs for their request."""

    user: User
    token: str
    check: Mapping[str, Any]  # routing version and rule, read with the token
    category: tuple[str, str]  # (category_type, category_code) the rule was read for
    index: PointIndex | None  # current for check's version; None: the session path


def _check_engine(request: Request, settings: Settings) -> Engine:
    state = request.app.state
    engine: Engine | None = getattr(state, "route_check_engine", None)
    if engine is None:
        with _ENGINE_LOCK:
            engine = getattr(state, "route_check_engine", None)
            if engine is None:
                engine = state.route_check_engine = check_engine(settings)
    return engine


def route_cache(request: Request) -> RouteCache | None:
    """This process's sign-in cache for POST /route (its listener started), None when off."""
    state = request.app.state
    cache: RouteCache | None = getattr(state, "route_cache", None)
    if cache is not None:
        return cache
    with _ENGINE_LOCK:
        cache_settings = getattr(state, "route_cache_settings", None)
        if cache_settings is None:
            cache_settings = state.route_cache_settings = RouteCacheSettings()
        if not cache_settings.enabled:
            return None
        cache = getattr(state, "route_cache", None)
        if cache is None:
            dsn = libpq_dsn(role_url(state.settings, "app"))
            cache = state.route_cache = RouteCache(dsn, cache_settings)
            cache.start()  # until it listens, requests take the one-statement path
    return cache


def close_route_cache(app: Any) -> None:
    """Stop the app's sign-in cache listener (lifespan shutdown)."""
    cache: RouteCache | None = getattr(app.state, "route_cache", None)
    if cache is not None:
        app.state.route_cache = None
        cache.close()


def _uses_index(user: User, check: Mapping[str, Any], routing: RoutingSettings) -> bool:
    # A grid owner's rows are cut by row-level security, a district user's scoped by
    # their district: both are routed in their own session, as behind staff_only.
    return (routing.single_engine == "index" and not user.is_grid_owner
            and check["district_code"] is None)


def _cached(request: Request, cache: RouteCache, token: str, category: tuple[str, str],
            routing: RoutingSettings) -> RouteCaller | None:
    """The caller from the sign-in cache (no statement), or None: take the statement path."""
    hit = cache.lookup(token_digest(token), category)
    if hit is None:
        return None
    user, check = hit
    index = None
    if _uses_index(user, check, routing):
        index = cached_point_index(database=check["db"], version=int(check["version"]),
                                   city=request.app.state.settings.city)
        if index is None:  # not built in this process yet: the statement path builds it
            return None
    return RouteCaller(user, token, check, category, index)


def _signed(request: Request, token: str, category: tuple[str, str],
            routing: RoutingSettings, settings: Settings,
            cache: RouteCache | None = None) -> RouteCaller | None:
    # Taken before the statement: a notice arriving while it runs keeps its answer out.
    generation = cache.generation() if cache is not None else None
    # Autocommit: one statement, no BEGIN or ROLLBACK; it writes nothing, so it needs no
    # audit tag either (bind_user tags the session path below).
    with _check_engine(request, settings).connect() as conn:
        user, check = signed_check(conn, token=token, category_type=category[0],
                                   category_code=category[1])
        if user is None:
            return None
        index = None
        if _uses_index(user, check, routing):
            index = point_index(conn, database=check["db"], version=int(check["version"]),
                                city=settings.city)
        if cache is not None:
            cache.remember(generation, token_digest(token), user, check, category, CHECK_KEYS)
        return RouteCaller(user, token, dict(check), category, index)


def _signed_in_session(session: Session, token: str,
                       category: tuple[str, str]) -> RouteCaller | None:
    try:
        user = auth_users.user_for_token(session, token)
    except AuthenticationError:
        return None
    return RouteCaller(user, token, {}, category, None)


async def route_caller(request: Request,
                       bearer: Annotated[str | None, Depends(oauth2_scheme)] = None
                       ) -> RouteCaller:
    """The staff caller of POST /route, signed in as staff_only does (401 / 403 alike)."""
    token = request_token(request, bearer)
    if not token:
        checked_role(request, None, STAFF)
    # Runs before the body is validated (a bad body from a stranger stays a 401, as behind
    # staff_only); FastAPI has parsed the JSON already, so this reads its cached copy.
    try:
        raw = await request.json()
    except ValueError:  # not JSON: the body check answers 422 after the sign-in
        raw = None
    raw = raw if isinstance(raw, dict) else {}
    ctype, ccode = raw.get("category_type", "event"), raw.get("category_code") or ""
    category = (ctype if isinstance(ctype, str) else "", ccode if isinstance(ccode, str) else "")
    override = request.app.dependency_overrides.get(get_session)
    if override is not None:
        # A test's own session in place of get_session holds rows (tokens too) it has not
        # committed; only that session can see them: sign in through it, route by it.
        caller = await run_in_threadpool(_signed_in_session, override(), str(token), category)
    else:
        routing = get_routing_settings(request)
        cache = route_cache(request)
        # A cached sign-in answers on the event loop: no statement, no thread-pool hop.
        caller = None if cache is None else _cached(request, cache, str(token), category,
                                                     routing)
        if caller is None:
            caller = await run_in_threadpool(_signed, request, str(token), category, routing,
                                             request.app.state.settings, cache)
    if caller is None:
        raise AuthenticationError("token is unknown, expired or revoked")
    request.state.user = caller.user
    checked_role(request, caller.user, STAFF)
    return caller


def _in_session(request: Request, caller: RouteCaller, args: dict[str, Any]) -> RouteResult:
    """Components are linked in PostGIS, grid owners routed under row-level security: in a
    session signed in, tagged and scoped exactly as staff_only does (one more lookup)."""
    def route(session: Session) -> RouteResult:
        checked_role(request, optional_user(request, session, caller.token), STAFF)
        # CITYGRID_ROUTING_SINGLE_ENGINE: the in-process index (default) or per-point SQL.
        return route_single(session, **args)

    override = request.app.dependency_overrides.get(get_session)
    if override is not None:  # a test's session (see route_caller)
        return route(override())
    with request.app.state.sessionmaker() as session:  # as get_session: never committed
        return route(session)


async def _route_body(request: Request) -> RouteRequest:
    """The body as FastAPI would validate a `RouteRequest` parameter (same 422 details)."""
    raw = await request.body()
    if not raw.strip():
        raise RequestValidationError([{"type": "missing", "loc": ("body",),
                                       "msg": "Field required", "input": None}])
    kind = request.headers.get("content-type")
    main, _, subtype = (kind or "").partition(";")[0].strip().lower().partition("/")
    if kind and not (main == "application" and (subtype == "json" or subtype.endswith("+json"))):
        data: Any = raw  # as FastAPI: a body that is not JSON is validated as bytes (a 422)
    else:
        data = None
    try:
        if data is None:
            data = await request.json()  # route_caller parsed it already: the cached copy
    except ValueError as exc:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)),
            "msg": "JSON decode error", "input": {}, "ctx": {"error": str(exc)}}]) from None
    try:
        return RouteRequest.model_validate(data, from_attributes=True)  # as FastAPI validates
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors()]) from None


# What the body parameter and the sign-in dependency declared in the OpenAPI document.
_ROUTE_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": RouteRequest.model_json_schema()}}},
    "security": [{"OAuth2PasswordBearer": []}],
}


@single_router.post("/route", response_model=RouteResult, summary="Route one complaint",
                    openapi_extra=_ROUTE_OPENAPI, responses={422: {
                        "description": "Validation Error", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}})
async def route_one(request: Request) -> Response:
    """Grid, owner of the day, station, responsible unit and stall zone of one complaint."""
    # No FastAPI parameters or dependencies: while app.dependency_overrides is not empty
    # (api/ogc.py overrides tipg's), FastAPI inspects every dependency's signature again on
    # every request. The caller is signed in before the body is looked at (a stranger's bad
    # body is a 401, as behind staff_only), then the body is validated as a parameter was.
    caller = await route_caller(request, await oauth2_scheme(request))
    body = await _route_body(request)
    routing = get_routing_settings(request)
    at = body.at or datetime.now(routing.tz)
    args: dict[str, Any] = dict(
        x=body.x, y=body.y, crs=body.crs, at=at, category_type=body.category_type,
        category_code=body.category_code, component_code=body.component_code,
        settings=routing, city=request.app.state.settings.city)
    linked = body.component_code is not None or body.category_type == "component"
    if (caller.index is not None and not linked
            and caller.category == (body.category_type, body.category_code or "")):
        # The index answers in ~1-2 ms of numpy, on the event loop: no session, no statement.
        result = route_on_index(caller.index, caller.check, **args)
    else:
        result = await run_in_threadpool(_in_session, request, caller, args)
    return Response(result.model_dump_json(), media_type="application/json")


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
