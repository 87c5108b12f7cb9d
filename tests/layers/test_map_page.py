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


def test_map_page_offline_in_chromium(chromium: Path, base_url: str, demo_engine) -> None:
    with offline_page(chromium, extra_http_headers=headers_for(demo_engine, "analyst")) as browser:
        page = browser.page
        started = time.perf_counter()
        response = page.goto(f"{base_url}/map", wait_until="load", timeout=180_000)
        assert response is not None and response.status == 200
        page.wait_for_function(
            "() => window.L && document.querySelector('.leaflet-control-layers')",
            timeout=60_000)
        load_s = time.perf_counter() - started

        overlays = [t.strip() for t in page.locator(
            ".leaflet-control-layers-overlays label").all_inner_texts()]
        for spec in LAYERS.values():
            assert spec.title_zh in overlays, f"{spec.title_zh} not in {overlays}"

        drawn = page.evaluate("""() => {
            const map = Object.values(window).find(v => v instanceof L.Map);
            const layers = [];
            map.eachLayer(l => layers.push(l));
            return {paths: layers.filter(l => l instanceof L.Path).length,
                    canvas: document.querySelectorAll('.leaflet-overlay-pane canvas').length,
                    heat: document.querySelectorAll('canvas.leaflet-heatmap-layer').length};
        }""")
        assert drawn["paths"] > 100, drawn  # grid cells, roads, outlines on the canvas
        assert drawn["canvas"] >= 1, drawn
        assert drawn["heat"] == 1, drawn  # cases

        # Streetlights start hidden (too many); switching them on must cluster them.
        page.locator(".leaflet-control-layers-overlays label",
                     has_text=LAYERS["streetlights"].title_zh).locator("input").check()
        page.wait_for_selector(".marker-cluster", timeout=30_000)
        clusters = page.locator(".marker-cluster").count()
        assert clusters > 0
        assert "城市管理综合地图" in page.locator(".cg-title").inner_text()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"

        browser.screenshot("map.png")

    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"
    print(f"\n/map loaded in Chromium in {load_s:.1f}s; {drawn}, {clusters} cluster icons")


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
    print(f"\n/map cold {cold:.2f}s, cached {warm * 1000:.0f} ms, "
          f"{len(first.content) / 1e6:.2f} MB HTML, {gzipped / 1e6:.2f} MB gzip")


def test_index_page_links(base_url: str) -> None:
    response = httpx.get(f"{base_url}/")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    for href, label in (("/map", "地图"), ("/docs", "API 文档"), ("/health", "")):
        assert f'href="{href}"' in response.text and label in response.text


def test_map_page_sends_a_person_without_a_session_to_login(base_url: str) -> None:
    response = httpx.get(f"{base_url}/map?x=1", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/map%3Fx%3D1"
    assert httpx.get(f"{base_url}/map").status_code == 401  # an API client gets a 401
    login = httpx.get(f"{base_url}/login?next=/map")
    assert login.status_code == 200 and "工作人员登录" in login.text
