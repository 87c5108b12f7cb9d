"""Coordinate reference systems: one storage SRID, a metric CRS for metres, checks at the edges.

Everything is stored in EPSG:4326. CGCS2000 (EPSG:4490) is accepted as-is: the two frames
differ by centimetres here, far below the accuracy of any city-management survey, so data is
relabelled rather than shifted. Any other declared CRS is reprojected explicitly; a missing CRS
is refused unless the caller names one.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from gis.platform.errors import CrsMismatchError, OutsideCityError
from gis.platform.settings import CitySettings

STORAGE_SRID = 4326
CGCS2000_SRID = 4490
# Geographic CRSs stored without transformation (see the module docstring).
SAME_AS_STORAGE = frozenset({STORAGE_SRID, CGCS2000_SRID})
# The default metric CRS (CGCS2000 / 3-degree GK CM 117E); use metric_crs(city) when the
# settings are at hand, because another city has another zone.
METRIC = CRS.from_epsg(CitySettings.model_fields["metric_epsg"].default)


def metric_crs(city: CitySettings) -> CRS:
    """The city's metric CRS (Gauss-Krüger zone of CGCS2000) for lengths and areas."""
    return CRS.from_epsg(city.metric_epsg)


def parse_crs(value: str | int, *, source: str = "input") -> CRS:
    """A CRS from 'EPSG:4548', '4548' or a WKT/PROJ string; CrsMismatchError when unknown."""
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise CrsMismatchError(
            f"{source}: unknown CRS {value!r}; give it as EPSG:xxxx, e.g. EPSG:4326 or EPSG:4548"
        ) from None


def crs_label(crs: CRS | None) -> str:
    """Short name of a CRS for messages: 'EPSG:4548' or its name."""
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.name


def _storage_equivalent(crs: CRS) -> bool:
    epsg = crs.to_epsg(min_confidence=70)
    return epsg in SAME_AS_STORAGE


def to_storage_crs(gdf: gpd.GeoDataFrame, *, source: str,
                   crs: str | int | None = None) -> gpd.GeoDataFrame:
    """`gdf` in EPSG:4326: 4326/4490 relabelled, other CRSs reprojected, none refused.

    `crs` names the CRS of data that declares none (e.g. CSV, a shapefile without .prj). If the
    data declares a CRS and `crs` names a different one, both are named in a CrsMismatchError
    rather than guessing which one is right.
    """
    declared = gdf.crs
    named = parse_crs(crs, source=source) if crs is not None else None
    if declared is None and named is None:
        raise CrsMismatchError(
            f"{source} declares no coordinate reference system; name it with --crs "
            f"(e.g. --crs EPSG:4326 for lon/lat, --crs EPSG:4548 for CGCS2000 GK metres)"
        )
    if declared is not None and named is not None and not (
        declared.equals(named)
        or (_storage_equivalent(declared) and _storage_equivalent(named))
    ):
        raise CrsMismatchError(
            f"{source} declares {crs_label(declared)} but --crs says {crs_label(named)}; "
            "fix the file's CRS or leave out --crs"
        )
    actual = declared if declared is not None else named
    assert actual is not None
    if _storage_equivalent(actual):
        return gdf.set_crs(STORAGE_SRID, allow_override=True)
    if declared is None:
        gdf = gdf.set_crs(actual)
    return gdf.to_crs(STORAGE_SRID)


def _first_outside(geom: shapely.Geometry, bbox: tuple[float, float, float, float]
                   ) -> tuple[float, float]:
    x1, y1, x2, y2 = bbox
    coords = shapely.get_coordinates(geom)
    for x, y in coords:
        if not (x1 <= x <= x2 and y1 <= y <= y2):
            return float(x), float(y)
    return (float(coords[0][0]), float(coords[0][1])) if len(coords) else (math.nan, math.nan)


def check_inside_city(gdf: gpd.GeoDataFrame, city: CitySettings, *, source: str) -> None:
    """OutsideCityError naming the first row (index label) with a coordinate outside the city.

    Runs on EPSG:4326 data. Besides points really elsewhere, it catches lon/lat swapped and
    projected metres labelled as degrees, both of which land far from the city.
    """
    if gdf.empty:
        return
    x1, y1, x2, y2 = city.bbox
    bounds = gdf.geometry.bounds.to_numpy()
    # Written as "not inside" so NaN coordinates count as outside too.
    with np.errstate(invalid="ignore"):
        inside = ((bounds[:, 0] >= x1) & (bounds[:, 2] <= x2)
                  & (bounds[:, 1] >= y1) & (bounds[:, 3] <= y2))
    bad = np.flatnonzero(~inside)
    if not len(bad):
        return
    pos = int(bad[0])
    label = gdf.index[pos]
    x, y = _first_outside(gdf.geometry.iloc[pos], city.bbox)
    hint = ""
    if x1 <= y <= x2 and y1 <= x <= y2:
        hint = " (longitude and latitude look swapped)"
    elif abs(x) > 180 or abs(y) > 90:
        hint = " (these look like projected metres, not degrees: name the CRS with --crs)"
    raise OutsideCityError(
        f"{source}: row {label}: coordinate ({x:.6f}, {y:.6f}) is outside {city.name} "
        f"(lon {x1}..{x2}, lat {y1}..{y2}){hint}; {len(bad)} row(s) outside in all"
    )
