"""The /map page's content: small layers embedded, the base map and big layers from tiles."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gis.geo.tile_layers import GRID_DETAIL_ZOOM, POINT_LAYERS
from gis.platform.settings import Settings
from layers.query import read_layer
from layers.registry import LAYERS
from maps.assets import render_html
from maps.basemaps import staff_base_for
from maps.overview import overview_map
from maps.overview_tiles import OverviewTiles, default_tiled_layers

# A few hundred features between them: embedded as GeoJSON with popups. Everything else is in
# the base map (outlines) or the staff tiles (grid cells, roads, lights, covers, cases).
EMBEDDED_LAYERS = ("stations", "stall_zones", "facilities")
OVERVIEW_ZOOM = 13


def overview_tiles(settings: Settings) -> OverviewTiles:
    """The tiled part of the overview: base map (city or mirror) and the five big layers."""
    return OverviewTiles(
        base=staff_base_for(settings.staff_map, center=settings.city.center),
        layers=default_tiled_layers(
            grid_zoom=GRID_DETAIL_ZOOM,
            point_zoom=POINT_LAYERS["streetlights"].detail_zoom,
            case_zoom=POINT_LAYERS["cases"].detail_zoom))


def render_overview(session: Session, settings: Settings) -> str:
    """The complete /map page for the session's user (their RLS applies to embedded rows)."""
    layers = {layer_id: read_layer(session, LAYERS[layer_id]) for layer_id in EMBEDDED_LAYERS}
    m = overview_map(layers, center=settings.city.center, zoom_start=OVERVIEW_ZOOM,
                     title=f"{settings.city.name} 城市管理综合地图", hidden=("facilities",),
                     tiles=overview_tiles(settings))
    return render_html(m, title=f"{settings.city.name} 综合地图")
