"""Throttles shared by app processes: two app instances on one database are two workers.

Each instance has its own in-process throttle, as two `citygrid serve --workers 2` processes
do; the counts in PostgreSQL (migration 0026) make their budgets one.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.access import auth
from gis.access.shared_throttle import count_hit
from gis.platform.db import transaction
from gis.platform.settings import Settings
from tests.dispatch.test_routing import build_city
from tests.support.accounts import PASSWORD
from tests.support.photos import jpeg_with_exif

POINT = (117.0315, 36.6605)  # grid A04 of the constructed city


@pytest.fixture
def shared_settings(test_settings: Settings, tmp_path) -> Settings:
    copy = test_settings.model_copy(deep=True)
    copy.api.shared_throttle = True
    copy.media.dir = tmp_path / "media"
    return copy


@pytest.fixture
def address() -> Iterator[str]:
    """A client address of this test alone (counts of other tests never meet it)."""
    value = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    yield value


@pytest.fixture
def user(engine: Engine) -> Iterator[str]:
    name = f"x-shared-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role="dispatcher")
    yield name
    with transaction(engine) as session:
        session.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})
        session.execute(text("DELETE FROM sign_in_failures WHERE key = :u"), {"u": name})


def token(client: TestClient, username: str, password: str) -> int:
    return client.post("/auth/token", data={"username": username, "password": password}
                       ).status_code


def test_failures_on_two_workers_lock_the_account_on_both(
        shared_settings: Settings, engine: Engine, user: str, address: str) -> None:
    one, two = create_app(shared_settings), create_app(shared_settings)
    with TestClient(one, client=(address, 1)) as a, TestClient(two, client=(address, 2)) as b:
        # Five free failures in all (login_max_failures), spread 3 + 2 over the workers.
        assert [token(a, user, "wrong") for _ in range(3)] == [401] * 3
        assert [token(b, user, "wrong") for _ in range(2)] == [401] * 2
        # Worker one has seen only three failures itself, and still refuses: the count is shared.
        refused = a.post("/auth/token", data={"username": user, "password": PASSWORD})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        assert token(b, user, PASSWORD) == 429
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT failures, locked_until > now() AS locked FROM sign_in_failures "
            "WHERE kind = 'user' AND key = :u"), {"u": user}).one()
    assert row.failures == 5 and row.locked


def test_success_clears_the_shared_count_of_the_account(
        shared_settings: Settings, engine: Engine, user: str, address: str) -> None:
    one, two = create_app(shared_settings), create_app(shared_settings)
    with TestClient(one, client=(address, 1)) as a, TestClient(two, client=(address, 2)) as b:
        assert [token(a, user, "wrong") for _ in range(4)] == [401] * 4
        assert token(b, user, PASSWORD) == 200
        # Counted afresh: four more failures on the other worker do not lock yet.
        assert [token(a, user, "wrong") for _ in range(4)] == [401] * 4
        assert token(b, user, PASSWORD) == 200


def test_one_address_spraying_usernames_over_two_workers_is_throttled(
        shared_settings: Settings, engine: Engine, address: str) -> None:
    one, two = create_app(shared_settings), create_app(shared_settings)
    codes = []
    with TestClient(one, client=(address, 1)) as a, TestClient(two, client=(address, 2)) as b:
        for i in range(30):
            client = a if i % 2 else b
            codes.append(token(client, f"nobody-{uuid.uuid4().hex[:6]}", "password1"))
    # 20 free failures per address in all, not 20 per worker.
    assert codes == [401] * 20 + [429] * 10
    with transaction(engine) as session:
        session.execute(text("DELETE FROM sign_in_failures WHERE key = :a"), {"a": address})


def test_hostile_keys_are_counted_not_500(shared_settings: Settings, address: str) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with TestClient(create_app(shared_settings), client=(address, 1)) as client:
        for body in ("username=a%00b&password=x", "username=%ED%A0%80x&password=x"):
            r = client.post("/auth/token", content=body.encode(), headers=form)
            assert r.status_code in (400, 401), r.text


def test_sliding_window_quota_is_one_for_all_connections(engine: Engine) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    waits = []
    # Two connections, as two processes have: the count is the database's, not theirs.
    with Session(engine) as first, Session(engine) as second:
        for i in range(5):
            session = first if i % 2 else second
            waits.append(count_hit(session, scope="test", key=key, limit=3, window_s=3600))
            session.commit()
    assert waits[:3] == [0, 0, 0]
    assert all(1 <= w <= 3600 for w in waits[3:])
    with transaction(engine) as session:
        hits = session.execute(text("SELECT sum(hits) FROM rate_windows WHERE key = :k"),
                               {"k": key}).scalar()
        session.execute(text("DELETE FROM rate_windows WHERE key = :k"), {"k": key})
    assert hits == 5  # refused hits count too


def test_previous_window_still_weighs_in(engine: Engine) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as session:
        # Three hits in the window just before this one: at most one more until it fades.
        session.execute(text("""
            INSERT INTO rate_windows (scope, key, window_start, hits)
            VALUES ('test', :k, to_timestamp(floor(extract(epoch FROM clock_timestamp())
                                                   / 3600) * 3600 - 3600), 3)"""), {"k": key})
    with Session(engine) as session:
        elapsed = session.execute(text(
            "SELECT extract(epoch FROM clock_timestamp())::numeric % 3600")).scalar()
        allowed = 0
        while count_hit(session, scope="test", key=key, limit=3) == 0 and allowed < 10:
            allowed += 1
        session.commit()
    # 3 * (1 - elapsed/3600) of the old hits still count, so only floor(3 * elapsed/3600) new
    # ones fit (a fixed window would let all 3 through); a few seconds pass while counting.
    assert math.floor(3 * float(elapsed) / 3600) <= allowed
    assert allowed <= math.floor(3 * (float(elapsed) + 5) / 3600)
    with transaction(engine) as session:
        session.execute(text("DELETE FROM rate_windows WHERE key = :k"), {"k": key})


def test_resident_reports_over_two_workers_share_the_hourly_quota(
        shared_settings: Settings, session: Session, address: str) -> None:
    build_city(session)
    shared_settings.media.public_reports_per_hour = 2
    photo = jpeg_with_exif(lon=POINT[0], lat=POINT[1], taken=None)
    apps = [create_app(shared_settings), create_app(shared_settings)]
    for app in apps:
        app.dependency_overrides[get_session] = lambda: session
        app.dependency_overrides[get_public_session] = lambda: session
    form = {"category": "stall", "lat": str(POINT[1]), "lon": str(POINT[0])}
    codes = []
    with TestClient(apps[0], client=(address, 1)) as a, \
            TestClient(apps[1], client=(address, 2)) as b:
        for client in (a, b, a):
            r = client.post("/public/report", data=form, headers={"Accept": "application/json"},
                            files={"file": ("p.jpg", photo, "image/jpeg")})
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert "at most 2 reports per hour" in r.json()["detail"]
    # Worker one had let only one report through itself; the third is over the shared quota.
    assert codes == [201, 201, 429]
