"""The public convenience map as people use it, at 1440x900, 768x1024 and 390x844 (Chromium).

Chips select forwards (公厕 shows only toilets, again shows all, the state is pressed and
ticked), the chip row shows a cue while more chips lie to the right, zoom buttons on wide
screens, details in the bottom sheet on a phone (a popup elsewhere), the top bar and the sheet
never overlap, every control at least 44 px; no console errors, no outside requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from tests.support.browser import chromium_or_skip, offline_page, serve

FRIDAY_NIGHT = "2026-06-05T23:30"
SIZES = [(1440, 900), (768, 1024), (390, 844)]


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(demo_settings: Any) -> Iterator[str]:
    with serve(create_app(demo_settings)) as url:
        yield url


def box_of(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height}; }""")
    return found


def kinds_shown(page: Any) -> set[str]:
    return {i["kind"] for i in page.evaluate("window.cgPublic.visible()")}


def pressed(page: Any) -> list[str]:
    chips: list[str] = page.eval_on_selector_all(
        ".cg-chip[aria-pressed=true]", "els => els.map(e => e.dataset.kind)")
    return chips


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_public_map_at_each_size(chromium: Path, base_url: str, width: int,
                                 height: int) -> None:
    phone = width < 900
    options: dict[str, Any] = {"is_mobile": True, "has_touch": True} if phone else {}
    with offline_page(chromium, width=width, height=height, **options) as browser:
        page = browser.page
        page.goto(f"{base_url}/public?at={FRIDAY_NIGHT}", wait_until="load", timeout=120_000)
        page.wait_for_selector(".marker-cluster", timeout=30_000)
        assert page.locator("#cg-shell").count() == 0  # no staff shell for the public
        page.locator("#cg-open-now").uncheck()
        every = kinds_shown(page)
        assert {"public_toilet", "parking"} <= every and len(every) > 2

        # Forwards: nothing chosen = all; 公厕 = only toilets; + 停车场; 公厕 again; all again.
        assert pressed(page) == ["all"]
        page.locator(".cg-chip[data-kind=public_toilet]").click()
        assert kinds_shown(page) == {"public_toilet"} and pressed(page) == ["public_toilet"]
        toilets = len(page.evaluate("window.cgPublic.visible()"))
        assert page.locator("#cg-count").inner_text() == f"显示 {toilets} 处"
        page.locator(".cg-chip[data-kind=parking]").scroll_into_view_if_needed()
        page.locator(".cg-chip[data-kind=parking]").click()
        assert kinds_shown(page) == {"public_toilet", "parking"}
        page.locator(".cg-chip[data-kind=public_toilet]").scroll_into_view_if_needed()
        page.locator(".cg-chip[data-kind=public_toilet]").click()
        assert kinds_shown(page) == {"parking"}
        page.locator(".cg-chip[data-kind=parking]").scroll_into_view_if_needed()
        page.locator(".cg-chip[data-kind=parking]").click()
        assert kinds_shown(page) == every and pressed(page) == ["all"]
        for chip in page.eval_on_selector_all(".cg-chip", "els => els.map(e => "
                                              "e.getBoundingClientRect().height)"):
            assert chip >= 44

        # A row wider than its box shows the cue until scrolled to the end.
        row = page.eval_on_selector("#cg-kinds", "e => [e.scrollWidth, e.clientWidth]")
        if row[0] > row[1] + 4:
            page.eval_on_selector("#cg-kinds", "e => { e.scrollLeft = 0; "
                                  "e.dispatchEvent(new Event('scroll')); }")
            assert page.is_visible("#cg-chips-more")
            page.eval_on_selector("#cg-kinds", "e => { e.scrollLeft = e.scrollWidth; "
                                  "e.dispatchEvent(new Event('scroll')); }")
            assert not page.is_visible("#cg-chips-more")
        if phone:
            assert row[0] > row[1], "a phone cannot hold every chip in one row"

        assert page.locator(".leaflet-control-zoom").count() == (0 if phone else 1)
        if not phone:
            zoom_in = box_of(page, ".leaflet-control-zoom-in")
            assert zoom_in["w"] >= 26 and page.is_visible(".leaflet-control-zoom-in")

        # Nearest toilets to a tapped point, then a result's details.
        page.select_option("#cg-near-kind", "public_toilet")
        page.locator("#cg-pick").click()
        top, sheet = box_of(page, "#cg-top"), box_of(page, "#cg-sheet")
        middle_y = (top["y"] + top["h"] + sheet["y"]) / 2 if phone else height / 2
        page.mouse.click(width / 2 if phone else width * 0.7, middle_y)
        page.wait_for_selector("#cg-results li", timeout=15_000)
        page.locator("#cg-results li").first.click()
        if phone:
            page.wait_for_selector("#cg-detail:not([hidden])", timeout=15_000)
            assert "公厕" in page.inner_text("#cg-detail")
            assert page.locator(".leaflet-popup").count() == 0
            close = box_of(page, "#cg-detail-close")
            assert close["w"] >= 44 and close["h"] >= 44
        else:
            page.wait_for_selector(".leaflet-popup", timeout=15_000)
        top, sheet = box_of(page, "#cg-top"), box_of(page, "#cg-sheet")
        if phone:
            assert top["y"] + top["h"] <= sheet["y"], (top, sheet)
            assert sheet["y"] - (top["y"] + top["h"]) > 250  # map left between them
        else:
            assert top["y"] + top["h"] <= sheet["y"] or top["x"] + top["w"] <= sheet["x"]
        for selector in ("#cg-locate", "#cg-pick", "#cg-near-kind"):
            assert box_of(page, selector)["h"] >= 44, selector
        browser.screenshot(f"public-{width}x{height}.png")
        assert browser.errors == [] and browser.external == []
