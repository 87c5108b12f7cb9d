"""The app shell of the staff pages (maps/shell.py): navigation per role, landing, logout, sizes.

Pure checks of the one navigation table and of the injected header (escaped values, none on
public pages), the sign-in landing per role and the index page through the app, then Chromium
at 1440x900, 768x1024 and 390x844: the header sits above the page without covering it, the
menu button collapses the navigation on tablets and phones, every control is at least 44 px,
the role sees only its pages, logout signs out; no console errors and no outside requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import folium
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.main import create_app
from api.shell import page_paths
from gis.access import auth
from gis.platform.db import transaction
from maps.assets import render_html
from maps.shell import NAV, ROLE_HOME, Shell, ShellUser, home_for, inject_shell, nav_for
from tests.support.accounts import PASSWORD
from tests.support.browser import chromium_or_skip, offline_page, serve

SIZES = [(1440, 900), (768, 1024), (390, 844)]
EXPECTED_HOME = {"admin": "/map", "dispatcher": "/dispatch", "planner": "/planner",
                 "analyst": "/analysis/map/hotspots"}


def make_user(engine: Engine, role: str, *, display_name: str = "") -> str:
    """A new account of `role` with PASSWORD; its username."""
    username = f"shell-{role}-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as session:
        auth.create_user(session, username=username, password=PASSWORD, role=role,
                         display_name=display_name,
                         owner_name="测试责任人" if role == "grid_owner" else None)
    return username


# ---- the table and the header, without a database ----------------------------------------------

def test_each_role_is_offered_only_its_pages() -> None:
    labels = {role: [p.label for p in nav_for(role)] for role in ROLE_HOME}
    assert labels["planner"] == ["综合地图", "摊群点规划", "工作站覆盖"]
    assert labels["dispatcher"] == ["综合地图", "调度台", "投诉热点", "日报", "周报"]
    assert "摊群点规划" not in labels["analyst"] and "调度台" not in labels["analyst"]
    assert labels["admin"] == [p.label for p in NAV]  # admin sees everything
    assert nav_for("nobody") == []
    # Only pages the app has: without /field a grid owner lands on the desk.
    assert home_for("grid_owner", {"/dispatch", "/map"}) == "/dispatch"
    assert home_for("grid_owner", {"/field", "/dispatch"}) == "/field"
    assert "/field" not in [p.path for p in nav_for("grid_owner", {"/dispatch", "/map"})]
    for role, path in EXPECTED_HOME.items():
        assert home_for(role) == path


def test_header_escapes_the_user_and_public_pages_have_none() -> None:
    page = render_html(folium.Map(tiles=None), title="测试",
                       shell=Shell(city="<b>城</b>", user=ShellUser(
                           display_name='<img src=x onerror="alert(1)">', role="planner",
                           role_zh="规划员")))
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page and "<img src=x" not in page
    assert "&lt;b&gt;城&lt;/b&gt;" in page
    assert 'class="cg-shell-map"' in page and 'data-state="ready"' in page
    assert '<a href="/planner">摊群点规划</a>' in page and "/dispatch" not in page.split(
        "</header>")[0]
    # A cached page for all users leaves the user to the browser (/auth/me).
    assert 'data-state="pending"' in render_html(folium.Map(tiles=None))
    assert "cg-shell" not in render_html(folium.Map(tiles=None), shell=None)
    doc = inject_shell("<html><head></head><body><p>报表</p></body></html>", Shell(),
                       full_height=False)
    assert '<body class="cg-shell-doc"><header' in doc


# ---- landing, /auth/me and the index page ------------------------------------------------------

@pytest.fixture(scope="module")
def app(test_settings: Any) -> Any:
    return create_app(test_settings)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def sign_in(client: TestClient, username: str, next_path: str | None = None) -> Any:
    form = {"username": username, "password": PASSWORD}
    if next_path is not None:
        form["next"] = next_path
    return client.post("/auth/login", data=form, follow_redirects=False,
                       headers={"Origin": "http://127.0.0.1:8000"})


def test_sign_in_lands_on_the_roles_main_page(client: TestClient, engine: Engine,
                                              app: Any) -> None:
    for role, home in EXPECTED_HOME.items():
        answer = sign_in(client, make_user(engine, role))
        assert answer.status_code == 303 and answer.headers["location"] == home, role
    # The field page may not exist yet: then the grid owner lands on the desk.
    field = "/field" in page_paths(app)
    answer = sign_in(client, make_user(engine, "grid_owner"))
    assert answer.headers["location"] == ("/field" if field else "/dispatch")
    # A page that sent the user to sign in gets them back.
    answer = sign_in(client, make_user(engine, "planner"), next_path="/reports/weekly")
    assert answer.headers["location"] == "/reports/weekly"
    client.cookies.clear()


def test_me_carries_the_navigation(client: TestClient, engine: Engine) -> None:
    sign_in(client, make_user(engine, "analyst", display_name="分析 员甲"))
    me = client.get("/auth/me").json()
    assert me["role_zh"] == "分析员" and me["display_name"] == "分析 员甲"
    assert me["home"] == "/analysis/map/hotspots"
    assert [n["label"] for n in me["nav"]] == [p.label for p in nav_for("analyst")]
    client.cookies.clear()


def test_index_links_the_public_to_public_pages_only(client: TestClient,
                                                     engine: Engine) -> None:
    client.cookies.clear()
    public = client.get("/").text
    for path in ("/map", "/dispatch", "/planner", "/analysis/", "/reports/"):
        assert f'href="{path}' not in public, path
    assert 'href="/public"' in public and 'href="/login"' in public
    sign_in(client, make_user(engine, "planner", display_name="规划 乙"))
    planner = client.get("/").text
    assert 'href="/planner"' in planner and 'href="/dispatch"' not in planner
    assert "规划 乙（规划员）" in planner
    client.cookies.set(auth_cookie(), "cg_not-a-token")
    assert 'href="/login"' in client.get("/").text  # a stale cookie: the public index
    client.cookies.clear()


def auth_cookie() -> str:
    from api.auth import TOKEN_COOKIE
    return TOKEN_COOKIE


# ---- Chromium ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(test_settings: Any) -> Iterator[str]:
    with serve(create_app(test_settings)) as url:
        yield url


def box_of(page: Any, selector: str) -> dict[str, float] | None:
    found: dict[str, float] | None = page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height}; }""")
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5
            and a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5)


