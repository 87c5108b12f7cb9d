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
