"""Analysis pages: dark streets, coverage gaps, hotspots, cover risk, and the HTML report.

Each map function takes a GeoDataFrame from gis.analysis (no database here), adds its layers
to `m` (a new offline map when None) and returns it; `render_html` from maps.assets turns it
into a zh-CN page with vendored assets only. Maps have no base tiles: government networks are
isolated, and the city outline, grids and roads drawn here orient the reader.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import folium
import geopandas as gpd
import pandas as pd
from branca.element import Element, Figure
from folium.plugins import HeatMap

from gis.analysis.about import AnalysisAbout
from gis.analysis.labels import (
    COUNT_LABELS,
    COVER_STATE_LABELS,
    GI_BIN_LABELS,
    METHOD_LABELS,
    PERIOD_LABELS,
    RATES,
    RISK_LABELS,
    STREET_CLASS_LABELS,
    ReportData,
)
from maps.analysis_about import add_about
from maps.charts import ranking_chart, trend_chart
from maps.escaping import EscapedGeoJsonTooltip, Markup, TextTooltip, escape
from maps.map_controls import MetricScale
from maps.popups import to_web
from maps.report_controls import TOOLBAR_CSS, ReportControls, report_toolbar

FONT = '"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif'
PAGE_CSS = f"""<style>
.cg-title{{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;
  background:rgba(255,255,255,.92);padding:6px 16px;border-radius:4px;font-size:18px;
  font-weight:600;box-shadow:0 1px 4px rgba(0,0,0,.3);font-family:{FONT}}}
.cg-legend{{position:absolute;bottom:24px;right:10px;z-index:1000;background:rgba(255,255,255,.94);
  padding:8px 12px;border-radius:4px;font-size:13px;box-shadow:0 1px 4px rgba(0,0,0,.3);
  font-family:{FONT};max-width:22rem}}
.cg-legend b{{display:block;margin-bottom:4px}}
.cg-legend i{{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;
  border:1px solid rgba(0,0,0,.4)}}
