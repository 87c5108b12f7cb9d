"""The overview map's tiled part: the base map and the big layers as vector tiles.

The page embeds no features of these layers, only where to fetch tiles and how to draw them
(templates/overview.js): grid cells, roads, streetlights, manhole covers and cases come from
/tiles/{layer}/{z}/{x}/{y}.pbf, the offline base map from /tiles/basemap/... (or raster tiles
from a configured mirror). Counts below a layer's detail zoom are numbers in their own
non-interactive pane; the case heat sits in a pane under every clickable layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

from layers.base import LayerSpec
from layers.registry import LAYERS
from maps.basemaps import StaffBase
from maps.escaping import ESC_JS, Markup
from maps.page_tools import TEMPLATES

VECTORGRID_JS = "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
TILE_URL = "/tiles/{layer}/{z}/{x}/{y}.pbf"
BASEMAP_URL = "/tiles/basemap/{z}/{x}/{y}.pbf"


@dataclass(frozen=True)
class TiledLayer:
    """A registry layer drawn from the staff tiles: how it aggregates and whether it shows."""

    id: str
    kind: str  # grid | roads | points | cases
    detail_zoom: int
    show: bool = True


@dataclass(frozen=True)
class OverviewTiles:
    """What the tiled overview needs: layers, base map, tile URLs."""

    base: StaffBase
    layers: tuple[TiledLayer, ...] = field(default_factory=tuple)
    tile_url: str = TILE_URL


def default_tiled_layers(*, grid_zoom: int, point_zoom: int, case_zoom: int
                         ) -> tuple[TiledLayer, ...]:
    """The five big layers; lights, covers and the roads' class colours start hidden."""
    return (TiledLayer("grid_cells", "grid", grid_zoom),
            TiledLayer("roads", "roads", 0, show=False),
            TiledLayer("streetlights", "points", point_zoom, show=False),
            TiledLayer("manhole_covers", "points", point_zoom, show=False),
            TiledLayer("cases", "cases", case_zoom))


def _layer_config(layer: TiledLayer, spec: LayerSpec) -> dict[str, Any]:
    return {
        "id": layer.id, "name": spec.title_zh, "kind": layer.kind, "show": layer.show,
        "detailZoom": layer.detail_zoom, "color": spec.style.get("color", "#3388ff"),
        "flaggedColor": spec.style.get("broken_color", "#d7191c"),
        "classColors": spec.style.get("class_colors", {}),
        "fields": [[column, label] for column, label in spec.popup_fields.items()],
        "values": spec.value_labels,
    }


class TiledOverview(JSCSSMixin, MacroElement):
    """Vector-tile base map, the tiled layers, labels and the layer control of the overview."""

    _template = Template("""
{% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}
{% macro script(this, kwargs) %}
(function () {
var map = {{ this._parent.get_name() }};
var CONFIG = {{ this.config|tojson }};
var EMBEDDED = {};
{% for name, var in this.embedded %}EMBEDDED[{{ name|tojson }}] = {{ var }};
{% endfor %}
{{ this.esc_js }}
{{ this.js }}
})();
{% endmacro %}
""")
    def __init__(self, tiles: OverviewTiles, *, center: tuple[float, float], max_zoom: int,
                 embedded: list[tuple[str, str]]) -> None:
        super().__init__()
        self._name = "TiledOverview"
        # Linked directly (maps.assets maps only CDN URLs); on the instance, not the class.
        self.default_js = [("leaflet_vectorgrid", VECTORGRID_JS)]
        self.embedded = embedded  # (Chinese name, folium variable) of the embedded layers
        self.config = {
            "base": tiles.base.config(), "tileUrl": tiles.tile_url, "maxZoom": max_zoom,
            "center": list(center),
            "layers": [_layer_config(layer, LAYERS[layer.id]) for layer in tiles.layers],
        }
        self.esc_js = Markup(ESC_JS)
        self.js = Markup((TEMPLATES / "overview.js").read_text(encoding="utf-8"))
        self.css = Markup((TEMPLATES / "overview.css").read_text(encoding="utf-8"))


def add_tiled_layers(m: folium.Map, tiles: OverviewTiles, *, center: tuple[float, float],
                     max_zoom: int, embedded: list[tuple[str, str]]) -> folium.Map:
    """Add the tiled base map and layers (and one layer control for all) to `m`."""
    m.add_child(TiledOverview(tiles, center=center, max_zoom=max_zoom, embedded=embedded),
                name="cg_tiles")
    return m
