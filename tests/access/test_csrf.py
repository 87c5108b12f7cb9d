"""CSRF: writes with the login cookie must come from the app's own origin (scheme, host, port).

The attack of issue 11: a page on another port of the same host is same-site, so the browser
sends the SameSite=Strict cookie with its auto-posted form. Checked with TestClient for every
kind of Origin / Referer, then for real in Chromium with an attacker page on another port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.access import auth
from gis.platform.db import transaction
from gis.platform.settings import ApiSettings, Settings
from tests.support.accounts import PASSWORD, headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve
from tests.zones.test_zone_rules import Town, build_town, test_city

APP = "http://127.0.0.1:8000"
OTHER_PORT = "http://127.0.0.1:9999"


@pytest.fixture(scope="module")
def town(engine: Engine) -> Town:
    with transaction(engine) as session:
        return build_town(session, lon=117.0, lat=36.05, prefix="9996")


@pytest.fixture(scope="module")
def app_settings(test_settings: Settings, town: Town) -> Settings:
    copy = test_settings.model_copy(deep=True)
    copy.city = test_city(copy.city)
    return copy


@pytest.fixture(scope="module")
def planner(engine: Engine) -> str:
    name = "x-csrf-planner"
    with transaction(engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role="planner")
    return name


def sign_in(client: TestClient, username: str) -> None:
    r = client.post("/auth/login", headers={"Origin": APP},
                    data={"username": username, "password": PASSWORD, "next": "/"})
    assert r.status_code == 303 and "citygrid_token" in r.headers["set-cookie"], r.text


def draft_zone(client: TestClient, town: Town, x: float) -> int:
    r = client.post("/zones", headers={"Origin": APP},
                    json=town.zone(box(x, -900, x + 20, -880), name="夜市"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def zone_status(engine: Engine, zone_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT status FROM stall_zones WHERE id = :i"),
                                {"i": zone_id}).scalar_one())


@pytest.fixture
def browser_client(app_settings: Settings, planner: str) -> Iterator[TestClient]:
    """A TestClient acting as the browser at APP, signed in with the cookie."""
    with TestClient(create_app(app_settings), base_url=APP, follow_redirects=False) as client:
        sign_in(client, planner)
        yield client


FOREIGN = {
    "other port": {"Origin": OTHER_PORT},
    "other port by Referer": {"Referer": f"{OTHER_PORT}/attack.html"},
    "https on the same port": {"Origin": "https://127.0.0.1:8000"},
    "default port": {"Origin": "http://127.0.0.1"},
    "other host name": {"Origin": "http://localhost:8000"},
    "opaque origin": {"Origin": "null"},
    "garbage origin": {"Origin": "http://127.0.0.1:99999999"},
    "userinfo trick": {"Origin": "http://127.0.0.1:8000@evil.example"},
    "Origin wins over a good Referer": {"Origin": OTHER_PORT, "Referer": f"{APP}/planner"},
    "neither header": {},
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_cookie_write_from_another_origin_is_refused_and_changes_nothing(
        browser_client: TestClient, engine: Engine, town: Town, case: str) -> None:
    zone_id = draft_zone(browser_client, town, x=-1900 + 40 * list(FOREIGN).index(case))
    r = browser_client.post(f"/zones/{zone_id}/approve", headers=FOREIGN[case])
    assert r.status_code == 403, r.text
    assert "CSRF" in r.json()["detail"] and f"/zones/{zone_id}/approve" in r.json()["detail"]
    assert zone_status(engine, zone_id) == "draft"
    r = browser_client.post("/auth/logout", headers=FOREIGN[case])
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert browser_client.get("/auth/me").status_code == 200  # still signed in
    for method in ("PUT", "PATCH", "DELETE"):
        assert browser_client.request(method, f"/zones/{zone_id}",
                                      headers=FOREIGN[case]).status_code == 403


def test_the_other_port_is_named_in_the_refusal(browser_client: TestClient, town: Town) -> None:
    zone_id = draft_zone(browser_client, town, x=-1000)
    detail = browser_client.post(f"/zones/{zone_id}/approve",
                                 headers={"Origin": OTHER_PORT}).json()["detail"]
    assert "http://127.0.0.1:9999" in detail and "http://127.0.0.1:8000" in detail
    detail = browser_client.post(f"/zones/{zone_id}/approve").json()["detail"]
    assert "neither an Origin nor a Referer" in detail and "Bearer" in detail


def test_same_origin_cookie_writes_work(browser_client: TestClient, engine: Engine,
                                        town: Town) -> None:
    zone_id = draft_zone(browser_client, town, x=-950)
    r = browser_client.post(f"/zones/{zone_id}/approve", headers={"Origin": APP})
    assert r.status_code == 200 and zone_status(engine, zone_id) == "approved"
    other = draft_zone(browser_client, town, x=-900)
    r = browser_client.post(f"/zones/{other}/approve", headers={"Referer": f"{APP}/planner"})
    assert r.status_code == 200  # no Origin: the Referer decides
    r = browser_client.post("/auth/logout", headers={"Origin": APP})
    assert r.status_code == 204 and browser_client.get("/auth/me").status_code == 401


def test_bearer_clients_are_unaffected(app_settings: Settings, engine: Engine, town: Town) -> None:
    with TestClient(create_app(app_settings), base_url=APP,
                    headers=headers_for(engine, "planner")) as client:
        zone_id = draft_zone(client, town, x=-850)
        r = client.post(f"/zones/{zone_id}/approve")  # no Origin, no Referer, no cookie
        assert r.status_code == 200
        other = draft_zone(client, town, x=-800)
        assert client.post(f"/zones/{other}/approve",
                           headers={"Origin": "https://gis-tool.example"}).status_code == 200
        # Cookie-less anonymous writes are not the guard's business (api_key, credentials).
        r = client.post("/auth/token", headers={"Origin": OTHER_PORT, "Authorization": ""},
                        data={"username": "nobody", "password": "password"})
        assert r.status_code == 401


def test_login_form_needs_the_same_origin(app_settings: Settings, planner: str) -> None:
    with TestClient(create_app(app_settings), base_url=APP, follow_redirects=False) as client:
        form = {"username": planner, "password": PASSWORD, "next": "/"}
        for headers in ({"Origin": OTHER_PORT}, {"Referer": f"{OTHER_PORT}/x"}, {}):
            r = client.post("/auth/login", headers=headers, data=form)
            assert r.status_code == 403 and "set-cookie" not in r.headers, headers
            assert "login form" in r.json()["detail"]
        assert client.post("/auth/login", headers={"Origin": APP}, data=form).status_code == 303


def test_behind_a_proxy_the_public_url_is_the_origin(app_settings: Settings, planner: str,
                                                     town: Town, engine: Engine) -> None:
    proxied = app_settings.model_copy(deep=True)
    proxied.api = ApiSettings(public_url="HTTPS://CityGrid.example.gov.cn:443/")
    assert proxied.api.public_url == "https://citygrid.example.gov.cn"
    public = {"Origin": "https://citygrid.example.gov.cn"}
    with TestClient(create_app(proxied), base_url=APP, follow_redirects=False) as client:
        # The proxy forwards to 127.0.0.1:8000 over http; the browser is at the public URL.
        assert client.post("/auth/login", headers={"Origin": APP}, data={
            "username": planner, "password": PASSWORD}).status_code == 403
        r = client.post("/auth/login", headers=public,
                        data={"username": planner, "password": PASSWORD})
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        client.cookies.set("citygrid_token", r.cookies["citygrid_token"])
        r = client.post("/zones", headers=public,
                        json=town.zone(box(-750, -900, -730, -880), name="夜市"))
        assert r.status_code == 201
        assert client.post(f"/zones/{r.json()['id']}/approve",
                           headers={"Origin": APP}).status_code == 403


# --- in Chromium: the attack as issue 11 describes it ------------------------------------------

class _AttackPage(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def attack_site(html: str) -> Iterator[str]:
    """A page served from another port of 127.0.0.1; yields its URL."""
    handler = type("Attack", (_AttackPage,), {"html": html.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.mark.browser
def test_auto_posted_form_from_another_port_is_refused_in_chromium(
        chromium: Path, app_settings: Settings, engine: Engine, planner: str, town: Town) -> None:
    with TestClient(create_app(app_settings), headers=headers_for(engine, "planner")) as client:
        zone_id = draft_zone(client, town, x=-700)
    with serve(create_app(app_settings)) as base, offline_page(chromium) as browser:
        page = browser.page
        page.goto(f"{base}/login?next=/")
        page.fill("#username", planner)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        # Signed in: the app lands on the planner's own page (next=/ is the default).
        page.wait_for_url(lambda url: url.startswith(base) and "/login" not in url)
        assert page.evaluate("fetch('/auth/me').then(r => r.status)") == 200

        for target in (f"/zones/{zone_id}/approve", "/auth/logout"):
            html = (f'<form id="f" method="post" action="{base}{target}"></form>'
                    '<script>document.getElementById("f").submit()</script>')
            with attack_site(html) as evil, page.expect_response(
                    lambda r, t=target: r.url.endswith(t)) as answer:
                page.goto(evil)
            assert answer.value.status == 403, target
            assert "CSRF" in answer.value.text()
        assert zone_status(engine, zone_id) == "draft"

        page.goto(f"{base}/")  # still signed in; the app's own page may approve
        assert page.evaluate("fetch('/auth/me').then(r => r.status)") == 200
        status = page.evaluate(f"fetch('/zones/{zone_id}/approve', {{method: 'POST'}})"
                               ".then(r => r.status)")
        assert status == 200 and zone_status(engine, zone_id) == "approved"
        assert page.evaluate("fetch('/auth/logout', {method: 'POST'}).then(r => r.status)") \
            == 204
        assert page.evaluate("fetch('/auth/me').then(r => r.status)") == 401
    # The refused and the signed-out answers are logged as failed loads; nothing else.
    assert [e for e in browser.errors if "Failed to load resource" not in e] == []
