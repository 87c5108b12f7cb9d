"""Zones out as GeoJSON or GeoPackage (EPSG:4326), slots and seasons as JSON text."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry import shape
from sqlalchemy.orm import Session

from gis.platform.errors import InvalidInputError
from gis.zones.queries import list_zones

FORMATS = {"geojson": ("application/geo+json", "geojson"),
           "gpkg": ("application/geopackage+sqlite3", "gpkg")}


def zones_collection(session: Session, *,
                     statuses: Sequence[str] = ("draft", "approved")) -> dict[str, Any]:
    """Zones in `statuses` as a GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": list_zones(session, statuses=statuses)}


def export_zones(session: Session, *, fmt: str,
                 statuses: Sequence[str] = ("draft", "approved")) -> tuple[bytes, str, str]:
    """(content, media type, file name) of the zones in `statuses` in format `fmt`."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    media_type, suffix = FORMATS[fmt]
    collection = zones_collection(session, statuses=statuses)
    if fmt == "geojson":
        body = json.dumps(collection, ensure_ascii=False).encode("utf-8")
        return body, media_type, f"stall_zones.{suffix}"
    rows = []
    for feature in collection["features"]:
        props = dict(feature["properties"])
        # GeoPackage has no list type: nested values travel as JSON text.
        for key in ("time_slots", "seasons", "grid_codes"):
            props[key] = json.dumps(props[key], ensure_ascii=False)
        rows.append({**props, "geometry": shape(feature["geometry"])})
    columns = ["id", "name", "zone_type", "district_code", "time_slots", "seasons", "capacity",
               "operator", "status", "simulated", "version", "updated_at", "grid_codes",
               "geometry"]
    gdf = gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=4326)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stall_zones.gpkg"
        gdf.to_file(path, layer="stall_zones", driver="GPKG", engine="pyogrio")
        return path.read_bytes(), media_type, f"stall_zones.{suffix}"
