"""Roles, tokens, login, grid-owner row-level security and the audit log, on real PostGIS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from api.main import create_app
from gis.access import auth
from gis.platform.db import transaction
from gis.platform.errors import AuthenticationError, ConflictError, InvalidInputError
from gis.platform.settings import Settings
from tests.support.accounts import PASSWORD, headers_for

DISTRICT, SUBDISTRICT, COMMUNITY = "379904", "379904904", "379904904904"
LON, LAT, SIZE = 117.0912, 36.6234, 0.001
MINE, THEIRS = f"{COMMUNITY}01", f"{COMMUNITY}02"
OWNER, OTHER = "网格员 测试甲", "网格员 测试乙"
LIGHT_MINE, LIGHT_THEIRS = "3701020118904001", "3701020118904002"


def square(i: int) -> str:
    x = LON + SIZE * i
    return (f"POLYGON(({x} {LAT}, {x + SIZE} {LAT}, {x + SIZE} {LAT + SIZE}, "
            f"{x} {LAT + SIZE}, {x} {LAT}))")


def centre(i: int) -> tuple[float, float]:
    return LON + SIZE * i + SIZE / 2, LAT + SIZE / 2


@pytest.fixture(scope="module")
def two_grids(engine: Engine) -> Iterator[Engine]:
    """Two committed grid cells held by two owners, one streetlight in each."""
    outline = (f"MULTIPOLYGON((({LON} {LAT}, {LON + 2 * SIZE} {LAT}, {LON + 2 * SIZE} "
               f"{LAT + SIZE}, {LON} {LAT + SIZE}, {LON} {LAT})))")
    with engine.begin() as conn:
        p = {"d": DISTRICT, "s": SUBDISTRICT, "c": COMMUNITY, "g": outline}
        conn.execute(text("INSERT INTO districts (code, name, source, geom) "
                          "VALUES (:d, '权限测试区', 'test', ST_GeomFromText(:g, 4326))"), p)
        conn.execute(text("INSERT INTO subdistricts (code, name, district_code, geom) "
                          "VALUES (:s, '权限测试街道', :d, ST_GeomFromText(:g, 4326))"), p)
        conn.execute(text("INSERT INTO communities (code, name, subdistrict_code, geom) "
                          "VALUES (:c, '权限测试社区', :s, ST_GeomFromText(:g, 4326))"), p)
        for i, (grid, owner) in enumerate(((MINE, OWNER), (THEIRS, OTHER))):
            conn.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                              "VALUES (:code, :c, ST_GeomFromText(:g, 4326))"),
                         {"code": grid, "c": COMMUNITY, "g": square(i)})
            conn.execute(text(
                "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from) "
                "VALUES (:g, :n, 'grid_worker', '13800000000', :f)"),
                {"g": grid, "n": owner, "f": dt.date.today() - dt.timedelta(days=10)})
        for i, code in enumerate((LIGHT_MINE, LIGHT_THEIRS)):
            x, y = centre(i)
            conn.execute(text(
                "INSERT INTO streetlights (code, owner, maintainer, grid_code, geom) "
                "VALUES (:code, '城市照明管理处', '照明养护公司', :g, "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                {"code": code, "g": (MINE, THEIRS)[i], "x": x, "y": y})
    yield engine
    with engine.begin() as conn:
        # Case history is append-only by trigger; the test's own rows go with triggers off.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        ids = [r[0] for r in conn.execute(text(
            "SELECT id FROM cases WHERE grid_code IN (:a, :b)"), {"a": MINE, "b": THEIRS})]
        for table in ("case_transitions", "case_extensions", "open311_requests"):
            conn.execute(text(f"DELETE FROM {table} WHERE case_id = ANY(:i)"), {"i": ids})
        conn.execute(text("UPDATE cases SET repeat_of = NULL WHERE id = ANY(:i)"), {"i": ids})
        conn.execute(text("DELETE FROM cases WHERE id = ANY(:i)"), {"i": ids})
        conn.execute(text("DELETE FROM streetlights WHERE code IN (:a, :b)"),
                     {"a": LIGHT_MINE, "b": LIGHT_THEIRS})
        conn.execute(text("DELETE FROM grid_cells WHERE community_code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM communities WHERE code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM subdistricts WHERE code = :s"), {"s": SUBDISTRICT})
        conn.execute(text("DELETE FROM districts WHERE code = :d"), {"d": DISTRICT})


@pytest.fixture(scope="module")
def client(test_settings: Settings, two_grids: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(test_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def cases(client: TestClient, two_grids: Engine) -> dict[str, int]:
    """One case in each grid, filed and dispatched by a dispatcher."""
    dispatcher = headers_for(two_grids, "dispatcher")
    made = {}
    for i, grid in enumerate((MINE, THEIRS)):
        x, y = centre(i)
        r = client.post("/cases", headers=dispatcher, json={
            "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": x + SIZE / 5, "y": y, "description": f"测试投诉 {grid}"})
        assert r.status_code == 201, r.text
        assert r.json()["grid_code"] == grid
        for action in ("file", "dispatch"):
            assert client.post(f"/cases/{r.json()['id']}/actions/{action}", headers=dispatcher,
                               json={}).status_code == 200
        made[grid] = r.json()["id"]
    return made


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_passwords_are_salted_scrypt_and_verified() -> None:
    first, second = auth.hash_password("geheim-123"), auth.hash_password("geheim-123")
    assert first != second and first.startswith("scrypt$")
    assert auth.verify_password("geheim-123", first)
    assert not auth.verify_password("geheim-124", first)
    assert not auth.verify_password("geheim-123", "not-a-hash")


def test_user_rules(two_grids: Engine) -> None:
    with transaction(two_grids) as session:
        with pytest.raises(InvalidInputError, match="'boss'"):
            auth.create_user(session, username="x-boss", password=PASSWORD, role="boss")
        with pytest.raises(InvalidInputError, match="owner_name"):
            auth.create_user(session, username="x-owner", password=PASSWORD, role="grid_owner")
        with pytest.raises(InvalidInputError, match="shorter than 8"):
            auth.create_user(session, username="x-short", password="1234", role="analyst")
        auth.create_user(session, username="x-dup", password=PASSWORD, role="analyst")
        with pytest.raises(ConflictError, match="'x-dup'"):
            auth.create_user(session, username="x-dup", password=PASSWORD, role="analyst")
        session.rollback()
    # The database refuses what the code would: a grid owner without an owner name.
    with pytest.raises(DBAPIError, match="check"), two_grids.begin() as conn:
        conn.execute(text("INSERT INTO users (username, role, password_hash) "
                          "VALUES ('x-raw', 'grid_owner', 'h')"))


def test_anonymous_is_401_and_wrong_role_is_403(client: TestClient, two_grids: Engine) -> None:
    r = client.get("/cases")
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    assert "needs a signed-in user" in r.json()["detail"]
    assert client.get("/cases", headers={"Authorization": "Bearer cg_forged"}).status_code == 401
    analyst = headers_for(two_grids, "analyst")
    assert client.get("/cases", headers=analyst).status_code == 200
    before = count(two_grids, "SELECT count(*) FROM cases")
    r = client.post("/cases", headers=analyst, json={
        "category_type": "event", "category_code": "0102", "channel": "patrol",
        "x": centre(0)[0], "y": centre(0)[1]})
    assert r.status_code == 403 and "'analyst'" in r.json()["detail"]
    assert count(two_grids, "SELECT count(*) FROM cases") == before
    planner = headers_for(two_grids, "planner")
    assert client.post("/route", headers=planner, json={"x": centre(0)[0], "y": centre(0)[1]}
                       ).status_code == 200  # every staff role may look up a grid
    r = client.post("/layers/stations/import", headers=planner,
                    files={"file": ("x.geojson", b'{"type":"FeatureCollection","features":[]}')})
    assert r.status_code == 403
    # Public routes stay open.
    assert client.get("/public/kinds").status_code == 200
    assert client.get("/health").status_code == 200


def test_token_and_cookie_login_logout(client: TestClient, two_grids: Engine) -> None:
    with transaction(two_grids) as session:
        auth.create_user(session, username="x-login", password=PASSWORD, role="dispatcher",
                         display_name="调度员 测试")
    bad = client.post("/auth/token", data={"username": "x-login", "password": "wrong-one"})
    assert bad.status_code == 401 and bad.json()["detail"] == "wrong username or password"
    unknown = client.post("/auth/token", data={"username": "nobody", "password": "wrong-one"})
    assert unknown.json() == bad.json()  # no hint which usernames exist
    good = client.post("/auth/token", data={"username": "x-login", "password": PASSWORD})
    assert good.status_code == 200 and good.json()["role"] == "dispatcher"
    headers = {"Authorization": f"Bearer {good.json()['access_token']}"}
    me = client.get("/auth/me", headers=headers).json()
    assert {k: me[k] for k in ("username", "role", "role_zh", "display_name", "owner_name")} == {
        "username": "x-login", "role": "dispatcher", "role_zh": "调度员",
        "display_name": "调度员 测试", "owner_name": None}
    assert me["home"] == "/dispatch" and {"path": "/dispatch", "label": "调度台"} in me["nav"]
    assert count(two_grids, "SELECT count(*) FROM api_tokens WHERE token_sha256 = :t",
                 t=good.json()["access_token"]) == 0  # only the hash is stored
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert client.get("/auth/me", headers=headers).status_code == 401

    # The page login: a cookie, HttpOnly and SameSite=Strict, then back to the page asked for.
    # The form posts from the app's own page, as browsers say in Origin (tests/access/test_csrf.py).
    with TestClient(client.app, follow_redirects=False,
                    headers={"Origin": "http://testserver"}) as browser:
        page = browser.get("/cases", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/cases"
        wrong = browser.post("/auth/login", data={"username": "x-login", "password": "nope-nope",
                                                  "next": "/cases"})
        assert wrong.headers["location"].startswith("/login?error=1")
        offsite = browser.post("/auth/login", data={"username": "x-login",
                                                    "password": PASSWORD, "next": "//evil.example"})
        # Never an open redirect: the role's main page instead (maps/shell.py ROLE_HOME).
        assert offsite.headers["location"] == "/dispatch"
        cookie = offsite.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert browser.get("/cases").status_code == 200
        assert browser.get("/auth/me").json()["username"] == "x-login"


def test_disabled_user_loses_tokens(client: TestClient, two_grids: Engine) -> None:
    with transaction(two_grids) as session:
        user = auth.create_user(session, username="x-leaver", password=PASSWORD, role="analyst")
        token = auth.issue_token(session, user=user)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/auth/me", headers=headers).status_code == 200
    with transaction(two_grids) as session:
        auth.set_active(session, username="x-leaver", active=False)
    assert client.get("/auth/me", headers=headers).status_code == 401
    with transaction(two_grids) as session:
        auth.set_active(session, username="x-leaver", active=True)
        with pytest.raises(AuthenticationError):  # revoked on disable, not revived
            auth.user_for_token(session, token)


def test_expired_token_is_refused(two_grids: Engine) -> None:
    with transaction(two_grids) as session:
        user = auth.create_user(session, username="x-expired", password=PASSWORD, role="analyst")
        token = auth.issue_token(session, user=user, hours=1)
        session.execute(text("UPDATE api_tokens SET created_at = now() - interval '3 hours', "
                             "expires_at = now() - interval '1 hour' WHERE user_id = :u"),
                        {"u": user.id})
        with pytest.raises(AuthenticationError, match="expired"):
            auth.user_for_token(session, token)


def test_grid_owner_sees_and_changes_only_own_grids(client: TestClient, two_grids: Engine,
                                                    cases: dict[str, int]) -> None:
    owner = headers_for(two_grids, "grid_owner", owner_name=OWNER)
    listed = {c["id"] for c in client.get("/cases", headers=owner,
                                          params={"limit": 10_000}).json()}
    assert cases[MINE] in listed and cases[THEIRS] not in listed
    assert client.get(f"/cases/{cases[THEIRS]}", headers=owner).status_code == 404
    assert client.get(f"/cases/{cases[MINE]}", headers=owner).status_code == 200
    items = client.get("/layers/streetlights/items", headers=owner,
                       params={"bbox": f"{LON},{LAT},{LON + 2 * SIZE},{LAT + SIZE}"}).json()
    assert [f["id"] for f in items["features"]] == [LIGHT_MINE]

    # Work on another grid's case: 404, and nothing written.
    transitions = count(two_grids, "SELECT count(*) FROM case_transitions WHERE case_id = :i",
                        i=cases[THEIRS])
    r = client.post(f"/cases/{cases[THEIRS]}/actions/handle", headers=owner, json={})
    assert r.status_code == 404
    assert count(two_grids, "SELECT count(*) FROM case_transitions WHERE case_id = :i",
                 i=cases[THEIRS]) == transitions
    # Own case: handle is allowed; closing stays with the centre.
    assert client.post(f"/cases/{cases[MINE]}/actions/handle", headers=owner,
                       json={}).status_code == 200
    r = client.post(f"/cases/{cases[MINE]}/actions/close", headers=owner, json={})
    assert r.status_code == 403 and "'close'" in r.json()["detail"]

    # Components: own light can be marked damaged; the other grid's is invisible.
    r = client.patch(f"/assets/streetlights/{LIGHT_MINE}", headers=owner,
                     json={"state": "damaged", "lit": False})
    assert r.status_code == 200 and r.json()["state"] == "damaged" and r.json()["lit"] is False
    r = client.patch(f"/assets/streetlights/{LIGHT_THEIRS}", headers=owner,
                     json={"state": "damaged"})
    assert r.status_code == 404
    assert count(two_grids, "SELECT count(*) FROM streetlights WHERE code = :c AND "
                 "state = 'intact'", c=LIGHT_THEIRS) == 1
    r = client.patch(f"/assets/streetlights/{LIGHT_MINE}", headers=owner,
                     json={"state": "broken"})
    assert r.status_code == 422 and "broken" in r.text


def test_rls_holds_in_the_database_itself(two_grids: Engine, cases: dict[str, int]) -> None:
    """Even a forged UPDATE by the scoped role touches no row of another grid."""
    with two_grids.begin() as conn:
        conn.execute(text(f"SET LOCAL ROLE {auth.SCOPED_DB_ROLE}"))
        conn.execute(text("SELECT set_config('citygrid.owner_name', :o, true)"), {"o": OWNER})
        changed = conn.execute(text("UPDATE cases SET description = 'x' WHERE id = :i"),
                               {"i": cases[THEIRS]}).rowcount
        assert changed == 0
        with pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text("SELECT count(*) FROM users"))


def test_audit_log_records_who_what_before_after(client: TestClient, two_grids: Engine,
                                                 cases: dict[str, int]) -> None:
    dispatcher = headers_for(two_grids, "dispatcher")
    me = client.get("/auth/me", headers=dispatcher).json()["username"]
    r = client.patch(f"/assets/streetlights/{LIGHT_THEIRS}", headers=dispatcher,
                     json={"state": "missing"})
    assert r.status_code == 200
    admin = headers_for(two_grids, "admin")
    rows = client.get("/audit", headers=admin, params={
        "table": "streetlights", "row_key": LIGHT_THEIRS, "action": "UPDATE"}).json()
    assert rows, "the update was not audited"
    latest = rows[0]
    assert latest["actor"] == me and latest["actor_role"] == "dispatcher"
    assert latest["before"]["state"] == "intact" and latest["after"]["state"] == "missing"
    assert latest["after"]["geom"]["type"] == "Point"  # geometry as GeoJSON
    assert latest["request"] == f"PATCH /assets/streetlights/{LIGHT_THEIRS}"
    created = client.get("/audit", headers=admin, params={
        "table": "cases", "row_key": str(cases[MINE]), "action": "INSERT"}).json()
    assert len(created) == 1 and created[0]["after"]["grid_code"] == MINE
    # Only admins read it; nobody rewrites it.
    assert client.get("/audit", headers=dispatcher).status_code == 403
    assert client.get("/audit", headers=admin, params={"action": "DROP"}).status_code == 422
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log",
                "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), two_grids.begin() as conn:
            conn.execute(text(sql))
    # Password hashes never reach the log.
    assert count(two_grids, "SELECT count(*) FROM audit_log WHERE table_name = 'users' "
                 "AND (after ? 'password_hash' OR before ? 'password_hash')") == 0


def test_open311_post_needs_a_dispatcher_api_key(client: TestClient, two_grids: Engine) -> None:
    x, y = centre(0)
    form = {"service_code": "event-0102", "lat": str(y), "long": str(x)}
    before = count(two_grids, "SELECT count(*) FROM cases")
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 401 and "api_key" in r.json()[0]["description"]
    garbage = client.post("/open311/v2/requests.json", data={"lat": "north"})
    assert garbage.status_code == 401  # who posts is checked before what is posted
    analyst_token = headers_for(two_grids, "analyst")["Authorization"][7:]
    r = client.post("/open311/v2/requests.json", data={**form, "api_key": analyst_token})
    assert r.status_code == 403
    assert count(two_grids, "SELECT count(*) FROM cases") == before
    token = headers_for(two_grids, "dispatcher")["Authorization"][7:]
    r = client.post("/open311/v2/requests.json", data={**form, "api_key": token})
    assert r.status_code == 201, r.text
    assert count(two_grids, "SELECT count(*) FROM cases") == before + 1


def _tile_codes(client: TestClient, engine: Engine, headers: dict[str, str],
                code: str) -> set[str]:
    """Light codes in the zoom-17 streetlight tile that holds light `code`."""
    import math

    import mapbox_vector_tile

    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM streetlights "
                                     "WHERE code = :c"), {"c": code}).one()
    n = 2 ** 17
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    r = client.get(f"/tiles/streetlights/17/{x}/{y}.pbf", headers=headers)
    assert r.status_code == 200, r.text
    layer = mapbox_vector_tile.decode(r.content).get("streetlights", {"features": []})
    return {str(f["properties"].get("code")) for f in layer["features"]}


def test_map_of_a_grid_owner_shows_only_their_rows(client: TestClient, two_grids: Engine,
                                                   cases: dict[str, int]) -> None:
    # /map embeds no row data any more: lights, covers and cases come from /tiles in the
    # caller's own session, so row-level security decides what a grid owner's map holds.
    admin = headers_for(two_grids, "analyst")
    owner = headers_for(two_grids, "grid_owner", owner_name=OWNER)
    for page in (client.get("/map", headers=admin).text, client.get("/map", headers=owner).text):
        assert LIGHT_MINE not in page and LIGHT_THEIRS not in page
    assert LIGHT_MINE in _tile_codes(client, two_grids, admin, LIGHT_MINE)
    assert LIGHT_THEIRS in _tile_codes(client, two_grids, admin, LIGHT_THEIRS)
    assert LIGHT_MINE in _tile_codes(client, two_grids, owner, LIGHT_MINE)
    assert LIGHT_THEIRS not in _tile_codes(client, two_grids, owner, LIGHT_THEIRS)
    # ... and the owner's tile did not replace the one everybody else gets.
    assert LIGHT_THEIRS in _tile_codes(client, two_grids, headers_for(two_grids, "admin"),
                                       LIGHT_THEIRS)


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/\t/evil.example",
                                    "/\n/evil.example", "https://evil.example", "evil", ""])
def test_login_next_is_never_an_open_redirect(target: str) -> None:
    from api.routes.access import _safe_next

    assert _safe_next(target) == "/"
    assert _safe_next("/cases?status=open") == "/cases?status=open"
