"""Analysis map pages drawn from vector tiles: coverage gaps, dark streets, hotspots, cover risk.

The page embeds no result features, only the numbers (legend counts, the method box) and where
to fetch the result's tiles (/tiles/analysis/..., api.routes.analysis_tiles). The offline base
map, labels and the layer control come from the overview's tiled script (maps.overview_tiles)
with no staff layers of its own; the analysis layers are handed to it as embedded layers.
Popups are built in the page with esc(). Each legend box belongs to one layer and shows only
while that layer is on the map (templates/analysis_tiles.js).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import folium
import geopandas as gpd
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from folium.map import FitBounds
from folium.template import Template

from gis.analysis.about import AnalysisAbout
from gis.analysis.labels import (
    COVER_STATE_LABELS,
    GI_BIN_LABELS,
    METHOD_LABELS,
    RISK_LABELS,
    STREET_CLASS_LABELS,
)
from maps.analysis import GI_COLORS, PAGE_CSS, RISK_COLORS, _figure
from maps.analysis_about import add_about
from maps.basemaps import StaffBase
from maps.escaping import ESC_JS, Markup, escape, html_text
from maps.map_controls import MetricScale
from maps.overview_tiles import VECTORGRID_JS, OverviewTiles, add_tiled_layers
from maps.page_tools import TEMPLATES
from maps.popups import to_web

MAX_ZOOM = 20
TILE_PREFIX = "/tiles/analysis"
# Complaints per km² in a 32 px bin; the same classes as the overview's case heat.
HEAT_CLASSES = ((12000, "#b10026"), (6000, "#e31a1c"), (3000, "#fc4e2a"), (1500, "#fd8d3c"),
                (700, "#feb24c"), (300, "#fed976"))
LEGEND_CSS = """<style>
.cg-legend{max-height:40vh;overflow:auto}
@media (max-width:600px){.cg-legend{bottom:auto;top:56px;right:10px;max-width:48vw;
  font-size:12px}.cg-about{top:auto;bottom:24px}.cg-title{font-size:15px;max-width:70vw}}
</style>"""


@dataclass(frozen=True)
class TiledResultLayer:
    """One analysis layer drawn from tiles: where, how (kind, colours) and its popup fields."""

    part: str  # MVT layer name and the URL's part
    name: str  # Chinese name in the layer control
    url: str
    kind: str  # polygon | line | point | heat
    color: str = "#d7301f"
    color_by: str | None = None  # property whose value picks the colour from `colors`
    colors: Mapping[str, str] = field(default_factory=dict)
    fields: Sequence[tuple[str, str]] = ()
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    show: bool = True
    legend: str = ""  # legend HTML (built escaped here), shown while the layer is on
    detail_zoom: int = 0  # map zoom from which popups have every field

    def config(self) -> dict[str, Any]:
        """The JSON the page script reads."""
        return {"part": self.part, "name": self.name, "url": self.url, "kind": self.kind,
                "color": self.color, "colorBy": self.color_by, "colors": dict(self.colors),
                "fields": [list(f) for f in self.fields],
                "values": {k: dict(v) for k, v in self.values.items()}, "show": self.show,
                "detailZoom": self.detail_zoom,
                "heat": [list(c) for c in HEAT_CLASSES]}


class AnalysisTileLayers(JSCSSMixin, MacroElement):
    """Defines the analysis layers (VectorGrid) as `<name>.layers[part]`, legends follow them."""

    _template = Template("""
{% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}
{% macro html(this, kwargs) %}{{ this.legends }}{% endmacro %}
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = (function () {
var map = {{ this._parent.get_name() }};
var LAYERS = {{ this.config|tojson }};
{{ this.esc_js }}
{{ this.js }}
})();
{% endmacro %}
""")

    def __init__(self, layers: Sequence[TiledResultLayer]) -> None:
        super().__init__()
        self._name = "AnalysisTiles"
        self.default_js = [("leaflet_vectorgrid", VECTORGRID_JS)]
        self.config = [layer.config() for layer in layers]
        self.legends = Markup("".join(
            f'<div class="cg-legend" data-part="{escape(layer.part)}">{layer.legend}</div>'
            for layer in layers if layer.legend))
        self.esc_js = Markup(ESC_JS)
        self.js = Markup((TEMPLATES / "analysis_tiles.js").read_text(encoding="utf-8"))
        self.css = Markup("")


def tile_url(analysis: str, part: str, query: Mapping[str, object]) -> str:
    """The page's tile URL template for one part, carrying the analysis parameters."""
    params = {k: v for k, v in query.items() if v is not None}
    suffix = "?" + urlencode(params, doseq=True) if params else ""
    return f"{TILE_PREFIX}/{analysis}/{part}/{{z}}/{{x}}/{{y}}.pbf{suffix}"


def legend_html(title: str, items: Sequence[tuple[str, str]]) -> Markup:
    """A legend's inner HTML: `items` are (colour, label), everything escaped."""
    rows = "".join(f'<div><i style="background:{escape(color)}"></i>{escape(label)}</div>'
                   for color, label in items)
    return Markup(f"<b>{escape(title)}</b>{rows}")


