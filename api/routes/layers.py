"""Generic routes over the layer registry: list, metadata, GeoJSON items, file import.

Items follow OGC API Features conventions (numberMatched, numberReturned, links) and are
RFC 7946 GeoJSON in EPSG:4326.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import geopandas as gpd
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.auth import AdminDep, staff_only
from api.deps import BBoxDep, PagingDep, SessionDep, SettingsDep
from api.routes.pages import invalidate_pages
from api.uploads import received_upload
from gis.platform.errors import NotFoundError
from layers.base import LayerSpec
from layers.query import count_features, read_layer
from layers.registry import LAYERS, get_layer
from layers.transfer import read_features, to_features, write_features
from layers.transfer_read import SUPPORTED

router = APIRouter(tags=["layers"], dependencies=[staff_only])

CHINA_TZ = ZoneInfo("Asia/Shanghai")
LayerId = Annotated[str, PathParam(description="layer id, e.g. grid_cells",
                                   examples=["grid_cells"])]


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


class Link(BaseModel):
    """A link in the OGC API style."""

    href: str
    rel: str
    type: str = "application/json"
    title: str | None = None


class LayerSummary(BaseModel):
    """One layer in the list."""

    id: str
    title_zh: str
    geometry_type: str
    count: int
    links: list[Link]


class LayerList(BaseModel):
    """Every layer of the registry."""

    layers: list[LayerSummary]


class LayerDetail(LayerSummary):
    """Metadata of one layer, including the JSON Schema of its properties."""

    key: str
    public: bool
    generated: list[str]
    writable_columns: list[str]
    value_labels: dict[str, dict[str, str]]
    properties_schema: dict[str, Any]


class Feature(BaseModel):
    """A GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str | int
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A page of GeoJSON Features."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]
    numberMatched: int
    numberReturned: int
    links: list[Link]


class ImportResult(BaseModel):
    """Outcome of a file import."""

    layer: str
    imported: int = Field(description="rows written, all in one transaction")


def _layer_links(request: Request, spec: LayerSpec) -> list[Link]:
    return [
        Link(href=str(request.url_for("get_layer_detail", layer_id=spec.id)), rel="self",
             title=spec.title_zh),
        Link(href=str(request.url_for("get_layer_items", layer_id=spec.id)), rel="items",
             type="application/geo+json"),
    ]


@router.get("/layers", response_model=LayerList, summary="Every layer with its feature count")
def list_layers(request: Request, session: SessionDep) -> LayerList:
    """List the layers of the registry with their feature counts."""
    return LayerList(layers=[
        LayerSummary(id=spec.id, title_zh=spec.title_zh, geometry_type=spec.geometry_type,
                     count=count_features(session, spec), links=_layer_links(request, spec))
        for spec in LAYERS.values()
    ])


@router.get("/layers/{layer_id}", response_model=LayerDetail, name="get_layer_detail",
            summary="Metadata and property schema of a layer")
def layer_detail(layer_id: LayerId, request: Request, session: SessionDep) -> LayerDetail:
    """Describe one layer: geometry, key, property schema, counts and links."""
    spec = get_layer(layer_id)
    return LayerDetail(
        id=spec.id, title_zh=spec.title_zh, geometry_type=spec.geometry_type,
        count=count_features(session, spec), links=_layer_links(request, spec), key=spec.key,
        public=spec.public, generated=list(spec.generated),
        writable_columns=spec.writable_columns, value_labels=spec.value_labels,
        properties_schema=spec.properties.model_json_schema(by_alias=True),
    )


def _with_current_owner(session: Session, features: list[dict[str, Any]]) -> None:
    """Add owner_name / owner_kind / phone of the owner valid today to grid cell features."""
    if not features:
        return
    # Ownership periods are [valid_from, valid_to); "today" is the date in China.
    today = dt.datetime.now(CHINA_TZ).date()
    rows = session.execute(text(
        "SELECT grid_code, owner_name, owner_kind, phone FROM grid_owners "
        "WHERE grid_code = ANY(:codes) AND valid_from <= :today "
        "AND (valid_to IS NULL OR valid_to > :today)"),
        {"codes": [f["id"] for f in features], "today": today}).mappings()
    owners = {row["grid_code"]: row for row in rows}
    for feature in features:
        owner = owners.get(feature["id"])
        feature["properties"].update(
            owner_name=owner["owner_name"] if owner else None,
            owner_kind=owner["owner_kind"] if owner else None,
            phone=owner["phone"] if owner else None,
        )


