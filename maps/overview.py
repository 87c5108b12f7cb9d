"""The overview map: every layer of the city on one offline Leaflet page, labelled in Chinese.

The page served at /map draws the base map and the big layers from vector tiles
(maps.overview_tiles) and embeds only the small layers; without `tiles` every layer is
embedded as below (tests and offline exports).

Sizes decide the drawing: polygons and lines are canvas-drawn GeoJSON with popups; point
layers above CLUSTER_MIN features are marker clusters whose popups are built only when opened;
heat layers (cases by default) become a heat map.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import folium
import geopandas as gpd
import pandas as pd
from branca.element import Element, Figure, MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.plugins import HeatMap, MarkerCluster
from folium.template import Template

from layers.base import LayerSpec
from layers.registry import LAYERS
from maps.escaping import ESC_JS, EscapedGeoJsonPopup, EscapedGeoJsonTooltip, escape
from maps.overview_tiles import OverviewTiles, add_tiled_layers
from maps.popups import display_values, to_web

CLUSTER_MIN = 2000  # point layers with more features than this are clustered
HEAT_LAYERS = ("cases",)
MAX_ZOOM = 19
LOOKUP_MAX = 256  # popup columns with at most this many distinct values are sent once, indexed
# Leaflet path options in LayerSpec.style; the other keys are citygrid's own.
_PATH_OPTIONS = {"color", "weight", "opacity", "fill", "fillColor", "fillOpacity", "dashArray"}

_PAGE_CSS = """<style>
.cg-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;
  background:rgba(255,255,255,.92);padding:6px 16px;border-radius:4px;font-size:18px;
  font-weight:600;box-shadow:0 1px 4px rgba(0,0,0,.3);
  font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif}
.cg-legend{position:absolute;bottom:30px;right:10px;z-index:1000;background:rgba(255,255,255,.92);
  padding:6px 10px;border-radius:4px;font-size:13px;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.cg-legend i{display:inline-block;width:22px;height:4px;margin-right:6px;vertical-align:middle}
.cg-dot{width:100%;height:100%;border-radius:50%;border:1px solid rgba(0,0,0,.55);
  box-sizing:border-box}
.cg-popup th{padding-right:8px;white-space:nowrap;font-weight:600}
</style>"""


class PointCluster(JSCSSMixin, Layer):
    """Many points as a marker cluster; rows are compact and popups are built on open."""

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = (function () {
    var labels = {{ this.labels|tojson }};
    var lookups = {{ this.lookups|tojson }};
    {{ this.esc_js }}
    var icons = {{ this.colors|tojson }}.map(function (c) {
        return L.divIcon({className: "cg-dot-icon", iconSize: [{{ this.size }}, {{ this.size }}],
                          html: '<div class="cg-dot" style="background:' + esc(c) + '"></div>'});
    });
    function popup(row) {
        var html = '<table class="cg-popup">';
        for (var j = 0; j < labels.length; j++) {
            var v = lookups[j] ? lookups[j][row[3 + j]] : row[3 + j];
            html += "<tr><th>" + esc(labels[j]) + "</th><td>" + esc(v) + "</td></tr>";
        }
        return html + "</table>";
    }
    var rows = {{ this.rows|tojson }};
    var markers = new Array(rows.length);
    for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        markers[i] = L.marker([r[0], r[1]], {icon: icons[r[2]]}).bindPopup(popup.bind(null, r));
    }
    var cluster = L.markerClusterGroup({{ this.options|tojavascript }});
    cluster.addLayers(markers);
    return cluster;
})();
{% endmacro %}
""")

    default_js = MarkerCluster.default_js
    default_css = MarkerCluster.default_css

    def __init__(self, rows: list[list[Any]], *, labels: list[str],
                 lookups: list[list[str] | None], colors: list[str], size: int = 8,
                 name: str | None = None, show: bool = True, **options: Any) -> None:
        super().__init__(name=name, overlay=True, show=show)  # Layer defaults to a base layer
        self._name = "PointCluster"
        self.rows, self.labels, self.lookups = rows, labels, lookups
        self.esc_js = ESC_JS
        self.colors, self.size = colors, size
        # Unclustered from street level on: spiderfying thousands of lamps helps nobody.
        self.options = {"chunkedLoading": True, "showCoverageOnHover": False,
                        "spiderfyOnMaxZoom": False, "disableClusteringAtZoom": 18,
                        "maxClusterRadius": 60, **options}


class PageOverlay(MacroElement):
    """A fixed HTML box on the page (title, legend)."""

    _template = Template("""
{% macro html(this, kwargs) %}{{ this.content }}{% endmacro %}
""")

    def __init__(self, content: str) -> None:
        super().__init__()
        self._name = "PageOverlay"
        self.content = content


