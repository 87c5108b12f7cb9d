"""Details people read on analysis pages: metric scale bars, waiting times, empty risk levels."""

from __future__ import annotations

import geopandas as gpd
from shapely.geometry import Point

from maps.analysis import analysis_map, cover_risk_map, waited_zh

CENTER = (36.66, 117.05)


def test_scale_bar_is_metric_only() -> None:
    html = analysis_map(center=CENTER, title="t").get_root().render()
    assert "imperial: false" in html
    assert "L.control.scale()" not in html


def test_waiting_times_read_as_people_say_them() -> None:
    assert waited_zh(0.25) == "15 分钟"
    assert waited_zh(3) == "3 小时"
    assert waited_zh(5.5) == "5.5 小时"
    assert waited_zh(16833.6) == "701 天"


def _risks(levels: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": [f"C{i}" for i in range(len(levels))], "class_name": ["污水井盖"] * len(levels),
         "state": ["damaged"] * len(levels), "owner": ["市政"] * len(levels),
         "hours": [16833.6] * len(levels), "risk": levels, "open_case_no": [None] * len(levels)},
        geometry=[Point(117.05 + i / 1000, 36.66) for i in range(len(levels))],
        crs=4326).rename_geometry("geom")


def test_cover_risk_lists_only_levels_present_and_days() -> None:
    html = cover_risk_map(_risks(["high", "high"]), center=CENTER,
                          title="t").get_root().render()
    assert "701 \\u5929" in html and "16833.6" not in html  # 701 天, JSON-escaped
    assert "高风险：" in html and "中风险：" not in html and "低风险：" not in html
    assert "\\u4e2d\\u98ce\\u9669\\u4e95\\u76d6" not in html  # no empty 中风险井盖 layer


def test_cover_risk_without_covers_says_so() -> None:
    html = cover_risk_map(_risks([]), center=CENTER, title="t").get_root().render()
    assert "范围内没有破损或丢失的井盖" in html


def test_many_stations_are_one_array_and_one_loop_with_escaped_names() -> None:
    from maps.analysis_tiles import station_markers

    names = [f"工作站{i}" for i in range(600)] + ['<img src=x onerror="alert(1)">']
    stations = gpd.GeoDataFrame(
        {"name": names},
        geometry=[Point(117.0 + i / 10000, 36.66) for i in range(len(names))],
        crs=4326).rename_geometry("geom")
    m = analysis_map(center=CENTER, title="t")
    station_markers(stations).add_to(m)
    html = m.get_root().render()
    # One marker call in a loop, not 601 generated scripts (~220 ms of the main thread).
    assert html.count("L.circleMarker(") == 1 and html.count("bindTooltip(") == 1
    assert "\\u5de5\\u4f5c\\u7ad9599" in html  # 工作站599, JSON-escaped in the array
    # The hostile name is HTML-escaped before Leaflet sets it as the tooltip's HTML.
    assert "onerror" in html and "<img" not in html
    assert "\\u0026lt;img src=x onerror=\\u0026#34;alert(1)\\u0026#34;\\u0026gt;" in html
