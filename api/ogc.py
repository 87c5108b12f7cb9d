"""OGC API Features and OGC API Tiles (MVT) for the public layers, by mounting tipg's routers.

Why tipg and not a hand-written standard: tipg 1.6 needs starlette>=1.0 and installs beside
the app's FastAPI/Starlette without changing them; it keeps its pool and catalog on app.state,
so it opens and closes in create_app's lifespan like the SQLAlchemy engine; and it already
implements what GDAL, QGIS and MapLibre rely on (landing page, conformance, collections, items
with bbox/limit/offset/datetime and next/prev links, single items, queryables, TileMatrixSets,
tiles through ST_AsMVT, tilejson), which would be several hundred lines to write and keep right.

What citygrid decides here rather than tipg's environment variables:
* only schema `pub` is read, and no SQL functions at all: the views there hold exactly the
  columns the public may see (migration 0006), so an internal column can never leak;
* collection ids are the view names (`streetlights`, not `pub.streetlights`), and MVT layers
  are named after them, so one tile source can hold several layers;
* the database comes from citygrid's settings (external URL or private cluster);
* tipg's own catch-all and database-error handlers are left out: citygrid's generic 500 hides
  SQL text from the public;
* the HTML pages load Leaflet, jQuery and Bootstrap from /static/vendor and draw no OSM
  background, because government networks cannot reach a CDN (see maps/assets.py);
* any web page may read /ogc (CORS), so a developer's MapLibre map can draw the tiles; the
  internal routes get no such header.
"""

from __future__ import annotations

import datetime
import math
from typing import Annotated

import jinja2
from asyncpg.exceptions import QueryCanceledError
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.openapi.docs import get_swagger_ui_html
from morecantile import tms as tile_matrix_sets
from morecantile.errors import InvalidIdentifier
from starlette.responses import HTMLResponse, JSONResponse
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tipg import collections as tipg_collections
from tipg import factory as tipg_factory
from tipg.collections import Catalog, Collection, PgCollection, pg_get_collection_index
from tipg.database import close_db_connection, connect_to_db
from tipg.dependencies import ItemOutputType, ItemsOutputType, filter_query
from tipg.errors import DEFAULT_STATUS_CODES, MissingDatetimeColumn, PostgresError
from tipg.settings import DatabaseSettings, PostgresSettings

from api.csv_safety import install_safe_csv
from api.ogc_filter import (
    BoundPgCollection,
    InvalidFilter,
    checked_filter,
    invalid_filter_response,
)
from api.ogc_openapi import ogc_openapi_document
from api.ogc_params import ogc_params_are_sane
from api.ogc_pools import catalog_installed, choose_ogc_source, open_pools
from api.ogc_query import (
    CapLimitMiddleware,
    install_ogc_errors,
    known_parameters_only,
    tipg_error_handler,
)
from api.ogc_standard import (
    CitygridEndpoints,
    alternate_html_link,
    collection_titles,
    item_output_type,
    items_output_type,
    landing_service_desc,
    ogc_tile_links,
    tilejson_fields,
    titled,
    tms_with_v1_keys,
    wrap_route,
)
from api.ogc_time import has_validity, validity_extent_sql
from gis.platform.db import libpq_dsn, role_url, session_options
from gis.platform.ogc_catalog import SCHEMA as OGC_CATALOG_SCHEMA
from gis.platform.settings import Settings

OGC_PREFIX = "/ogc"
PUBLIC_SCHEMA = "pub"
VENDOR = "/static/vendor"
# A transparent 1x1 GIF: Leaflet's tile layer stays in place but asks no server for tiles.
BLANK_TILE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="

# Session settings of the OGC pool's connections (see open_ogc).
TILE_SERVER_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}