def visible_links(page: Any) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = page.eval_on_selector_all(".cg-shell-nav a", """els =>
        els.filter(e => e.offsetParent !== null).map(e => {
            const r = e.getBoundingClientRect();
            return {label: e.textContent, x: r.x, y: r.y, w: r.width, h: r.height,
                    current: e.getAttribute("aria-current")}; })""")
    return links


def check_shell(page: Any, *, width: int, role: str, path: str) -> None:
    """Header on top, page below it, only the role's pages, controls >= 44 px, no overlaps."""
    page.wait_for_selector('#cg-shell[data-state="ready"]', timeout=30_000)
    header = box_of(page, "#cg-shell")
    assert header and header["y"] == 0 and header["h"] == 48 and header["w"] == width
    the_map = box_of(page, ".folium-map")
    assert the_map and the_map["y"] >= 48 and the_map["h"] > 200, the_map
    expected = [p.label for p in nav_for(role, None) if p.path != "/field"]
    if width >= 1024:
        assert not page.is_visible(".cg-shell-menu")
        parts = [box_of(page, s) for s in (".cg-shell-city", ".cg-shell-nav", ".cg-shell-user")]
        for i, a in enumerate(parts):
            for b in parts[i + 1:]:
                assert a and b and not overlap(a, b), (a, b)
    else:
        menu = box_of(page, ".cg-shell-menu")
        assert menu and menu["w"] >= 44 and menu["h"] >= 44
        assert visible_links(page) == []  # collapsed
        assert not page.is_visible(".cg-shell-logout")
        page.click(".cg-shell-menu")
        assert page.get_attribute(".cg-shell-menu", "aria-expanded") == "true"
    links = visible_links(page)
    labels = [link["label"] for link in links if link["label"] != "外勤"]
    assert labels == expected, (labels, expected)
    # The page open is marked, when it is one of the role's.
    assert [link["label"] for link in links if link["current"] == "page"] == [
        p.label for p in nav_for(role) if p.path == path]
    for i, a in enumerate(links):
        assert a["h"] >= 44, a
        for b in links[i + 1:]:
            assert not overlap(a, b), (a, b)
    logout = box_of(page, ".cg-shell-logout")
    assert logout and logout["h"] >= 44 and logout["w"] >= 44
    name = page.inner_text(".cg-shell-user")
    assert "退出登录" in name and {"planner": "规划员", "dispatcher": "调度员",
                                   "analyst": "分析员", "admin": "管理员"}[role] in name
    if width < 1024:
        page.click(".cg-shell-menu")
        assert visible_links(page) == []


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_shell_in_chromium(chromium: Path, base_url: str, engine: Engine, width: int,
                           height: int) -> None:
    planner = make_user(engine, "planner", display_name="规划 丙")
    dispatcher = make_user(engine, "dispatcher", display_name="调度 丁")
    with offline_page(chromium, width=width, height=height) as browser:
        page = browser.page
        # Sign in through the form: the planner lands on the planner page (server-filled header).
        page.goto(f"{base_url}/login", wait_until="load")
        page.fill("#username", planner)
        page.fill("#password", PASSWORD)
        with page.expect_navigation(timeout=60_000):
            page.click("button[type=submit]")
        assert page.url == f"{base_url}/planner"
        check_shell(page, width=width, role="planner", path="/planner")
        assert "规划 丙" in page.inner_text(".cg-shell-name")
        panel, the_map = box_of(page, "#cg-panel"), box_of(page, ".folium-map")
        assert panel and the_map and not overlap(panel, the_map), (panel, the_map)
        assert panel["y"] >= 48
        # The overview map is cached for everyone: its header is filled from /auth/me.
        page.goto(f"{base_url}/map", wait_until="load", timeout=120_000)
        check_shell(page, width=width, role="planner", path="/map")
        if width < 1024:
            page.click(".cg-shell-menu")
        with page.expect_navigation(timeout=30_000):
            page.click(".cg-shell-logout")
        assert page.url.startswith(f"{base_url}/login")
        page.goto(f"{base_url}/planner", wait_until="load")
        assert "/login" in page.url  # signed out: the cookie's token is revoked
        page.fill("#username", dispatcher)
        page.fill("#password", PASSWORD)
        with page.expect_navigation(timeout=60_000):
            page.click("button[type=submit]")
        assert page.url == f"{base_url}/planner"  # back to the page asked for
        check_shell(page, width=width, role="dispatcher", path="/planner")
        browser.screenshot(f"shell-{width}x{height}.png")
        assert browser.errors == [] and browser.external == []
