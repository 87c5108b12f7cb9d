"""Security headers on every answer, the pages' CSP in Chromium, and Secure cookies over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy.engine import Engine

from api.main import create_app
from api.security_headers import html_csp
from gis.access import auth
from gis.platform.db import transaction
from gis.platform.settings import ApiSettings, PublicMapSettings, Settings
from tests.access.test_csrf import attack_site
from tests.support.accounts import PASSWORD, headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve

COMMON = {"x-frame-options": "DENY", "x-content-type-options": "nosniff",
          "referrer-policy": "same-origin"}


def assert_protected(response, *, html: bool) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (response.url, name, response.headers)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    if html:
        assert "script-src 'self' 'unsafe-inline'" in csp and "connect-src 'self'" in csp
        assert "http" not in csp and "*" not in csp  # no other origin by default
    else:
        assert csp.startswith("default-src 'none'")


@pytest.fixture(scope="module")
def client(test_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(test_settings), follow_redirects=False) as c:
        yield c


def test_every_kind_of_answer_carries_the_headers(client: TestClient, engine: Engine) -> None:
    staff = headers_for(engine, "admin")
    html = {"accept": "text/html"}
    pages = [client.get("/"), client.get("/login"), client.get("/docs"),
             client.get("/ogc/collections", headers=html),
             client.get("/planner", headers=staff)]
    others = [
        client.get("/health"), client.get("/openapi.json"),
        client.get("/static/vendor/leaflet/leaflet.js"),
        client.get("/static/vendor/leaflet/images/marker-icon.png"),
        client.get("/ogc/collections"), client.get("/ogc/collections/facilities/items?limit=1"),
        client.get("/no-such-page"),  # 404
        client.get("/cases"),  # 401
        client.get("/public/nearest?x=abc"),  # 422
        client.post("/cases", json={}, headers={**staff, "content-length": "99999999"}),  # 413
        client.post("/auth/logout", cookies={"citygrid_token": "x"},
                    headers={"origin": "http://127.0.0.1:9999"}),  # CSRF 403
    ]
    for r in pages:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.url
        assert_protected(r, html=True)
    assert [r.status_code for r in others] == [200, 200, 200, 200, 200, 200, 404, 401, 422,
                                                413, 403]
    for r in others:
        assert_protected(r, html=False)


def test_a_304_keeps_the_cached_page_policy(client: TestClient, engine: Engine) -> None:
    staff = headers_for(engine, "analyst")
    first = client.get("/map", headers=staff)
    assert first.status_code == 200 and "unsafe-inline" in first.headers[
        "content-security-policy"]
    again = client.get("/map", headers={**staff, "if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    # A 304 refreshes the cached page's headers: a JSON policy here would break the page.
    assert "content-security-policy" not in again.headers
    assert again.headers["x-frame-options"] == "DENY"


def test_images_may_come_from_the_configured_tile_servers_only() -> None:
    def csp(**public: str) -> str:
        settings = Settings()
        settings.public = PublicMapSettings(**public)
        return html_csp(settings)

    img = {"none": "img-src 'self' data: blob:;",
           "osm": "img-src 'self' data: blob: https://tile.openstreetmap.org;",
           "amap": "img-src 'self' data: blob: " + " ".join(
               f"https://webrd0{i}.is.autonavi.com" for i in range(1, 5)) + ";"}
    for basemap, expected in img.items():
        assert expected in csp(basemap=basemap) + ";"
    tianditu = csp(basemap="tianditu", tianditu_key="k")
    assert all(f"https://t{i}.tianditu.gov.cn" in tianditu for i in range(8))
    mirror = csp(basemap="tianditu", tile_url="http://tiles.intranet:8080/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: http://tiles.intranet:8080;" in mirror
    assert "tianditu" not in mirror
    for policy in (tianditu, mirror):
        assert "connect-src 'self';" in policy and "script-src 'self' 'unsafe-inline';" in policy


# --- Secure cookies -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cookie_user(engine: Engine) -> str:
    with transaction(engine) as session:
        auth.create_user(session, username="x-cookie", password=PASSWORD, role="analyst")
    return "x-cookie"


@pytest.mark.parametrize("api,secure", [
    ({}, False),
    ({"cookie_secure": True}, True),
    ({"public_url": "https://citygrid.example.gov.cn"}, True),
    ({"public_url": "http://citygrid.intranet"}, False),
    ({"public_url": "https://citygrid.example.gov.cn", "cookie_secure": False}, False),
])
def test_login_cookie_is_secure_when_configured_for_https(
        test_settings: Settings, cookie_user: str, api: dict[str, object], secure: bool) -> None:
    settings = test_settings.model_copy(deep=True)
    settings.api = ApiSettings(**api)  # type: ignore[arg-type]
    origin = settings.api.public_url or "http://testserver"
    with TestClient(create_app(settings), follow_redirects=False) as client:
        r = client.post("/auth/login", headers={"Origin": origin},
                        data={"username": cookie_user, "password": PASSWORD})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert ("; Secure" in cookie) is secure, cookie
        token = r.cookies["citygrid_token"]
        out = client.post("/auth/logout", headers={"Origin": origin},
                          cookies={"citygrid_token": token})
        assert out.status_code == 204 and ("; Secure" in out.headers["set-cookie"]) is secure
        hsts = r.headers.get("strict-transport-security")
        assert (hsts == "max-age=31536000") is (api.get("public_url", "").startswith("https"))


# --- in Chromium: every page works under its policy ---------------------------------------------

PAGES = {
    "/": "a[href='/map']",
    "/login": "#username",
    "/docs": ".swagger-ui .information-container .title",
    "/public": ".leaflet-container",
    "/map": ".leaflet-control-layers",
    "/dispatch": ".leaflet-container",
    "/planner": ".leaflet-container",
    "/analysis/map/hotspots": ".leaflet-container",
    "/ogc/collections?f=html": "a[href*='facilities']",
    "/ogc/collections/facilities/items?f=html": ".leaflet-container",
}
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
    console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.mark.browser
def test_pages_work_under_their_policy_in_chromium(chromium: Path, demo_settings: Settings,
                                                   demo_engine: Engine) -> None:
    admin = headers_for(demo_engine, "admin")
    with serve(create_app(demo_settings)) as base, \
            offline_page(chromium, extra_http_headers=admin) as browser:
        page = browser.page
        page.add_init_script(REPORT_VIOLATIONS)
        for path, ready in PAGES.items():
            response = page.goto(f"{base}{path}", wait_until="load", timeout=180_000)
            assert response is not None and response.status == 200, path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_selector(ready, timeout=60_000)
            try:  # let late requests (tiles, data) meet the policy; a busy CI box may never idle
                page.wait_for_load_state("networkidle", timeout=15_000)
            except PlaywrightTimeout:
                page.wait_for_timeout(2_000)
            assert browser.errors == [], (path, browser.errors)
        # The Swagger UI really drew the operations from /openapi.json under the policy.
        page.goto(f"{base}/docs", wait_until="load")
        page.wait_for_selector(".opblock", timeout=60_000)
        assert page.locator(".opblock").count() > 20

        # Another port of the same host may not frame the app (clickjacking).
        with attack_site(f'<iframe id="f" src="{base}/login"></iframe>') as evil:
            page.goto(evil, wait_until="load")
            page.wait_for_timeout(500)
        framed = [e for e in browser.errors if "frame-ancestors" in e or "X-Frame" in e]
        assert framed, browser.errors
    assert browser.external == []
