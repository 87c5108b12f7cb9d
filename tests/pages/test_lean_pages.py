"""Issue 15's page budget: the map pages link only what they use (maps/lean_assets.py).

folium links jQuery, Bootstrap, glyphicons, Font Awesome and awesome-markers on every map;
citygrid's pages use none of them, so they are dropped (Bootstrap's stylesheet becomes its
Reboot part). Checked in Chromium at desktop and phone size: the pages still draw and say when
they are ready, request none of the dropped files, log no error and fetch nothing outside.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import folium
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from api.tile_warmup import first_view_tiles
from maps.assets import render_html
from maps.lean_assets import REBOOT_CSS, UNUSED_FILES, needs_folium_defaults
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

SIZES = [(1440, 900), (390, 844)]


def linked_unused(html: str) -> list[str]:
    return [name for name in UNUSED_FILES if name in html]


def test_a_plain_map_links_only_leaflet_and_reboot() -> None:
    html = render_html(folium.Map(location=[36.66, 117.05], tiles=None), shell=None)
    assert linked_unused(html) == []
    assert "/static/vendor/leaflet/leaflet.js" in html and REBOOT_CSS in html


def test_a_map_whose_elements_need_jquery_keeps_folium_defaults() -> None:
    m = folium.Map(location=[36.66, 117.05], tiles=None)
    folium.Marker([36.66, 117.05], popup=folium.Popup("<b>x</b>")).add_to(m)
    assert needs_folium_defaults(m)
    html = render_html(m, shell=None)
    assert "jquery.min.js" in html and "leaflet.awesome-markers" in html


@pytest.fixture(scope="module")
def base_url(demo_app: FastAPI) -> Iterator[str]:
    with serve(demo_app) as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


# Every map page says when it is ready (window.cgReady: overview and analysis maps when the
# first view's tiles are drawn, the desk when its case lists are in, the planner once drawn).
READY = "window.cgReady && cgReady.view !== undefined"
PAGES = [
    ("dispatcher", "/map", READY),
    ("analyst", "/analysis/map/hotspots", READY),
    ("dispatcher", "/dispatch", READY + " && document.querySelectorAll("
                                "'#cg-open-list li').length > 0"),
    ("planner", "/planner", READY + " && document.querySelectorAll("
                            "'.leaflet-overlay-pane path').length > 0"),
]


@pytest.mark.browser
@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("role,path,drawn", PAGES)
def test_map_pages_draw_without_the_dropped_files(chromium: Path, base_url: str,
                                                  demo_app: FastAPI, demo_engine: Engine,
                                                  role: str, path: str, drawn: str, width: int,
                                                  height: int) -> None:
    headers = headers_for(demo_engine, role)
    with offline_page(chromium, width=width, height=height,
                      extra_http_headers=headers) as browser:
        page = browser.page
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(base_url + path, wait_until="load", timeout=180_000)
        page.wait_for_function(f"() => {drawn}", timeout=90_000)
        ready = page.evaluate("window.cgReady")
        assert 0 < ready["interactive"] <= ready["view"]
        # Reboot still applies: every box sizes by its border, as with Bootstrap before.
        assert page.evaluate("getComputedStyle(document.body).boxSizing") == "border-box"
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
        browser.screenshot(f"lean{path.replace('/', '_')}_{width}.png")
        html = page.content()
        errors, external = list(browser.errors), list(browser.external)
    assert [u for u in requested if any(name in u for name in UNUSED_FILES)] == []
    if path == "/map":  # the first view's base tiles are the ones warmed at startup
        warmed = {(t.z, t.x, t.y) for t in first_view_tiles(demo_app.state.settings.city.center)}
        asked = {tuple(int(v) for v in m.groups()) for u in requested
                 if (m := re.search(r"/tiles/basemap/(\d+)/(\d+)/(\d+)\.pbf", u))}
        assert asked and asked <= warmed, asked - warmed
    if path.startswith("/analysis/"):  # fitted to the result before any layer asked a tile
        zooms = {int(m.group(1)) for u in requested
                 if (m := re.search(r"/tiles/(?:basemap|analysis/[\w-]+/\w+)/(\d+)/", u))}
        assert len(zooms) == 1, zooms
        # The base map's tiles are asked for before the results' (they follow in the same tick).
        first = {kind: min(i for i, u in enumerate(requested) if f"/tiles/{kind}/" in u)
                 for kind in ("basemap", "analysis")}
        assert first["basemap"] < first["analysis"], first
    assert linked_unused(html) == []
    assert any(u.endswith(REBOOT_CSS) for u in requested)
    assert errors == [], errors
    assert external == [], external
