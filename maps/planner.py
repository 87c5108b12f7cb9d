"""The stall zone planner page: draw a zone, fill the form, save, see the violations painted.

Leaflet and leaflet-draw come from /static/vendor (maps.assets.render_html refuses anything
else). Roads by street class, sensitive sites, district outlines and live zones are embedded
as GeoJSON; saving, approving, retiring and the time picker talk to the /zones API, so the
page holds no rule logic of its own. The JavaScript lives in templates/planner.js.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
from folium.elements import JSCSSMixin
from folium.plugins import Draw

from maps.page_tools import PageTools, empty_collection, feature_collection

MAX_ZOOM = 20
ZONE_TYPE_ZH = {"morning_market": "早市", "night_market": "夜市",
                "seasonal_produce": "应季瓜果自产", "convenience_point": "便民服务点",
                "featured_outdoor": "特色外摆"}
ZONE_STATUS_ZH = {"draft": "草稿", "approved": "已批准", "retired": "已撤销"}
# Zone history actions (gis.zones.service records these) as a person reads them.
ZONE_ACTION_ZH = {"create": "新建", "update": "修改", "approve": "批准", "retire": "撤销",
                  "split": "分割"}
STREET_CLASS_ZH = {"demonstration": "示范街", "managed": "规范街", "commercial": "商业街",
                   "other": "其他道路"}
SITE_KIND_ZH = {"school_gate": "学校大门", "kindergarten": "幼儿园", "hospital": "医院",
                "metro_exit": "地铁出入口", "fire_lane": "消防通道"}
# Red is kept for what the check finds wrong (VIOLATION_COLOR); no two things a planner must
# tell apart share a hue family (示范街 purple, 消防通道 near-black, 规范街 blue, 地铁出入口 green).
STREET_COLORS = {"demonstration": "#8e24aa", "managed": "#1e88e5", "commercial": "#fb8c00",
                 "other": "#999999"}
SITE_COLORS = {"school_gate": "#795548", "kindergarten": "#cab2d6", "hospital": "#f9a825",
               "metro_exit": "#2e7d32", "fire_lane": "#212121"}
VIOLATION_COLOR = "#d50000"
ZONE_COLORS = {"morning_market": "#33a02c", "night_market": "#6a3d9a",
               "seasonal_produce": "#ff7f00", "convenience_point": "#1f78b4",
               "featured_outdoor": "#b15928"}
RULE_ZH = {"demonstration_street": "示范街", "sensitive_site.school_gate": "学校大门距离",
           "sensitive_site.kindergarten": "幼儿园距离", "sensitive_site.hospital": "医院距离",
           "sensitive_site.metro_exit": "地铁出入口距离", "fire_lane": "消防通道",
           "pedestrian_clearance": "人行通道净宽", "capacity": "摊位面积",
           "time_overlap": "时段冲突", "district": "行政区"}
# leaflet-draw's toolbar texts in Chinese (L.drawLocal), only the ones the page shows.
DRAW_LOCAL_ZH = {
    "draw": {
        "toolbar": {"actions": {"title": "取消绘制", "text": "取消"},
                    "finish": {"title": "完成绘制", "text": "完成"},
                    "undo": {"title": "删除最后一个点", "text": "撤销一点"},
                    "buttons": {"polygon": "绘制摊群点（多边形）", "rectangle": "绘制矩形摊群点"}},
        "handlers": {
            "polygon": {"tooltip": {"start": "单击地图开始绘制", "cont": "单击继续添加顶点",
                                    "end": "单击第一个顶点完成"}},
            "rectangle": {"tooltip": {"start": "按住并拖动绘制矩形"}},
            "simpleshape": {"tooltip": {"end": "松开鼠标完成"}},
            "polyline": {"error": "<strong>错误：</strong>边线不能相交！",
                         "tooltip": {"start": "单击开始", "cont": "单击继续",
                                     "end": "单击最后一点完成"}},
        },
    },
    "edit": {
        "toolbar": {"actions": {"save": {"title": "保存修改", "text": "确定"},
                                "cancel": {"title": "放弃修改", "text": "取消"},
                                "clearAll": {"title": "清除全部", "text": "清除全部"}},
                    "buttons": {"edit": "移动顶点", "editDisabled": "没有可编辑的图形",
                                "remove": "删除图形", "removeDisabled": "没有可删除的图形"}},
        "handlers": {"edit": {"tooltip": {"text": "拖动顶点修改形状",
                                          "subtext": "单击取消撤销修改"}},
                     "remove": {"tooltip": {"text": "单击图形删除"}}},
    },
}


class PlannerTools(JSCSSMixin, PageTools):
    """The drawing toolbar, the zone form, the violation layer and the time picker."""

    stem = "planner"

    default_js = Draw.default_js
    default_css = Draw.default_css



def planner_map(layers: Mapping[str, gpd.GeoDataFrame], *, center: tuple[float, float],
                title: str = "摊群点规划", limits: dict[str, Any] | None = None,
                api_base: str = "", m: folium.Map | None = None,
                zoom_start: int = 15, time_zone: str = "Asia/Shanghai") -> folium.Map:
    """Add the planner (layers keyed districts/roads/sensitive_sites/stall_zones) to a map."""
    if m is None:
        # No tiles: government networks have no tile server; outlines and roads are the map.
        m = folium.Map(location=list(center), zoom_start=zoom_start, tiles=None,
                       max_zoom=MAX_ZOOM, control_scale=False)
    data = {name: feature_collection(layers[name], name) if name in layers else empty_collection()
            for name in ("districts", "roads", "sensitive_sites", "stall_zones")}
    config = {
        "apiBase": api_base.rstrip("/"), "title": title, "limits": limits or {},
        "timeZone": time_zone,
        "labels": {"zone_type": ZONE_TYPE_ZH, "status": ZONE_STATUS_ZH, "action": ZONE_ACTION_ZH,
                   "street_class": STREET_CLASS_ZH, "site_kind": SITE_KIND_ZH, "rule": RULE_ZH},
        "colors": {"street_class": STREET_COLORS, "site_kind": SITE_COLORS,
                   "zone_type": ZONE_COLORS, "violation": VIOLATION_COLOR},
        "drawLocal": DRAW_LOCAL_ZH, "center": list(center), "bounds": _bounds(layers),
    }
    m.add_child(PlannerTools(data=data, config=config), name="planner_tools")
    return m



def _bounds(layers: Mapping[str, gpd.GeoDataFrame]) -> list[list[float]] | None:
    """[[south, west], [north, east]] of what a planner works on: zones, roads, sites."""
    frames = [layers[n] for n in ("stall_zones", "roads", "sensitive_sites")
              if n in layers and not layers[n].empty]
    if not frames:
        frames = [layers[n] for n in ("districts",) if n in layers and not layers[n].empty]
    if not frames:
        return None
    boxes = [f.to_crs(4326).total_bounds for f in frames]
    return [[min(b[1] for b in boxes), min(b[0] for b in boxes)],
            [max(b[3] for b in boxes), max(b[2] for b in boxes)]]
