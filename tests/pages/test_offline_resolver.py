"""offline_page(intercept=False), used by the page benches: outside hosts never answer and
every request to one is still recorded, without a Playwright route holding each request."""

from __future__ import annotations

import pytest

from tests.support.browser import chromium_or_skip, offline_page

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("intercept", [True, False])
def test_outside_requests_are_recorded_and_fail(intercept: bool) -> None:
    with offline_page(chromium_or_skip(), width=390, height=844,
                      intercept=intercept) as browser:
        page = browser.page
        page.set_content('<img src="http://example.com/outside.png">')
        page.wait_for_timeout(500)
        loaded = page.evaluate("document.querySelector('img').naturalWidth")
        external = list(browser.external)
    assert loaded == 0
    assert external == ["http://example.com/outside.png"]