def tiled_analysis_map(*, base: StaffBase, center: tuple[float, float], title: str,
                       layers: Sequence[TiledResultLayer], about: AnalysisAbout | None,
                       bounds: gpd.GeoDataFrame | None = None,
                       embedded: Sequence[tuple[str, folium.FeatureGroup]] = ()) -> folium.Map:
    """An analysis page: offline base map, result layers from tiles, legends, method box."""
    # SVG for the few embedded markers: a canvas over the map would take the tiles' clicks.
    m = folium.Map(location=list(center), zoom_start=13, tiles=None, control_scale=False,
                   prefer_canvas=False, max_zoom=MAX_ZOOM)
    MetricScale().add_to(m)
    # The view first, then the layers, and without animation (an animated fit keeps the old
    # zoom until it ends): fitted after or during their creation, every tiled layer asked for
    # the zoom-13 view's tiles and then again for the fitted zoom's (32 of coverage gaps' 66
    # tile requests at 1440x900 were for a view nobody saw).
    if bounds is not None and not bounds.empty:
        x1, y1, x2, y2 = bounds.to_crs(4326).total_bounds
        if all(map(math.isfinite, (x1, y1, x2, y2))):
            fit = FitBounds([[y1, x1], [y2, x2]])
            fit.options["animate"] = False
            m.add_child(fit)
    fig = _figure(m)
    fig.header.add_child(Element(PAGE_CSS), name="cg_analysis_css")
    fig.header.add_child(Element(LEGEND_CSS), name="cg_analysis_tiles_css")
    fig.html.add_child(Element(f'<div class="cg-title">{escape(title)}</div>'))
    element = AnalysisTileLayers(layers)
    m.add_child(element, name="cg_analysis_tiles")
    names = [(layer.name, f"{element.get_name()}[{_js_string(layer.part)}]")
             for layer in layers]
    for name, group in embedded:
        group.add_to(m)
        names.append((name, group.get_name()))
    add_tiled_layers(m, OverviewTiles(base=base), center=center, max_zoom=MAX_ZOOM,
                     embedded=names)
    if about is not None:
        add_about(m, about)
    return m


def _js_string(value: str) -> str:
    # Parts are fixed identifiers (gaps, cells, ...); quoted for a JS property access.
    if not value.replace("_", "").isalnum():
        raise ValueError(f"layer part {value!r} is not an identifier")
    return f'"{value}"'


def coverage_layers(cells: gpd.GeoDataFrame, *, urls: Mapping[str, str],
                    threshold_m: float) -> list[TiledResultLayer]:
    """Uncovered and covered grids; grids flagged for review get a dashed black outline."""
    fields = (("grid_code", "单元网格"), ("distance_m", "判定距离 (米)"),
              ("network_m", "路网距离 (米)"), ("straight_m", "直线距离 (米)"),
              ("snap_m", "距路网 (米)"), ("station_name", "最近工作站"),
              ("method", "计算方式"), ("covered", "已覆盖"), ("review_reason", "待核查"))
    values = {"method": METHOD_LABELS}
    gaps = int((~cells["covered"].astype(bool)).sum()) if len(cells) else 0
    covered = len(cells) - gaps
    review = int(cells["review"].fillna(False).astype(bool).sum()) if "review" in cells else 0
    items = [("#de2d26", f"服务盲区 {gaps:,} 个网格"), ("#31a354", f"已覆盖 {covered:,} 个网格"),
             ("#08519c", "工作站")]
    if review:
        items.append(("#ffffff", f"虚线框：待核查 {review:,} 个（不可达或绕行超 3 倍）"))
    legend = legend_html(f"工作站覆盖 (阈值 {threshold_m:g} 米)", items)
    # Tiles of map zoom < 15 (tile zoom 14 at 512 px) carry only codes and flags.
    return [TiledResultLayer("gaps", "服务盲区", urls["gaps"], "polygon", "#de2d26",
                             fields=fields, values=values, legend=legend, detail_zoom=15),
            TiledResultLayer("covered", "已覆盖网格", urls["covered"], "polygon", "#31a354",
                             fields=fields, values=values, detail_zoom=15)]


