"""Import and export of layers: GeoJSON, GeoPackage, Shapefile (or zipped), CSV.

An import reads and validates the whole file first (geometry type, validity, coordinates,
property schema, CRS, city extent) and only then writes, in one transaction, so a bad file
changes nothing. Rows are numbered from 1 in file order in every message.

Reading files is layers.transfer_read, checking their rows layers.transfer_checks; this module
ties them together, writes (import) and exports.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extras
import pyogrio
import shapely
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from gis.geo.crs import STORAGE_SRID
from gis.models.tables import MODELS
from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.exports_safety import write_csv
from gis.platform.settings import CitySettings
from layers.base import LayerSpec
from layers.query import BBox, read_layer
from layers.transfer_checks import format_errors, is_container, is_missing, validate_features
from layers.transfer_read import CSV_SUFFIXES, Progress, file_suffix, read_csv_layer, read_vector

WRITE_PAGE = 1000


def read_features(path: Path, spec: LayerSpec, *, city: CitySettings, crs: str | None = None,
                  source_layer: str | None = None, source_name: str | None = None,
                  progress: Progress | None = None) -> gpd.GeoDataFrame:
    """Read and validate a GeoJSON / GeoPackage / Shapefile (.shp, .zip) / CSV file for `spec`.

    CSV holds lon/lat columns (points) or a WKT column and is WGS84 unless `crs` says
    otherwise. Returns the validated rows in EPSG:4326, indexed from 1 in file order.
    """
    path = Path(path)
    source = source_name or path.name
    suffix = file_suffix(path)
    if not path.exists():
        raise NotFoundError(f"file {str(path)!r} does not exist")
    if progress:
        progress("reading", 0, 0)
    if suffix in CSV_SUFFIXES:
        gdf, errors = read_csv_layer(path, spec)
        if errors:
            raise InvalidInputError(format_errors(source, spec, errors))
        if crs is None:
            crs = f"EPSG:{STORAGE_SRID}"
    else:
        gdf = read_vector(path, source_layer=source_layer, spec=spec)
    gdf.index = pd.RangeIndex(1, len(gdf) + 1)
    if progress:
        progress("reading", len(gdf), len(gdf))
    return validate_features(gdf, spec, city=city, source=source, crs=crs, progress=progress)


# ---------------------------------------------------------------------------------------------
# Writing


def _json_columns(spec: LayerSpec) -> set[str]:
    fields = spec.properties.model_fields
    return {name for name in spec.writable_columns if is_container(fields[name])}


def _dbapi_connection(conn: Connection | Session) -> Any:
    if isinstance(conn, Session):
        conn = conn.connection()
    return conn.connection.driver_connection


def write_features(conn: Connection | Session, spec: LayerSpec, gdf: gpd.GeoDataFrame, *,
                   progress: Progress | None = None) -> int:
    """Insert validated rows (from read_features) in the caller's transaction; rows written.

    Database constraint violations become InvalidInputError naming the constraint.
    """
    columns = [c for c in spec.writable_columns if c in gdf.columns]
    json_columns = _json_columns(spec)
    defaults = _server_defaults(spec.table)
    placeholders = ["%s::jsonb" if c in json_columns
                    else f"COALESCE(%s, {defaults[c]})" if c in defaults else "%s"
                    for c in columns]
    template = "(" + ", ".join([*placeholders, f"ST_GeomFromWKB(%s, {STORAGE_SRID})"]) + ")"
    sql = f"INSERT INTO {spec.table} ({', '.join([*columns, 'geom'])}) VALUES %s"
    wkb = shapely.to_wkb(gdf.geometry.to_numpy(), output_dimension=2)
    records = gdf[columns].to_dict(orient="records")
    values = []
    for record, geom in zip(records, wkb, strict=True):
        row = [json.dumps(record[c], ensure_ascii=False) if c in json_columns
               else _plain(record[c]) for c in columns]
        values.append((*row, psycopg2.Binary(geom)))
    total = len(values)
    cursor = _dbapi_connection(conn).cursor()
    try:
        for start in range(0, total, WRITE_PAGE):
            page = values[start:start + WRITE_PAGE]
            psycopg2.extras.execute_values(cursor, sql, page, template=template,
                                           page_size=WRITE_PAGE)
            if progress:
                progress("writing", start + len(page), total)
    except (psycopg2.IntegrityError, psycopg2.DataError) as exc:
        raise InvalidInputError(_database_message(spec, exc)) from None
    finally:
        cursor.close()
    return total


def _server_defaults(table: str) -> dict[str, str]:
    # A schema field may be optional (recorded_at: None = "now") where the column is NOT NULL
    # with a default; one INSERT for all rows cannot say DEFAULT per row, so COALESCE does.
    model = MODELS.get(table)
    if model is None:
        return {}
    out = {}
    for column in model.__table__.columns:
        default = column.server_default
        if not column.nullable and default is not None and hasattr(default, "arg"):
            arg = default.arg
            out[column.name] = str(getattr(arg, "text", arg))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if is_missing(value):
        return None
    return value


def _database_message(spec: LayerSpec, exc: psycopg2.Error) -> str:
    diag = exc.diag
    what = f"constraint {diag.constraint_name}" if diag.constraint_name else "the database"
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    primary = diag.message_primary or str(exc).strip()
    return f"layer {spec.id}: rejected by {what}: {primary}{detail}"


def import_file(engine: Engine, spec: LayerSpec, path: Path, *, city: CitySettings,
                crs: str | None = None, source_layer: str | None = None,
                progress: Progress | None = None) -> int:
    """Validate the whole file, then write every row in one transaction; rows imported."""
    gdf = read_features(path, spec, city=city, crs=crs, source_layer=source_layer,
                        progress=progress)
    with engine.begin() as conn:
        return write_features(conn, spec, gdf, progress=progress)


# ---------------------------------------------------------------------------------------------
# Exporting and GeoJSON


def json_value(value: Any) -> Any:
    """A cell of a layer GeoDataFrame as a JSON value (NaN/NaT -> None, times ISO 8601)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def to_features(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> list[dict[str, Any]]:
    """GeoJSON Feature dicts (RFC 7946) from a read_layer frame: id = the layer key.

    A key that is a property (a code) stays in the properties too, so clients can show it.
    """
    columns = [c for c in gdf.columns if c not in ("id", gdf.geometry.name)]
    records = gdf[columns].to_dict(orient="records")
    key_is_property = spec.key in spec.columns
    features = []
    for fid, record, geom in zip(gdf["id"], records, gdf.geometry, strict=True):
        properties = {spec.key: json_value(fid)} if key_is_property else {}
        properties.update((k, json_value(v)) for k, v in record.items())
        features.append({
            "type": "Feature",
            "id": json_value(fid),
            "geometry": None if geom is None else shapely.geometry.mapping(geom),
            "properties": properties,
        })
    return features


def _export_frame(session: Session, spec: LayerSpec, bbox: BBox | None) -> gpd.GeoDataFrame:
    gdf = read_layer(session, spec, bbox=bbox)
    # read_layer names the key "id"; a code key keeps its own name so the file re-imports.
    if spec.key in spec.columns:
        gdf = gdf.rename(columns={"id": spec.key})
    return gdf


def _flat(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Values every format can hold: JSON as text, times as ISO 8601 text."""
    gdf = gdf.copy()
    for column in gdf.columns:
        if column == gdf.geometry.name:
            continue
        series = gdf[column]
        if column in _json_columns(spec):
            gdf[column] = [json.dumps(json_value(v), ensure_ascii=False) for v in series]
        elif pd.api.types.is_datetime64_any_dtype(series) or series.map(
                lambda v: isinstance(v, dt.datetime | dt.date)).any():
            gdf[column] = [json_value(v) for v in series]
    return gdf


def export_layer(conn: Connection | Session, spec: LayerSpec, path: Path, *,
                 bbox: BBox | None = None) -> int:
    """Write `spec` (or the part in `bbox`) to `path`, format by extension; rows written.

    CSV gets lon/lat columns for points and a WKT column otherwise; GeoJSON is RFC 7946.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".geojson", ".json", ".gpkg", ".shp", ".csv"}:
        raise InvalidInputError(
            f"{path.name}: cannot export to {path.suffix or '(no extension)'!r}; "
            "use .geojson, .gpkg, .shp or .csv"
        )
    if not path.parent.is_dir():
        raise NotFoundError(f"directory {str(path.parent)!r} does not exist")
    session = conn if isinstance(conn, Session) else Session(bind=conn)
    gdf = _export_frame(session, spec, bbox)
    if suffix in (".geojson", ".json"):
        frame = gdf.rename(columns={spec.key: "id"}) if spec.key in gdf.columns else gdf
        collection = {"type": "FeatureCollection", "name": spec.id,
                      "features": to_features(frame, spec)}
        path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    elif suffix == ".csv":
        flat = pd.DataFrame(_flat(gdf, spec).drop(columns=gdf.geometry.name))
        if spec.geometry_type == "Point":
            flat["lon"] = gdf.geometry.x.to_numpy()
            flat["lat"] = gdf.geometry.y.to_numpy()
        else:
            flat["wkt"] = shapely.to_wkt(gdf.geometry.to_numpy(), rounding_precision=-1)
        # Text that a spreadsheet would run as a formula is quoted; numbers stay numbers.
        write_csv(flat, path, encoding="utf-8")
    else:
        flat = _flat(gdf, spec)
        with warnings.catch_warnings():
            # Shapefiles cut names to 10 characters; the import maps them back.
            warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
            pyogrio.write_dataframe(flat, path, layer=spec.id if suffix == ".gpkg" else None,
                                    driver="GPKG" if suffix == ".gpkg" else "ESRI Shapefile",
                                    geometry_type=spec.geometry_type, encoding=(
                                        "UTF-8" if suffix == ".shp" else None))
    return len(gdf)
