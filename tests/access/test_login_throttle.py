"""Sign-in throttling: the pure throttle on a fake clock, then /auth/token and /login on PostGIS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.access import auth
from gis.access.throttle import KeyThrottle, LoginThrottle
from gis.platform.db import transaction
from gis.platform.settings import Settings
from tests.support.accounts import PASSWORD

ORIGIN = {"Origin": "http://testserver"}  # the login form is a same-origin POST


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: KeyThrottle, key: str) -> float:
    assert throttle.wait(key) == 0
    throttle.start(key)
    return throttle.failed(key)


# --- the pure throttle -----------------------------------------------------------------------

def test_lockout_starts_after_free_failures_and_doubles_to_the_cap() -> None:
    clock = FakeClock()
    t = KeyThrottle(free_failures=5, window_s=900, base_delay_s=30, max_delay_s=240, clock=clock)
    assert [fail(t, "u") for _ in range(4)] == [0, 0, 0, 0]
    assert fail(t, "u") == 30
    assert t.wait("u") == 30
    clock.now += 29
    assert t.wait("u") == pytest.approx(1)
    delays = []
    for _ in range(5):
        clock.now += t.wait("u")
        delays.append(fail(t, "u"))
    assert delays == [60, 120, 240, 240, 240]  # doubling, capped
    assert t.wait("other") == 0  # keys are independent


def test_failures_are_forgotten_after_a_quiet_window_and_reset_on_success() -> None:
    clock = FakeClock()
    t = KeyThrottle(free_failures=3, window_s=900, base_delay_s=30, clock=clock)
    fail(t, "u")
    fail(t, "u")
    clock.now += 901
    assert t.failures("u") == 0
    fail(t, "u")
    fail(t, "u")
    t.start("u")
    t.succeeded("u")
    assert t.failures("u") == 0 and t.wait("u") == 0


def test_parallel_attempts_cannot_outrun_the_count() -> None:
    t = KeyThrottle(free_failures=5, clock=FakeClock())
    started = 0
    for _ in range(50):  # 50 guesses sent at once, none answered yet
        if t.wait("u") == 0:
            t.start("u")
            started += 1
    assert started == 5
    for _ in range(5):
        t.failed("u")
    assert t.wait("u") == 30  # and now locked


def test_memory_stays_bounded() -> None:
    clock = FakeClock()
    t = KeyThrottle(free_failures=5, window_s=900, max_entries=100, clock=clock)
    for i in range(10_000):
        fail(t, f"spray-{i}")
    assert len(t) == 100
    clock.now += 10_000  # all stale: the next failure sweeps them
    fail(t, "late")
    assert len(t) == 1
    assert t._in_flight == {}  # every attempt ended


def test_success_resets_the_user_but_not_the_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(users=KeyThrottle(free_failures=5, clock=clock),
                             addresses=KeyThrottle(free_failures=20, clock=clock))
    who = {"username": "Alice", "address": "10.0.0.1"}
    for _ in range(4):
        assert throttle.begin(**who).allowed
        throttle.failed(**who)
    assert throttle.begin(**who).allowed
    throttle.succeeded(**who)
    assert throttle.users.failures("alice") == 0
    assert throttle.addresses.failures("10.0.0.1") == 4
    for _ in range(5):  # `ALICE ` is the same account
        assert throttle.begin(username="ALICE ", address="10.0.0.1").allowed
        throttle.failed(username="ALICE ", address="10.0.0.1")
    verdict = throttle.begin(**who)
    assert not verdict.allowed and verdict.retry_after_s == 30


# --- over HTTP, with the audit log ------------------------------------------------------------

@pytest.fixture
def user(engine: Engine) -> Iterator[str]:
    name = f"x-guess-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role="dispatcher")
    yield name
    with transaction(engine) as session:
        session.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})


def audit_events(engine: Engine, username: str) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(
            "SELECT after->>'event' FROM audit_log WHERE table_name = 'sign_in' "
            "AND row_key = :u ORDER BY id"), {"u": username})]


def test_755_guesses_at_the_token_endpoint_are_not_all_evaluated(
        test_settings: Settings, engine: Engine, user: str) -> None:
    statuses: dict[int, int] = {}
    # A lockout longer than the 755 requests take on a loaded machine (30 s once was not).
    slow = test_settings.model_copy(deep=True)
    slow.api.login_lockout_s = slow.api.login_max_lockout_s = 600
    with TestClient(create_app(slow)) as client:
        for i in range(755):
            r = client.post("/auth/token", data={"username": user, "password": f"guess-{i}"})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert "try again in" in r.json()["detail"]
        assert statuses == {401: 5, 429: 750}
        # The right password during the lockout is refused too, without being looked at.
        right = client.post("/auth/token", data={"username": user, "password": PASSWORD})
        assert right.status_code == 429 and 1 <= int(right.headers["Retry-After"]) <= 600
    assert audit_events(engine, user) == ["failed"] * 5 + ["locked"]
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT actor, action, request, after FROM audit_log WHERE table_name = 'sign_in' "
            "AND row_key = :u AND after->>'event' = 'locked'"), {"u": user}).one()
    assert row.actor == "anonymous" and row.action == "SIGN_IN"
    assert row.request == "POST /auth/token"
    assert row.after == {"event": "locked", "address": "testclient", "failures": 5,
                         "locked_for_s": 600}


def test_lockout_grows_and_a_success_resets_the_user(test_settings: Settings, engine: Engine,
                                                      user: str) -> None:
    clock = FakeClock()
    app = create_app(test_settings)
    app.state.login_throttle = LoginThrottle(users=KeyThrottle(clock=clock),
                                             addresses=KeyThrottle(free_failures=20, clock=clock))
    wrong = {"username": user, "password": "wrong-one"}
    with TestClient(app) as client:
        for _ in range(4):
            assert client.post("/auth/token", data=wrong).status_code == 401
        assert client.post("/auth/token", data={"username": user, "password": PASSWORD}
                           ).status_code == 200
        for _ in range(5):  # counted afresh after the success
            assert client.post("/auth/token", data=wrong).status_code == 401
        waits = []
        for _ in range(3):
            r = client.post("/auth/token", data=wrong)
            assert r.status_code == 429
            waits.append(int(r.headers["Retry-After"]))
            clock.now += waits[-1]
            assert client.post("/auth/token", data=wrong).status_code == 401
        assert waits == [30, 60, 120]


def test_one_address_spraying_many_usernames_is_throttled(test_settings: Settings,
                                                          engine: Engine) -> None:
    with TestClient(create_app(test_settings), client=("203.0.113.9", 4000)) as client:
        codes = [client.post("/auth/token", data={"username": f"nobody-{i}",
                                                  "password": "password1"}).status_code
                 for i in range(40)]
    assert codes == [401] * 20 + [429] * 20
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE table_name = 'sign_in' "
            "AND after->>'address' = '203.0.113.9' AND after->>'event' = 'failed'")).scalar()
    assert rows == 20


def test_login_form_is_throttled_with_a_page_that_says_so(test_settings: Settings,
                                                          engine: Engine, user: str) -> None:
    with TestClient(create_app(test_settings), follow_redirects=False,
                    client=("198.51.100.7", 4000)) as browser:
        for _ in range(5):
            r = browser.post("/auth/login", headers=ORIGIN,
                             data={"username": user, "password": "nope-nope", "next": "/map"})
            assert r.status_code == 303 and r.headers["location"].startswith("/login?error=1")
        for password in ("nope-nope", PASSWORD):
            r = browser.post("/auth/login", headers=ORIGIN,
                             data={"username": user, "password": password, "next": "/map"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert "登录失败次数过多" in r.text and "set-cookie" not in r.headers
        # The token endpoint shares the count: same user, other door.
        assert browser.post("/auth/token", data={"username": user, "password": PASSWORD}
                            ).status_code == 429
    assert audit_events(engine, user) == ["failed"] * 5 + ["locked"]
    with engine.connect() as conn:
        requests = {r[0] for r in conn.execute(text(
            "SELECT request FROM audit_log WHERE table_name = 'sign_in' AND row_key = :u"),
            {"u": user})}
    assert requests == {"POST /auth/login"}


def test_hostile_usernames_are_logged_without_500(test_settings: Settings,
                                                  engine: Engine) -> None:
    # Raw form bodies: NUL, a UTF-8-encoded lone surrogate, invalid UTF-8, huge, SQL, markup.
    bodies = ["username=a%00b&password=x", "username=%ED%A0%80x&password=x",
              "username=%FF%FE&password=%00", "username=" + "x" * 5000 + "&password=x",
              "username=%27%20OR%201%3D1%20--&password=x",
              "username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=x"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    evaluated = 0
    with TestClient(create_app(test_settings), client=("192.0.2.55", 4000)) as client:
        for body in bodies:
            # 400: refused at the edge (api/input_guard.py); 401: a wrong sign-in, logged.
            r = client.post("/auth/token", content=body.encode(), headers=form)
            assert r.status_code in (400, 401), (body[:40], r.status_code, r.text)
            evaluated += r.status_code == 401
            r = client.post("/auth/login", content=body.encode(), headers={**form, **ORIGIN},
                            follow_redirects=False)
            assert r.status_code in (303, 400, 422), (body[:40], r.status_code, r.text)
            evaluated += r.status_code == 303
    with engine.connect() as conn:
        logged = conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE table_name = 'sign_in' "
            "AND after->>'address' = '192.0.2.55' AND after->>'event' = 'failed'")).scalar()
    assert evaluated >= 4 and logged == evaluated
