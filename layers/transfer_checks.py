"""Checking features read for import against their layer: columns, geometry, properties, CRS.

Every problem is collected (rows numbered from 1 in file order) and reported together, at most
MAX_REPORTED of them, so one import attempt shows what to fix.
"""

from __future__ import annotations

import json
from typing import Any, get_args, get_origin

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from gis.geo.crs import STORAGE_SRID, check_inside_city, to_storage_crs
from gis.platform.errors import InvalidInputError
from gis.platform.settings import CitySettings
from layers.base import LayerSpec
from layers.transfer_read import Progress, short

MAX_REPORTED = 10


def is_missing(value: Any) -> bool:
    """Whether a cell holds no value: None, NaN or NaT (containers and geometries never do)."""
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


def is_container(field: FieldInfo) -> bool:
    """Whether a schema field holds a list or dict (stored as JSON)."""
    annotation = field.annotation
    origins = {get_origin(annotation), *(get_origin(a) for a in get_args(annotation))}
    return bool(origins & {list, dict})


def _clean(value: Any, field: FieldInfo) -> tuple[bool, Any]:
    """(present, value) for one cell: pandas/numpy values made plain, JSON text parsed."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if is_missing(value):
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
        if is_container(field):
            try:
                return True, json.loads(value)
            except json.JSONDecodeError:
                return True, value  # the schema reports it with the value
    return True, value


def _geometry_problem(geom: Any, geometry_type: str) -> tuple[str | None, Any]:
    """(problem, geometry to store) for one feature's geometry."""
    if geom is None or is_missing(geom):
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


def format_errors(source: str, spec: LayerSpec, problems: list[str]) -> str:
    """One message listing the first MAX_REPORTED problems and how many more there are."""
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
        value = "" if item["type"] == "missing" else f" (value {short(item.get('input'))})"
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
        raise InvalidInputError(format_errors(source, spec, problems))
    clean = gpd.GeoDataFrame(rows, geometry=geoms, crs=STORAGE_SRID, index=gdf.index)
    check_inside_city(clean, city, source=source)
    return clean
