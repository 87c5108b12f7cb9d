"""Import and export of layers: GeoJSON, GeoPackage, Shapefile (or zipped), CSV.

An import reads and validates the whole file first (geometry type, validity, coordinates,
property schema, CRS, city extent) and only then writes, in one transaction, so a bad file
changes nothing. Rows are numbered from 1 in file order in every message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, get_args, get_origin

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extras
import pyogrio
import shapely
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from gis.geo.crs import STORAGE_SRID, check_inside_city, to_storage_crs
from gis.models.tables import MODELS
from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.exports_safety import restore_frame, write_csv
from gis.platform.settings import CitySettings
from layers.base import LayerSpec
from layers.query import BBox, read_layer

# stage ("reading" | "validating" | "writing"), rows done, rows in all.
Progress = Callable[[str, int, int], None]

VECTOR_SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG",
                   ".shp": "ESRI Shapefile", ".zip": "ESRI Shapefile"}
CSV_SUFFIXES = {".csv"}
SUPPORTED = ", ".join([*VECTOR_SUFFIXES, *CSV_SUFFIXES])
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom")
MAX_REPORTED = 10
SHAPEFILE_NAME_LIMIT = 10  # DBF field names are cut to 10 characters
WRITE_PAGE = 1000


# ---------------------------------------------------------------------------------------------
# Reading


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES and suffix not in CSV_SUFFIXES:
        raise InvalidInputError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {SUPPORTED}"
        )
    return suffix


def _read_vector(path: Path, *, source_layer: str | None, spec: LayerSpec) -> gpd.GeoDataFrame:
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InvalidInputError(f"{path.name}: not a readable {path.suffix} file ({exc})") from None
    if source_layer is None and len(layers) > 1:
        # A GeoPackage may hold several layers; take the one named like ours, else ask.
        matches = [name for name in layers if name in (spec.id, spec.table)]
        if not matches:
            raise InvalidInputError(
                f"{path.name} holds {len(layers)} layers ({', '.join(layers)}); "
                "name the one to import"
            )
        source_layer = matches[0]
    if source_layer is not None and source_layer not in layers:
        raise NotFoundError(
            f"{path.name} has no layer {source_layer!r}; it has: {', '.join(layers)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf = pyogrio.read_dataframe(path, layer=source_layer)
    except Exception as exc:
        raise InvalidInputError(f"{path.name}: cannot read features ({exc})") from None
    if path.suffix.lower() in (".shp", ".zip"):
        gdf = gdf.rename(columns=_shapefile_names(gdf.columns, spec))
        # DBF text cannot tell empty from null: read both as '' like CSV, and let the schema
        # decide (None where allowed, '' where required).
        for column in gdf.columns:
            if column != gdf.geometry.name and pd.api.types.is_string_dtype(gdf[column]):
                gdf[column] = gdf[column].astype(object).where(gdf[column].notna(), "")
    return gdf


def _shapefile_names(columns: Iterable[str], spec: LayerSpec) -> dict[str, str]:
    # A shapefile cuts "opening_hours" to "opening_ho"; map such names back when unambiguous.
    known = [*spec.columns, spec.key]
    renames = {}
    for column in columns:
        if column in known or len(column) != SHAPEFILE_NAME_LIMIT:
            continue
        candidates = [k for k in known if k[:SHAPEFILE_NAME_LIMIT] == column]
        if len(candidates) == 1:
            renames[column] = candidates[0]
    return renames


def _read_csv_text(path: Path) -> pd.DataFrame:
    # Excel in China saves CSV as GB18030 unless told otherwise; try UTF-8 (with BOM) first.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            # Cells our own CSV export quoted against formula injection come back as typed.
            return restore_frame(pd.read_csv(path, dtype=str, keep_default_na=False,
                                             encoding=encoding, skipinitialspace=True))
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise InvalidInputError(f"{path.name}: the file is empty") from None
        except pd.errors.ParserError as exc:
            raise InvalidInputError(f"{path.name}: not a valid CSV file ({exc})") from None
    raise InvalidInputError(f"{path.name}: text is neither UTF-8 nor GB18030")


def _find_column(columns: Iterable[str], names: tuple[str, ...]) -> str | None:
    by_lower = {c.strip().lower(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _read_csv(path: Path, spec: LayerSpec) -> tuple[gpd.GeoDataFrame, list[str]]:
    df = _read_csv_text(path)
    lon = _find_column(df.columns, LON_NAMES)
    lat = _find_column(df.columns, LAT_NAMES)
    wkt = _find_column(df.columns, WKT_NAMES)
    errors: list[str] = []
    n = len(df)
    if lon is not None or lat is not None:
        if lon is None or lat is None:
            have, need = (lon, "latitude") if lat is None else (lat, "longitude")
            names = LAT_NAMES if lat is None else LON_NAMES
            raise InvalidInputError(
                f"{path.name}: has column {have!r} but no {need} column "
                f"(one of {', '.join(names)})"
            )
        if spec.geometry_type != "Point":
            raise InvalidInputError(
                f"{path.name}: lon/lat columns give points, but layer {spec.id} holds "
                f"{spec.geometry_type}s; give the geometry as WKT in a 'wkt' column"
            )
        xs = _numbers(df[lon], lon, errors)
        ys = _numbers(df[lat], lat, errors)
        geoms = np.empty(n, dtype=object)
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if not (df[lon].iloc[i].strip() or df[lat].iloc[i].strip()):
                geoms[i] = None  # reported as a missing geometry with the other row problems
            elif math.isfinite(x) and math.isfinite(y):
                geoms[i] = shapely.Point(x, y)
            else:
                geoms[i] = None
                if not any(e.startswith(f"row {i + 1}: ") for e in errors):
                    errors.append(f"row {i + 1}: {lon}/{lat}: coordinates must be finite "
                                  f"numbers (value {_short(df[lon].iloc[i])}, "
                                  f"{_short(df[lat].iloc[i])})")
        df = df.drop(columns=[lon, lat])
    elif wkt is not None:
        geoms = np.empty(n, dtype=object)
        for i, value in enumerate(df[wkt]):
            if not value.strip():
                geoms[i] = None
                continue
            try:
                geoms[i] = shapely.from_wkt(value)
            except shapely.errors.ShapelyError:
                errors.append(f"row {i + 1}: {wkt}: not valid WKT (value {_short(value)})")
                geoms[i] = None
        df = df.drop(columns=[wkt])
    else:
        raise InvalidInputError(
            f"{path.name}: no coordinate columns; give lon and lat columns "
            f"(lon/lng/longitude/x, lat/latitude/y) or the geometry as WKT in a 'wkt' column"
        )
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms), crs=None)
    return gdf, errors


def _numbers(column: pd.Series, name: str, errors: list[str]) -> np.ndarray:
    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=float)
    for i, (raw, value) in enumerate(zip(column, values, strict=True)):
        if raw.strip() and math.isnan(value) and raw.strip().lower() != "nan":
            errors.append(f"row {i + 1}: {name}: not a number (value {_short(raw)})")
        elif raw.strip() and not math.isfinite(value):
            errors.append(f"row {i + 1}: {name}: not a finite number (value {_short(raw)})")
    return values


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Validating


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict | np.ndarray | BaseModel) or hasattr(
            value, "geom_type"):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _accepts_none(field: FieldInfo) -> bool:
    return type(None) in get_args(field.annotation)


def _is_container(field: FieldInfo) -> bool:
    annotation = field.annotation
    origins = {get_origin(annotation), *(get_origin(a) for a in get_args(annotation))}
    return bool(origins & {list, dict})


def _clean(value: Any, field: FieldInfo) -> tuple[bool, Any]:
    """(present, value) for one cell: pandas/numpy values made plain, JSON text parsed."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        return False, None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        if not value.strip():
            # An empty cell means "not given": None where allowed, else the default, else ''
            # so the schema can say what is wrong with it.
            if _accepts_none(field):
                return True, None
            if not field.is_required():
                return False, None
            return True, value
        if _is_container(field):
            try:
                return True, json.loads(value)
            except json.JSONDecodeError:
                return True, value  # the schema reports it with the value
    return True, value


