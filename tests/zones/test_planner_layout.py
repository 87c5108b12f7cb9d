"""The planner page on a desktop, a tablet and a phone (Chromium), and its colours and words.

At 1440x900, 768x1024 and 390x844 the panel and the map never overlap and both sit below the
app shell; times are typed 24-hour; a zone's history reads 新建/批准 in the city's time; the
colours a planner must tell apart differ (red only for what the check finds wrong).
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.platform.db import transaction
from maps.planner import SITE_COLORS, STREET_COLORS, VIOLATION_COLOR, ZONE_ACTION_ZH
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve
from tests.zones.test_zone_rules import Town, build_town, test_city

SIZES = [(1440, 900), (768, 1024), (390, 844)]


def hue(color: str) -> tuple[float, float]:
    """Hue in degrees and saturation of '#rrggbb'."""
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, _, s = colorsys.rgb_to_hls(r, g, b)
    return h * 360, s


def reddish(color: str) -> bool:
    h, s = hue(color)
    return s > 0.35 and (h < 20 or h > 340)


def test_colours_a_planner_must_tell_apart() -> None:
    confusable = [STREET_COLORS["demonstration"], SITE_COLORS["fire_lane"], VIOLATION_COLOR]
    assert sum(reddish(c) for c in confusable) == 1 and reddish(VIOLATION_COLOR)
    managed, metro = hue(STREET_COLORS["managed"])[0], hue(SITE_COLORS["metro_exit"])[0]
    assert abs(managed - metro) > 60, (managed, metro)
    assert len(set(STREET_COLORS.values()) | set(SITE_COLORS.values())) == 9


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def town(engine: Engine) -> Town:
    with transaction(engine) as session:
        # Far from the other test towns: zone-rule tests probe 5 km east of theirs.
        return build_town(session, lon=116.93, lat=36.07, prefix="9993")


@pytest.fixture(scope="module")
def base_url(engine: Engine, test_settings: Any, town: Town) -> Iterator[str]:
    settings = test_settings.model_copy(deep=True)
    settings.city = test_city(settings.city)
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def approved_zone(base_url: str, engine: Engine, town: Town) -> int:
    planner = headers_for(engine, "planner")
    made = httpx.post(f"{base_url}/zones", json=town.zone(box(-20, 100, 20, 120),
                                                        name="布局测试夜市"),
                      headers=planner, timeout=60)
    assert made.status_code == 201, made.json()
    zone_id: int = made.json()["id"]
    approved = httpx.post(f"{base_url}/zones/{zone_id}/approve", headers=planner, timeout=60)
    assert approved.status_code == 200, approved.json()
    return zone_id


def box_of(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height}; }""")
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5
            and a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5)


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_planner_at_each_size(chromium: Path, base_url: str, engine: Engine, width: int,
                              height: int, approved_zone: int) -> None:
    planner = headers_for(engine, "planner")
    with offline_page(chromium, width=width, height=height,
                      extra_http_headers=planner) as browser:
        page = browser.page
        page.goto(f"{base_url}/planner", wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.cgPlanner && window.L && L.Control.Draw",
                               timeout=60_000)
        shell, panel, the_map = (box_of(page, s) for s in ("#cg-shell", "#cg-panel",
                                                           ".folium-map"))
        assert not overlap(panel, the_map), (panel, the_map)
        for part in (panel, the_map):
            assert part["y"] >= shell["y"] + shell["h"] and part["w"] > 0, part
            assert part["x"] >= 0 and part["x"] + part["w"] <= width + 0.5, part
        assert the_map["w"] * the_map["h"] >= 0.3 * width * (height - 48), the_map
        for selector in ("#cg-save", "#cg-check", "#cg-at-go", "#cg-start"):
            if width < 1024:
                assert box_of(page, selector)["h"] >= 44, selector

        # 24-hour times: "19:30" is valid, "7:30 PM" is not; no native 12-hour widget.
        assert page.get_attribute("#cg-start", "type") is None
        page.fill("#cg-start", "19:30")
        assert page.eval_on_selector("#cg-start", "e => e.checkValidity()")
        page.fill("#cg-start", "7:30 PM")
        assert not page.eval_on_selector("#cg-start", "e => e.checkValidity()")
        page.fill("#cg-start", "18:00")

        # History in Chinese and city time (Asia/Shanghai, 24-hour).
        page.evaluate("""id => {
            for (const group of Object.values(cgPlanner.zoneGroups)) {
                group.eachLayer(l => { if (l.feature && l.feature.properties.id === id) {
                    cgPlanner.map.fitBounds(l.getBounds()); l.openPopup(); } });
            }}""", approved_zone)
        page.click(f".leaflet-popup button[data-act=history][data-id='{approved_zone}']")
        page.wait_for_function(
            "() => document.getElementById('cg-result').textContent.includes('历史')",
            timeout=30_000)
        history = page.inner_text("#cg-result")
        assert ZONE_ACTION_ZH["create"] in history and ZONE_ACTION_ZH["approve"] in history
        assert "create" not in history and "approve" not in history
        with engine.connect() as conn:
            local = list(conn.execute(text(
                "SELECT to_char(changed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') "
                "FROM stall_zone_versions WHERE zone_id = :z ORDER BY version"),
                {"z": approved_zone}).scalars())
        assert re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d", history) == local, history
        browser.screenshot(f"planner-{width}x{height}.png")
        assert browser.errors == [] and browser.external == []