.leaflet-container{{background:#f4f4f0}}
</style>"""
GI_COLORS = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", 0: "#f7f7f7", -1: "#d1e5f0",
             -2: "#67a9cf", -3: "#2166ac"}
RISK_COLORS = {"high": "#d7301f", "medium": "#fc8d59", "low": "#fdd49e"}


def analysis_map(*, center: tuple[float, float], title: str, zoom: int = 14) -> folium.Map:
    """An empty offline map (no tiles) with a title box and the page styles."""
    # folium's control_scale draws feet beside metres; city staff measure in metres only.
    m = folium.Map(location=list(center), zoom_start=zoom, tiles=None, control_scale=False,
                   prefer_canvas=True)
    MetricScale().add_to(m)
    _figure(m).header.add_child(Element(PAGE_CSS), name="cg_analysis_css")
    _figure(m).html.add_child(Element(f'<div class="cg-title">{escape(title)}</div>'))
    return m


def add_legend(m: folium.Map, title: str, items: Sequence[tuple[str, str]]) -> folium.Map:
    """A legend box: `items` are (colour, label)."""
    rows = "".join(f'<div><i style="background:{escape(color)}"></i>{escape(label)}</div>'
                   for color, label in items)
    _figure(m).html.add_child(Element(
        f'<div class="cg-legend"><b>{escape(title)}</b>{rows}</div>'))
    return m


def add_context(m: folium.Map, layers: dict[str, gpd.GeoDataFrame] | None) -> folium.Map:
    """Thin grey outlines (districts, grids, roads) for orientation, one switchable layer each."""
    styles = {"districts": ("区界", {"color": "#555", "weight": 2, "fill": False}),
              "grid_cells": ("单元网格", {"color": "#999", "weight": 0.5, "fillOpacity": 0}),
              "roads": ("道路", {"color": "#888", "weight": 1.5})}
    for layer_id, gdf in (layers or {}).items():
        if layer_id not in styles or gdf.empty:
            continue
        name, style = styles[layer_id]
        web = to_web(gdf[[gdf.geometry.name]], layer=layer_id)
        folium.GeoJson(web.__geo_interface__, name=name, style_function=_const(style),
                       interactive=False).add_to(m)
    return m


def dark_streets_map(gaps: gpd.GeoDataFrame, *, center: tuple[float, float], title: str,
                     threshold_m: float, about: AnalysisAbout | None = None,
                     context: dict[str, gpd.GeoDataFrame] | None = None,
                     m: folium.Map | None = None) -> folium.Map:
    """The dark stretches themselves as red lines (thicker = longer), with a popup each.

    The drawn line is the part beyond `threshold_m`, so its length on the map is the dark
    length reported; the light-to-light spacing around it is only a popup field.
    """
    m = m or analysis_map(center=center, title=title)
    add_context(m, context)
    frame = gaps.assign(street_class_zh=gaps["street_class"].map(STREET_CLASS_LABELS))
    shown = _table(frame, {"road_name": "道路", "street_class_zh": "道路类别",
                           "dark_m": "死角长度 (米)", "max_distance_m": "最远点距灯 (米)",
                           "gap_m": "两侧亮灯间距 (米)", "grid_code": "单元网格"})
    if not gaps.empty:
        layer = folium.GeoJson(
            shown.__geo_interface__, name=str(escape(f"亮灯死角 (>{threshold_m:g} 米)")),
            style_function=lambda f: {"color": "#d7301f", "weight": 3 + min(
                5, (f["properties"].get("死角长度 (米)") or 0) / 20), "opacity": 0.9},
            tooltip=EscapedGeoJsonTooltip(fields=list(shown.columns.drop("geom")),
                                          localize=True))
        layer.add_to(m)
        _fit(m, gaps)
    add_legend(m, "亮灯死角", [("#d7301f", f"距最近亮灯路灯超过 {threshold_m:g} 米的路段"),
                             ("#888888", "道路")])
    if about is not None:
        add_about(m, about)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def coverage_map(cells: gpd.GeoDataFrame, *, center: tuple[float, float], title: str,
                 threshold_m: float, stations: gpd.GeoDataFrame | None = None,
                 about: AnalysisAbout | None = None,
                 context: dict[str, gpd.GeoDataFrame] | None = None,
                 m: folium.Map | None = None) -> folium.Map:
    """Grids coloured covered / uncovered by station distance, stations as blue dots.

    Network and straight-line distance are shown side by side, never one for the other;
    grids flagged for review (unreachable, or a walk over 3x the line) get a black outline.
    """
    m = m or analysis_map(center=center, title=title)
    add_context(m, context)
    frame = cells.assign(covered_zh=cells["covered"].map({True: "是", False: "否"}),
                         method_zh=cells["method"].map(METHOD_LABELS))
    shown = _table(frame, {"grid_code": "单元网格", "distance_m": "判定距离 (米)",
                           "network_m": "路网距离 (米)", "straight_m": "直线距离 (米)",
                           "snap_m": "距路网 (米)", "station_name": "最近工作站",
                           "method_zh": "计算方式", "covered_zh": "已覆盖",
                           "review_reason": "待核查"})
    for covered, name, color in ((False, "服务盲区", "#de2d26"), (True, "已覆盖网格", "#31a354")):
        part = shown[(frame["covered"] == covered).to_numpy()]
        if part.empty:
            continue
        folium.GeoJson(part.__geo_interface__, name=name,
                       style_function=_const({"color": color, "weight": 0.6,
                                              "fillColor": color, "fillOpacity": 0.45}),
                       tooltip=EscapedGeoJsonTooltip(fields=list(part.columns.drop("geom")))
                       ).add_to(m)
    review = frame["review"] if "review" in frame else pd.Series(False, index=frame.index)
    flagged = shown[review.fillna(False).to_numpy(dtype=bool)]
    if not flagged.empty:
        folium.GeoJson(flagged[["geom"]].__geo_interface__, name="待核查网格",
                       style_function=_const({"color": "#000", "weight": 2, "fill": False,
                                              "dashArray": "4 3"}),
                       interactive=False).add_to(m)
    if stations is not None and not stations.empty:
        group = folium.FeatureGroup(name="社区城管工作站")
        for point, name in zip(to_web(stations, layer="stations").geometry, stations["name"],
                               strict=True):
            folium.CircleMarker([point.y, point.x], radius=6, color="#08519c", fill=True,
                                fill_opacity=0.9).add_child(TextTooltip(name)).add_to(group)
        group.add_to(m)
    if not cells.empty:
        _fit(m, cells)
    add_legend(m, f"工作站覆盖 (阈值 {threshold_m:g} 米)",
               [("#de2d26", "服务盲区"), ("#31a354", "已覆盖"), ("#08519c", "工作站")]
               + ([("#ffffff", "虚线框：待核查（不可达或绕行超 3 倍）")] if not flagged.empty
                  else []))
    if about is not None:
        add_about(m, about)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def hotspots_map(spots: gpd.GeoDataFrame, *, center: tuple[float, float], title: str,
                 points: Sequence[tuple[float, float]] = (),
                 about: AnalysisAbout | None = None,
                 context: dict[str, gpd.GeoDataFrame] | None = None,
                 m: folium.Map | None = None) -> folium.Map:
    """H3 cells coloured by the class they may carry, plus an optional heat map of cases.

    The legend lists only the classes present in `spots` (``hot_class``): a class the data
    did not produce is not offered to the reader.
    """
    m = m or analysis_map(center=center, title=title)
    add_context(m, context)
    shown = _table(spots, {"cell": "H3 单元", "cases": "投诉数", "repeats": "重复投诉",
                           "weight": "加权数", "z": "Gi* z 值", "p_sim": "置换 p 值",
                           "p_fdr": "FDR 校正 p 值", "label": "判定"})
    classes: list[int] = []
    if not spots.empty:
        bins = spots["hot_class"].to_numpy()
        classes = sorted({int(b) for b in bins}, reverse=True)
        shown = shown.assign(_color=[GI_COLORS[int(b)] for b in bins])
        folium.GeoJson(
            shown.__geo_interface__, name="投诉热点区域 (Gi*)",
            style_function=lambda f: {"color": "#666", "weight": 0.4, "fillOpacity": 0.7,
                                      "fillColor": f["properties"]["_color"]},
            tooltip=EscapedGeoJsonTooltip(fields=[c for c in shown.columns
                                                  if c not in ("geom", "_color")])).add_to(m)
        _fit(m, spots)
    if len(points):
        HeatMap([[lat, lon] for lon, lat in points], name="投诉热力图", radius=12, blur=15,
                show=False).add_to(m)
    add_legend(m, "Getis-Ord Gi* 热点区域 (置换检验, FDR 校正)",
               [(GI_COLORS[b], GI_BIN_LABELS[b]) for b in classes] or
               [(GI_COLORS[0], "时间窗内无投诉")])
    if about is not None:
        add_about(m, about)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def cover_risk_map(risks: gpd.GeoDataFrame, *, center: tuple[float, float], title: str,
                   about: AnalysisAbout | None = None,
                   context: dict[str, gpd.GeoDataFrame] | None = None,
                   m: folium.Map | None = None) -> folium.Map:
    """Damaged and missing covers as dots coloured by risk, one layer per risk level."""
    m = m or analysis_map(center=center, title=title)
    add_context(m, context)
    frame = risks.assign(state_zh=risks["state"].map(COVER_STATE_LABELS),
                         risk_zh=risks["risk"].map(RISK_LABELS))
    web = to_web(frame, layer="manhole_covers") if not frame.empty else frame
    # A level with no cover gets neither a layer nor a legend line: an empty switch misleads.
    present = [risk for risk in ("high", "medium", "low")
               if not web.empty and (web["risk"] == risk).any()]
    for risk in present:
        group = folium.FeatureGroup(name=f"{RISK_LABELS[risk]}风险井盖")
        for row in web[web["risk"] == risk].itertuples():
            tip = Markup("{} {} {}<br>权属: {}<br>已等待 {}").format(
                row.code, row.class_name, row.state_zh, row.owner, waited_zh(row.hours))
            if row.open_case_no:
                tip += Markup("<br>在办案件 {}").format(row.open_case_no)
            folium.CircleMarker([row.geom.y, row.geom.x], radius=6, color="#333", weight=1,
                                fill=True, fill_color=RISK_COLORS[risk], fill_opacity=0.9
                                ).add_child(TextTooltip(tip)).add_to(group)
        group.add_to(m)
    if not risks.empty:
        _fit(m, risks)
    params = about.parameters if about is not None else {}
    high_h, medium_h = (params.get("damaged_high_after_h", 24),
                        params.get("damaged_medium_after_h", 4))
    legend = {"high": f"高风险：丢失，或破损超过 {high_h:g} 小时",
              "medium": f"中风险：破损 {medium_h:g}-{high_h:g} 小时",
              "low": f"低风险：破损不足 {medium_h:g} 小时"}
    add_legend(m, "井盖隐患", [(RISK_COLORS[risk], legend[risk]) for risk in present] or
               [("#bbb", "范围内没有破损或丢失的井盖")])
    if about is not None:
        add_about(m, about)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


# The report's backlog figure; the dispatcher desk counts 超期 by the current step's time limit
# (派遣、处置 or 核查), so the two differ on purpose and both pages say which they count.
OVERDUE_DEFINITION = ("超期未结 = 截至统计时点仍未结案、且已过处置时限的案件（不论何时受理）；"
                      "调度台的“超期”按当前环节（立案派遣、处置、核查）的时限计，口径不同")


def waited_zh(hours: float) -> str:
    """A waiting time as people say it: minutes, hours, or days past two days."""
    if hours < 1:
        return f"{max(round(hours * 60), 0)} 分钟"
    if hours < 48:
        return f"{hours:.1f} 小时".replace(".0 ", " ")
    return f"{hours / 24:,.0f} 天"


def render_report(report: ReportData, controls: ReportControls | None = None) -> str:
    """The report as one self-contained zh-CN HTML page (charts inlined as PNG data URIs)."""
    kind = PERIOD_LABELS.get(report.kind, report.kind)
    title = f"{report.city} 数字化城管{kind}（{report.period_label}）"
    trend_png = trend_chart(report.trend, title="案件受理、结案与按期结案率趋势")
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="meta">生成时间 {escape(report.generated_at)}；'
             "口径：结案率 = 结案数 / 应结案数，按期结案率 = 按期结案数 / 应结案数，"
             "立案率 = 立案数 / 受理数，派遣率 = 派遣数 / 立案数，满意率 = 满意数 / 回访数；"
             f"{OVERDUE_DEFINITION}</p>",
             report_toolbar(controls) if controls is not None else "",
             "<h2>一、总体情况</h2>", _headline(report.city_row),
             _img(trend_png, "趋势图")]
    for heading, table in (("二、各区排名", report.districts), ("三、各街道排名", report.streets)):
        parts.append(f"<h2>{heading}</h2>")
        if table.empty:
            parts.append("<p>本期无数据。</p>")
            continue
        parts.append(_ranking_table(table))
        # Groups with nothing due have no on-time rate: a chart of them would be empty bars.
        rated = table[pd.to_numeric(table["on_time_rate"], errors="coerce").notna()]
        if len(rated) > 1:
            parts.append(_img(ranking_chart(rated.head(20), title=heading[2:] + "（按期结案率）"),
                              heading))
        elif len(table) > 1:
            parts.append('<p class="meta">本期各单位均无应结案件，不绘制按期结案率排名图。</p>')
    parts.append("<h2>四、高发案件类别</h2>")
    parts.append(_simple_table(report.categories, {"name": "类别", "accepted": "受理数",
                                                   "closed": "结案数", "open_overdue": "超期未结"}))
    if not report.cover_risks.empty:
        parts.append("<h2>五、井盖隐患</h2>")
        parts.append(_simple_table(report.cover_risks, {
            "class_name": "井盖类别", "missing": "丢失", "damaged": "破损", "high": "高风险",
            "longest_hours": "最长等待 (小时)"}))
    for note in report.notes:
        parts.append(f'<p class="meta">{escape(note)}</p>')
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(title)}</title>
<style>
body{{font-family:{FONT};max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.5rem}} h2{{font-size:1.15rem;border-left:4px solid #2b8cbe;padding-left:.5rem;
  margin-top:2rem}}
table{{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}}
th,td{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
th{{background:#eef4f8}} td.name,th.name{{text-align:left}}
.meta{{color:#666;font-size:.8rem}} .kpi{{display:flex;flex-wrap:wrap;gap:.5rem}}
.kpi div{{border:1px solid #ddd;border-radius:4px;padding:.4rem .7rem;min-width:7rem}}
.kpi b{{display:block;font-size:1.2rem}} .warn b{{color:#c0392b}}
img{{max-width:100%}}
/* A phone scrolls a wide ranking table inside itself, never the whole page. */
@media (max-width:760px){{table{{display:block;overflow-x:auto;white-space:nowrap}}
  body{{margin:1rem auto}}}}
{TOOLBAR_CSS}
@media print{{body{{margin:0}} h2{{page-break-after:avoid}}}}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _headline(row: dict[str, Any]) -> str:
    cards = []
    for name in ("closure_rate", "on_time_rate", "filing_rate", "dispatch_rate", "rework_rate",
                 "extension_rate", "reply_rate", "satisfaction_rate"):
        label, num, den = RATES[name]
        cards.append(f"<div><span>{label}</span><b>{_pct(row.get(name))}</b>"
                     f"<small>{_int(row.get(num))} / {_int(row.get(den))}</small></div>")
    # An on-time rate must not hide the backlog: the open overdue count stands beside it.
    cards.insert(2, f'<div class="warn"><span>超期未结</span><b>{_int(row.get("open_overdue"))}'
                    "</b><small>件（截至期末）</small></div>")
    # Photo evidence (case_media): after photo on closing, verification photo in time.
    for label, rate, num, den in (("处置后照片率", "after_photo_rate", "closed_with_after_photo",
                                   "photo_closed"),
                                  ("核查及时率", "verification_on_time_rate",
                                   "verified_on_time", "verification_due")):
        if rate in row:
            cards.append(f"<div><span>{label}</span><b>{_pct(row.get(rate))}</b>"
                         f"<small>{_int(row.get(num))} / {_int(row.get(den))}</small></div>")
    counts = "，".join(f"{COUNT_LABELS[k]} {_int(row.get(k))}" for k in
                      ("accepted", "filed", "dispatched", "due", "closed", "closed_on_time"))
    return f'<div class="kpi">{"".join(cards)}</div><p>{counts}。</p>'


def _ranking_table(table: pd.DataFrame) -> str:
    columns = [("rank", "名次"), ("name", "名称"), ("accepted", "受理数"), ("due", "应结案数"),
               ("closed", "结案数"), ("closure_rate", "结案率"), ("closed_on_time", "按期结案数"),
               ("on_time_rate", "按期结案率"), ("open_overdue", "超期未结"),
               ("rework_rate", "返工率"), ("satisfaction_rate", "满意率")]
    head = "".join(f'<th class="{"name" if c == "name" else ""}">{label}</th>'
                   for c, label in columns)
    rows = []
    for record in table.to_dict("records"):
        cells = []
        for column, _ in columns:
            value = record.get(column)
            if column == "name":
                cells.append(f'<td class="name">{escape(value or record.get("key") or "未定")}'
                             "</td>")
            elif column.endswith("_rate"):
                cells.append(f"<td>{_pct(value)}</td>")
            else:
                cells.append(f"<td>{_int(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _simple_table(table: pd.DataFrame, columns: dict[str, str]) -> str:
    if table.empty:
        return "<p>本期无数据。</p>"
    present = [c for c in columns if c in table]
    head = "".join(f'<th class="{"name" if i == 0 else ""}">{columns[c]}</th>'
                   for i, c in enumerate(present))
    rows = []
    for record in table.to_dict("records"):
        cells = [f'<td class="{"name" if i == 0 else ""}">{escape(_plain(record[c]))}</td>'
                 for i, c in enumerate(present)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _img(png: bytes, alt: str) -> str:
    return (f'<img alt="{escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}">')


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.2f}%"


def _int(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "0"
    return f"{int(value):,}"


def _plain(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(gdf: gpd.GeoDataFrame, labels: dict[str, str]) -> gpd.GeoDataFrame:
    """The columns of `labels` renamed to Chinese, JSON-safe, geometry kept as 'geom'."""
    if gdf.empty:
        return gpd.GeoDataFrame({"geom": []}, geometry="geom", crs=4326)
    web = to_web(gdf, layer="analysis")
    out = pd.DataFrame(index=web.index)
    for column, label in labels.items():
        if column not in web:
            continue
        values = web[column]
        if pd.api.types.is_float_dtype(values):
            values = values.round(2)
        out[label] = values.astype(object).where(values.notna(), None)
        out[label] = out[label].map(lambda v: v.isoformat()
                                    if isinstance(v, dt.datetime | pd.Timestamp) else v)
    return gpd.GeoDataFrame(out, geometry=web.geometry.values, crs=4326).rename_geometry("geom")


def _figure(m: folium.Map) -> Figure:
    figure = m.get_root()
    if not isinstance(figure, Figure):
        raise TypeError(f"map {m.get_name()!r} is not inside a branca Figure")
    return figure


def _fit(m: folium.Map, gdf: gpd.GeoDataFrame) -> None:
    x1, y1, x2, y2 = gdf.to_crs(4326).total_bounds
    if all(map(math.isfinite, (x1, y1, x2, y2))):
        m.fit_bounds([[y1, x1], [y2, x2]])


def _const(style: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    return lambda _feature: style