def _geometry_problem(geom: Any, geometry_type: str) -> tuple[str | None, Any]:
    """(problem, geometry to store) for one feature's geometry."""
    if geom is None or _is_missing(geom):
        return "missing", None
    if geom.is_empty:
        return "empty", None
    coords = shapely.get_coordinates(geom, include_z=shapely.has_z(geom))
    if not np.isfinite(coords).all():
        return "has NaN or infinite coordinates", None
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)  # the columns are 2D; heights are not kept
    kind = geom.geom_type
    if kind != geometry_type:
        if geometry_type == f"Multi{kind}":
            geom = shapely.multipolygons([geom]) if kind == "Polygon" else (
                shapely.multilinestrings([geom]) if kind == "LineString"
                else shapely.multipoints([geom]))
        elif kind == f"Multi{geometry_type}" and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        else:
            return f"is a {kind}, the layer holds {geometry_type}s", None
    reason = shapely.is_valid_reason(geom)
    if reason != "Valid Geometry":
        return f"invalid {geom.geom_type}: {reason}", None
    return None, geom


def _format_errors(source: str, spec: LayerSpec, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    lines = [f"{source}: {len(problems)} problem(s) importing into layer {spec.id}:", *shown]
    if more:
        lines.append(f"... and {more} more")
    return "\n".join(lines)


def _property_errors(row: int, error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "properties"
        value = "" if item["type"] == "missing" else f" (value {_short(item.get('input'))})"
        out.append(f"row {row}: {field}: {item['msg']}{value}")
    return out


def _ignored_columns(spec: LayerSpec) -> set[str]:
    # Feature ids (GeoJSON "id", exported serial keys) are the database's to assign; a layer
    # keyed by a code takes its key from the code column.
    ignored = {*spec.generated, "id"}
    if spec.key not in spec.columns:
        ignored.add(spec.key)  # a serial id is assigned by the database
    return ignored


def _check_columns(gdf: gpd.GeoDataFrame, spec: LayerSpec, source: str) -> list[str]:
    """The property columns to validate; unknown or missing required ones are refused."""
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    ignored = _ignored_columns(spec)
    unknown = [c for c in columns if c not in spec.columns and c not in ignored]
    if unknown:
        known = ", ".join(spec.writable_columns)
        raise InvalidInputError(
            f"{source}: unknown column(s) {', '.join(map(repr, unknown))} for layer {spec.id}; "
            f"known columns: {known}"
        )
    fields = spec.properties.model_fields
    missing = [name for name in spec.writable_columns
               if fields[name].is_required() and name not in columns]
    if missing:
        raise InvalidInputError(
            f"{source}: missing required column(s) {', '.join(map(repr, missing))} "
            f"for layer {spec.id}"
        )
    return [c for c in columns if c in spec.writable_columns]


def validate_features(gdf: gpd.GeoDataFrame, spec: LayerSpec, *, city: CitySettings,
                      source: str, crs: str | None = None,
                      progress: Progress | None = None) -> gpd.GeoDataFrame:
    """Check every feature of `gdf` against `spec`; the clean rows in EPSG:4326.

    Raises one InvalidInputError listing up to ten problems as "row N: field: message",
    CrsMismatchError for a missing or conflicting CRS, OutsideCityError for coordinates
    outside the city. Rows are labelled by the index of `gdf`.
    """
    if gdf.empty:
        raise InvalidInputError(f"{source}: no features to import")
    columns = _check_columns(gdf, spec, source)
    gdf = to_storage_crs(gdf, source=source, crs=crs)
    fields = spec.properties.model_fields
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    geoms: list[Any] = []
    total = len(gdf)
    records = gdf[columns].to_dict(orient="records")
    for n, (label, record, geom) in enumerate(
            zip(gdf.index, records, gdf.geometry, strict=True), start=1):
        problem, clean_geom = _geometry_problem(geom, spec.geometry_type)
        if problem:
            problems.append(f"row {label}: geometry: {problem}")
        values = {}
        for name, raw in record.items():
            present, value = _clean(raw, fields[name])
            if present:
                values[name] = value
        try:
            model = spec.properties.model_validate(values)
        except ValidationError as exc:
            problems.extend(_property_errors(label, exc))
        else:
            rows.append(model.model_dump(by_alias=True, include=set(spec.writable_columns)))
            geoms.append(clean_geom)
        if progress and (n % 500 == 0 or n == total):
            progress("validating", n, total)
    if problems:
        raise InvalidInputError(_format_errors(source, spec, problems))
    clean = gpd.GeoDataFrame(rows, geometry=geoms, crs=STORAGE_SRID, index=gdf.index)
    check_inside_city(clean, city, source=source)
    return clean


def read_features(path: Path, spec: LayerSpec, *, city: CitySettings, crs: str | None = None,
                  source_layer: str | None = None, source_name: str | None = None,
                  progress: Progress | None = None) -> gpd.GeoDataFrame:
    """Read and validate a GeoJSON / GeoPackage / Shapefile (.shp, .zip) / CSV file for `spec`.

    CSV holds lon/lat columns (points) or a WKT column and is WGS84 unless `crs` says
    otherwise. Returns the validated rows in EPSG:4326, indexed from 1 in file order.
    """
    path = Path(path)
    source = source_name or path.name
    suffix = _suffix(path)
    if not path.exists():
        raise NotFoundError(f"file {str(path)!r} does not exist")
    if progress:
        progress("reading", 0, 0)
    if suffix in CSV_SUFFIXES:
        gdf, errors = _read_csv(path, spec)
        if errors:
            raise InvalidInputError(_format_errors(source, spec, errors))
        if crs is None:
            crs = f"EPSG:{STORAGE_SRID}"
    else:
        gdf = _read_vector(path, source_layer=source_layer, spec=spec)
    gdf.index = pd.RangeIndex(1, len(gdf) + 1)
    if progress:
        progress("reading", len(gdf), len(gdf))
    return validate_features(gdf, spec, city=city, source=source, crs=crs, progress=progress)


# ---------------------------------------------------------------------------------------------
# Writing


def _json_columns(spec: LayerSpec) -> set[str]:
    fields = spec.properties.model_fields
    return {name for name in spec.writable_columns if _is_container(fields[name])}


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
    if _is_missing(value):
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
    if _is_missing(value):
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
