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
from typing import Any

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import LineString, Point, box
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.platform.db import transaction
from maps.assets import external_urls, render_html
from maps.planner import planner_map
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve
from tests.zones.test_zone_rules import Town, build_town, test_city


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


def check_overlays(page: Any, engine: Engine) -> None:
    """Each overlay is in the layer control and draws one element per stored feature."""
    with engine.connect() as conn:
        roads: dict[str, int] = dict(conn.execute(text(
            "SELECT street_class, count(*) FROM roads GROUP BY 1")).all())
        sites: dict[str, int] = dict(conn.execute(text(
            "SELECT kind, count(*) FROM sensitive_sites GROUP BY 1")).all())
        zones: dict[str, int] = dict(conn.execute(text(
            "SELECT zone_type, count(*) FROM stall_zones WHERE status <> 'retired' "
            "GROUP BY 1")).all())
    assert {"demonstration", "managed", "commercial"} <= set(roads)
    assert {"school_gate", "kindergarten", "hospital"} <= set(sites)
    control = page.eval_on_selector_all(".leaflet-control-layers-overlays label",
                                        "els => els.map(e => e.textContent.trim())")
    for expected in ("道路：示范街", "道路：规范街", "道路：商业街", "学校/医院/地铁口/消防通道",
                     "禁设范围", "摊群点：夜市", "摊群点：早市", "摊群点：应季瓜果自产"):
        assert any(expected in label for label in control), (expected, control)
    # Per overlay: features, and of those, how many have an element in the document.
    drawn = page.evaluate("""() => {
        const out = {};
        for (const [name, group] of Object.entries(cgPlanner.overlays)) {
            const layers = [];
            group.eachLayer(l => layers.push(l));
            const kinds = {};
            layers.forEach(l => {
                const k = l.feature ? (l.feature.properties.street_class ||
                                       l.feature.properties.kind ||
                                       l.feature.properties.zone_type) : "buffer";
                kinds[k] = (kinds[k] || 0) + 1;
            });
            out[name.replace(/<[^>]*>/g, "").replace("■", "").replace("▮", "").trim()] = {
                on: cgPlanner.map.hasLayer(group), kinds: kinds,
                elements: layers.filter(l => (l._path || l._icon || {}).isConnected).length,
                count: layers.length};
        }
        return out;
    }""")
    for cls, label in (("demonstration", "示范街"), ("managed", "规范街"),
                       ("commercial", "商业街")):
        overlay = drawn[f"道路：{label}"]
        assert overlay["on"] and overlay["kinds"] == {cls: roads[cls]}, overlay
        assert overlay["elements"] == roads[cls], overlay
    overlay = drawn["学校/医院/地铁口/消防通道"]
    assert overlay["on"] and overlay["kinds"] == sites and overlay["elements"] == sum(
        sites.values()), overlay
    # One dashed circle per point site with a distance limit (schools, hospitals, metro).
    buffers = drawn["禁设范围"]
    points = sum(n for k, n in sites.items() if k != "fire_lane")
    assert buffers["count"] == points and buffers["elements"] == points, buffers
    for zone_type, label in (("night_market", "夜市"), ("morning_market", "早市")):
        overlay = drawn[f"摊群点：{label}"]
        assert overlay["on"] and overlay["count"] == zones.get(zone_type, 0), overlay
        assert overlay["elements"] == overlay["count"], overlay


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

        # 0. The reference overlays: streets by class, sensitive sites, zones by type, each
        # in the layer control and drawn (an SVG path or marker in the page per feature).
        check_overlays(page, engine)

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

        def open_popup(zid: int) -> None:
            page.evaluate(f"""() => Object.values(cgPlanner.zoneGroups).forEach(g =>
                g.eachLayer(l => {{
                    if (l.feature.properties.id === {zid}) l.openPopup();
                }}))""")
            page.wait_for_selector(f'.leaflet-popup button[data-id="{zid}"]', timeout=10_000)

        def result_says(words: str) -> None:
            page.wait_for_function(
                "w => document.getElementById('cg-result').textContent.includes(w)",
                arg=words, timeout=30_000)

        def painted(zid: int, status: str, version: int) -> None:
            """Wait for the page's reload of the zones to show `zid` at that status/version."""
            page.wait_for_function(
                """([id, status, version]) => Object.values(cgPlanner.zoneGroups).some(g =>
                    g.getLayers().some(l => l.feature.properties.id === id &&
                        l.feature.properties.status === status &&
                        l.feature.properties.version === version))""",
                arg=[zid, status, version], timeout=15_000)

        # 4. Split the stored zone with a line across it: two drafts, the original retired.
        open_popup(zone_id)
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
        west, east = sorted(parts, key=lambda f: town.local(f["geometry"]).centroid.x)
        west_id, east_id = west["id"], east["id"]

        # 5. 编辑: move the east part's north-east corner 10 m east with the edit tool and
        # save; the page sends properties.version = 1 and the server stores version 2.
        open_popup(east_id)
        page.click(f'button[data-act="edit"][data-id="{east_id}"]')
        page.wait_for_function("() => cgPlanner.drawn.getLayers().length === 1")
        # A closed popup fades out for 200 ms and catches the mouse until it is removed.
        page.wait_for_function("() => !document.querySelector('.leaflet-popup')")
        assert page.input_value("#cg-name") == east["properties"]["name"]
        page.locator(".leaflet-draw-edit-edit").click()
        page.wait_for_function("() => cgPlanner.editTool.enabled()")
        page.mouse.move(*screen(20, 1450))
        page.mouse.down()
        page.mouse.move(*screen(30, 1450), steps=10)
        page.mouse.up()
        page.locator('.leaflet-draw-actions a[title="保存修改"]').click()
        page.wait_for_function("() => !cgPlanner.editTool.enabled()")
        page.click("#cg-save")
        result_says(f"已保存草稿 #{east_id}（版本 2）")
        painted(east_id, "draft", 2)
        assert page.get_attribute("#cg-result", "data-zone-id") == str(east_id)
        edited = httpx.get(f"{base_url}/zones/{east_id}", headers=planner).json()
        # A trapezoid now: 25 m x 30 m plus a 10 m x 30 m triangle.
        assert town.local(edited["geometry"]).area == pytest.approx(900, rel=0.05)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version, status FROM stall_zones WHERE id = :i"),
                               {"i": east_id}).one()
            history = conn.execute(text(
                "SELECT version, action, changed_by FROM stall_zone_versions "
                "WHERE zone_id = :i ORDER BY version"), {"i": east_id}).all()
        assert tuple(row) == (2, "draft")
        assert [tuple(h) for h in history] == [(1, "create", username),
                                              (2, "update", username)]
        first = httpx.get(f"{base_url}/zones/{east_id}/versions",
                          headers=planner).json()["features"][0]
        assert town.local(first["geometry"]).area == pytest.approx(750, rel=0.05)  # kept

        # 6. 批准: the edited draft is approved (version 3).
        open_popup(east_id)
        page.click(f'button[data-act="approve"][data-id="{east_id}"]')
        result_says(f"已批准 #{east_id}")
        painted(east_id, "approved", 3)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version, status FROM stall_zones WHERE id = :i"),
                               {"i": east_id}).one()
        assert tuple(row) == (3, "approved")

        # 7. 撤销: the west part is retired after the confirmation dialog, and leaves the map.
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        open_popup(west_id)
        page.click(f'button[data-act="retire"][data-id="{west_id}"]')
        result_says(f"已撤销 #{west_id}")
        assert dialogs == [f"确定撤销摊群点 #{west_id}？"]
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version, status FROM stall_zones WHERE id = :i"),
                               {"i": west_id}).one()
            last = conn.execute(text(
                "SELECT version, action, status FROM stall_zone_versions WHERE zone_id = :i "
                "ORDER BY version DESC LIMIT 1"), {"i": west_id}).one()
        assert tuple(row) == (2, "retired") and tuple(last) == (2, "retire", "retired")
        # The page says 已撤销 and then reloads the zones: wait for the repaint.
        shown_ids = """() => Object.values(cgPlanner.zoneGroups).flatMap(g =>
            g.getLayers().map(l => l.feature.properties.id))"""
        page.wait_for_function(f"() => !({shown_ids})().includes({west_id})", timeout=15_000)
        assert east_id in page.evaluate(shown_ids)

        browser.screenshot("planner.png")

    external, errors = browser.external, browser.errors
    assert external == [], f"page tried to leave the app: {external}"
    # Chromium logs every 4xx response; the one 422 is the refusal the test provoked.
    refusal = "the server responded with a status of 422"
    assert sum(refusal in e for e in errors) == 1, errors
    assert [e for e in errors if refusal not in e] == [], f"JavaScript errors: {errors}"


