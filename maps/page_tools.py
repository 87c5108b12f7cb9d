"""What the planner, dispatcher and public pages share: one page script element, GeoJSON in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
from branca.element import MacroElement
from folium.template import Template

from maps.escaping import ESC_JS, Markup
from maps.popups import to_web

TEMPLATES = Path(__file__).resolve().parent / "templates"


class PageTools(MacroElement):
    """A page's panel, style and script (templates/<stem>.js|.css, <stem>_panel.html)."""

    stem = ""  # set by each page
    _template = Template("""
{% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}
{% macro html(this, kwargs) %}{{ this.panel }}{% endmacro %}
{% macro script(this, kwargs) %}
(function () {
var map = {{ this._parent.get_name() }};
var CONFIG = {{ this.config|tojson }};
var DATA = {{ this.data|tojson }};
{{ this.esc_js }}
{{ this.js }}
})();
{% endmacro %}
""")

    def __init__(self, *, data: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__()
        self._name = type(self).__name__
        self.data, self.config = data, config
        # One esc() for every page script that builds HTML from data (popups, lists).
        self.esc_js = Markup(ESC_JS)
        self.js = Markup((TEMPLATES / f"{self.stem}.js").read_text(encoding="utf-8"))
        self.css = Markup((TEMPLATES / f"{self.stem}.css").read_text(encoding="utf-8"))
        self.panel = Markup((TEMPLATES / f"{self.stem}_panel.html").read_text(encoding="utf-8"))


def empty_collection() -> dict[str, Any]:
    """An empty GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": []}


def feature_collection(gdf: gpd.GeoDataFrame, name: str) -> dict[str, Any]:
    """Layer `name` as a GeoJSON dict in EPSG:4326 with plain JSON property values."""
    if gdf.empty:
        return empty_collection()
    web = to_web(gdf, layer=name)
    # Round-trip through JSON: numpy scalars and timestamps become plain JSON values.
    result: dict[str, Any] = json.loads(web.to_json(drop_id=True, show_bbox=False, default=str))
    return result
