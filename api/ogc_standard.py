"""What /ogc changes on top of tipg so clients that read the OGC standards to the letter work.

tipg 1.6 serves the data right but several protocol details wrong (issue 17); each fix here is
named after the requirement it meets and tested in tests/public/test_ogc_conformance.py:

* Tiles: collections link their tilesets with rel `.../tilesets-vector` (geodata-tilesets), a
  tileset links its tiles with rel `item` and a `{tileMatrix}/{tileCol}/{tileRow}` template
  marked `templated`, only WebMercatorQuad is offered, a tile outside it is 404, TileJSON has an
  attribution and lists only the fields an MVT can carry (jsonb columns are dropped by
  ST_AsMVT). GDAL's OGCAPI driver (`-oo API=TILES`) follows exactly these links.
* Features: `f=json` / `Accept: application/json` is GeoJSON (it *is* JSON), items and item
  carry `rel=alternate` links to their HTML page, a `limit` outside 1..10000 is capped (Part 1
  /req/core/fc-limit-response-1), an unknown query parameter is 400
  (/req/core/query-param-unknown), every refused parameter is 400 with the OGC exception body
  {code, description} (/req/core/query-param-invalid), the CQL2 classes the whitelist compiler
  implements are declared so GDAL filters on the server, and /ogc/api is an OpenAPI 3.0
  document of /ogc alone (/req/oas30/oas-definition-1).
* Collections get Chinese titles and descriptions (COLLECTION_TEXT).

The route bodies stay tipg's: `wrap_route` post-processes what a tipg endpoint returns, so a
tipg upgrade keeps its queries and only these documents are touched.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from morecantile import tms as default_tms
from morecantile.defaults import TileMatrixSets
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from tipg import model
from tipg.collections import Collection
from tipg.dependencies import (
    ItemOutputType,
    ItemResponseType,
    ItemsOutputType,
    ItemsResponseType,
)
from tipg.factory import Endpoints, OGCFeaturesFactory, OGCTilesFactory
from tipg.resources.enums import MediaType

WEB_MERCATOR = "WebMercatorQuad"
# One city in China: the global web-mercator grid every web map uses, nothing else (tipg
# offered 13 sets, Antarctic and New Zealand ones included, to a client choosing blindly).
SUPPORTED_TMS = TileMatrixSets({WEB_MERCATOR: default_tms.get(WEB_MERCATOR)})

WEB_MERCATOR_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
# Path order of tipg's tile route is z/x/y (TileJSON and MapLibre use it); the OGC variables
# are named, so the template says which is which.
TILE_TEMPLATE = "{tileMatrix}/{tileCol}/{tileRow}"

CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf"
FEATURES_3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf"
# What gis/public/cql2_check.py allows: comparisons, LIKE/BETWEEN/IN, all eight S_ functions. Not
# temporal-functions (6 of its 12 operators) and no public layer has a time column anyway.
FILTER_CONFORMS = [
    f"{FEATURES_3}/filter",
    f"{FEATURES_3}/features-filter",
    f"{CQL2}/cql2-text",
    f"{CQL2}/cql2-json",
    f"{CQL2}/basic-cql2",
    f"{CQL2}/advanced-comparison-operators",
    f"{CQL2}/basic-spatial-functions",
    f"{CQL2}/spatial-functions",
]
TILES_1 = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
EXTRA_TILES_CONFORMS = [f"{TILES_1}/geodata-tilesets"]

ATTRIBUTION = "© citygrid 数字化城管平台 (演示数据)"

# id -> (title, description); an id missing here keeps tipg's default (the id itself).
COLLECTION_TEXT: dict[str, tuple[str, str]] = {
    "districts": ("区", "区级行政区划边界 (GB/T 2260 代码)"),
    "subdistricts": ("街道", "街道办事处辖区边界"),
    "communities": ("社区", "社区 (居委会) 边界"),
    "grid_cells": ("单元网格", "城市管理单元网格 (GB/T 30428.1), 含面积"),
    "roads": ("道路", "道路中心线, 含道路等级与宽度"),
    "stations": ("城管站点", "城管执法与服务站点, 含地址、电话和开放时间"),
    "facilities": ("便民设施", "公共厕所等便民设施, 含地址和开放时间"),
    "stall_zones": ("摊点疏导区", "已批准的临时摊点疏导区, 含时段、季节和容量"),
    "streetlights": ("路灯", "路灯部件及其当前状态"),
    "manhole_covers": ("井盖", "井盖部件, 含类别和当前状态"),
}

# Types ST_AsMVT drops (it encodes only scalar values): not advertised as tile fields.
NON_MVT_TYPES = {"json", "jsonb", "geometry", "geography"}

OGC_EXCEPTION_CODES = {400: "InvalidParameterValue", 404: "NotFound", 405: "MethodNotAllowed",
                       406: "NotAcceptable", 503: "ServiceUnavailable"}


def ogc_exception(status: int, description: str) -> JSONResponse:
    """An OGC API exception body ({code, description}) with its status."""
    code = OGC_EXCEPTION_CODES.get(status, "ServerError" if status >= 500 else "BadRequest")
    return JSONResponse({"code": code, "description": description}, status_code=status)


def titled(collection: Collection) -> dict[str, Any]:
    """Title and description of a public layer (Chinese), for the catalog."""
    title, description = COLLECTION_TEXT.get(collection.id, (None, None))
    return {"title": title or collection.title, "description": description
            or collection.description}


# --- tipg factories -------------------------------------------------------------------------


@dataclass
class CitygridFeatures(OGCFeaturesFactory):
    """tipg's Features factory; collections link their vector tilesets by the OGC relation."""

    def _additional_collection_tiles_links(
        self, request: Request, collection: Collection
    ) -> list[model.Link]:
        """The tilesets list (geodata-tilesets /req/geodata-tilesets/desc-links)."""
        href = self.url_for(request, "collection", collectionId=collection.id) + "/tiles"
        return [model.Link(href=href, rel=REL_TILESETS_VECTOR, type=MediaType.json,
                           title=f"{collection.id} 矢量瓦片集 (vector tilesets)")]


