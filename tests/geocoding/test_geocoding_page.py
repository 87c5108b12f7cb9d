"""The dispatcher desk's address search (地址搜索) in Chromium: type an address, get the grid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(demo_settings) -> Iterator[str]:
    with serve(create_app(demo_settings)) as url:
        yield url


@pytest.mark.browser
def test_address_search_locates_the_grid(chromium: Path, base_url: str,
                                         demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        plate = conn.execute(text("""
            SELECT d.road_name, d.number, (SELECT c.code FROM grid_cells c
                WHERE ST_Intersects(c.geom, d.geom) ORDER BY c.code LIMIT 1) AS grid
            FROM doorplates d WHERE d.road_name IS NOT NULL ORDER BY d.id LIMIT 1 OFFSET 4321
        """)).one()
    dispatcher = headers_for(demo_engine, "dispatcher")
    with offline_page(chromium, height=1000, extra_http_headers=dispatcher) as browser:
        page = browser.page
        page.goto(f"{base_url}/dispatch", wait_until="load", timeout=180_000)
        page.wait_for_function("() => window.cgDispatch && window.L", timeout=60_000)
        # As an operator types it: without 模拟, with the district and full-width digits.
        number = "".join(chr(ord(ch) + 0xFEE0) for ch in str(plate.number))
        page.fill("#cg-address", f"历下区{plate.road_name[2:]}{number}号")
        page.click("#cg-geo-search")
        page.wait_for_selector(f'#cg-route[data-highlighted="{plate.grid}"]', timeout=60_000)
        assert page.get_attribute("#cg-geo-list li", "data-level") == "doorplate"
        assert "门牌精确匹配" in page.inner_text("#cg-geo-status")
        # An unknown address says so and locates nothing.
        page.fill("#cg-address", "火星路1号")
        page.click("#cg-geo-search")
        page.wait_for_selector('#cg-geo-list[data-count="0"]', state="attached",
                               timeout=30_000)
        assert "未找到" in page.inner_text("#cg-geo-status")