# URLs in tipg 1.6's templates -> what citygrid serves instead.
TEMPLATE_URLS = {
    "https://cdnjs.cloudflare.com/ajax/libs/twitter-bootstrap/4.5.3/css/bootstrap.min.css":
        f"{VENDOR}/bootstrap/css/bootstrap.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet/1.9.4/leaflet.css":
        f"{VENDOR}/leaflet/leaflet.css",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet/1.9.4/leaflet.js":
        f"{VENDOR}/leaflet/leaflet.js",
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.6.0/jquery.min.js":
        f"{VENDOR}/jquery/jquery.min.js",
    "https://files.dnr.state.mn.us/lib/bootstrap4/javascripts/bootstrap.min.js":
        f"{VENDOR}/bootstrap/js/bootstrap.bundle.min.js",
    "https://tile.openstreetmap.org/{z}/{x}/{y}.png": BLANK_TILE,
    # No OSM tiles are drawn, so no OSM attribution either.
    "'Map data &copy; <a href=\"https://openstreetmap.org/copyright\">"
    "OpenStreetMap contributors</a>'": "''",
}


class _LocalAssetsLoader(jinja2.PackageLoader):
    """tipg's templates with every CDN URL replaced by the vendored copy."""

    def get_source(self, environment: jinja2.Environment, template: str):  # type: ignore[override]
        """Template source with TEMPLATE_URLS substituted."""
        source, filename, uptodate = super().get_source(environment, template)
        for remote, local in TEMPLATE_URLS.items():
            source = source.replace(remote, local)
        return source, filename, uptodate


def public_collection(
    request: Request,
    collectionId: Annotated[str, Path(description="public layer, e.g. streetlights")],
) -> Collection:
    """The public layer named in the path (tipg's own dependency wants `schema.table`)."""
    catalog: Catalog = request.app.state.collection_catalog
    if collectionId not in catalog["collections"]:
        raise HTTPException(status_code=404,
                            detail=f"collection {collectionId!r} is not a public layer")
    return catalog["collections"][collectionId]


def tile_in_matrix(request: Request) -> None:
    """Refuse a tile outside its TileMatrixSet with 404: no such tile (Tiles /req/core/tc-error)."""
    params = request.path_params
    if not {"tileMatrixSetId", "z", "x", "y"} <= params.keys():
        return
    try:
        tms = tile_matrix_sets.get(params["tileMatrixSetId"])
    except InvalidIdentifier:  # tipg refuses unknown ids itself, listing the valid ones
        return
    try:
        z, x, y = (int(params[k]) for k in ("z", "x", "y"))
    except ValueError:
        return  # not integers: FastAPI's validation answers 422 naming the parameter
    if not tms.minzoom <= z <= tms.maxzoom:
        raise HTTPException(status_code=404, detail=(
            f"zoom {z} is outside {tms.id} (levels {tms.minzoom}..{tms.maxzoom})"))
    matrix = tms.matrix(z)
    if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
        raise HTTPException(status_code=404, detail=(
            f"tile {z}/{x}/{y} is outside {tms.id} level {z} "
            f"({matrix.matrixWidth}x{matrix.matrixHeight} tiles)"))