@dataclass
class CitygridEndpoints(Endpoints):
    """tipg's Features and Tiles endpoints with citygrid's conformance and links."""

    supported_tms: TileMatrixSets = SUPPORTED_TMS

    @property
    def conforms_to(self) -> list[str]:
        """tipg's classes plus CQL2 and geodata-tilesets, each listed once."""
        classes = [*super().conforms_to, *FILTER_CONFORMS, *EXTRA_TILES_CONFORMS]
        return list(dict.fromkeys(classes))

    def register_routes(self) -> None:
        """tipg's routes, with the Features factory above."""
        self.ogc_features = CitygridFeatures(
            collections_dependency=self.collections_dependency,
            collection_dependency=self.collection_dependency,
            router_prefix=self.router_prefix, templates=self.templates, with_common=False)
        self.router.include_router(self.ogc_features.router)
        self.ogc_tiles = OGCTilesFactory(
            collection_dependency=self.collection_dependency,
            router_prefix=self.router_prefix, templates=self.templates,
            supported_tms=self.supported_tms, with_viewer=self.with_tiles_viewer,
            with_common=False)
        self.router.include_router(self.ogc_tiles.router)


# --- post-processing tipg's documents -------------------------------------------------------


def _find_route(router: APIRouter, name: str) -> tuple[APIRouter, int, APIRoute]:
    """The router holding route `name`, its index there and the route (searching included
    routers too: FastAPI keeps a reference to them rather than copying their routes)."""
    for index, route in enumerate(router.routes):
        if isinstance(route, APIRoute) and route.name == name:
            return router, index, route
        inner = getattr(route, "original_router", None)
        if isinstance(inner, APIRouter):
            try:
                return _find_route(inner, name)
            except LookupError:
                continue
    raise LookupError(f"no tipg route named {name!r}")


