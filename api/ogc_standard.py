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

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from morecantile import tms as default_tms
from morecantile.defaults import TileMatrixSets
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
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
    """Landing page whose service-desc is /ogc/api (OAS 3.0 of /ogc only) and service-doc
    its Swagger UI at /ogc/api.html (tipg links the whole app's /openapi.json and /docs)."""
    doc, rebuild = _json_document(result)
    if doc is None:
        return result
    for link in doc["links"]:
        if link["rel"] == "service-desc":
            link["href"] = str(request.url_for("ogc_openapi"))
            link["type"] = "application/vnd.oai.openapi+json;version=3.0"
        elif link["rel"] == "service-doc":
            link["href"] = str(request.url_for("ogc_api_docs"))
            link["type"] = "text/html"
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
