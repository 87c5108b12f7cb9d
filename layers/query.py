"""Generic reads of a layer: GeoDataFrames in EPSG:4326, filtered by bbox, paged."""

from __future__ import annotations

import geopandas as gpd
from sqlalchemy import text
from sqlalchemy.orm import Session

from layers.base import LayerSpec

BBox = tuple[float, float, float, float]


def _where(bbox: BBox | None) -> tuple[str, dict[str, float]]:
    if bbox is None:
        return "", {}
    x1, y1, x2, y2 = bbox
    # && uses the GiST index; the bbox is in the storage SRID.
    return ("WHERE geom && ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326)",
            {"x1": x1, "y1": y1, "x2": x2, "y2": y2})


def read_layer(session: Session, spec: LayerSpec, *, bbox: BBox | None = None,
               limit: int | None = None, offset: int = 0) -> gpd.GeoDataFrame:
    """Features of `spec` as a GeoDataFrame (id column = the layer key, EPSG:4326)."""
    where, params = _where(bbox)
    columns = [c for c in spec.columns if c != spec.key]
    select = ", ".join([f"{spec.key} AS id", *columns, "geom"])
    sql = f"SELECT {select} FROM {spec.table} {where} ORDER BY {spec.order_by or spec.key}"
    if limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=limit, offset=offset)
    gdf = gpd.read_postgis(text(sql), session.connection(), geom_col="geom", params=params)
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    return gdf


def count_features(session: Session, spec: LayerSpec, *, bbox: BBox | None = None) -> int:
    """Number of features of `spec` (in `bbox` when given)."""
    where, params = _where(bbox)
    return int(session.execute(text(f"SELECT count(*) FROM {spec.table} {where}"), params)
               .scalar_one())