def wrap_route(router: APIRouter, name: str,
               post: Callable[[Request, Any], Any]) -> None:
    """Replace route `name` by one returning `post(request, <what tipg's endpoint returned>)`."""
    router, index, route = _find_route(router, name)
    original = route.endpoint
    if "request" not in inspect.signature(original).parameters:
        raise TypeError(f"tipg route {name} takes no request")

    @functools.wraps(original)  # FastAPI reads the original's parameters through __wrapped__
    async def endpoint(**kwargs: Any) -> Any:
        result = original(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return post(kwargs["request"], result)

    router.routes[index] = APIRoute(
        route.path, endpoint, response_model=route.response_model,
        status_code=route.status_code, tags=route.tags, dependencies=route.dependencies,
        summary=route.summary, description=route.description,
        response_description=route.response_description, responses=route.responses,
        deprecated=route.deprecated, name=route.name, methods=route.methods,
        operation_id=route.operation_id,
        response_model_exclude_none=route.response_model_exclude_none,
        include_in_schema=route.include_in_schema, response_class=route.response_class,
        openapi_extra=route.openapi_extra)


def _json_document(result: Any) -> tuple[dict[str, Any] | None, Callable[[dict], Any]]:
    """(document, rebuild) for a JSON answer of tipg; (None, _) for HTML and other formats."""
    if isinstance(result, BaseModel):
        return (result.model_dump(exclude_none=True, mode="json", by_alias=True),
                JSONResponse)
    if isinstance(result, dict):
        return result, lambda doc: doc
    media = getattr(result, "media_type", None) or ""
    body = getattr(result, "body", None)
    if isinstance(result, Response) and media.endswith("json") and isinstance(body, bytes):
        status = result.status_code

        def rebuild(doc: dict) -> Response:
            return Response(orjson.dumps(doc), status_code=status, media_type=media)

        return orjson.loads(body), rebuild
    return None, lambda doc: doc


def ogc_tile_links(request: Request, result: Any) -> Any:
    """Tile links of a tileset (list): rel=item, OGC template variables, templated."""
    doc, rebuild = _json_document(result)
    if doc is None:
        return result

    def fix(links: list[dict]) -> None:
        for link in links:
            if link.get("rel") == "tile":
                link.update(rel="item", templated=True,
                            href=link["href"].replace("{z}/{x}/{y}", TILE_TEMPLATE))

    for tileset in doc.get("tilesets", [doc]):
        fix(tileset.get("links", []))
        # The registered URI lets a client use its own copy of the well-known set.
        tileset.setdefault("tileMatrixSetURI", WEB_MERCATOR_URI)
    return rebuild(doc)


def tms_with_v1_keys(request: Request, result: Any) -> Any:
    """The TileMatrixSet (2.0 encoding) with the 1.0 keys added beside it.

    GDAL before 3.7 (Debian 12's 3.6, the QGIS of many offices) reads only TMS 1.0 and gives
    up on the set ("Invalid tiling matrix set name"); the two encodings use different keys
    (identifier/supportedCRS/tileMatrix/topLeftCorner vs id/crs/tileMatrices/pointOfOrigin),
    so one document serves both.
    """
    doc, rebuild = _json_document(result)
    if doc is None or "tileMatrices" not in doc:
        return result
    doc.update(type="TileMatrixSetType", identifier=doc["id"], supportedCRS=doc["crs"],
               tileMatrix=[{"type": "TileMatrixType", "identifier": m["id"],
                            "scaleDenominator": m["scaleDenominator"],
                            "topLeftCorner": m["pointOfOrigin"],
                            "tileWidth": m["tileWidth"], "tileHeight": m["tileHeight"],
                            "matrixWidth": m["matrixWidth"], "matrixHeight": m["matrixHeight"]}
                           for m in doc["tileMatrices"]])
    return rebuild(doc)


def tilejson_fields(request: Request, result: Any) -> Any:
    """TileJSON with attribution and only the fields an MVT tile carries."""
    if not isinstance(result, dict):
        return result
    collection = request.app.state.collection_catalog["collections"].get(result.get("name"))
    carried = {c.name for c in collection.properties
               if c.type not in NON_MVT_TYPES} if collection else set()
    for layer in result.get("vector_layers", []):
        layer["fields"] = {k: v for k, v in layer["fields"].items() if k in carried}
    return {**result, "attribution": ATTRIBUTION}


def alternate_html_link(request: Request, result: Any) -> Any:
    """GeoJSON items/item with a rel=alternate link to the same resource as HTML."""
    doc, rebuild = _json_document(result)
    if doc is None or "links" not in doc:
        return result
    href = str(request.url.remove_query_params("f").include_query_params(f="html"))
    doc["links"].append({"href": href, "rel": "alternate", "type": "text/html",
                         "title": "网页 (HTML)"})
    return rebuild(doc)


def collection_titles(request: Request, result: Any) -> Any:
    """The collections list with each layer's title (tipg 1.6 repeats the id there)."""
    doc, rebuild = _json_document(result)
    if doc is None:
        return result
    catalog = request.app.state.collection_catalog["collections"]
    for entry in doc.get("collections", []):
        if (collection := catalog.get(entry.get("id"))) is not None and collection.title:
            entry["title"] = collection.title
    return rebuild(doc)


def landing_service_desc(request: Request, result: Any) -> Any:
    """Landing page whose service-desc is /ogc/api (OAS 3.0 of /ogc only)."""
    doc, rebuild = _json_document(result)
    if doc is None:
        return result
    for link in doc["links"]:
        if link["rel"] == "service-desc":
            link["href"] = str(request.url_for("ogc_openapi"))
    return rebuild(doc)


def as_geojson(output_type: MediaType | None) -> MediaType | None:
    """JSON is GeoJSON for features (`f=json`, `Accept: application/json`)."""
    return MediaType.geojson if output_type == MediaType.json else output_type


def items_output_type(
    request: Request,
    f: Annotated[ItemsResponseType | None, Query(
        description="geojson (default), json (the same GeoJSON), html, csv, geojsonseq, "
                    "ndjson; without it the Accept header decides")] = None,
) -> MediaType | None:
    """tipg's items output type, with JSON meaning GeoJSON."""
    return as_geojson(ItemsOutputType(request, f))


def item_output_type(
    request: Request,
    f: Annotated[ItemResponseType | None, Query(
        description="geojson (default), json (the same GeoJSON), html")] = None,
) -> MediaType | None:
    """tipg's item output type, with JSON meaning GeoJSON."""
    return as_geojson(ItemOutputType(request, f))


# --- query parameters -----------------------------------------------------------------------

MAX_LIMIT = 10_000  # tipg's max_features_per_query
ITEMS_SUFFIX = "/items"


class CapLimitMiddleware:
    """`limit` below 1 or above 10000 on /ogc items becomes 1 or 10000 (not an error)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the query string before the route (and its links) sees it."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(self.prefix + "/collections/") and b"limit=" in scope["query_string"]:
            scope = {**scope, "query_string": capped_query(scope["query_string"])}
        await self.app(scope, receive, send)


def capped_query(query_string: bytes) -> bytes:
    """The query string with an integer `limit` capped to 1..MAX_LIMIT (fc-limit-response-1)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    out = []
    for key, value in pairs:
        if key == "limit":
            try:
                value = str(min(max(int(value), 1), MAX_LIMIT))
            except ValueError:
                pass  # not an integer: refused as an invalid parameter (400)
        out.append((key, value))
    return urlencode(out).encode("latin-1")


# Parameters tipg declares on no route but reads from the request itself (per-collection
# property filters are the layer's columns; see `known_parameters_only`).
_PROPERTY_FILTER_ROUTES = {"items", "collection_get_tile"}
_route_parameters: dict[int, frozenset[str]] = {}


def _declared_parameters(route: APIRoute, overrides: dict[Any, Any]) -> frozenset[str]:
    """Query parameter names of a route, its dependencies and their overrides."""
    if id(route) not in _route_parameters:
        names: set[str] = set()
        stack: list[Dependant] = [route.dependant]
        while stack:
            dependant = stack.pop()
            names |= {p.alias for p in dependant.query_params}
            stack.extend(dependant.dependencies)
            if dependant.call in overrides:
                stack.append(get_dependant(path=route.path, call=overrides[dependant.call]))
        _route_parameters[id(route)] = frozenset(names)
    return _route_parameters[id(route)]


def known_parameters_only(request: Request) -> None:
    """400 for a query parameter the operation does not define (/req/core/query-param-unknown)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = set(_declared_parameters(route, request.app.dependency_overrides))
    if route.name in _PROPERTY_FILTER_ROUTES:
        catalog = request.app.state.collection_catalog["collections"]
        collection = catalog.get(request.path_params.get("collectionId", ""))
        if collection is not None:
            allowed |= {c.name for c in collection.properties
                        if c.type not in ("geometry", "geography")}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise StarletteHTTPException(status_code=400, detail=(
            f"unknown query parameter(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"this operation takes {', '.join(sorted(allowed))}"))


# --- errors ---------------------------------------------------------------------------------


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """Status and one-line message of a refused request (404 for an unknown path value)."""
    parts = []
    status = 400
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if loc[:1] == ["path"]:
            status = 404  # an unknown tileMatrixSetId names no resource
        name = loc[-1] if loc else "request"
        parts.append(f"{name}: {error.get('msg', 'invalid')}")
    return status, "; ".join(parts)[:500] or "invalid request"


def install_ogc_errors(app: FastAPI, prefix: str) -> None:
    """Errors under `prefix` as OGC exceptions {code, description}; elsewhere unchanged."""
    previous_validation = app.exception_handlers[RequestValidationError]
    previous_http = app.exception_handlers[StarletteHTTPException]

    def under_prefix(request: Request) -> bool:
        path = request.url.path
        return path == prefix or path.startswith(prefix + "/")

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not under_prefix(request):
            return await _call(previous_validation, request, exc)
        assert isinstance(exc, RequestValidationError)
        return ogc_exception(*_validation_message(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not under_prefix(request):
            return await _call(previous_http, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        status = 400 if exc.status_code == 422 else exc.status_code
        response = ogc_exception(status, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def _call(handler: Callable, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result


def tipg_error_handler(status: int) -> Callable[[Request, Exception], JSONResponse]:
    """Handler of a tipg error class: OGC exception body with `status`."""

    def handler(_: Request, exc: Exception) -> JSONResponse:
        return ogc_exception(status, str(exc) or type(exc).__name__)

    return handler


# --- OpenAPI 3.0 of /ogc --------------------------------------------------------------------


def openapi30(schema: Any) -> Any:
    """A FastAPI (OpenAPI 3.1 / JSON Schema 2020-12) fragment rewritten as OpenAPI 3.0."""
    if isinstance(schema, list):
        return [openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: openapi30(v) for k, v in schema.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            elif len(rest) == 1:
                out["allOf"] = rest
            else:
                out[key] = rest
            out["nullable"] = True
    if out.get("type") == "null":
        out.pop("type")
        out["nullable"] = True
    if isinstance(out.get("type"), list):  # ["string", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # a map of named examples in 3.0
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    # JSON Schema keywords OAS 3.0 does not know (and morecantile's misspelt "exemples").
    for key in ("contentMediaType", "contentEncoding", "$schema", "prefixItems",
                "unevaluatedProperties", "dependentSchemas", "exemples", "$defs"):
        out.pop(key, None)
    return out


def ogc_openapi_document(app: FastAPI, prefix: str, title: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the routes under `prefix` only."""
    whole = get_openapi(title=title, version="1.0.0", openapi_version="3.0.3", routes=app.routes,
                        description="公共图层: OGC API - Features (Part 1, Part 3 CQL2) 与 "
                                    "OGC API - Tiles (矢量瓦片, WebMercatorQuad)")
    paths = {path: item for path, item in whole.get("paths", {}).items()
             if path == prefix or path.startswith(prefix + "/")}
    schemas = whole.get("components", {}).get("schemas", {})
    # Only the schemas the /ogc operations reach (staff models stay out).
    used: dict[str, Any] = {}
    pending = _refs(paths)
    while pending:
        name = pending.pop()
        if name in used or name not in schemas:
            continue
        used[name] = schemas[name]
        pending |= _refs(schemas[name])
    # Paths relative to the server /ogc, as clients resolve them from the landing page (GDAL
    # looks up "/collections/{id}/items" to learn a layer's query parameters).
    relative = {path[len(prefix):] or "/": item for path, item in paths.items()}
    relative.update(_collection_items_paths(app, relative))
    doc = {**whole, "servers": [{"url": prefix, "description": "公共图层 OGC API"}],
           "paths": relative, "components": {"schemas": used}}
    return openapi30(copy.deepcopy(doc))


_JSON_TYPES = {"string", "number", "integer", "boolean"}


def _collection_items_paths(app: FastAPI, paths: dict[str, Any]) -> dict[str, Any]:
    """One items path per public layer, declaring each column as a query parameter.

    Part 1 (/req/core/fc-filters) lets a server filter on properties by parameters named after
    them; a client only knows which exist from the API definition, per collection.
    """
    template = copy.deepcopy(paths.get("/collections/{collectionId}/items", {}).get("get"))
    if template is None:
        return {}
    common = [p for p in template.get("parameters", []) if p.get("name") != "collectionId"]
    for parameter in common:
        if parameter.get("name") == "limit":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                   "default": 10}
    out = {}
    for collection in app.state.collection_catalog["collections"].values():
        names = {p.get("name") for p in common}
        own = [{"name": c.name, "in": "query", "required": False,
                "description": f"只返回 {c.name} 等于此值的要素 (equal to)",
                "schema": {"type": c.json_type if c.json_type in _JSON_TYPES else "string"}}
               for c in collection.properties
               if c.type not in NON_MVT_TYPES and c.name not in names]
        operation = {**copy.deepcopy(template), "parameters": [*copy.deepcopy(common), *own],
                     "operationId": f"getFeatures_{collection.id}",
                     "summary": f"{collection.title or collection.id} ({collection.id}) 要素"}
        out[f"/collections/{collection.id}/items"] = {"get": operation}
    return out


def _refs(node: Any) -> set[str]:
    """Names of the component schemas `node` refers to."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()
