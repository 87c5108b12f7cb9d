"""The FastAPI app factory; the engine lives on app.state for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.analysis_warmup import start_analysis_warmup, stop_analysis_warmup
from api.csrf import CsrfMiddleware
from api.errors import document_errors, install_error_handlers
from api.errors_zh import ChineseErrorsMiddleware
from api.idempotency import install_idempotency
from api.input_guard import InputGuardMiddleware
from api.limits import BodySizeLimitMiddleware
from api.live_events import close_case_events
from api.live_events import router as live_events_router
from api.ogc import close_ogc, mount_ogc, open_ogc
from api.ogc_tile_cache import OgcTileCacheMiddleware
from api.read_routing import install_read_routing
from api.routes import access as auth
from api.routes import (
    analysis,
    analysis_tiles,
    assets,
    geocoding,
    geocoding_suggest,
    hotspots,
    layers,
    pages,
    zones,
)
from api.routes import field as field_app
from api.routes import platform as health
from api.routes import tiles as vector_tiles
from api.routes.access import login_throttle
from api.routes.dispatch import cases, routing
from api.routes.dispatch import media as case_media
from api.routes.public import convenience_map as public
from api.routes.public import geocode as public_geocode
from api.routes.public import open311, resident_report
from api.security_headers import SecurityHeadersMiddleware
from api.static_cache import CachedStaticFiles
from api.tile_warmup import start_tile_warmup, stop_tile_warmup
from gis.platform.db import make_engine, role_url, session_factory, session_options
from gis.platform.replicas import make_read_routers
from gis.platform.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Least privilege (migration 0012): staff and anonymous writes run as the runtime
        # role, anonymous reads as the public role; the owner is for migrations and the CLI.
        engine = make_engine(role_url(settings, "app"), pool_size=settings.db.pool_size,
                             options=session_options(settings, "app"))
        public_engine = make_engine(role_url(settings, "public"),
                                    pool_size=settings.db.pool_size,
                                    options=session_options(settings, "public"))
        app.state.engine = engine
        app.state.sessionmaker = session_factory(engine)
        app.state.public_engine = public_engine
        app.state.public_sessionmaker = session_factory(public_engine)
        # Reads that may be a few seconds stale go to standbys (CITYGRID_DB_REPLICA_*).
        app.state.read_routers = make_read_routers(settings, engine)
        try:
            await open_ogc(app, settings)
            if settings.staff_map.warm_tiles and not settings.staff_map.tile_url:
                start_tile_warmup(app, settings.city.center)  # a daemon thread; never waited for
            if settings.api.warm_analyses and settings.api.analysis_cache_entries:
                start_analysis_warmup(app)  # a daemon thread too
            yield
        finally:
            stop_tile_warmup(app)  # between two tiles, before the engines go
            stop_analysis_warmup(app)
            await close_ogc(app)
            routing.close_route_cache(app)  # POST /route's NOTIFY listener thread
            close_case_events(app)
            for router in app.state.read_routers.values():
                router.dispose()
            engine.dispose()
            public_engine.dispose()

    # docs_url/redoc_url off: FastAPI's defaults load Swagger UI from a CDN, which an
    # isolated government network cannot reach; /docs is served below from local assets.
    app = FastAPI(title="citygrid", version="0.1.0", lifespan=lifespan,
                  description="数字化城管 GIS 平台 API (citygrid)", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.login_throttle = login_throttle(settings.api)  # per process: gis.access.throttle
    install_error_handlers(app)
    # POST /route signs in itself; first, so the busiest route is matched before ~100 others.
    app.include_router(routing.single_router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(assets.router)
    app.include_router(layers.router)
    app.include_router(pages.router)
    app.include_router(vector_tiles.router)
    app.include_router(analysis_tiles.router)
    app.include_router(routing.router)
    app.include_router(geocoding.router)
    app.include_router(geocoding_suggest.router)
    app.include_router(cases.router)
    app.include_router(case_media.router)
    app.include_router(live_events_router)
    app.include_router(field_app.router)
    app.include_router(zones.router)
    app.include_router(analysis.router)
    app.include_router(hotspots.router)
    app.include_router(public_geocode.router)
    app.include_router(public.router)
    app.include_router(open311.router)
    app.include_router(resident_report.router)
    open311.install_open311_errors(app)
    # Innermost: /ogc tiles kept per layer data version; everything outside runs as before.
    app.add_middleware(OgcTileCacheMiddleware)
    mount_ogc(app)
    install_idempotency(app)  # innermost middleware: stores answers before gzip
    install_read_routing(app, settings)  # write positions for read-your-own-writes; 503s
    # Inside the size limit (added first = inner): the guard reads bodies the limit counts.
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, settings=settings.api)
    # Pages embed their GeoJSON (the dispatcher desk ~3 MB, ~0.25 MB gzipped) and GeoJSON /
    # MVT answers compress 5-10x; responses that are already encoded (cached /map) pass as is.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    # Cross-site writes with the login cookie are refused before any route runs; the headers
    # go on every answer, the refusals above included (added last: outermost).
    app.add_middleware(CsrfMiddleware, settings=settings.api)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    # Outermost: every JSON error above, refusals included, gets its zh-CN message_zh.
    app.add_middleware(ChineseErrorsMiddleware)
    document_errors(app)
    app.mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static")

    # Named like FastAPI's own docs route: tipg's landing page links to it by this name.
    @app.get("/docs", include_in_schema=False, name="swagger_ui_html")
    def docs() -> HTMLResponse:
        """Swagger UI for the API, with its script and style served by the app itself."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="citygrid API 文档",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/leaflet/images/marker-icon.png",
            # No badge from validator.swagger.io: the page may load nothing from elsewhere.
            swagger_ui_parameters={"validatorUrl": None})

    return app
