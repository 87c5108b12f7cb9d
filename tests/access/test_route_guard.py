"""Every route is either public on purpose or refuses an anonymous caller: walks app.routes."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.main import create_app
from gis.platform.settings import Settings

# Open to the public by design: the convenience map and its API, OGC API, Open311 reads,
# health, sign-in, the index page. Anything else is staff-only.
PUBLIC_PREFIXES = ("/public", "/ogc", "/open311/v2", "/static")
PUBLIC_PATHS = {"/", "/health", "/login", "/auth/token", "/auth/login", "/auth/logout",
                "/docs", "/openapi.json", "/favicon.ico"}
# Open311 POST checks its GeoReport api_key itself (tested in test_auth / test_open311).
OWN_KEY_CHECK = {("POST", "/open311/v2/requests.json"), ("POST", "/open311/v2/requests.xml")}


def _concrete(path: str) -> str:
    # Any value will do: the role check runs before the parameters are looked at.
    return re.sub(r"\{[^}]+\}", "1", path)


def _walk(routes, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found += [(m, prefix + route.path) for m in sorted(route.methods - {"HEAD"})]
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x wraps included routers
            found += _walk(route.original_router.routes, prefix + route.include_context.prefix)
    return found


def _routes(app) -> list[tuple[str, str]]:
    return _walk(app.routes)


@pytest.fixture(scope="module")
def client(test_settings: Settings, engine):
    with TestClient(create_app(test_settings), follow_redirects=False) as c:
        yield c


def test_the_walk_sees_the_routes_that_matter(client: TestClient) -> None:
    seen = set(_routes(client.app))
    for must in (("POST", "/cases"), ("PUT", "/zones/{zone_id}"), ("GET", "/audit"),
                 ("PATCH", "/assets/{layer_id}/{code}"), ("POST", "/layers/{layer_id}/import"),
                 ("GET", "/public/facilities")):
        assert must in seen


def test_every_internal_route_refuses_anonymous_callers(client: TestClient) -> None:
    open_routes = []
    for method, path in _routes(client.app):
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if (method, path) in OWN_KEY_CHECK:
            continue
        if public:
            if method != "GET":
                open_routes.append((method, path))
            continue
        response = client.request(method, _concrete(path), json={})
        assert response.status_code == 401, (method, path, response.status_code, response.text)
    # The only writes without a staff role: signing in and out, and residents' 随手拍
    # (rate-limited per client, images only; tests/public/test_resident_report.py).
    assert sorted(open_routes) == [("POST", "/auth/login"), ("POST", "/auth/logout"),
                                   ("POST", "/auth/token"), ("POST", "/public/report")]


def test_public_routes_stay_open(client: TestClient) -> None:
    for path in ("/", "/health", "/login", "/public/kinds", "/open311/v2/services.json",
                 "/openapi.json"):
        assert client.get(path).status_code == 200, path
