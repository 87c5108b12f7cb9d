"""Popup content in Chinese and compact geometries, shared by every map page."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

from gis.platform.errors import CrsMismatchError
from layers.base import LayerSpec

WEB_EPSG = 4326
COORD_DECIMALS = 6  # ~0.1 m: finer digits only make the page bigger
YES_NO = {True: "是", False: "否"}
DISPLAY_TZ = "Asia/Shanghai"


def to_web(gdf: gpd.GeoDataFrame, *, layer: str, decimals: int = COORD_DECIMALS
           ) -> gpd.GeoDataFrame:
    """`gdf` in EPSG:4326 with coordinates rounded to `decimals` places."""
    if gdf.crs is None:
        raise CrsMismatchError(f"layer {layer!r} has no CRS; expected EPSG:{WEB_EPSG}")
    if gdf.crs.to_epsg() != WEB_EPSG:
        gdf = gdf.to_crs(WEB_EPSG)
    # pointwise: round each vertex only; repairing topology would be slow and is not needed
    # for drawing.
    rounded = shapely.set_precision(gdf.geometry.values, 10.0 ** -decimals, mode="pointwise")
    out = gdf.copy()
    out[out.geometry.name] = rounded
    return out


def display_values(gdf: pd.DataFrame, spec: LayerSpec) -> pd.DataFrame:
    """The popup columns of `spec` as Chinese display strings ('' where missing)."""
    out = pd.DataFrame(index=gdf.index)
    for column in spec.popup_fields:
        source = "id" if column == spec.key and column not in gdf else column
        if source not in gdf:
            continue
        out[column] = format_column(gdf[source], spec.value_labels.get(column))
    return out


def format_column(values: pd.Series, labels: dict[str, str] | None = None) -> pd.Series:
    """One column as display strings: enum labels, 是/否, dates to the minute, short floats."""
    if labels:
        shown = values.map(lambda v: labels.get(v, v) if isinstance(v, str) else v)
    elif pd.api.types.is_bool_dtype(values):
        shown = values.map(YES_NO)
    elif pd.api.types.is_datetime64_any_dtype(values):
        if values.dt.tz is not None:  # timestamptz arrives in UTC; users read Beijing time
            values = values.dt.tz_convert(DISPLAY_TZ)
        shown = values.dt.strftime("%Y-%m-%d %H:%M")
    elif pd.api.types.is_float_dtype(values):
        shown = values.map(lambda v: f"{v:.1f}".removesuffix(".0") if pd.notna(v) else None)
    else:
        shown = values.map(lambda v: YES_NO[v] if isinstance(v, bool) else v)
    return shown.map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v))
                     else str(v))
