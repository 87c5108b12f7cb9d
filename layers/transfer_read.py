"""Reading layer files for import: GeoJSON, GeoPackage, Shapefile (or zipped), CSV.

Each reader returns a GeoDataFrame in the file's own CRS and column names; checking the rows
against the layer is the work of layers.transfer_checks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.exports_safety import restore_frame
from gis.platform.zip_safety import check_unpacked_size
from layers.base import LayerSpec

# stage ("reading" | "validating" | "writing"), rows done, rows in all.
Progress = Callable[[str, int, int], None]

VECTOR_SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG",
                   ".shp": "ESRI Shapefile", ".zip": "ESRI Shapefile"}
CSV_SUFFIXES = {".csv"}
SUPPORTED = ", ".join([*VECTOR_SUFFIXES, *CSV_SUFFIXES])
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom")
SHAPEFILE_NAME_LIMIT = 10  # DBF field names are cut to 10 characters
MAX_ZIP_UNPACKED_MB = 1024  # a zipped shapefile's parts together (gis.platform.zip_safety)


def file_suffix(path: Path) -> str:
    """The lower-case suffix of a file citygrid can import; anything else is refused."""
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES and suffix not in CSV_SUFFIXES:
        raise InvalidInputError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {SUPPORTED}"
        )
    return suffix


def read_vector(path: Path, *, source_layer: str | None, spec: LayerSpec) -> gpd.GeoDataFrame:
    """A GeoJSON / GeoPackage / Shapefile layer as read, shapefile-cut names restored."""
    if path.suffix.lower() == ".zip":
        check_unpacked_size(path, limit_mb=MAX_ZIP_UNPACKED_MB,
                            advice="upload the shapefile's parts unzipped or as GeoPackage")
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


def read_csv_layer(path: Path, spec: LayerSpec) -> tuple[gpd.GeoDataFrame, list[str]]:
    """A CSV of lon/lat or WKT as points/geometries, and the problems of its rows."""
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
                                  f"numbers (value {short(df[lon].iloc[i])}, "
                                  f"{short(df[lat].iloc[i])})")
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
                errors.append(f"row {i + 1}: {wkt}: not valid WKT (value {short(value)})")
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
            errors.append(f"row {i + 1}: {name}: not a number (value {short(raw)})")
        elif raw.strip() and not math.isfinite(value):
            errors.append(f"row {i + 1}: {name}: not a finite number (value {short(raw)})")
    return values


def short(value: Any, limit: int = 40) -> str:
    """`repr(value)` cut to `limit` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
