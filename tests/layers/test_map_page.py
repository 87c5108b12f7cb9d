"""The overview map page in headless Chromium (Debian's), over the demo city in real PostGIS.

The browser may only talk to the app: every other request is aborted and recorded, which
proves the page works on an isolated government network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.routes.pages import invalidate_pages
from layers.registry import LAYERS
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def app(demo_app: FastAPI) -> FastAPI:
    return demo_app


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


# Bytes of HTML (it was 8.7 MB when every layer was embedded); the three-district demo's
# outlines and labels brought it from ~290 KB to ~380 KB.
PAGE_BUDGET = 450_000
COUNTS_OVERLAP = """() => {
    const boxes = [...document.querySelectorAll('.cg-count')].map(e => e.getBoundingClientRect());
    let overlaps = 0;
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.left < b.right && b.left < a.right &&
            a.top < b.bottom && b.top < a.bottom) overlaps++;
    }
    return {n: boxes.length, overlaps};
}"""


def click_centre_popup(page) -> str:
    """Click the middle of the map (where the case heat is drawn) and return the popup text."""
    box = page.locator(".leaflet-container").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.55)
    popup = page.wait_for_selector(".leaflet-popup-content", timeout=15_000)
    return popup.inner_text()


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_map_page_offline_in_chromium(chromium: Path, base_url: str, demo_engine,
                                      width: int, height: int) -> None:
    with offline_page(chromium, width=width, height=height,
                      extra_http_headers=headers_for(demo_engine, "analyst")) as browser:
        page = browser.page
        responses: list = []
        page.on("response", lambda r: responses.append(r))
        started = time.perf_counter()
        response = page.goto(f"{base_url}/map", wait_until="load", timeout=180_000)
        assert response is not None and response.status == 200
        page.wait_for_function("() => window.cgOverview && cgOverview.tiles() >= 4",
                               timeout=60_000)
        load_s = time.perf_counter() - started
        html = response.body()
        assert len(html) <= PAGE_BUDGET, f"/map is {len(html):,} bytes"
        assert page.evaluate("cgOverview.map.getZoom()") == 13
        if width < 700:  # the phone's layer list is folded behind its button: unfold it
            page.evaluate("document.querySelector('.leaflet-control-layers')"
                          ".classList.add('leaflet-control-layers-expanded')")
        overlays = [t.strip() for t in page.locator(
            ".leaflet-control-layers-overlays label").all_inner_texts()]
        for layer_id in ("grid_cells", "roads", "streetlights", "manhole_covers", "cases",
                         "stations", "stall_zones", "facilities"):
            assert LAYERS[layer_id].title_zh in overlays, f"{layer_id} not in {overlays}"
        # Nothing draws 11,000 cells at zoom 13: cells come as communities, cases as heat.
        page.wait_for_function(
            "() => document.querySelectorAll('.leaflet-cg-data-pane path').length > 20",
            timeout=60_000)
        page.wait_for_load_state("networkidle", timeout=60_000)
        data_paths = page.evaluate(
            "document.querySelectorAll('.leaflet-cg-data-pane path').length")
        assert 0 < data_paths < 1500, data_paths
        assert "城市管理综合地图" in page.locator(".cg-title").inner_text()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        if width < 700:
            page.evaluate("document.querySelector('.leaflet-control-layers')"
                          ".classList.remove('leaflet-control-layers-expanded')")
        # The heat is drawn under the grid: a click there reaches the community below.
        page.wait_for_timeout(500)
        text = click_centre_popup(page)
        assert "社区" in text and "单元网格" in text, text
        page.evaluate("cgOverview.map.closePopup()")

        # Lights and covers at zoom 14: counts per bin, and no two numbers overlap.
        for layer_id in ("streetlights", "manhole_covers"):
            page.evaluate("""(name) => {
                const m = cgOverview.map;
                document.querySelectorAll('.leaflet-control-layers-overlays label')
                    .forEach(l => { if (l.innerText.trim() === name) {
                        const i = l.querySelector('input'); if (!i.checked) i.click(); } });
            }""", LAYERS[layer_id].title_zh)
        page.evaluate("cgOverview.map.setZoom(14, {animate: false})")
        page.wait_for_function("() => document.querySelectorAll('.cg-count').length > 4",
                               timeout=30_000)
        page.wait_for_timeout(1000)
        counts = page.evaluate(COUNTS_OVERLAP)
        assert counts["n"] > 4 and counts["overlaps"] == 0, counts
        assert page.locator(".cg-count-streetlights").count() > 0
        assert page.locator(".cg-count-manhole_covers").count() > 0

        # Street level: names from the base map, and features with popups.
        page.evaluate("cgOverview.map.setZoom(16, {animate: false})")
        page.wait_for_function("() => cgOverview.labels > 5", timeout=30_000)
        labels = page.locator(".cg-label").all_inner_texts()
        assert any(t.endswith(("路", "街")) for t in labels), labels
        browser.screenshot(f"map_{width}.png")

    tiles = [r for r in responses if "/tiles/" in r.url]
    assert len(tiles) >= 10 and all(r.status == 200 for r in tiles)
    assert any("/tiles/basemap/" in r.url for r in tiles)
    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"
    print(f"\n/map {width}x{height}: {load_s:.1f}s to first tiles, {len(html):,} bytes HTML, "
          f"{len(tiles)} tile responses, {counts} count numbers")


def test_map_page_is_cached_and_gzipped(app: FastAPI, base_url: str, demo_engine) -> None:
    invalidate_pages(app)
    with httpx.Client(base_url=base_url, timeout=300,
                      headers=headers_for(demo_engine, "analyst")) as client:
        started = time.perf_counter()
        first = client.get("/map")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        second = client.get("/map")
        warm = time.perf_counter() - started
        revalidated = client.get("/map", headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == second.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    assert first.text == second.text
    assert '<html lang="zh-CN">' in first.text
    assert revalidated.status_code == 304
    assert warm < cold
    gzipped = int(first.headers["content-length"])
    assert len(first.content) <= PAGE_BUDGET and gzipped < 100_000
    print(f"\n/map cold {cold:.2f}s, cached {warm * 1000:.0f} ms, "
          f"{len(first.content) / 1e6:.2f} MB HTML, {gzipped / 1e6:.2f} MB gzip")


def test_index_page_links(base_url: str) -> None:
    response = httpx.get(f"{base_url}/")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    # Anonymous: the public map and sign-in, never a page that needs a session.
    for href, label in (("/public", "便民服务地图"), ("/login", "工作人员登录"),
                        ("/docs", "API 文档"), ("/health", "")):
        assert f'href="{href}"' in response.text and label in response.text
    assert 'href="/map"' not in response.text and 'href="/dispatch"' not in response.text


def test_map_page_sends_a_person_without_a_session_to_login(base_url: str) -> None:
    response = httpx.get(f"{base_url}/map?x=1", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/map%3Fx%3D1"
    assert httpx.get(f"{base_url}/map").status_code == 401  # an API client gets a 401
    login = httpx.get(f"{base_url}/login?next=/map")
    assert login.status_code == 200 and "工作人员登录" in login.text
