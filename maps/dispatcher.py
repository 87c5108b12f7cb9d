"""The dispatcher page (调度台): locate a complaint, see who is responsible, file and dispatch it.

The api passes in the background (district and street outlines, stations) as GeoDataFrames,
the category choices and the deadline of every step for every kind of case; this module never
reads the database. The 11,223 unit grid outlines are not embedded (they made the page 2.9 MB):
the page draws them from the public vector tiles of `pub.grid_cells` under /ogc with the
vendored Leaflet.VectorGrid, from GRID_MIN_ZOOM on. Searching (`/geocode/suggest`, `/geocode`,
`/geocode/reverse`), locating, the grid's outline, nearby open cases, filing and the case lists
all go through the API (`POST /route`, `/layers/grid_cells/items/{code}`, `GET /cases?bbox=`,
`POST /cases`, `/cases/overdue`, `/cases/supervised`, `/cases/recent`, `/events/cases`), so the
page holds no routing or deadline logic of its own. The JavaScript lives in templates/dispatcher.js.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import folium
import geopandas as gpd
from folium.elements import JSCSSMixin

from layers import labels
from maps.page_tools import PageTools, empty_collection, feature_collection

MAX_ZOOM = 20
# Open cases within this many metres of the located point are listed as "nearby".
NEARBY_M = 300
# Unit grid outlines (~100 m across) are drawn from this zoom on; below it they are a blur.
GRID_MIN_ZOOM = 15
CRS_CHOICES = {"wgs84": "WGS84（GPS、北斗）", "gcj02": "GCJ-02（微信、高德、腾讯）",
               "bd09": "BD-09（百度）", "cgcs2000": "CGCS2000（天地图）"}
# A GPS or BeiDou point read as BD-09 lands ~1 km away: WGS84 until the user picks another
# (the page remembers that choice in localStorage).
DEFAULT_CRS = "wgs84"
CATEGORY_TYPE_ZH = {"event": "事件", "component": "部件"}
UNIT_ZH = {"minutes": "分钟", "hours": "小时", "working_days": "个工作日"}
STEP_ZH = {"dispatch": "立案派遣", "handle": "处置", "verify": "核查结案"}
URGENCY_ZH = {"normal": "一般", "urgent": "紧急"}
AREA_ZH = {"city": "城区", "rural": "郊区"}
LAYERS = ("districts", "subdistricts", "stations")
# Public OGC API Tiles of the grid (collection pub.grid_cells, MVT layer "grid_cells"); tipg
# orders the path {z}/{x}/{y}. The located grid's outline still comes from the layer API.
GRID_TILES = "/ogc/collections/grid_cells/tiles/WebMercatorQuad/{z}/{x}/{y}"
GRID_TILE_LAYER = "grid_cells"
# Endpoints other parts of the app add over time; the api says which it has, so the page never
# probes for them (a 404 is a console error in every browser).
OPTIONAL_APIS = {"suggest": "/geocode/suggest", "recent": "/cases/recent",
                 "events": "/events/cases"}
VECTORGRID_JS = "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"


class DispatcherTools(JSCSSMixin, PageTools):
    """The locate form, the routing answer, the filing button and the case lists."""

    stem = "dispatcher"

    def __init__(self, *, data: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__(data=data, config=config)
        # Linked from the app directly: maps.assets maps only folium's CDN URLs to vendored
        # files. Set on the instance: folium's lists are class attributes shared by all.
        self.default_js = [("leaflet_vectorgrid", VECTORGRID_JS)]


def dispatcher_map(layers: Mapping[str, gpd.GeoDataFrame], *, center: tuple[float, float],
                   categories: Mapping[str, list[dict[str, str]]],
                   deadlines: Mapping[str, Any] | None = None, title: str = "调度台",
                   default_category: tuple[str, str] = ("event", "0102"),
                   api_base: str = "", available_paths: Collection[str] = (),
                   m: folium.Map | None = None,
                   zoom_start: int = 14) -> folium.Map:
    """Add the dispatcher desk (layers keyed as in LAYERS, EPSG:4326) to `m` or a new map.

    `available_paths` are the app's route paths: the page uses the OPTIONAL_APIS among them.
    """
    # Other keys (a caller's grid_cells) are ignored: the grid comes as vector tiles.
    if m is None:
        # No tiles: government networks have no tile server; the outlines are the map.
        m = folium.Map(location=list(center), zoom_start=zoom_start, tiles=None,
                       max_zoom=MAX_ZOOM, control_scale=False)
    data = {name: feature_collection(layers[name], name) if name in layers else empty_collection()
            for name in LAYERS}
    config = {
        "apiBase": api_base.rstrip("/"), "title": title, "center": list(center),
        "bounds": _bounds(layers), "nearbyM": NEARBY_M, "gridMinZoom": GRID_MIN_ZOOM,
        "gridTiles": api_base.rstrip("/") + GRID_TILES, "gridTileLayer": GRID_TILE_LAYER,
        # Jinja's tojson sorts keys (bd09 first, which made it the default): order kept here.
        "crsDefault": DEFAULT_CRS, "crsOrder": list(CRS_CHOICES),
        "services": {name: path in available_paths for name, path in OPTIONAL_APIS.items()},
        "categories": {kind: list(rows) for kind, rows in categories.items()},
        "deadlines": dict(deadlines or {}),
        "defaults": {"category_type": default_category[0],
                     "category_code": default_category[1]},
        "labels": {"crs": CRS_CHOICES, "category_type": CATEGORY_TYPE_ZH,
                   "case_status": labels.CASE_STATUS, "channel": labels.CHANNEL,
                   "owner_kind": labels.OWNER_KIND, "raw_crs": labels.RAW_CRS,
                   "unit": UNIT_ZH, "step": STEP_ZH, "urgency": URGENCY_ZH, "area": AREA_ZH},
    }
    m.add_child(DispatcherTools(data=data, config=config), name="dispatcher_tools")
    return m


def _bounds(layers: Mapping[str, gpd.GeoDataFrame]) -> list[list[float]] | None:
    """[[south, west], [north, east]] of the district (else of the grid cells)."""
    for name in ("districts", "grid_cells"):
        if name in layers and not layers[name].empty:
            x1, y1, x2, y2 = layers[name].to_crs(4326).total_bounds
            return [[float(y1), float(x1)], [float(y2), float(x2)]]
    return None
