"""The dispatcher page (调度台): rendered offline, then driven in headless Chromium (Debian's).

Over the demo city in real PostGIS, the browser may only talk to the app (every other request
is aborted and recorded). A dispatcher clicks the map, types a grid's inner point in WGS84 and
then its GCJ-02 equivalent: both land in the same grid, with the owner of the day. The open
cases come sorted by deadline; filing the same complaint three times through the button stores
three dispatched cases (raw GCJ-02 coordinates kept) and puts them on the 重点督办 list.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point, box
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from api.routes.dispatch.cases import CaseOut
from gis.geo.coords import wgs84_to_gcj02
from maps.assets import external_urls, render_html
from maps.dispatcher import dispatcher_map
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

CATEGORY = ("event", "0102")  # 暴露垃圾, from the seed table event_categories
CITY_TZ = ZoneInfo("Asia/Shanghai")


def _config(html: str) -> dict[str, Any]:
    match = re.search(r"var CONFIG = (\{.*?\});\n", html)
    assert match, "no CONFIG in the page"
    return json.loads(match[1])


def test_dispatcher_page_renders_offline_without_a_database() -> None:
    cell = box(117.0, 36.6, 117.001, 36.601)
    layers = {
        "districts": gpd.GeoDataFrame({"id": ["370102"], "name": ["历下区"]},
                                      geometry=[cell.buffer(0.01)], crs=4326),
        "grid_cells": gpd.GeoDataFrame({"id": ["37010200100101"]}, geometry=[cell], crs=4326),
        "stations": gpd.GeoDataFrame({"id": ["ST001"], "name": ["测试工作站"],
                                      "phone": ["0531-88880000"]},
                                     geometry=[Point(117.0005, 36.6005)], crs=4326),
    }
    categories = {"event": [{"code": "0102", "name": "暴露垃圾"}],
                  "component": [{"code": "0118", "name": "路灯"}]}
    deadlines = {"event:0102:normal:city": {
        "dispatch": {"duration": 30, "unit": "minutes", "rule_id": 2, "note": "一般 30 分钟"},
        "handle": None, "verify": None}}
    html = render_html(dispatcher_map(layers, center=(36.6, 117.0), categories=categories,
                                      deadlines=deadlines, title="测试 调度台"),
                       title="测试 调度台")
    assert external_urls(html) == []
    assert '<html lang="zh-CN">' in html
    assert "/static/vendor/leaflet/leaflet.js" in html
    for text_zh in ("定位", "坐标系", "立案派遣", "待办案件", "重点督办", "超期"):
        assert text_zh in html
    config = _config(html)
    assert set(config["labels"]["crs"]) == {"wgs84", "gcj02", "bd09", "cgcs2000"}
    assert config["defaults"] == {"category_type": "event", "category_code": "0102"}
    assert config["deadlines"]["event:0102:normal:city"]["dispatch"]["duration"] == 30
    assert config["bounds"][0][0] < 36.6 < config["bounds"][1][0]
    # Data travels through Jinja's tojson, which escapes non-ASCII characters.
    assert json.dumps("测试工作站") in html
    # Grid cells are never embedded: the page draws them from the public vector tiles.
    assert "37010200100101" not in html
    assert config["gridTiles"] == "/ogc/collections/grid_cells/tiles/WebMercatorQuad/{z}/{x}/{y}"
    assert "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js" in html
    assert config["crsDefault"] == "wgs84" and config["crsOrder"][0] == "wgs84"


def test_cases_filter_by_bbox(demo_settings, demo_engine: Engine) -> None:
    # Around the demo's first case: the demo leaves whole areas without complaints.
    with demo_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(geom), ST_Y(geom) FROM cases ORDER BY id LIMIT 1")).one()
    bbox = (round(lon - 0.005, 6), round(lat - 0.005, 6), round(lon + 0.005, 6),
            round(lat + 0.005, 6))
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as client:
        inside = client.get("/cases", params={"bbox": ",".join(map(str, bbox)),
                                              "limit": 10_000})
        assert inside.status_code == 200, inside.text
        found = [CaseOut.model_validate(c) for c in inside.json()]
        assert found and all(bbox[0] <= c.lon <= bbox[2] and bbox[1] <= c.lat <= bbox[3]
                             for c in found)
        with demo_engine.connect() as conn:
            expected = conn.execute(text(
                "SELECT count(*) FROM cases "
                "WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
                dict(zip("abcd", bbox, strict=True))).scalar_one()
        assert len(found) == expected
        refused = client.get("/cases", params={"bbox": "117.04,36.66,117.03,36.67"})
        assert refused.status_code == 422 and "117.04,36.66,117.03,36.67" in refused.text


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(demo_settings) -> Iterator[str]:
    with serve(create_app(demo_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def target(demo_engine: Engine) -> dict[str, Any]:
    """A demo grid with an owner today and no earlier 0102 complaint that a new one repeats."""
    today = dt.datetime.now(CITY_TZ).date()
    with demo_engine.connect() as conn:
        row = conn.execute(text("""
            SELECT g.code, ST_X(ST_PointOnSurface(g.geom)) AS lon,
                   ST_Y(ST_PointOnSurface(g.geom)) AS lat, o.owner_name
            FROM grid_cells g
            JOIN grid_owners o ON o.grid_code = g.code AND o.valid_from <= :day
                 AND (o.valid_to IS NULL OR o.valid_to > :day)
            WHERE NOT EXISTS (
                SELECT 1 FROM cases c
                WHERE c.category_type = :type AND c.category_code = :code
                  AND c.reported_at > now() - interval '60 days'
                  AND (c.grid_code = g.code OR ST_DWithin(
                       c.geom::geography, ST_PointOnSurface(g.geom)::geography, 80)))
              AND EXISTS (
                SELECT 1 FROM cases c WHERE c.status IN ('dispatched', 'handled', 'reported')
                  AND ST_DWithin(c.geom::geography, ST_PointOnSurface(g.geom)::geography, 250))
            -- Near the district's middle: a grid away from the edge looks like the usual case.
            ORDER BY g.geom <-> (SELECT ST_PointOnSurface(geom) FROM districts LIMIT 1), g.code
            LIMIT 1"""),
            {"day": today, "type": CATEGORY[0], "code": CATEGORY[1]}).mappings().one()
    return dict(row)


def type_point(page: Any, x: float, y: float, crs: str, code: str) -> None:
    """Type a point in `crs` into the form, press 定位 and wait for grid `code`."""
    page.click("#cg-clear")
    page.fill("#cg-x", f"{x:.7f}")
    page.fill("#cg-y", f"{y:.7f}")
    page.select_option("#cg-crs", crs)
    page.click("#cg-locate")
    _wait_located(page, code)


def _wait_located(page: Any, code: str) -> None:
    page.wait_for_selector(f'#cg-route[data-highlighted="{code}"]', timeout=60_000)
    page.wait_for_selector("#cg-nearby[data-count]", timeout=60_000)


@pytest.mark.browser
def test_locate_file_and_supervise_in_chromium(chromium: Path, base_url: str,
                                               demo_engine: Engine,
                                               target: dict[str, Any]) -> None:
    code, lon, lat, owner = target["code"], target["lon"], target["lat"], target["owner_name"]
    dispatcher = headers_for(demo_engine, "dispatcher")
    with offline_page(chromium, height=1000, extra_http_headers=dispatcher) as browser:
        page = browser.page
        response = page.goto(f"{base_url}/dispatch", wait_until="load", timeout=180_000)
        assert response is not None and response.status == 200
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        page.wait_for_function("() => window.cgDispatch && window.L", timeout=60_000)
        page.wait_for_selector("#cg-open-list[data-count]", timeout=120_000)
        assert page.input_value("#cg-cat-code") == CATEGORY[1]

        # 1. A click on the map fills the point in WGS84 and locates it.
        page.evaluate(f"cgDispatch.map.setView([{lat}, {lon}], 18, {{animate: false}})")
        mapbox = page.locator(".folium-map").bounding_box()
        assert mapbox is not None
        page.mouse.click(mapbox["x"] + mapbox["width"] / 2, mapbox["y"] + mapbox["height"] / 2)
        _wait_located(page, code)
        assert page.input_value("#cg-crs") == "wgs84"
        assert float(page.input_value("#cg-x")) == pytest.approx(lon, abs=2e-5)

        # 2. Typed in WGS84: the grid, its owner of the day, station, unit and deadlines.
        type_point(page, lon, lat, "wgs84", code)
        assert page.inner_text("#cg-grid-code") == code
        assert page.inner_text("#cg-owner") == owner
        route_text = page.inner_text("#cg-route")
        for heading in ("网格责任人", "联系电话", "城管工作站", "责任单位", "边界"):
            assert heading in route_text
        assert page.inner_text("#cg-station") and " 米" in route_text
        assert "环卫所" in page.inner_text("#cg-unit")  # rule 01 市容环境 -> sanitation
        assert "30 分钟" in page.inner_text('#cg-deadline [data-step="dispatch"]')
        assert page.evaluate("cgDispatch.highlight.getLayers().length") == 1
        nearby = int(page.get_attribute("#cg-nearby", "data-count") or 0)
        assert nearby >= 1 and page.evaluate("cgDispatch.nearby.getLayers().length") >= 1

        # 3. The same place in GCJ-02 (as WeChat sends it): the same grid.
        gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
        assert abs(gx - lon) + abs(gy - lat) > 1e-3  # the offset is hundreds of metres
        type_point(page, gx, gy, "gcj02", code)
        assert page.inner_text("#cg-grid-code") == code
        assert page.inner_text("#cg-owner") == owner
        assert "由 GCJ-02 换算" in page.inner_text("#cg-route")

        # 4. Open cases by deadline, nearest first; the 重点督办 tab shows its list.
        dues = page.eval_on_selector_all("#cg-open-list li.cg-open-case",
                                         "els => els.map(e => e.dataset.due)")
        assert dues, "no open cases listed"
        assert all(dues), dues  # cases with a deadline come before any without
        parsed = [dt.datetime.fromisoformat(d) for d in dues]
        assert parsed == sorted(parsed)
        page.click('.cg-tab[data-tab="supervised"]')
        assert page.is_visible("#cg-supervised-list")
        page.wait_for_selector("#cg-supervised-list[data-count]")
        page.click('.cg-tab[data-tab="overdue"]')
        assert page.is_visible("#cg-overdue-list")
        assert "超期未结案件共" in page.inner_text("#cg-overdue-count")
        page.click('.cg-tab[data-tab="supervised"]')

        # 5. 立案派遣 three times at the same place: three cases, the third makes them 重点督办.
        page.select_option("#cg-channel", "wechat")
        page.fill("#cg-desc", "浏览器测试：路边暴露垃圾")
        ids: list[int] = []
        for _ in range(3):
            page.click("#cg-file")
            page.wait_for_function(
                """(known) => {
                    const box = document.getElementById('cg-file-result');
                    const id = Number(box.dataset.caseId || 0);
                    return (box.classList.contains('ok') && id && !known.includes(id))
                        || box.classList.contains('bad');
                }""", arg=ids, timeout=60_000)
            assert "已立案派遣" in page.inner_text("#cg-file-result"), \
                page.inner_text("#cg-file-result")
            ids.append(int(page.get_attribute("#cg-file-result", "data-case-id") or 0))
        assert "重点督办" in page.inner_text("#cg-file-result")
        with demo_engine.connect() as conn:
            stored = conn.execute(text("""
                SELECT id, status, grid_code, raw_crs, raw_x, raw_y, category_type,
                       category_code, channel, supervised, simulated, due_at
                FROM cases WHERE id = ANY(:ids) ORDER BY id"""), {"ids": ids}).mappings().all()
        assert [r["id"] for r in stored] == sorted(ids)
        for r in stored:
            assert (r["status"], r["grid_code"], r["raw_crs"]) == ("dispatched", code, "gcj02")
            assert (r["raw_x"], r["raw_y"]) == (pytest.approx(gx, abs=1e-7),
                                                pytest.approx(gy, abs=1e-7))
            assert (r["category_type"], r["category_code"], r["channel"]) == (*CATEGORY,
                                                                              "wechat")
            assert r["supervised"] and not r["simulated"] and r["due_at"] is not None
        page.wait_for_function(
            """(ids) => Array.from(document.querySelectorAll('.cg-supervised-group'))
                 .some(li => ids.every(
                     id => li.dataset.caseIds.split(',').includes(String(id))))""",
            arg=ids, timeout=60_000)
        page.wait_for_function(
            """(ids) => ids.every(id => document.querySelector(
                 '#cg-nearby li[data-case-id="' + id + '"]'))""", arg=ids, timeout=60_000)
        page.evaluate("document.getElementById('cg-panel').scrollTop = 0")
        browser.screenshot("dispatcher.png")

    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"


def test_dispatcher_page_is_sent_gzipped(demo_settings, demo_engine: Engine) -> None:
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as client:
        zipped = client.get("/dispatch", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/dispatch", headers={"Accept-Encoding": "identity"})
    assert zipped.status_code == plain.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    def same(html: str) -> str:  # folium names elements afresh on every render
        return re.sub(r"_[0-9a-f]{32}", "_id", html)

    assert same(zipped.text) == same(plain.text) and '<html lang="zh-CN">' in plain.text
    assert int(zipped.headers["content-length"]) * 4 < len(plain.content)
