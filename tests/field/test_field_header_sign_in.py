"""/field opened with a bearer header (API clients, bench/pages.py): no service worker, no error.

The browser fetches a service worker's script, and whatever the worker caches, with the login
cookie only. Under header sign-in registering it was a 401 and a console error; the page now
registers it only when signed in by the cookie (tests/field/test_field_page.py checks that
the worker still runs there).
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.field.conftest import OWNER_WEST
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page

pytestmark = pytest.mark.browser


def page_config(html: str) -> dict:
    found = re.search(r"var CONFIG = (\{.*?\});</script>", html)
    assert found, "no CONFIG in the field page"
    return json.loads(found.group(1))


def test_worker_only_under_cookie_sign_in(field_base_url, field_engine) -> None:
    headers = headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST)
    by_header = httpx.get(f"{field_base_url}/field", headers=headers, timeout=30)
    assert by_header.status_code == 200
    assert page_config(by_header.text)["worker"] is None
    token = headers["Authorization"].removeprefix("Bearer ")
    by_cookie = httpx.get(f"{field_base_url}/field", cookies={"citygrid_token": token},
                          timeout=30)
    assert by_cookie.status_code == 200
    assert page_config(by_cookie.text)["worker"] == "/field-sw.js"


@pytest.mark.parametrize("width,height", [(390, 844), (1440, 900)])
@pytest.mark.parametrize("role", ["grid_owner", "supervisor"])
def test_field_page_under_header_sign_in_logs_no_error(field_base_url, field_engine,
                                                       role: str, width: int,
                                                       height: int) -> None:
    headers = headers_for(field_engine, role,
                          owner_name=OWNER_WEST if role == "grid_owner" else None)
    with offline_page(chromium_or_skip(), width=width, height=height,
                      extra_http_headers=headers) as browser:
        page = browser.page
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{field_base_url}/field", wait_until="load", timeout=60_000)
        page.wait_for_function("() => window.cgReady && cgReady.interactive !== undefined")
        page.wait_for_timeout(1500)  # a failed registration logs after the page loaded
        registrations = page.evaluate(
            "navigator.serviceWorker.getRegistrations().then(r => r.length)")
        errors, external = list(browser.errors), list(browser.external)
    assert registrations == 0
    assert not [u for u in requests if u.endswith("/field-sw.js")]
    assert errors == [], errors
    assert external == [], external