def test_planner_page_is_kept_until_a_zone_changes(base_url: str, engine: Engine,
                                                   town: Town) -> None:
    """The map part is kept per process by data versions; each user still gets their shell."""
    planner = headers_for(engine, "planner")
    dispatcher = headers_for(engine, "dispatcher")
    with httpx.Client(base_url=base_url, timeout=120) as client:
        first = client.get("/planner", headers=planner)
        again = client.get("/planner", headers=dispatcher)
        assert first.status_code == again.status_code == 200
        # Reused: computed once, and the other user's page carries the other user's shell.
        assert again.headers["X-Computed-At"] == first.headers["X-Computed-At"]
        assert "调度员" in again.text and "调度员" not in first.text
        # A zone saved through the API shows on the very next visit.
        made = client.post("/zones", json=town.zone(box(300, 300, 330, 330),
                                                    name="缓存刷新测试夜市"), headers=planner)
        assert made.status_code == 201, made.json()
        after = client.get("/planner", headers=planner)
        assert json.dumps("缓存刷新测试夜市") in after.text
        # A site written by another tool (not this process) shows too: versions, not events.
        site = town.wgs84(Point(500, 500))
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO sensitive_sites (name, kind, simulated, geom) VALUES "
                "('缓存刷新测试小学', 'school_gate', false, "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), {"x": site.x, "y": site.y})
        latest = client.get("/planner", headers=planner)
        assert json.dumps("缓存刷新测试小学") in latest.text
        assert latest.headers["X-Computed-At"] >= after.headers["X-Computed-At"]