class MetricScale(MacroElement):
    """A metric-only scale bar (folium's control_scale adds feet and miles too)."""

    _template = Template("""
{% macro script(this, kwargs) %}
L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self) -> None:
        super().__init__()
        self._name = "MetricScale"


def overview_map(layers: Mapping[str, gpd.GeoDataFrame], *, center: tuple[float, float],
                 m: folium.Map | None = None, title: str = "城市管理综合地图",
                 zoom_start: int = 13, hidden: Collection[str] = ("streetlights",
                                                                  "manhole_covers"),
                 heat: Collection[str] = HEAT_LAYERS,
                 tiles: OverviewTiles | None = None) -> folium.Map:
    """Add every layer in `layers` (id -> GeoDataFrame) with Chinese labels; return the map.

    With `tiles`, the base map and the tiled layers come from the app's vector tiles and
    `layers` should hold only the small ones (embedded as GeoJSON); the view opens at
    `center` and `zoom_start` instead of fitting every feature.
    """
    fresh = m is None
    if m is None:
        # No tiles: an isolated network has no tile server; the district outline is the
        # background until base maps become configurable.
        # With tiles: SVG, because a canvas over the whole map would take every click meant
        # for the tiled layers beneath it; the embedded layers are only a few hundred features.
        m = folium.Map(location=list(center), zoom_start=zoom_start, tiles=None,
                       prefer_canvas=tiles is None)
        m.add_child(MetricScale(), name="cg_scale")
    # Without a tile layer Leaflet has no maxZoom, and markercluster refuses to work.
    m.options.setdefault("max_zoom", MAX_ZOOM)
    figure = m.get_root()
    if isinstance(figure, Figure):
        figure.header.add_child(Element(_PAGE_CSS), name="citygrid_css")
    bounds: list[tuple[float, float, float, float]] = []
    embedded: list[tuple[str, str]] = []  # (Chinese name, folium variable) for the control
    for layer_id, gdf in layers.items():
        spec = LAYERS[layer_id]
        show = layer_id not in hidden
        if gdf.empty:
            # Still listed in the layer control so users see the layer exists.
            folium.FeatureGroup(name=spec.title_zh, show=show).add_to(m)
            embedded.append((spec.title_zh, list(m._children.values())[-1].get_name()))
            continue
        web = to_web(gdf, layer=layer_id)
        bounds.append(tuple(web.total_bounds))
        if layer_id in heat:
            add_heat_layer(m, web, spec, show=show)
        elif spec.geometry_type == "Point" and len(web) > CLUSTER_MIN:
            add_point_cluster(m, web, spec, show=show)
        else:
            add_vector_layer(m, web, spec, show=show)
        embedded.append((spec.title_zh, list(m._children.values())[-1].get_name()))
    if tiles is None:
        folium.LayerControl(collapsed=False).add_to(m)
    else:
        add_tiled_layers(m, tiles, center=center, max_zoom=MAX_ZOOM, embedded=embedded)
    m.add_child(PageOverlay(f'<div class="cg-title">{escape(title)}</div>'), name="cg_title")
    shown = [*layers, *(t.id for t in tiles.layers)] if tiles else list(layers)
    legend = class_legend([LAYERS[i] for i in shown])
    if legend:
        m.add_child(PageOverlay(legend), name="cg_legend")
    if fresh and bounds and tiles is None:
        x1 = min(b[0] for b in bounds)
        y1 = min(b[1] for b in bounds)
        x2 = max(b[2] for b in bounds)
        y2 = max(b[3] for b in bounds)
        m.fit_bounds([[y1, x1], [y2, x2]])
    return m


def add_vector_layer(m: folium.Map, gdf: gpd.GeoDataFrame, spec: LayerSpec, *,
                     show: bool = True) -> folium.Map:
    """`gdf` as one GeoJSON layer styled by `spec`, popup and tooltip in Chinese."""
    values = display_values(gdf, spec)
    fields = [f"f{i}" for i in range(len(values.columns))]  # short keys: smaller page
    aliases = [spec.popup_fields[c] for c in values.columns]
    data = gpd.GeoDataFrame(values.set_axis(fields, axis=1), geometry=gdf.geometry.values,
                            crs=gdf.crs)
    base = {k: v for k, v in spec.style.items() if k in _PATH_OPTIONS}
    class_colors = spec.style.get("class_colors")
    class_column = _class_column(spec)
    if class_colors and class_column and class_column in gdf:
        data["k"] = gdf[class_column].values

        def style(feature: dict[str, Any]) -> dict[str, Any]:
            color = class_colors.get(feature["properties"]["k"], base.get("color"))
            return {**base, "color": color}
    else:

        def style(feature: dict[str, Any]) -> dict[str, Any]:
            return base

    kwargs: dict[str, Any] = {}
    if spec.geometry_type == "Point":
        kwargs["marker"] = folium.CircleMarker(radius=spec.style.get("radius", 5), fill=True,
                                               fill_opacity=spec.style.get("fillOpacity", 0.8))
    if fields:
        # folium's own GeoJsonPopup/Tooltip would insert names and notes as raw HTML.
        kwargs["popup"] = EscapedGeoJsonPopup(fields=fields, aliases=aliases, localize=False,
                                              labels=True)
        kwargs["tooltip"] = EscapedGeoJsonTooltip(fields=fields[:1], aliases=aliases[:1],
                                                  labels=True)
    # A plain dict without per-feature bboxes: a third smaller than __geo_interface__.
    geojson = data.to_geo_dict(show_bbox=False, drop_id=False)
    folium.GeoJson(geojson, name=spec.title_zh, style_function=style, show=show,
                   zoom_on_click=False, **kwargs).add_to(m)
    return m


def add_point_cluster(m: folium.Map, gdf: gpd.GeoDataFrame, spec: LayerSpec, *,
                      show: bool = False) -> folium.Map:
    """Many points of `spec` as a marker cluster, broken components in `broken_color`."""
    values = display_values(gdf, spec)
    lookups: list[list[str] | None] = []
    columns: list[list[Any]] = []
    for column in values.columns:
        codes, uniques = pd.factorize(values[column])
        if len(uniques) <= LOOKUP_MAX and len(uniques) * 4 < len(values):
            lookups.append([str(u) for u in uniques])
            columns.append(codes.tolist())
        else:
            lookups.append(None)
            columns.append(values[column].tolist())
    colors = [spec.style.get("color", "#3388ff")]
    color_index = [0] * len(gdf)
    if "broken_color" in spec.style:
        colors.append(spec.style["broken_color"])
        broken = _broken(gdf)
        color_index = broken.astype(int).tolist()
    rows = [[y, x, c, *vals] for y, x, c, *vals in zip(
        gdf.geometry.y.tolist(), gdf.geometry.x.tolist(), color_index, *columns, strict=True)]
    size = max(6, 2 * int(spec.style.get("radius", 3)) + 4)
    PointCluster(rows, labels=[spec.popup_fields[c] for c in values.columns], lookups=lookups,
                 colors=colors, size=size, name=spec.title_zh, show=show).add_to(m)
    return m


def add_heat_layer(m: folium.Map, gdf: gpd.GeoDataFrame, spec: LayerSpec, *,
                   show: bool = True) -> folium.Map:
    """Point density of `spec` as a heat map (no per-feature popups)."""
    points = list(zip(gdf.geometry.y.tolist(), gdf.geometry.x.tolist(), strict=True))
    # leaflet.heat gives each point 1/2^(max_zoom - zoom) of full intensity. With its default
    # max_zoom (18) a city year of complaints saturates the whole district at zoom 13, hiding
    # the hotspots; 22 keeps the typical density well below saturation so clusters stand out.
    HeatMap(points, name=spec.title_zh, radius=12, blur=15, min_opacity=0.2, max_zoom=22,
            show=show).add_to(m)
    return m


def class_legend(specs: Collection[LayerSpec]) -> str:
    """HTML legend of every layer coloured by class (roads by street class); '' if none."""
    parts: list[str] = []
    for spec in specs:
        colors = spec.style.get("class_colors")
        column = _class_column(spec)
        if not colors or not column:
            continue
        labels = spec.value_labels[column]
        rows = "".join(f'<div><i style="background:{escape(color)}"></i>'
                       f"{escape(labels.get(cls, cls))}</div>" for cls, color in colors.items())
        parts.append(f"<div><b>{escape(spec.title_zh)}</b></div>{rows}")
    return f'<div class="cg-legend">{"".join(parts)}</div>' if parts else ""


def _class_column(spec: LayerSpec) -> str | None:
    """The enum column whose values key style['class_colors'] (street_class for roads)."""
    colors = spec.style.get("class_colors")
    if not colors:
        return None
    for column, labels in spec.value_labels.items():
        if set(colors) <= set(labels):
            return column
    return None


def _broken(gdf: gpd.GeoDataFrame) -> pd.Series:
    """Components needing attention: not intact, or (lights) not lit."""
    broken = pd.Series(False, index=gdf.index)
    if "state" in gdf:
        broken |= gdf["state"].fillna("intact") != "intact"
    if "lit" in gdf:
        broken |= ~gdf["lit"].fillna(True).astype(bool)
    return broken