class DotGroup(folium.FeatureGroup):
    """Many circle markers with text tooltips from one JSON array and one loop.

    folium writes a script of about a dozen lines per CircleMarker and its tooltip: for the
    632 stations of the demo city that was 7,000 lines and ~220 ms of the page's main thread
    before the map could draw. The tooltips are escaped here (Leaflet sets them as HTML).
    """

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.featureGroup({{ this.options|tojavascript }});
(function (group, dots, style) {
  for (var i = 0; i < dots.length; i++) {
    L.circleMarker([dots[i][0], dots[i][1]], style)
      .bindTooltip(dots[i][2], {sticky: true}).addTo(group);
  }
})({{ this.get_name() }}, {{ this.dots|tojson }}, {{ this.style|tojson }});
{% endmacro %}
""")

    def __init__(self, name: str, dots: Sequence[tuple[float, float, Any]],
                 **style: Any) -> None:
        super().__init__(name=name)
        self._name = "DotGroup"
        self.dots = [[round(lat, 6), round(lon, 6), str(html_text(tip))]
                     for lat, lon, tip in dots]
        self.style = style


def station_markers(stations: gpd.GeoDataFrame) -> folium.FeatureGroup:
    """Community stations as blue dots with their (escaped) names."""
    if stations.empty:
        return DotGroup("社区城管工作站", [])
    points = to_web(stations, layer="stations").geometry
    return DotGroup("社区城管工作站",
                    [(p.y, p.x, name) for p, name in zip(points, stations["name"], strict=True)],
                    radius=6, color="#08519c", fill=True, fillOpacity=0.9)


def dark_streets_layers(stretches: gpd.GeoDataFrame, *, url: str,
                        threshold_m: float) -> list[TiledResultLayer]:
    """The dark stretches as red lines (thicker = longer)."""
    total = float(stretches["dark_m"].sum()) if len(stretches) else 0.0
    legend = legend_html("亮灯死角", [
        ("#d7301f", f"距最近亮灯路灯超过 {threshold_m:g} 米的路段："
                    f"{len(stretches):,} 段，共 {total:,.0f} 米")])
    return [TiledResultLayer(
        "stretches", f"亮灯死角 (>{threshold_m:g} 米)", url, "line", "#d7301f",
        fields=(("road_name", "道路"), ("street_class", "道路类别"), ("dark_m", "死角长度 (米)"),
                ("max_distance_m", "最远点距灯 (米)"), ("gap_m", "两侧亮灯间距 (米)"),
                ("grid_code", "单元网格")),
        values={"street_class": STREET_CLASS_LABELS}, legend=legend)]


def hotspot_layers(cells: gpd.GeoDataFrame, *, urls: Mapping[str, str],
                   cases: int) -> list[TiledResultLayer]:
    """Gi* cells coloured by class (legend: the classes present) and the complaint heat."""
    classes = (sorted({int(b) for b in cells["hot_class"]}, reverse=True)
               if len(cells) else [])
    counts = cells["hot_class"].value_counts().to_dict() if len(cells) else {}
    cells_legend = legend_html(
        "Getis-Ord Gi* 热点区域 (置换检验, FDR 校正)",
        [(GI_COLORS[b], f"{GI_BIN_LABELS[b]}：{counts.get(b, 0):,} 个单元") for b in classes]
        or [(GI_COLORS[0], "时间窗内无投诉")])
    bands = [*(f"≥ {low:,}" for low, _ in HEAT_CLASSES)]
    heat_legend = legend_html(f"投诉热力图（时间窗内 {cases:,} 件，每平方公里件数）",
                              [(color, band) for (_, color), band in
                               zip(HEAT_CLASSES, bands, strict=True)])
    return [TiledResultLayer(
                "cells", "投诉热点区域 (Gi*)", urls["cells"], "polygon", "#f7f7f7",
                color_by="hot_class", colors={str(k): v for k, v in GI_COLORS.items()},
                fields=(("cell", "H3 单元"), ("cases", "投诉数"), ("repeats", "重复投诉"),
                        ("weight", "加权数"), ("z", "Gi* z 值"), ("p_sim", "置换 p 值"),
                        ("p_fdr", "FDR 校正 p 值"), ("label", "判定")),
                legend=cells_legend),
            TiledResultLayer("heat", "投诉热力图", urls["heat"], "heat", show=False,
                             fields=(("n", "投诉数"), ("density", "每平方公里")),
                             legend=heat_legend)]


def cover_risk_layers(risks: gpd.GeoDataFrame, *, url: str,
                      params: Mapping[str, Any]) -> list[TiledResultLayer]:
    """Damaged and missing covers as dots coloured by risk (legend: levels present, counts)."""
    high_h = params.get("damaged_high_after_h", 24)
    medium_h = params.get("damaged_medium_after_h", 4)
    text = {"high": f"高风险：丢失，或破损超过 {high_h:g} 小时",
            "medium": f"中风险：破损 {medium_h:g}-{high_h:g} 小时",
            "low": f"低风险：破损不足 {medium_h:g} 小时"}
    counts = risks["risk"].value_counts().to_dict() if len(risks) else {}
    items = [(RISK_COLORS[r], f"{text[r]}（{counts[r]:,} 个）") for r in ("high", "medium", "low")
             if counts.get(r)]
    legend = legend_html("井盖隐患", items or [("#bbb", "范围内没有破损或丢失的井盖")])
    return [TiledResultLayer(
        "covers", "隐患井盖", url, "point", "#bbb", color_by="risk", colors=RISK_COLORS,
        fields=(("code", "井盖编号"), ("class_name", "类别"), ("state", "状态"),
                ("risk", "风险"), ("owner", "权属"), ("hours", "已等待 (小时)"),
                ("open_case_no", "在办案件")),
        values={"state": COVER_STATE_LABELS, "risk": RISK_LABELS}, legend=legend)]
