"""The dispatcher desk (调度台) as a product, in Chromium at desktop (1440x900) and phone (390x844).

A hotline operator types an address, picks a suggestion, sees the grid, files the case and sees
it at once in the 新建 list, with its case number; the page is small (grid cells come as vector
tiles), nothing overlaps, every control is finger-sized on a phone, the map is never 0 px wide,
the coordinate system starts on WGS84 and remembers the user's choice, a clicked point gets its
address by reverse geocoding, and the console stays clean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

PAGE_BUDGET_BYTES = 300_000
GRID_TILES = "/ogc/collections/grid_cells/tiles/WebMercatorQuad/"
# The boxes of the desk that must never cover each other (hidden ones are skipped).
BOXES_JS = """() => Object.fromEntries(
    ['.folium-map', '#cg-panel', '#cg-side', '#cg-sheet-tabs'].map(sel => {
        const el = document.querySelector(sel);
        const r = el.getBoundingClientRect();
        const shown = getComputedStyle(el).display !== 'none' && r.width > 0 && r.height > 0;
        return [sel, shown ? [r.left, r.top, r.right, r.bottom] : null];
    }))"""
# Every visible control a finger may need on the desk.
SMALL_CONTROLS_JS = """() => Array.from(document.querySelectorAll(
        '#cg-panel button, #cg-panel input, #cg-panel select, #cg-side button,' +
        '#cg-sheet-tabs button, .leaflet-control-zoom a, .leaflet-control-layers-toggle'))
    .filter(el => el.offsetParent !== null && getComputedStyle(el).display !== 'none')
    .filter(el => el.getBoundingClientRect().height < 44)
    .map(el => (el.id || el.className || el.tagName) + ' ' +
               Math.round(el.getBoundingClientRect().height))"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(demo_settings) -> Iterator[str]:
    with serve(create_app(demo_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def plate(demo_engine: Engine) -> dict[str, Any]:
    """A demo doorplate (road + number) and the grids within a metre of it."""
    with demo_engine.connect() as conn:
        # The plate first: a select list is computed for the rows OFFSET skips, too.
        row = conn.execute(text("""
            WITH p AS (SELECT road_name, number, geom FROM doorplates
                       WHERE road_name IS NOT NULL ORDER BY id LIMIT 1 OFFSET 1234)
            SELECT p.road_name, p.number,
                   ARRAY(SELECT c.code::text FROM grid_cells c
                         WHERE c.geom && ST_Expand(p.geom, 0.0001)
                           AND ST_DWithin(c.geom::geography, p.geom::geography, 1)) AS grids
            FROM p""")).mappings().one()
    return dict(row)


def _no_overlap(boxes: dict[str, list[float] | None]) -> None:
    shown = {k: v for k, v in boxes.items() if v}
    names = sorted(shown)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ax1, ay1, ax2, ay2 = shown[a]
            bx1, by1, bx2, by2 = shown[b]
            overlap_x = min(ax2, bx2) - max(ax1, bx1)
            overlap_y = min(ay2, by2) - max(ay1, by1)
            assert overlap_x <= 1 or overlap_y <= 1, f"{a} {shown[a]} overlaps {b} {shown[b]}"


def _map_size(boxes: dict[str, list[float] | None]) -> tuple[float, float]:
    x1, y1, x2, y2 = boxes[".folium-map"] or [0, 0, 0, 0]
    return x2 - x1, y2 - y1


def _locate_by_suggestion(page: Any, plate: dict[str, Any]) -> str:
    """Type the plate's address key by key, pick the matching suggestion; the located grid."""
    address = f"{plate['road_name']}{plate['number']}号"
    page.click("#cg-address")
    page.keyboard.type(address, delay=20)
    page.wait_for_selector('#cg-geo-list[data-mode="suggest"] li', timeout=60_000)
    items = page.locator("#cg-geo-list li")
    texts = items.all_inner_texts()
    exact = [i for i, t in enumerate(texts) if address in t]
    items.nth(exact[0] if exact else 0).click()
    page.wait_for_selector("#cg-route[data-highlighted]", timeout=60_000)
    page.wait_for_selector("#cg-nearby[data-count]", timeout=60_000)
    return page.get_attribute("#cg-route", "data-highlighted") or ""


def _file_case(page: Any, description: str) -> str:
    """Press 立案派遣 and wait for the answer; the new case's number."""
    page.fill("#cg-desc", description)
    page.click("#cg-file")
    page.wait_for_function(
        """() => {
            const box = document.getElementById('cg-file-result');
            return box.classList.contains('ok') || box.classList.contains('bad');
        }""", timeout=60_000)
    result = page.inner_text("#cg-file-result")
    assert "已立案派遣" in result, result
    case_no = page.get_attribute("#cg-file-result", "data-case-no") or ""
    assert case_no and case_no in result
    assert "#" not in result  # case numbers, never internal ids
    # The answer is in sight inside the form panel.
    box = page.locator("#cg-file-result").bounding_box()
    panel = page.locator("#cg-panel").bounding_box()
    assert box and panel and panel["y"] <= box["y"] and \
        box["y"] + min(box["height"], 20) <= panel["y"] + panel["height"], (box, panel)
    return case_no


def _wait_for(found: list[str], page: Any, seconds: float = 30) -> None:
    """Let the page run until `found` (filled by a response handler) has an entry."""
    for _ in range(int(seconds * 4)):
        if found:
            return
        page.wait_for_timeout(250)


def _open_page(browser: Any, base_url: str) -> tuple[Any, list[str]]:
    page = browser.page
    tiles: list[str] = []
    # Canvases appear before their tile's answer: the answers are counted separately.
    page.on("response", lambda r: GRID_TILES in r.url and r.status in (200, 204)
            and tiles.append(r.url))
    response = page.goto(f"{base_url}/dispatch", wait_until="load", timeout=180_000)
    assert response is not None and response.status == 200
    size = len(response.body())
    assert size < PAGE_BUDGET_BYTES, f"/dispatch is {size:,} bytes"
    page.wait_for_function("() => window.cgDispatch && window.L && L.vectorGrid",
                           timeout=60_000)
    page.wait_for_selector("#cg-open-list[data-count]", state="attached", timeout=120_000)
    assert int(page.get_attribute("#cg-open-list", "data-count") or 0) > 0
    return page, tiles


def test_page_uses_the_optional_routes_the_app_has(demo_settings, demo_engine: Engine) -> None:
    # The page never probes (a 404 is a console error): the api tells it what exists.
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as client:
        html = client.get("/dispatch").text
        config = json.loads(re.search(r"var CONFIG = (\{.*?\});\n", html)[1])  # type: ignore[index]
        probes = {"suggest": client.get("/geocode/suggest", params={"q": "泉城路"}),
                  "recent": client.get("/cases/recent")}
    for name, answer in probes.items():
        assert config["services"][name] == (answer.status_code == 200), (name, answer.text)
    assert "grid_cells" not in config and len(html) < PAGE_BUDGET_BYTES


@pytest.mark.browser
def test_desk_on_a_desktop(chromium: Path, base_url: str, demo_engine: Engine,
                           plate: dict[str, Any]) -> None:
    dispatcher = headers_for(demo_engine, "dispatcher")
    with offline_page(chromium, width=1440, height=900,
                      extra_http_headers=dispatcher) as browser:
        page, tiles = _open_page(browser, base_url)
        boxes = page.evaluate(BOXES_JS)
        _no_overlap(boxes)
        width, height = _map_size(boxes)
        assert width >= 600 and height >= 600, boxes
        assert boxes["#cg-sheet-tabs"] is None  # phones only

        # WGS84 first; a choice is remembered across visits.
        assert page.input_value("#cg-crs") == "wgs84"
        page.select_option("#cg-crs", "gcj02")
        page.reload(wait_until="load")
        page.wait_for_function("() => window.cgDispatch", timeout=60_000)
        assert page.input_value("#cg-crs") == "gcj02"
        page.select_option("#cg-crs", "wgs84")

        grid = _locate_by_suggestion(page, plate)
        assert grid in plate["grids"], (grid, plate)
        assert page.input_value("#cg-addr-text")
        # The grid is drawn from the public vector tiles at this zoom.
        page.wait_for_function(
            "() => document.querySelectorAll('.leaflet-cg-grids-pane canvas').length > 0",
            timeout=30_000)
        _wait_for(tiles, page)
        assert tiles, "no grid vector tile fetched"

        case_no = _file_case(page, "浏览器测试：桌面端按地址立案")
        new_item = f'#cg-new-list li[data-case-no="{case_no}"]'
        assert page.is_visible(new_item)  # at once, in the 新建 tab
        assert int(page.inner_text("#cg-new-badge")) >= 1
        with demo_engine.connect() as conn:
            stored = conn.execute(text("SELECT status, grid_code FROM cases WHERE case_no = :n"),
                                  {"n": case_no}).one()
        assert stored.status == "dispatched" and stored.grid_code == grid

        # A click on the map: the point's address by reverse geocoding.
        page.fill("#cg-addr-text", "")
        mapbox = page.locator(".folium-map").bounding_box()
        assert mapbox is not None
        page.mouse.click(mapbox["x"] + mapbox["width"] * 0.3,
                         mapbox["y"] + mapbox["height"] * 0.6)
        page.wait_for_selector('#cg-addr-text[data-source="reverse"]', timeout=60_000)
        assert page.input_value("#cg-addr-text").startswith(("济南市", "历下区"))
        browser.screenshot("dispatcher-desk-1440.png")

    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"console errors: {browser.errors}"


@pytest.mark.browser
def test_desk_on_a_phone_and_a_tablet(chromium: Path, base_url: str, demo_engine: Engine,
                                      plate: dict[str, Any]) -> None:
    dispatcher = headers_for(demo_engine, "dispatcher")
    with offline_page(chromium, width=390, height=844, is_mobile=True, has_touch=True,
                      extra_http_headers=dispatcher) as browser:
        page, tiles = _open_page(browser, base_url)
        boxes = page.evaluate(BOXES_JS)
        _no_overlap(boxes)
        width, height = _map_size(boxes)
        assert width == 390 and height >= 300, boxes
        assert boxes["#cg-side"] is None and boxes["#cg-panel"] and boxes["#cg-sheet-tabs"]
        assert page.evaluate(SMALL_CONTROLS_JS) == []
        assert page.input_value("#cg-crs") == "wgs84"

        grid = _locate_by_suggestion(page, plate)
        assert grid in plate["grids"], (grid, plate)
        # The map above the sheet shows the located grid.
        assert page.evaluate("cgDispatch.highlight.getLayers().length") == 1
        assert page.evaluate("cgDispatch.map.getBounds().contains(cgDispatch.highlight"
                             ".getLayers()[0].getBounds().getCenter())")

        case_no = _file_case(page, "浏览器测试：手机端按地址立案")
        page.click('#cg-sheet-tabs button[data-sheet="side"]')
        assert page.is_visible(f'#cg-new-list li[data-case-no="{case_no}"]')
        boxes = page.evaluate(BOXES_JS)
        _no_overlap(boxes)
        assert boxes["#cg-panel"] is None and boxes["#cg-side"]
        assert page.evaluate(SMALL_CONTROLS_JS) == []
        browser.screenshot("dispatcher-desk-390.png")

        # 全屏地图: the sheet folds away, the map takes the screen.
        page.click('#cg-sheet-tabs button[data-sheet="map"]')
        boxes = page.evaluate(BOXES_JS)
        assert boxes["#cg-panel"] is None and boxes["#cg-side"] is None
        assert _map_size(boxes)[1] >= 600

        # A tablet (768x1024) keeps the same sheet layout without overlap.
        page.set_viewport_size({"width": 768, "height": 1024})
        page.click('#cg-sheet-tabs button[data-sheet="panel"]')
        boxes = page.evaluate(BOXES_JS)
        _no_overlap(boxes)
        width, height = _map_size(boxes)
        assert width == 768 and height >= 400, boxes
        assert page.evaluate(SMALL_CONTROLS_JS) == []
        browser.screenshot("dispatcher-desk-768.png")
        _wait_for(tiles, page)
        assert tiles, "no grid vector tile fetched"

    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"console errors: {browser.errors}"


@pytest.mark.browser
def test_desk_shows_a_case_filed_elsewhere_without_reload(chromium: Path, base_url: str,
                                                          demo_engine: Engine) -> None:
    # Another dispatcher (here: a plain HTTP client) files a case; the open desk hears it on
    # GET /events/cases (NOTIFY from the filing transaction) and lists it in 新建, no reload.
    import httpx

    dispatcher = headers_for(demo_engine, "dispatcher")
    with demo_engine.connect() as conn:
        x, y = conn.execute(text("SELECT ST_X(ST_PointOnSurface(geom)), "
                                 "ST_Y(ST_PointOnSurface(geom)) FROM grid_cells "
                                 "ORDER BY code LIMIT 1 OFFSET 77")).one()
    with offline_page(chromium, width=1440, height=900,
                      extra_http_headers=dispatcher) as browser:
        page, _ = _open_page(browser, base_url)
        page.wait_for_function("() => window.cgDispatch.live.open", timeout=60_000)
        loads = page.evaluate("() => performance.getEntriesByType('navigation').length")
        filed = httpx.post(f"{base_url}/cases", headers=dispatcher, timeout=60, json={
            "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": x, "y": y, "description": "另一台调度台立案"})
        assert filed.status_code == 201, filed.text
        case_no = filed.json()["case_no"]
        page.wait_for_function("() => window.cgDispatch.live.events >= 1", timeout=30_000)
        page.wait_for_selector(f'#cg-new-list li[data-case-no="{case_no}"]', state="attached",
                               timeout=30_000)
        assert page.evaluate("() => performance.getEntriesByType('navigation').length") == loads
    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"console errors: {browser.errors}"