def _features(session: Session, spec: LayerSpec, gdf: Any) -> list[dict[str, Any]]:
    features = to_features(gdf, spec)
    if spec.id == "grid_cells":
        _with_current_owner(session, features)
    return features


def _page_link(request: Request, rel: str, offset: int) -> Link:
    href = str(request.url.include_query_params(offset=offset))
    return Link(href=href, rel=rel, type="application/geo+json")


@router.get("/layers/{layer_id}/items", response_model=FeatureCollection,
            response_class=GeoJSONResponse, name="get_layer_items",
            summary="Features of a layer as GeoJSON, filtered by bbox and paged")
def layer_items(layer_id: LayerId, request: Request, session: SessionDep, bbox: BBoxDep,
                paging: PagingDep) -> FeatureCollection:
    """A page of features (EPSG:4326) with numberMatched and next/prev links."""
    spec = get_layer(layer_id)
    bounds = bbox.bounds()
    matched = count_features(session, spec, bbox=bounds)
    gdf = read_layer(session, spec, bbox=bounds, limit=paging.limit, offset=paging.offset)
    features = _features(session, spec, gdf)
    links = [Link(href=str(request.url), rel="self", type="application/geo+json")]
    if paging.offset + len(features) < matched:
        links.append(_page_link(request, "next", paging.offset + paging.limit))
    if paging.offset > 0:
        links.append(_page_link(request, "prev", max(paging.offset - paging.limit, 0)))
    return FeatureCollection(features=[Feature(**f) for f in features], numberMatched=matched,
                             numberReturned=len(features), links=links)


@router.get("/layers/{layer_id}/items/{feature_id}", response_model=Feature,
            response_class=GeoJSONResponse, summary="One feature by its key")
def layer_item(layer_id: LayerId,
               feature_id: Annotated[str, PathParam(description="the layer key: code or id")],
               session: SessionDep) -> Feature:
    """One feature of a layer as GeoJSON, found by the layer's key."""
    spec = get_layer(layer_id)
    key: str | int = feature_id
    if spec.key not in spec.columns:  # a serial id
        if not (feature_id.isascii() and feature_id.isdigit()) or len(feature_id) > 18:
            raise NotFoundError(f"layer {spec.id} has no feature {feature_id!r} (ids are numbers)")
        key = int(feature_id)
    columns = [c for c in spec.columns if c != spec.key]
    sql = (f"SELECT {', '.join([f'{spec.key} AS id', *columns, 'geom'])} FROM {spec.table} "
           f"WHERE {spec.key} = :key")
    gdf = gpd.read_postgis(text(sql), session.connection(), geom_col="geom",
                           params={"key": key})
    if gdf.empty:
        raise NotFoundError(f"layer {spec.id} has no feature {feature_id!r}")
    return Feature(**_features(session, spec, gdf)[0])


@router.post("/layers/{layer_id}/import", response_model=ImportResult,
             summary="Import a file into a layer (all rows or none)")
def import_into_layer(
    layer_id: LayerId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AdminDep,
    file: Annotated[UploadFile, File(description=f"one of {SUPPORTED}; shapefiles zipped")],
    crs: Annotated[str | None, Form(
        description="CRS of a file that declares none, e.g. EPSG:4548")] = None,
) -> ImportResult:
    """Validate the uploaded file completely, then write every row in one transaction."""
    spec = get_layer(layer_id)
    with received_upload(file, default="upload", max_mb=settings.api.max_upload_mb,
                         prefix="citygrid-upload-") as path:
        gdf = read_features(path, spec, city=settings.city, crs=crs or None)
    count = write_features(session, spec, gdf)
    session.commit()
    invalidate_pages(request.app)
    return ImportResult(layer=spec.id, imported=count)

