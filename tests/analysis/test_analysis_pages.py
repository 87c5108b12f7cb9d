"""Analysis map pages and the report: offline, zh-CN, legend and layer control; in Chromium.

The browser test serves the app with uvicorn on 127.0.0.1 over the test's rolled-back session
(constructed data, nothing committed); every request leaving 127.0.0.1 is aborted and
recorded, and must not happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from maps.assets import external_urls
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.support.accounts import headers_for
from tests.support.browser import ARTIFACTS, chromium_or_skip, offline_page, serve

HOTSPOT_Q = {"end": "2024-05-13T00:00:00+08:00", "days": 7, "resolution": 10}
# page -> (query, layer names the layer control must list, legend title)
PAGES = {
    "/analysis/map/dark-streets": ({"step_m": 4}, ["亮灯死角 (>30 米)"],
                                   "亮灯死角"),
    "/analysis/map/coverage-gaps": ({"threshold_m": 500},
                                    ["服务盲区", "已覆盖网格", "社区城管工作站"], "工作站覆盖"),
    "/analysis/map/hotspots": (HOTSPOT_Q, ["投诉热点区域 (Gi*)", "投诉热力图"], "Gi*"),
    # The test city's covers are all at high risk: the other levels get no legend line.
    "/analysis/map/cover-risk": ({}, ["隐患井盖"], "井盖隐患"),
}


@pytest.fixture
def app(test_settings, session: Session) -> FastAPI:
    build_city(session)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    return app


def test_pages_render_offline_with_legend_and_layers(app: FastAPI, session: Session) -> None:
    with TestClient(app, headers=headers_for(session, "analyst")) as client:
        for path, (query, _layers, legend) in PAGES.items():
            r = client.get(path, params={"bbox": BBOX_Q, **query})
            assert r.status_code == 200, (path, r.text[:500])
            html = r.text
            assert '<html lang="zh-CN">' in html and '<meta charset="utf-8">' in html
            assert external_urls(html) == [], path
            assert "/static/vendor/leaflet/leaflet.js" in html
            assert "L.control.layers" in html and 'class="cg-legend"' in html
            assert legend in html
            # Results come from tiles: no GeoJSON embedded, the tile URL carries the query.
            assert '"FeatureCollection"' not in html and "L.geoJson" not in html, path
            assert "/tiles/analysis/" in html and "Leaflet.VectorGrid" in html, path
        heat = client.get("/analysis/map/hotspots", params={"bbox": BBOX_Q, **HOTSPOT_Q}).text
        assert "leaflet_heat" not in heat and 'data-part="heat"' in heat
        # Only the classes the data produced are offered; the method box says how.
        assert "不显著" in heat and "热点区域 99%" not in heat and "冷点区域" not in heat
        assert "方法说明" in heat and "研究区：测试区" in heat
        assert "数据截至：2024-05-13 00:00" in heat
        dark = client.get("/analysis/map/dark-streets",
                          params={"bbox": BBOX_Q, "step_m": 4}).text
        assert "方法说明" in dark and "研究区：范围框" in dark
        assert "规范街：死角 2,220 米（3 段，3 条路），占该类道路 92.5%" in dark
        cover = client.get("/analysis/map/coverage-gaps",
                           params={"bbox": BBOX_Q, "threshold_m": 500}).text
        assert "方法说明" in cover and "直线距离单独列出" in cover and "待核查" in cover
        risk = client.get("/analysis/map/cover-risk", params={"bbox": BBOX_Q}).text
        assert "方法说明" in risk and "不足 4 小时为低风险" in risk  # thresholds: method box
        # No legend line for a level no cover is at.
        assert "中风险：" not in risk
        assert "低风险：" not in risk and "高风险：丢失，或破损超过 24 小时" in risk


@pytest.fixture
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture
def base_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


PAGE_HTML_BUDGET = 300_000  # bytes: the result comes from tiles, nothing big is inline
LEGENDS_SHOWN = """() => [...document.querySelectorAll('.cg-legend[data-part]')]
    .filter(e => e.offsetParent !== null).map(e => e.dataset.part)"""


@pytest.mark.browser
@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_pages_in_chromium_without_network(chromium: Path, base_url: str, session: Session,
                                          width: int, height: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with offline_page(chromium, width=width, height=height,
                      extra_http_headers=headers_for(session, "analyst")) as browser:
        page = browser.page
        tiles: list[tuple[str, int]] = []
        page.on("response", lambda r: "/tiles/analysis/" in r.url
                and tiles.append((r.url, r.status)))
        for path, (query, layers, _legend) in PAGES.items():
            tiles.clear()
            url = f"{base_url}{path}?bbox={BBOX_Q}" + "".join(
                f"&{k}={v}" for k, v in query.items()).replace("+", "%2B")
            response = page.goto(url, wait_until="load", timeout=60_000)
            assert response is not None and response.status == 200, path
            assert len(response.body()) <= PAGE_HTML_BUDGET, (path, len(response.body()))
            page.wait_for_function("() => window.cgAnalysis && cgAnalysis.tiles() >= 1",
                                   timeout=30_000)
            # The result layer is drawn from the analysis tiles, with the page's parameters.
            assert tiles and all(status == 200 for _, status in tiles), (path, tiles)
            assert all(".pbf?" in u and "bbox=" in u for u, _ in tiles), tiles
            shown = [t.strip() for t in page.locator(
                ".leaflet-control-layers-overlays label").all_text_contents()]
            for name in layers:
                assert name in shown, (path, name, shown)
            assert page.locator(".cg-legend").first.is_visible()
            # Under it the offline base map (the city's own tiles), offered as the base layer.
            assert "城市底图（离线）" in page.locator(
                ".leaflet-control-layers-base").all_text_contents()[0]
            page.screenshot(path=str(ARTIFACTS / f"analysis-{path.rsplit('/', 1)[1]}-{width}.png"))
        # Hotspots: the legend follows the layer switched on (Gi* cells, then the heat).
        page.goto(f"{base_url}/analysis/map/hotspots?bbox={BBOX_Q}&days=7&resolution=10"
                  "&end=2024-05-13T00:00:00%2B08:00", wait_until="load", timeout=60_000)
        # The result layers join the map once the base map has drawn (overview.js), and each
        # legend with its layer.
        page.wait_for_function("() => window.cgOverview && cgOverview.dataAfter", timeout=30_000)
        assert page.evaluate(LEGENDS_SHOWN) == ["cells"]
        page.evaluate("""() => { const m = cgAnalysis.map;
            m.removeLayer(cgAnalysis.layers.cells); m.addLayer(cgAnalysis.layers.heat); }""")
        assert page.evaluate(LEGENDS_SHOWN) == ["heat"]
        if width >= 700:  # the same through the layer control itself
            page.locator(".leaflet-control-layers-overlays label",
                         has_text="投诉热点区域").locator("input").check()
            assert sorted(page.evaluate(LEGENDS_SHOWN)) == ["cells", "heat"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1

    assert browser.external == [], f"pages tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"


@pytest.mark.browser
def test_report_in_chromium(chromium: Path, base_url: str, session: Session) -> None:
    with offline_page(chromium, width=1280, height=860,
                      extra_http_headers=headers_for(session, "analyst")) as browser:
        page = browser.page
        response = page.goto(f"{base_url}/reports/weekly?day=2024-05-08&scope=379901",
                             wait_until="load")
        assert response is not None and response.status == 200
        assert "按期结案率" in page.locator("h2 + div.kpi, .kpi").first.inner_text()
        images = page.evaluate(
            "() => Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert images and all(images)
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        page.screenshot(path=str(ARTIFACTS / "report-weekly.png"), full_page=True)

    assert browser.external == [], f"pages tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"


@pytest.mark.browser
def test_report_and_analysis_page_on_a_phone(chromium: Path, base_url: str,
                                             session: Session) -> None:
    with offline_page(chromium, width=390, height=844,
                      extra_http_headers=headers_for(session, "analyst")) as browser:
        page = browser.page
        response = page.goto(f"{base_url}/reports/weekly?day=2024-05-08&scope=379901",
                             wait_until="load")
        assert response is not None and response.status == 200
        # Nothing wider than the phone, and the toolbar's controls big enough to tap.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        heights = page.evaluate("""() => [...document.querySelectorAll(
            '.cg-toolbar select, .cg-toolbar input, .cg-toolbar button, .cg-toolbar a')]
            .map(e => e.getBoundingClientRect().height)""")
        assert heights and min(heights) >= 44, heights
        # Dates in the picker are zh-CN (the page and the input say so).
        assert page.evaluate("document.querySelector('.cg-toolbar input[type=date]').lang")\
            == "zh-CN"
        # The period picker goes to the chosen report.
        page.select_option(".cg-toolbar select", "monthly")
        page.click(".cg-toolbar button[type=submit]")
        page.wait_for_url("**/reports/monthly?**")
        assert "月报" in page.locator("h1").inner_text()
        page.screenshot(path=str(ARTIFACTS / "report-phone.png"), full_page=True)
        url = f"{base_url}/analysis/map/cover-risk?bbox={BBOX_Q}"
        response = page.goto(url, wait_until="load", timeout=60_000)
        assert response is not None and response.status == 200
        page.wait_for_function("() => window.L && document.querySelector('.cg-legend')",
                               timeout=30_000)
        scale = page.locator(".leaflet-control-scale").inner_text()
        assert " m" in scale and "ft" not in scale and "mi" not in scale
    assert browser.external == [], f"pages tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"