def bbox_is_numbers(request: Request) -> None:
    """Refuse a `bbox` that is not 4 or 6 finite numbers (tipg's own parse would be a 500)."""
    raw = request.query_params.get("bbox")
    if not raw:
        return
    try:
        numbers = [float(part) for part in raw.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise HTTPException(status_code=422, detail=(
            f"bbox {raw!r} must be 4 or 6 comma-separated numbers (lon/lat, EPSG:4326)"))


def query_too_slow_response(request: Request, exc: Exception) -> JSONResponse:
    """503 when a statement ran past the public pool's statement_timeout."""
    limit = request.app.state.settings.db.public_statement_timeout_ms
    return JSONResponse({"code": "ServiceUnavailable",
                         "description": f"the query took longer than {limit} ms; narrow it "
                                        "(bbox, filter, limit) and try again"},
                        status_code=503, headers={"Retry-After": "5"})


def catalog_settings(application_schema: str = "pg_temp") -> DatabaseSettings:
    """tipg catalog options: the views of schema `pub`, no functions, extents computed."""
    return DatabaseSettings(
        schemas=[PUBLIC_SCHEMA], tables=None, exclude_tables=None, exclude_table_schemas=None,
        functions=[], exclude_functions=None, exclude_function_schemas=None,
        only_spatial_tables=True, spatial_extent=True, datetime_extent=True,
        application_schema=application_schema,
    )


async def open_ogc(app: FastAPI, settings: Settings) -> None:
    """Open tipg's asyncpg pool and read the catalog of public layers (in the lifespan)."""
    # Passed explicitly so tipg's own env variables (DATABASE_URL, POSTGRES_*) are not consulted.
    # tipg's validator wants the DSN as a string (a PostgresDsn object is rebuilt from parts).
    # Anonymous: the public role, which can read the views of `pub` and nothing else.
    pg = PostgresSettings(database_url=libpq_dsn(role_url(settings, "public")),  # type: ignore[arg-type]
                          db_min_conn_size=settings.ogc.pool_min_size,
                          db_max_conn_size=settings.ogc.pool_max_size)
    db = catalog_settings()
    # JIT off: PostGIS functions are costed high, so the query of a dense tile passes
    # jit_above_cost and spends ~230 ms compiling to save a few. No parallel workers: a map
    # asks for a dozen tiles at once, and on a small server three processes per tile only
    # queue behind each other (both measured with bench/tiles.py).
    server_settings = {**TILE_SERVER_SETTINGS, **session_options(settings, "public")}
    if await catalog_installed(str(pg.database_url)):
        # tipg's catalog functions installed once by the owner (migration 0032): no DDL per
        # connection, so anonymous /ogc reads can go to fresh standbys (api/ogc_pools.py).
        db = catalog_settings(OGC_CATALOG_SCHEMA)
        app.state.pool = await open_pools(
            str(pg.database_url), getattr(app.state, "read_routers", {}).get("public"),
            schemas=db.schemas, server_settings=server_settings,
            pool_options={"min_size": pg.db_min_conn_size, "max_size": pg.db_max_conn_size,
                          "max_queries": pg.db_max_queries,
                          "max_inactive_connection_lifetime": pg.db_max_inactive_conn_lifetime})
    else:
        await connect_to_db(app, schemas=db.schemas, tipg_schema=db.tipg_schema, settings=pg,
                            server_settings=server_settings)
    async with app.state.pool.acquire() as conn:
        found = await pg_get_collection_index(conn, settings=db)
        # Only views of `pub`, whatever the catalog query returns; ids without the schema
        # prefix. BoundPgCollection: filters compiled to bound parameters (api/ogc_filter.py).
        # Chinese titles and descriptions (api/ogc_standard.py).
        public = [BoundPgCollection.model_validate(
                      {**c.model_dump(by_alias=True), "id": c.table,
                       **titled(c.model_copy(update={"id": c.table}))})
                  for c in found
                  if isinstance(c, PgCollection) and c.dbschema == PUBLIC_SCHEMA]
        # Layers valid for a period: their temporal extent (api/ogc_time.py).
        for i, collection in enumerate(public):
            if has_validity(collection):
                row = await conn.fetchrow(validity_extent_sql(collection.table))
                public[i] = collection.model_copy(update={"validity": list(row)})
    app.state.collection_catalog = Catalog(
        collections={c.id: c for c in public}, last_updated=datetime.datetime.now()
    )


async def close_ogc(app: FastAPI) -> None:
    """Close tipg's pool (in the lifespan)."""
    if getattr(app.state, "pool", None) is not None:
        await close_db_connection(app)


class PublicCorsMiddleware:
    """`Access-Control-Allow-Origin: *` on responses under /ogc only (public, read-only data)."""

    def __init__(self, app: ASGIApp, prefix: str = OGC_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the header to HTTP responses whose path is under the prefix."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"access-control-allow-origin"]
                headers.append((b"access-control-allow-origin", b"*"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def mount_ogc(app: FastAPI) -> None:
    """Add the OGC API routes under /ogc and tipg's error handlers for its own errors."""
    # tipg reads these at import from TIPG_* variables; citygrid's choice is fixed here.
    tipg_collections.mvt_settings.set_mvt_layername = True
    tipg_factory.mvt_settings.set_mvt_layername = True
    install_safe_csv()  # f=csv: formula-like text cells quoted (OWASP CSV injection)
    env = jinja2.Environment(loader=_LocalAssetsLoader("tipg", "templates"), autoescape=True)
    endpoints = CitygridEndpoints(
        title="citygrid 公共图层 OGC API", router_prefix=OGC_PREFIX,
        templates=Jinja2Templates(env=env), with_tiles_viewer=False,
        collection_dependency=public_collection,
    )
    # Documents tipg gets wrong for strict clients, post-processed (api/ogc_standard.py).
    wrap_route(endpoints.router, "landing",
               lambda request, result: alternate_html_link(
                   request, landing_service_desc(request, result)))
    wrap_route(endpoints.router, "collections",
               lambda request, result: alternate_html_link(
                   request, collection_titles(request, result)))
    wrap_route(endpoints.router, "collection", alternate_html_link)
    wrap_route(endpoints.router, "collection_tileset_list", ogc_tile_links)
    wrap_route(endpoints.router, "collection_tileset", ogc_tile_links)
    wrap_route(endpoints.router, "collection_tilejson", tilejson_fields)
    wrap_route(endpoints.router, "tilematrixset", tms_with_v1_keys)
    wrap_route(endpoints.router, "items", alternate_html_link)
    wrap_route(endpoints.router, "item", alternate_html_link)
    app.include_router(endpoints.router, prefix=OGC_PREFIX, tags=["OGC API"],
                       dependencies=[Depends(known_parameters_only), Depends(tile_in_matrix),
                                     Depends(bbox_is_numbers), Depends(ogc_params_are_sane),
                                     Depends(choose_ogc_source)])

    @app.get(f"{OGC_PREFIX}/api", include_in_schema=False, name="ogc_openapi")
    def ogc_openapi() -> JSONResponse:
        """OpenAPI 3.0 document of /ogc alone (the landing page's service-desc)."""
        if not hasattr(app.state, "ogc_openapi"):
            app.state.ogc_openapi = ogc_openapi_document(app, OGC_PREFIX, endpoints.title)
        return JSONResponse(app.state.ogc_openapi,
                            media_type="application/vnd.oai.openapi+json;version=3.0")

    @app.get(f"{OGC_PREFIX}/api.html", include_in_schema=False, name="ogc_api_docs")
    def ogc_api_docs() -> HTMLResponse:
        """Swagger UI of /ogc/api alone (the landing page's service-doc), local assets only."""
        return get_swagger_ui_html(
            openapi_url=f"{OGC_PREFIX}/api", title="citygrid 公共图层 OGC API 文档",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/leaflet/images/marker-icon.png",
            swagger_ui_parameters={"validatorUrl": None})

    app.dependency_overrides[ItemsOutputType] = items_output_type
    app.dependency_overrides[ItemOutputType] = item_output_type
    # The filter is a language, not SQL: parsed and checked before a connection is taken.
    app.dependency_overrides[filter_query] = checked_filter
    app.add_exception_handler(InvalidFilter, invalid_filter_response)
    app.add_exception_handler(QueryCanceledError, query_too_slow_response)
    handled = {exc: 400 if code == 422 else code for exc, code in DEFAULT_STATUS_CODES.items()
               if exc not in (Exception, PostgresError)}
    # `datetime` on a layer without time is the client's mistake, not a 500 (api/ogc_time.py).
    handled[MissingDatetimeColumn] = 400
    for exc, code in handled.items():
        app.add_exception_handler(exc, tipg_error_handler(code))
    install_ogc_errors(app, OGC_PREFIX)
    app.add_middleware(CapLimitMiddleware, prefix=OGC_PREFIX)
    app.add_middleware(PublicCorsMiddleware)
