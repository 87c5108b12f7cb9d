"""Issue 15's page budget: 512 px tiles, the ready flag, caches and cache headers.

The map pages draw the app's vector tiles 512 px wide (a quarter of the requests); the server
then judges zoom thresholds at the drawn zoom, so the picture is the one 256 px tiles gave.
Static files carry Cache-Control and come gzipped from a per-process cache; /public's HTML
is kept per process keyed by its inputs, and an edit shows on the next request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import STATIC_DIR
from tests.geo.test_vector_tiles import tiles_covering
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

SIZES = [(1440, 900), (390, 844)]


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(demo_app: FastAPI) -> Iterator[str]:
    with serve(demo_app) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    # Against the served app (one lifespan), as the browser tests below.
    with httpx.Client(base_url=base_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def analyst(demo_engine: Engine) -> dict[str, str]:
    return headers_for(demo_engine, "analyst")


def layers_of(body: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(body) if body else {}


def test_a_512_px_tile_holds_what_its_drawn_zoom_shows(client, demo_engine: Engine,
                                                       analyst: dict[str, str]) -> None:
    # Zoom 13 drawn at 512 px is shown at map zoom 14: communities and road names (from 14)
    # are in it; the same address drawn at 256 px (map zoom 13) has neither.
    x, y = tiles_covering(demo_engine, 13, "370102")[0]
    small = client.get(f"/tiles/basemap/13/{x}/{y}.pbf", headers=analyst)
    big = client.get(f"/tiles/basemap/13/{x}/{y}.pbf?px=512", headers=analyst)
    assert small.status_code == big.status_code == 200
    small_layers, big_layers = layers_of(small.content), layers_of(big.content)
    assert "communities" in big_layers and "communities" not in small_layers
    kinds = {f["properties"]["kind"] for f in big_layers["labels"]["features"]}
    assert "road" in kinds, kinds
    # Grid cells: zoom 14 at 512 px is map zoom 15, where cells replace communities.
    x, y = tiles_covering(demo_engine, 14, "370102")[0]
    cells = layers_of(client.get(f"/tiles/grid_cells/14/{x}/{y}.pbf?px=512",
                                      headers=analyst).content)["grid_cells"]["features"]
    communities = layers_of(client.get(f"/tiles/grid_cells/14/{x}/{y}.pbf",
                                            headers=analyst).content)["grid_cells"]["features"]
    assert cells and all("code" in f["properties"] for f in cells)
    assert communities and all("cells" in f["properties"] for f in communities)


@pytest.mark.parametrize("px", ["300", "1024", "abc"])
def test_other_tile_sizes_are_refused(client, analyst: dict[str, str], px: str) -> None:
    answer = client.get(f"/tiles/basemap/13/6846/3187.pbf?px={px}", headers=analyst)
    assert answer.status_code == 422


def test_a_512_px_tile_still_needs_a_signed_in_staff_member(client) -> None:
    assert client.get("/tiles/basemap/13/6846/3187.pbf?px=512").status_code in (401, 403)
    assert client.get("/tiles/cases/13/6846/3187.pbf?px=512").status_code in (401, 403)


def test_static_files_are_cached_and_come_gzipped(client) -> None:
    url = "/static/vendor/leaflet/leaflet.js"
    answer = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert "max-age=86400" in answer.headers["cache-control"]
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.content == (STATIC_DIR / "vendor/leaflet/leaflet.js").read_bytes()
    again = client.get(url, headers={"Accept-Encoding": "gzip",
                                          "If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"]
    versioned = client.get(url + "?v=1.9.4", headers={"Accept-Encoding": "gzip"})
    assert "immutable" in versioned.headers["cache-control"]
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and "max-age" in plain.headers["cache-control"]
    assert plain.content == answer.content
    image = client.get("/static/vendor/leaflet/images/marker-icon.png")
    assert image.status_code == 200 and "max-age" in image.headers["cache-control"]


def test_public_page_is_reused_until_a_place_changes(client, demo_engine: Engine) -> None:
    first = client.get("/public?at=2026-06-05T10:00")
    second = client.get("/public?at=2026-06-05T10:00")
    assert first.status_code == second.status_code == 200
    assert second.headers["x-page-cache"] == "hit" and second.text == first.text
    with demo_engine.begin() as conn:
        fid, name = conn.execute(text(
            "SELECT id, name FROM facilities WHERE kind = 'public_toilet' ORDER BY id LIMIT 1"
        )).one()
        conn.execute(text("UPDATE facilities SET name = :n WHERE id = :id"),
                     {"n": name + "（改）", "id": fid})
    try:
        third = client.get("/public?at=2026-06-05T10:00")
        assert third.headers["x-page-cache"] == "miss"
        new = json.dumps(name + "（改）")[1:-1]  # as the page's JSON writes it
        assert new in third.text and new not in first.text
        # another moment is another page ("open now" differs)
        other = client.get("/public?at=2026-06-05T23:30")
        assert other.headers["x-page-cache"] == "miss"
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("UPDATE facilities SET name = :n WHERE id = :id"),
                         {"n": name, "id": fid})


@pytest.mark.parametrize("width,height", SIZES)
def test_map_draws_512_px_base_tiles_and_says_when_ready(
        chromium: Path, base_url: str, analyst: dict[str, str], width: int,
        height: int) -> None:
    with offline_page(chromium, width=width, height=height,
                      extra_http_headers=analyst) as browser:
        page = browser.page
        responses: list = []
        events: list[tuple[str, str]] = []  # (request | finished, url) in the order they happen
        page.on("response", lambda r: responses.append(r))
        page.on("request", lambda r: events.append(("request", r.url)))
        page.on("requestfinished", lambda r: events.append(("finished", r.url)))
        page.goto(f"{base_url}/map", wait_until="load", timeout=180_000)
        page.wait_for_function("() => window.cgReady && cgReady.view !== undefined",
                               timeout=90_000)
        ready = page.evaluate("window.cgReady")
        data_after = page.evaluate("cgOverview.dataAfter")
        assert 0 < ready["interactive"] <= ready["view"]
        zoom = page.evaluate("cgOverview.map.getZoom()")
        sizes = page.evaluate("""() => [...document.querySelectorAll(
            '.leaflet-cg-base-pane .leaflet-tile')].map(t => t.getBoundingClientRect().width)""")
        assert sizes and all(abs(s - 512) < 1 for s in sizes), sizes
        # The base map is drawn on canvas tiles (SVG cost the main thread most of a second):
        # some tile has painted pixels, and none is an SVG tile any more.
        page.wait_for_function("""() => [...document.querySelectorAll(
            '.leaflet-cg-base-pane canvas.leaflet-tile')].some(c => {
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              for (let i = 3; i < d.length; i += 4) { if (d[i]) { return true; } }
              return false; })""", timeout=30_000)
        assert page.evaluate("document.querySelectorAll("
                             "'.leaflet-cg-base-pane svg.leaflet-tile').length") == 0
        browser.screenshot(f"budget_map_{width}.png")
    base_tiles = [r for r in responses if "/tiles/basemap/" in r.url]
    assert base_tiles and all(r.url.endswith("?px=512") for r in base_tiles)
    assert all(f"/tiles/basemap/{zoom - 1}/" in r.url for r in base_tiles[:4])
    for r in base_tiles:
        assert r.status == 200, r.url
        assert "max-age" in r.headers["cache-control"] and r.headers.get("etag")
    data_tiles = [r for r in responses if "/tiles/" in r.url and "/basemap/" not in r.url]
    assert data_tiles and all("px=512" in r.url and r.status == 200 for r in data_tiles)
    # The base map goes first: the data layers are added once its first view is drawn (or
    # after 4 s without it), so no data tile is asked for before the first base tiles arrived.
    assert data_after in ("base", "timeout")
    if data_after == "base":
        first_data = min(i for i, (kind, url) in enumerate(events)
                         if kind == "request" and "/tiles/" in url and "/basemap/" not in url)
        base_done = [i for i, (kind, url) in enumerate(events)
                     if kind == "finished" and f"/tiles/basemap/{zoom - 1}/" in url]
        assert base_done and max(base_done) < first_data, (base_done, first_data)
    statics = [r for r in responses if "/static/" in r.url]
    assert statics and all("max-age" in r.headers.get("cache-control", "") for r in statics)
    assert browser.external == [], browser.external
    assert browser.errors == [], browser.errors


@pytest.mark.parametrize("width,height", SIZES)
def test_public_page_says_when_ready(chromium: Path, base_url: str, width: int,
                                     height: int) -> None:
    httpx.get(f"{base_url}/public", timeout=120)  # rendered once: the browser gets the copy
    with offline_page(chromium, width=width, height=height) as browser:
        page = browser.page
        page.goto(f"{base_url}/public", wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.cgReady && cgReady.interactive !== undefined",
                               timeout=30_000)
        assert page.evaluate("cgPublic.visible().length") > 0
    assert browser.external == [], browser.external
    assert browser.errors == [], browser.errors


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/login", "/public", "/public/report"])
def test_anonymous_pages_log_no_error_in_a_plain_browser(chromium: Path, base_url: str,
                                                         path: str) -> None:
    # Without Playwright routes Chromium asks for /favicon.ico by itself on a page naming no
    # icon, as every user's browser does; a 404 there was a console error on /login.
    with offline_page(chromium, width=390, height=844, intercept=False) as browser:
        response = browser.page.goto(base_url + path, wait_until="load")
        browser.page.wait_for_timeout(300)
        errors, external = list(browser.errors), list(browser.external)
    assert response is not None and response.status == 200
    assert errors == [] and external == []


def test_the_favicon_is_the_apps_icon(client: httpx.Client) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
