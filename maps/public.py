"""The public convenience map (便民服务地图): a phone-first offline page for residents.

The api passes in what the public may see (gis.public.convenience_map's dicts, outlines); this
module never reads the database. Markers of every kind share one marker cluster; the page
filters by kind and by "open now" (decided on the server for the page's time, `?at=`), and asks
/public/nearest for the nearest places to the browser's location or a tapped point.

On a GCJ-02 base map (AMap) every coordinate is shifted WGS84 -> GCJ-02 here, so markers line
up with the tiles; the page then sends tapped points back tagged `crs=gcj02`.
The JavaScript lives in templates/public.js.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import shapely
from folium.elements import JSCSSMixin
from folium.plugins import MarkerCluster

from gis.geo.coords import wgs84_to_gcj02
from maps.basemaps import BaseMap
from maps.page_tools import PageTools
from maps.popups import to_web

MAX_ZOOM = 19
KIND_ORDER = ("farmers_market", "stall_zone", "public_toilet", "ev_charging", "parking",
              "convenience_point", "station")
KIND_LABELS = {"farmers_market": "农贸市场", "stall_zone": "摊群点/夜市", "public_toilet": "公厕",
               "ev_charging": "充电桩", "parking": "停车场", "convenience_point": "便民服务点",
               "station": "城管工作站"}
KIND_GLYPHS = {"farmers_market": "市", "stall_zone": "摊", "public_toilet": "厕",
               "ev_charging": "充", "parking": "P", "convenience_point": "便", "station": "站"}
KIND_COLORS = {"farmers_market": "#2e7d32", "stall_zone": "#6a1b9a", "public_toilet": "#0277bd",
               "ev_charging": "#00897b", "parking": "#1565c0", "convenience_point": "#ef6c00",
               "station": "#c62828"}


class PublicMapTools(JSCSSMixin, PageTools):
    """Filter bar, clustered markers, stall zones, and the nearest-place panel."""

    stem = "public"

    default_js = MarkerCluster.default_js
    default_css = MarkerCluster.default_css



def public_map(*, facilities: Sequence[Mapping[str, Any]], stations: Sequence[Mapping[str, Any]],
               stall_zones: Sequence[Mapping[str, Any]], districts: gpd.GeoDataFrame,
               basemap: BaseMap, center: tuple[float, float], at: str, at_fixed: bool,
               title: str = "便民服务地图", api_base: str = "",
               m: folium.Map | None = None, zoom_start: int = 14) -> folium.Map:
    """Add the convenience map (places as dicts in WGS84) to `m` or a new map; return it."""
    shift = basemap.crs == "gcj02"
    if m is None:
        lat, lon = center
        if shift:
            lon, lat = _shift(lon, lat)
        # Tiles (if any) are added by the page script from CONFIG, so that `none` stays offline.
        m = folium.Map(location=[lat, lon], zoom_start=zoom_start, tiles=None,
                       max_zoom=MAX_ZOOM, control_scale=False, zoom_control=False)
    # Without a tile layer Leaflet has no maxZoom, and markercluster refuses to work.
    m.options.setdefault("max_zoom", MAX_ZOOM)
    data = {
        "facilities": [_point(f, shift) for f in facilities],
        "stations": [_point(s, shift) for s in stations],
        "zones": [_zone(z, shift) for z in stall_zones],
        "districts": _outlines(districts, shift),
    }
    config = {
        "title": title, "apiBase": api_base.rstrip("/"), "at": at, "atFixed": at_fixed,
        "crs": basemap.crs, "basemap": {"id": basemap.id, "name": basemap.name_zh},
        "tiles": [{"url": t.url, "subdomains": t.subdomains, "attribution": t.attribution,
                   "maxZoom": t.max_zoom} for t in basemap.tiles],
        "kinds": [{"id": k, "label": KIND_LABELS[k], "glyph": KIND_GLYPHS[k],
                   "color": KIND_COLORS[k]} for k in KIND_ORDER],
        "maxZoom": MAX_ZOOM,
    }
    m.add_child(PublicMapTools(data=data, config=config), name="public_tools")
    return m


def _shift(lon: float, lat: float) -> tuple[float, float]:
    x, y = wgs84_to_gcj02(lon, lat)
    return round(float(x), 7), round(float(y), 7)


def _point(place: Mapping[str, Any], shift: bool) -> dict[str, Any]:
    out = dict(place)
    if shift:
        out["lon"], out["lat"] = _shift(place["lon"], place["lat"])
    return out


def _zone(zone: Mapping[str, Any], shift: bool) -> dict[str, Any]:
    out = _point(zone, shift)
    if shift:
        geom = shapely.geometry.shape(zone["geometry"])
        out["geometry"] = shapely.geometry.mapping(shapely.transform(geom, _gcj_array))
    return out


def _outlines(districts: gpd.GeoDataFrame, shift: bool) -> dict[str, Any]:
    if districts.empty:
        return {"type": "FeatureCollection", "features": []}
    web = to_web(districts[["name", districts.geometry.name]], layer="districts", decimals=5)
    if shift:
        web = web.set_geometry(shapely.transform(web.geometry.values, _gcj_array))
    result: dict[str, Any] = json.loads(web.to_json(drop_id=True, show_bbox=False))
    return result


def _gcj_array(coords: Any) -> Any:
    x, y = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])
