"""The planner page: rendered offline, then driven in headless Chromium (Debian's).

The browser may only talk to the app: every other request is aborted and counted. The test
draws polygons with the leaflet-draw tool by clicking vertices, fills the form and saves: a
compliant zone is stored (checked through the API and the database), a zone on the
demonstration street is refused and its violation painted on the map and listed in the panel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import LineString, Point
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.db import transaction
from maps.assets import external_urls, render_html
from maps.planner import planner_map
from tests.accounts import headers_for
from tests.browser import chromium_or_skip, offline_page, serve
from tests.test_zone_rules import Town, build_town, test_city


def test_planner_page_renders_offline_without_a_database() -> None:
    layers = {
        "roads": gpd.GeoDataFrame({"id": [1], "name": ["泉城路"], "street_class": ["managed"],
                                   "width_m": [12.0]},
                                  geometry=[LineString([(117.0, 36.6), (117.01, 36.6)])],
                                  crs=4326),
        "sensitive_sites": gpd.GeoDataFrame({"id": [1], "name": ["小学"], "kind": ["school_gate"],
                                             "clear_width_m": [None]},
                                            geometry=[Point(117.005, 36.601)], crs=4326),
    }
    html = render_html(planner_map(layers, center=(36.6, 117.0), title="测试 摊群点规划"),
                       title="测试 摊群点规划")
    assert external_urls(html) == []
    assert '<html lang="zh-CN">' in html
    assert "/static/vendor/leaflet-draw/leaflet.draw.js" in html
    for text_zh in ("保存草稿", "经营日", "按时刻查看开放的摊群点", "摊位数"):
        assert text_zh in html
    # Data travels through Jinja's tojson, which escapes non-ASCII characters.
    assert json.dumps("泉城路") in html and "school_gate" in html


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def town(engine: Engine) -> Town:
    with transaction(engine) as session:
        return build_town(session, lon=117.0, lat=35.95, prefix="9997")


@pytest.fixture(scope="module")
def base_url(engine: Engine, test_settings, town: Town) -> Iterator[str]:
    """uvicorn serving the app on a free loopback port in a background thread."""
    settings = test_settings.model_copy(deep=True)
    settings.city = test_city(settings.city)
    with serve(create_app(settings)) as url:
        yield url


@pytest.mark.browser
def test_draw_save_and_see_violations_in_chromium(chromium: Path, base_url: str, town: Town,
                                                  engine: Engine) -> None:
    def lonlat(x: float, y: float) -> tuple[float, float]:
        return town.wgs84(Point(x, y)).coords[0]

    planner = headers_for(engine, "planner")
    username = httpx.get(f"{base_url}/auth/me", headers=planner).json()["username"]
    with offline_page(chromium, extra_http_headers=planner) as browser:
        page = browser.page
        response = page.goto(f"{base_url}/planner", wait_until="load", timeout=120_000)
        assert response is not None and response.status == 200
        page.wait_for_function("() => window.cgPlanner && window.L && L.Control.Draw",
                               timeout=60_000)
        # Look at the town's north side: the 示范街 along y = 1500, free ground below it.
        lon, lat = lonlat(0, 1450)
        page.evaluate(f"cgPlanner.map.setView([{lat}, {lon}], 18, {{animate: false}})")

        def screen(x: float, y: float) -> tuple[float, float]:
            lo, la = lonlat(x, y)
            pt = page.evaluate(f"(() => {{ const p = cgPlanner.map.latLngToContainerPoint("
                               f"[{la}, {lo}]); return [p.x, p.y]; }})()")
            box_ = page.locator(".folium-map").bounding_box()
            assert box_ is not None
            return box_["x"] + pt[0], box_["y"] + pt[1]

        def draw(corners: list[tuple[float, float]]) -> None:
            page.locator(".leaflet-draw-draw-polygon").click()
            for x, y in [*corners, corners[0]]:  # clicking the first vertex closes the ring
                # leaflet-draw ignores clicks for 50 ms after each vertex (a timer); on a
                # loaded machine that is longer, so wait for it rather than sleep.
                page.wait_for_function("() => !cgPlanner.polygonTool._disableMarkers")
                page.mouse.click(*screen(x, y))
            page.wait_for_function("() => cgPlanner.drawn.getLayers().length === 1")

        def fill(name: str) -> None:
            page.fill("#cg-name", name)
            page.select_option("#cg-type", "night_market")
            page.fill("#cg-capacity", "20")
            page.fill("#cg-operator", "测试街道办事处")

        # 1. A compliant zone 30-60 m south of the street edge: stored.
        draw([(-30, 1420), (20, 1420), (20, 1450), (-30, 1450)])
        fill("浏览器夜市")
        page.click("#cg-save")
        page.wait_for_selector("#cg-result.ok", timeout=30_000)
        zone_id = int(page.get_attribute("#cg-result", "data-zone-id") or 0)
        stored = httpx.get(f"{base_url}/zones/{zone_id}", headers=planner).json()
        assert stored["properties"]["name"] == "浏览器夜市"
        assert stored["properties"]["status"] == "draft"
        assert town.local(stored["geometry"]).area == pytest.approx(1500, rel=0.02)
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT v.changed_by, v.action FROM stall_zone_versions v "
                "WHERE v.zone_id = :i"), {"i": zone_id}).one()
        assert tuple(row) == (username, "create")

        # 2. A zone reaching into the demonstration street's buffer: refused and painted.
        draw([(-30, 1460), (20, 1460), (20, 1495), (-30, 1495)])
        fill("越界夜市")
        page.click("#cg-save")
        page.wait_for_selector(".cg-violation", timeout=30_000)
        rules = page.eval_on_selector_all(".cg-violation",
                                          "els => els.map(e => e.dataset.rule)")
        assert "demonstration_street" in rules
        assert "示范" in page.inner_text("#cg-violations")
        assert "未通过检查" in page.inner_text("#cg-result")
        painted = page.evaluate("""() => ({
            layers: cgPlanner.violations.getLayers().length,
            paths: document.querySelectorAll(
                '.leaflet-overlay-pane path[stroke="#d50000"]').length})""")
        assert painted["layers"] >= 1 and painted["paths"] >= 1, painted
        names = [f["properties"]["name"]
                 for f in httpx.get(f"{base_url}/zones", headers=planner).json()["features"]]
        assert "越界夜市" not in names and "浏览器夜市" in names

        # 3. The time picker: the new draft (every day 18:00-22:30) is open on Friday 19:30.
        page.fill("#cg-at", "2026-06-05T19:30")
        page.check("#cg-drafts")
        page.click("#cg-at-go")
        page.wait_for_selector("#cg-at-result[data-count]", timeout=30_000)
        assert "浏览器夜市" in page.inner_text("#cg-at-result")
        assert page.evaluate("cgPlanner.active.getLayers().length") >= 1
        assert page.evaluate("document.documentElement.lang") == "zh-CN"

        # 4. Split the stored zone with a line across it: two drafts, the original retired.
        page.evaluate(f"""() => Object.values(cgPlanner.zoneGroups).forEach(g =>
            g.eachLayer(l => {{
                if (l.feature.properties.id === {zone_id}) l.openPopup();
            }}))""")
        page.click(f'button[data-act="split"][data-id="{zone_id}"]')
        page.wait_for_function("() => cgPlanner.splitLine.enabled()")
        for n, (x, y) in enumerate(((-5, 1410), (-5, 1458)), 1):
            # leaflet-draw ignores clicks for 50 ms after each vertex (a timer); on a
            # loaded machine that is longer, so wait for it rather than sleep.
            page.wait_for_function("() => !cgPlanner.splitLine._disableMarkers")
            page.mouse.move(*screen(x, y), steps=5)
            page.mouse.down()
            page.mouse.up()
            page.wait_for_function(f"() => (cgPlanner.splitLine._markers || []).length >= {n}"
                                   " || !cgPlanner.splitLine.enabled()", timeout=10_000)
        try:
            page.wait_for_selector("#cg-result[data-split-into], #cg-result.bad",
                                   timeout=30_000)
        except Exception:
            state = page.evaluate("() => [cgPlanner.splitLine.enabled(), "
                                  "(cgPlanner.splitLine._markers || []).length]")
            pytest.fail(f"split not sent: handler enabled, vertices = {state}; "
                        f"{page.inner_text('#cg-result')}")
        assert page.get_attribute("#cg-result", "data-split-into") == "2", \
            page.inner_text("#cg-result")
        assert httpx.get(f"{base_url}/zones/{zone_id}",
                         headers=planner).json()["properties"]["status"] \
            == "retired"
        parts = [f for f in httpx.get(f"{base_url}/zones", headers=planner).json()["features"]
                 if f["properties"]["name"].startswith("浏览器夜市-")]
        assert sorted(round(town.local(f["geometry"]).area) for f in parts) \
            == pytest.approx([750, 750], rel=0.05)

        browser.screenshot("planner.png")

    external, errors = browser.external, browser.errors
    assert external == [], f"page tried to leave the app: {external}"
    # Chromium logs every 4xx response; the one 422 is the refusal the test provoked.
    refusal = "the server responded with a status of 422"
    assert sum(refusal in e for e in errors) == 1, errors
    assert [e for e in errors if refusal not in e] == [], f"JavaScript errors: {errors}"
