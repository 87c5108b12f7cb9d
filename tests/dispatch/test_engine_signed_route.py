"""POST /route signs its caller in and checks the index in one statement, and stays as strict.

The route reads the token, the routing version and the category's rule in a single
autocommit statement (gis/dispatch/engine/signed.py) instead of a session with sign-in,
audit tag, BEGIN and ROLLBACK. These tests pin down that it is one statement, that its
answers are route_point's, and that nothing about a sign-in is remembered: a revoked token,
a disabled account and an expired token are refused on the very next request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from api.main import create_app
from gis.access import auth
from gis.dispatch.engine.route_cache import RouteCacheSettings
from gis.dispatch.routing import route_point
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.db import transaction
from gis.platform.settings import Settings
from tests.support.accounts import PASSWORD

DISTRICT, SUBDISTRICT, COMMUNITY = "379916", "379916916", "379916916916"
LON, LAT, SIZE = 117.1512, 36.6034, 0.001
GRIDS = (f"{COMMUNITY}01", f"{COMMUNITY}02")
OWNER = "网格员 快速甲"
LIGHT = "3701020118916001"
AT = "2025-09-15T10:00:00+08:00"


def square(i: int) -> str:
    x = LON + SIZE * i
    return (f"POLYGON(({x} {LAT}, {x + SIZE} {LAT}, {x + SIZE} {LAT + SIZE}, "
            f"{x} {LAT + SIZE}, {x} {LAT}))")


@pytest.fixture(scope="module")
def fast_city(engine: Engine) -> Iterator[Engine]:
    """Two committed grid cells, their owners and one streetlight, removed afterwards."""
    outline = (f"MULTIPOLYGON((({LON} {LAT}, {LON + 2 * SIZE} {LAT}, {LON + 2 * SIZE} "
               f"{LAT + SIZE}, {LON} {LAT + SIZE}, {LON} {LAT})))")
    p = {"d": DISTRICT, "s": SUBDISTRICT, "c": COMMUNITY, "g": outline}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO districts (code, name, source, geom) "
                          "VALUES (:d, '快速测试区', 'test', ST_GeomFromText(:g, 4326))"), p)
        conn.execute(text("INSERT INTO subdistricts (code, name, district_code, geom) "
                          "VALUES (:s, '快速测试街道', :d, ST_GeomFromText(:g, 4326))"), p)
        conn.execute(text("INSERT INTO communities (code, name, subdistrict_code, geom) "
                          "VALUES (:c, '快速测试社区', :s, ST_GeomFromText(:g, 4326))"), p)
        for i, grid in enumerate(GRIDS):
            conn.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                              "VALUES (:code, :c, ST_GeomFromText(:g, 4326))"),
                         {"code": grid, "c": COMMUNITY, "g": square(i)})
            conn.execute(text(
                "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from) "
                "VALUES (:g, :n, 'grid_worker', '13800000000', '2024-01-01')"),
                {"g": grid, "n": f"{OWNER}{i}"})
        conn.execute(text(
            "INSERT INTO streetlights (code, owner, maintainer, grid_code, geom) "
            "VALUES (:code, '城市照明管理处', '照明养护公司', :g, "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"code": LIGHT, "g": GRIDS[0], "x": LON + SIZE / 2, "y": LAT + SIZE / 2})
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM streetlights WHERE code = :c"), {"c": LIGHT})
        conn.execute(text("DELETE FROM grid_owners WHERE grid_code LIKE :c || '%'"),
                     {"c": COMMUNITY})
        conn.execute(text("DELETE FROM grid_cells WHERE community_code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM communities WHERE code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM subdistricts WHERE code = :s"), {"s": SUBDISTRICT})
        conn.execute(text("DELETE FROM districts WHERE code = :d"), {"d": DISTRICT})


@pytest.fixture(scope="module")
def client(test_settings: Settings, fast_city: Engine) -> Iterator[TestClient]:
    app = create_app(test_settings)
    # The one-statement path, as every request takes it while the sign-in cache is not
    # listening (its own tests: test_engine_fast_route_cache.py).
    app.state.route_cache_settings = RouteCacheSettings(enabled=False)
    with TestClient(app) as c:
        yield c


def _user(engine: Engine, name: str, role: str = "dispatcher",
          owner_name: str | None = None) -> dict[str, str]:
    with transaction(engine) as session:
        user = auth.create_user(session, username=name, password=PASSWORD, role=role,
                                owner_name=owner_name)
        token = auth.issue_token(session, user=user)
    return {"Authorization": f"Bearer {token}"}


def _body(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"x": LON + SIZE * i + SIZE * 0.3, "y": LAT + SIZE * 0.6, "at": AT,
            "category_code": "0505", **extra}


def _sql_answer(engine: Engine, body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    with transaction(engine) as session:
        sql = route_point(session, x=body["x"], y=body["y"],
                          at=dt.datetime.fromisoformat(body["at"]),
                          category_code=body.get("category_code"),
                          category_type=body.get("category_type", "event"),
                          component_code=body.get("component_code"),
                          settings=RoutingSettings(), city=settings.city)
    return sql.model_dump(mode="json")


def test_route_is_one_autocommit_statement_with_route_points_answer(
        client: TestClient, fast_city: Engine, test_settings: Settings) -> None:
    headers = _user(fast_city, "x-fast-one")
    assert client.post("/route", json=_body(), headers=headers).status_code == 200  # warm
    statements: list[tuple[str, bool]] = []
    checkouts: list[object] = []

    def on_execute(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, conn.connection.dbapi_connection.autocommit))

    def on_checkout(dbapi_conn, record, proxy):  # type: ignore[no-untyped-def]
        checkouts.append(dbapi_conn)

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Pool, "checkout", on_checkout)
    try:
        for i in (0, 1):
            answer = client.post("/route", json=_body(i), headers=headers)
            assert answer.status_code == 200, answer.text
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
        event.remove(Pool, "checkout", on_checkout)
    # One statement and one pooled connection per request, outside any transaction.
    assert len(statements) == 2 and len(checkouts) == 2, statements
    assert all(autocommit for _, autocommit in statements)
    assert all("api_tokens" in sql and "routing_version" in sql for sql, _ in statements)
    for i in (0, 1):
        got = client.post("/route", json=_body(i), headers=headers).json()
        assert got == _sql_answer(fast_city, _body(i), test_settings)
        assert got["grid_code"] == GRIDS[i] and got["owner"]["name"] == f"{OWNER}{i}"


def test_revoked_disabled_and_expired_callers_are_refused_at_once(
        client: TestClient, fast_city: Engine) -> None:
    callers = {name: _user(fast_city, f"x-fast-{name}") for name in ("out", "gone", "old")}
    for headers in callers.values():
        assert client.post("/route", json=_body(), headers=headers).status_code == 200
    token = callers["out"]["Authorization"].removeprefix("Bearer ")
    with transaction(fast_city) as session:
        auth.revoke_token(session, token)
        auth.set_active(session, username="x-fast-gone", active=False)
        session.execute(text("UPDATE api_tokens SET created_at = now() - interval '2 hours', "
                             "expires_at = now() - interval '1 second' "
                             "WHERE user_id = (SELECT id FROM users WHERE username = :u)"),
                        {"u": "x-fast-old"})
    for headers in callers.values():  # the very next request, no waiting for any cache
        refused = client.post("/route", json=_body(), headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["detail"] == "token is unknown, expired or revoked"


def test_strangers_get_401_before_their_body_is_looked_at(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer cg_not-a-token"}):
        for body in ({}, {"x": "abc"}, _body(), [1, 2]):
            refused = client.post("/route", json=body, headers=headers)
            assert refused.status_code == 401, (headers, body, refused.text)
    refused = client.post("/route", content=b"x=1", headers={
        "Authorization": "Bearer cg_not-a-token",
        "Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 401


def test_signed_in_callers_get_the_same_checks_as_elsewhere(
        client: TestClient, fast_city: Engine) -> None:
    headers = _user(fast_city, "x-fast-checks")
    bad = client.post("/route", json=_body(colour="red"), headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "colour"
    far = client.post("/route", json={**_body(), "x": LON + 1}, headers=headers)
    assert far.status_code == 422 and "outside" in far.json()["detail"]
    # The login cookie from another origin is refused by the CSRF guard before any route.
    token = headers["Authorization"].removeprefix("Bearer ")
    with TestClient(client.app, cookies={"citygrid_token": token}) as browser:
        forged = browser.post("/route", json=_body(), headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
        own = browser.post("/route", json=_body(), headers={"Origin": "http://testserver"})
        assert own.status_code == 200 and own.json()["grid_code"] == GRIDS[0]


def test_components_and_grid_owners_take_the_session_path(
        client: TestClient, fast_city: Engine, test_settings: Settings) -> None:
    dispatcher = _user(fast_city, "x-fast-lights")
    lamp = _body(category_type="component", category_code="0118", component_code=LIGHT)
    got = client.post("/route", json=lamp, headers=dispatcher)
    assert got.status_code == 200, got.text
    assert got.json() == _sql_answer(fast_city, lamp, test_settings)
    assert got.json()["component"]["code"] == LIGHT
    # A grid owner is routed in their own scoped session: row-level security still applies.
    owner = _user(fast_city, "x-fast-owner", role="grid_owner", owner_name=f"{OWNER}0")
    mine = client.post("/route", json=_body(0), headers=owner)
    assert mine.status_code == 200 and mine.json()["grid_code"] == GRIDS[0]


def test_a_dead_pooled_connection_is_replaced(client: TestClient, fast_city: Engine) -> None:
    headers = _user(fast_city, "x-fast-restart")
    assert client.post("/route", json=_body(), headers=headers).status_code == 200
    with fast_city.begin() as conn:  # what a database restart does to idle connections
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND usename = 'citygrid_app' AND state = 'idle'")).scalar_one()
    assert killed >= 1
    again = client.post("/route", json=_body(), headers=headers)
    assert again.status_code == 200, again.text
