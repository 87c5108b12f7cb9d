"""POST /route from the sign-in cache: no statement per request, and no revocation missed.

gis/dispatch/engine/route_cache.py keeps verified sign-ins and routing checks per process and
drops them on NOTIFY (migration 0033). These tests pin down: cached requests run no
statement and answer as route_point; a revoked token, a disabled account, a role change and
an owner edit are seen by the next request once the notice is delivered; a killed listener
means the one-statement path again (a revocation while it is down is still refused); a
token's own expiry and the entries' age cap hold without any notice; a sign-in read before a
notice is not kept after it; the CSRF guard is unchanged.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.access import auth
from gis.dispatch.engine.route_cache import RouteCache, RouteCacheSettings
from gis.dispatch.engine.signed import CHECK_KEYS, token_digest
from gis.platform.db import libpq_dsn, role_url, transaction
from gis.platform.settings import Settings
from tests.dispatch.test_engine_signed_route import (  # noqa: F401 (fixture)
    GRIDS,
    OWNER,
    _body,
    _sql_answer,
    _user,
    fast_city,
)

CATEGORY = ("event", "0505")


def _wait(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.02)


@pytest.fixture
def client(test_settings: Settings, fast_city: Engine) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(test_settings)
    # A killed listener stays down for the test's length (no reconnect within it).
    app.state.route_cache_settings = RouteCacheSettings(retry_s=30)
    with TestClient(app) as c:
        yield c


def _cache(client: TestClient) -> RouteCache:
    cache = client.app.state.route_cache  # type: ignore[attr-defined]
    assert isinstance(cache, RouteCache)
    _wait(lambda: cache.ready, "the listener")
    return cache


def _statements(run: Callable[[], Any]) -> list[str]:
    seen: list[str] = []

    def on_execute(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        run()
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
    return seen


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _warm(client: TestClient, headers: dict[str, str]) -> RouteCache:
    """First request starts the listener; once it listens the next one fills the cache."""
    assert client.post("/route", json=_body(), headers=headers).status_code == 200
    cache = _cache(client)
    assert client.post("/route", json=_body(), headers=headers).status_code == 200
    assert cache.lookup(token_digest(_token(headers)), CATEGORY) is not None
    return cache


def _after_notice(cache: RouteCache, before: int) -> None:
    # NOTIFY reaches the listener's socket shortly after the commit: bounded wait for it.
    _wait(lambda: cache.drain() and cache.notices > before, "the notice")


def test_cached_requests_run_no_statement_and_answer_as_route_point(
        client: TestClient, fast_city: Engine, test_settings: Settings) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-one")
    _warm(client, headers)
    answers: list[Any] = []

    def run() -> None:
        for i in (0, 1):
            got = client.post("/route", json=_body(i), headers=headers)
            assert got.status_code == 200, got.text
            answers.append(got.json())

    assert _statements(run) == []
    for i, got in enumerate(answers):
        assert got == _sql_answer(fast_city, _body(i), test_settings)
        assert got["grid_code"] == GRIDS[i]


def test_revoke_disable_and_role_change_are_seen_by_the_next_request(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    callers = {name: _user(fast_city, f"x-cache-{name}") for name in ("out", "gone", "moved")}
    cache = _warm(client, callers["out"])
    for headers in callers.values():
        assert client.post("/route", json=_body(), headers=headers).status_code == 200
        assert cache.lookup(token_digest(_token(headers)), CATEGORY) is not None
    before = cache.notices
    with transaction(fast_city) as session:
        auth.revoke_token(session, _token(callers["out"]))
        auth.set_active(session, username="x-cache-gone", active=False)
        session.execute(text("UPDATE users SET role = 'grid_owner', owner_name = :o "
                             "WHERE username = 'x-cache-moved'"), {"o": f"{OWNER}0"})
    _after_notice(cache, before)
    for name in ("out", "gone"):
        refused = client.post("/route", json=_body(), headers=callers[name])
        assert refused.status_code == 401, refused.text
        assert refused.json()["detail"] == "token is unknown, expired or revoked"
    moved = callers["moved"]
    assert client.post("/route", json=_body(), headers=moved).status_code == 200
    again = cache.lookup(token_digest(_token(moved)), CATEGORY)
    assert again is not None and again[0].role == "grid_owner"


def test_an_owner_edit_moves_the_routing_version_and_the_next_answer(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-owner-edit")
    cache = _warm(client, headers)
    before = cache.notices
    with fast_city.begin() as conn:
        conn.execute(text("UPDATE grid_owners SET phone = '13900000000' WHERE grid_code = :g"),
                     {"g": GRIDS[0]})
    try:
        _after_notice(cache, before)
        got = client.post("/route", json=_body(), headers=headers)
        assert got.status_code == 200 and got.json()["owner"]["phone"] == "13900000000"
    finally:
        with fast_city.begin() as conn:
            conn.execute(text("UPDATE grid_owners SET phone = '13800000000' "
                              "WHERE grid_code = :g"), {"g": GRIDS[0]})


def test_a_killed_listener_means_the_statement_path_again(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-killed")
    cache = _warm(client, headers)
    with fast_city.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"),
                            {"p": cache.backend_pid}).scalar_one()
    _wait(lambda: not cache.drain(), "the listener to notice it is gone")
    assert not cache.ready and cache.lookup(token_digest(_token(headers)), CATEGORY) is None
    seen = _statements(lambda: client.post("/route", json=_body(), headers=headers))
    assert len(seen) == 1 and "api_tokens" in seen[0]
    # Revoked while nobody listens: no notice reaches the process, the statement refuses it.
    with transaction(fast_city) as session:
        auth.revoke_token(session, _token(headers))
    refused = client.post("/route", json=_body(), headers=headers)
    assert refused.status_code == 401, refused.text


def test_an_expired_token_is_refused_without_any_notice(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-expiring")
    cache = _warm(client, headers)
    with fast_city.begin() as conn:  # an INSERT notifies nobody: only the expiry can stop it
        conn.execute(text(
            "INSERT INTO api_tokens (token_sha256, user_id, expires_at) "
            "SELECT :t, id, now() + interval '1.5 seconds' FROM users "
            "WHERE username = 'x-cache-expiring'"), {"t": token_digest("cg_short-lived")})
    short = {"Authorization": "Bearer cg_short-lived"}
    assert client.post("/route", json=_body(), headers=short).status_code == 200
    assert cache.lookup(token_digest("cg_short-lived"), CATEGORY) is not None
    notices = cache.notices
    time.sleep(1.6)
    refused = client.post("/route", json=_body(), headers=short)
    assert refused.status_code == 401, refused.text
    assert cache.notices == notices


def test_entries_age_out_and_a_sign_in_read_before_a_notice_is_not_kept(
        test_settings: Settings, fast_city: Engine) -> None:  # noqa: F811
    now = [1000.0]
    cache = RouteCache(libpq_dsn(role_url(test_settings, "app")),
                       RouteCacheSettings(max_age_s=30), clock=lambda: now[0])
    cache.start()
    try:
        _wait(lambda: cache.ready, "the listener")
        headers = _user(fast_city, "x-cache-unit")
        user = auth.User(1, "x-cache-unit", "dispatcher")
        row = {k: None for k in CHECK_KEYS} | {
            "version": 1, "district_code": None,
            "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}
        digest = token_digest(_token(headers))
        assert cache.remember(cache.generation(), digest, user, row, CATEGORY, CHECK_KEYS)
        now[0] += 29
        assert cache.lookup(digest, CATEGORY) is not None
        now[0] += 2  # 31 s: older than max_age_s
        assert cache.lookup(digest, CATEGORY) is None
        # Read before a revocation commits, stored after its notice: not kept.
        generation = cache.generation()
        before = cache.notices
        with transaction(fast_city) as session:
            auth.revoke_token(session, _token(headers))
        _after_notice(cache, before)
        assert not cache.remember(generation, digest, user, row, CATEGORY, CHECK_KEYS)
        assert cache.lookup(digest, CATEGORY) is None
    finally:
        cache.close()
    assert not cache.ready and cache.generation() is None


def test_the_csrf_guard_still_refuses_a_cached_sign_in_from_another_origin(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-csrf")
    _warm(client, headers)
    with TestClient(client.app, cookies={"citygrid_token": _token(headers)}) as browser:
        forged = browser.post("/route", json=_body(), headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
        own = browser.post("/route", json=_body(), headers={"Origin": "http://testserver"})
        assert own.status_code == 200 and own.json()["grid_code"] == GRIDS[0]


def test_the_body_is_checked_as_a_fastapi_parameter_was(
        client: TestClient, fast_city: Engine) -> None:  # noqa: F811
    headers = _user(fast_city, "x-cache-bodies")
    _warm(client, headers)
    json_body = b'{"x": 117.1515, "y": 36.6040, "category_code": "0505"}'
    cases = [  # (content, content type, first error's type and loc)
        (b"", "application/json", "missing", ["body"]),
        (json_body, "text/plain", "model_attributes_type", ["body"]),  # JSON only as JSON
        (b"{bad", "application/json", "json_invalid", ["body", 1]),
        (b'{"x": Infinity, "y": 1}', "application/json", "finite_number", ["body", "x"]),
        (b'[1, 2]', "application/json", "model_attributes_type", ["body"]),
    ]
    for content, kind, error, loc in cases:
        got = client.post("/route", content=content, headers={**headers, "Content-Type": kind})
        assert got.status_code == 422, (content, got.text)
        assert (got.json()["detail"][0]["type"], got.json()["detail"][0]["loc"]) == (error, loc)
    ok = client.post("/route", content=json_body,
                     headers={**headers, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and ok.json()["grid_code"] == GRIDS[0]
