"""District scope beyond `cases`: transitions, photos, checks, extensions, phone times, Open311
details and the audit log (migration 0031).

A 市中区 user bound to the app role must not read 历下区's rows of any case-keyed table by
any query path: the API, raw SQL on the parent table, or a monthly partition by its own name.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ProgrammingError

from gis.access import auth
from gis.platform.db import transaction
from tests.support.accounts import PASSWORD

LIXIA, SHIZHONG = "370102", "370103"
CASE_TABLES = ("case_transitions", "case_extensions", "case_media", "case_verifications",
               "field_action_times", "open311_requests")


def _user(engine: Engine, role: str, district: str | None) -> tuple[str, dict[str, str]]:
    """A new user (name, Authorization header) of `role` in `district` (None: the centre)."""
    with transaction(engine) as session:
        user = auth.create_user(session, username=f"t-d18-{uuid.uuid4().hex[:8]}",
                                password=PASSWORD, role=role, district_code=district)
        token = auth.issue_token(session, user=user)
    return user.username, {"Authorization": f"Bearer {token}"}


def _point_in(engine: Engine, district: str) -> tuple[float, float]:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid_cells "
            "WHERE code LIKE :d ORDER BY code LIMIT 1 OFFSET 60) s"), {"d": f"{district}%"}).one()
    return float(row[0]), float(row[1])


@pytest.fixture(scope="module")
def people(demo_engine: Engine) -> dict[str, tuple[str, dict[str, str]]]:
    return {"city": _user(demo_engine, "dispatcher", None),
            "shizhong": _user(demo_engine, "dispatcher", SHIZHONG),
            "shizhong_admin": _user(demo_engine, "admin", SHIZHONG),
            "city_admin": _user(demo_engine, "admin", None)}


def _fill_case_rows(conn: Connection, case_id: int) -> None:
    """One row of every case-keyed table for `case_id`, written as the owner."""
    tid, tat = conn.execute(text(
        "SELECT id, at FROM case_transitions WHERE case_id = :c ORDER BY at LIMIT 1"),
        {"c": case_id}).one()
    conn.execute(text(
        "INSERT INTO case_extensions (case_id, transition_id, transition_at, previous_due_at, "
        "new_due_at, reason) VALUES (:c, :t, :at, now(), now() + interval '1 day', '测试延期')"),
        {"c": case_id, "t": tid, "at": tat})
    conn.execute(text(
        "INSERT INTO case_media (case_id, stage, sha256, content_type, byte_size, width, "
        "height, uploaded_by, public_name) VALUES (:c, 'report', :h, 'image/jpeg', 10, 1, 1, "
        "'t', :p)"), {"c": case_id, "h": hashlib.sha256(str(case_id).encode()).hexdigest(),
                      "p": f"d18test{uuid.uuid4().hex}"})
    vid = conn.execute(text(
        "INSERT INTO case_verifications (case_id, verifier, result, case_status) "
        "VALUES (:c, 't', 'passed', 'collected') RETURNING id"), {"c": case_id}).scalar_one()
    conn.execute(text(
        "INSERT INTO field_action_times (case_id, verification_id, actor, acted_at, "
        "recorded_at) VALUES (:c, :v, 't', now(), now())"), {"c": case_id, "v": vid})
    conn.execute(text(
        "INSERT INTO open311_requests (case_id, service_code) VALUES (:c, 'event-0102')"),
        {"c": case_id})


@pytest.fixture(scope="module")
def cases(demo_client: TestClient, demo_engine: Engine, people) -> dict[str, int]:
    """A case in 历下区 and one in 市中区 (taken by the centre), each with a row everywhere."""
    made = {}
    for district in (LIXIA, SHIZHONG):
        x, y = _point_in(demo_engine, district)
        r = demo_client.post("/cases", headers=people["city"][1], json={
            "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": x, "y": y, "description": "分中心可见范围测试"})
        assert r.status_code == 201, r.text
        made[district] = r.json()["id"]
    with demo_engine.begin() as conn:
        for case_id in made.values():
            _fill_case_rows(conn, case_id)
    return made


@contextmanager
def _as_app(engine: Engine, actor: str) -> Iterator[Connection]:
    """A transaction in the app role with `actor` bound, as the API runs a staff request."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL ROLE citygrid_app"))
        conn.execute(text("SELECT set_config('citygrid.actor', :u, true)"), {"u": actor})
        yield conn


def test_district_user_reads_no_row_of_another_districts_case(
        demo_engine: Engine, people, cases) -> None:
    """Every case-keyed table, queried without any join to cases."""
    shizhong = people["shizhong"][0]
    for table in CASE_TABLES:
        with _as_app(demo_engine, shizhong) as conn:
            foreign = conn.execute(text(f"SELECT count(*) FROM {table} WHERE case_id = :c"),
                                   {"c": cases[LIXIA]}).scalar_one()
            own = conn.execute(text(f"SELECT count(*) FROM {table} WHERE case_id = :c"),
                               {"c": cases[SHIZHONG]}).scalar_one()
            districts = set(conn.execute(text(
                f"SELECT DISTINCT left(c.grid_code, 6) FROM {table} t "
                "LEFT JOIN cases c ON c.id = t.case_id")).scalars())
        assert (table, foreign) == (table, 0)
        assert own >= 1, table
        # A row whose case the join cannot see would show as None: there is none.
        assert districts == {SHIZHONG}, (table, districts)


def test_city_centre_reads_every_district(demo_engine: Engine, people, cases) -> None:
    for table in CASE_TABLES:
        with _as_app(demo_engine, people["city"][0]) as conn:
            seen = conn.execute(text(f"SELECT count(DISTINCT case_id) FROM {table} "
                                     "WHERE case_id IN (:a, :b)"),
                                {"a": cases[LIXIA], "b": cases[SHIZHONG]}).scalar_one()
        assert seen == 2, table


def test_every_partition_by_its_own_name(demo_engine: Engine, people, cases) -> None:
    """Policies are on each month too, so naming a partition shows no more than the parent."""
    with demo_engine.connect() as conn:
        parts = list(conn.execute(text(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'case_transitions'::regclass")).scalars())
        home = conn.execute(text(
            "SELECT tableoid::regclass::text FROM case_transitions WHERE case_id = :c"),
            {"c": cases[LIXIA]}).scalar_one()
    assert home in parts
    for part in parts:
        with _as_app(demo_engine, people["shizhong"][0]) as conn:
            foreign = conn.execute(text(
                f"SELECT count(*) FROM {part} WHERE case_id = :c"),
                {"c": cases[LIXIA]}).scalar_one()
        assert (part, foreign) == (part, 0)


def test_district_user_cannot_write_a_row_for_another_districts_case(
        demo_engine: Engine, people, cases) -> None:
    with pytest.raises(ProgrammingError, match="row-level security"), \
            _as_app(demo_engine, people["shizhong"][0]) as conn:
        conn.execute(text(
            "INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at) "
            "VALUES (:c, 'file', 'collected', 'filed', 'x', now())"), {"c": cases[LIXIA]})


def test_audit_log_is_the_city_centres(demo_engine: Engine, people, cases) -> None:
    """The audit log holds every district's case rows before and after: centre only."""
    with _as_app(demo_engine, people["shizhong"][0]) as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0
        # Writing still works (sign-in rows are written by the app role).
        conn.execute(text("INSERT INTO audit_log (actor, action, table_name) "
                          "VALUES ('t', 'SIGN_IN', 'sign_in')"))
    with _as_app(demo_engine, people["city"][0]) as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE table_name = 'cases' AND row_key = :k"),
            {"k": str(cases[LIXIA])}).scalar_one() >= 1


def test_api_history_and_audit(demo_client: TestClient, people, cases) -> None:
    """Through the API: no 历下区 history for 市中区, and its admin's audit page holds none."""
    lixia = cases[LIXIA]
    r = demo_client.get(f"/cases/{lixia}", headers=people["shizhong"][1])
    assert r.status_code == 404
    own = demo_client.get(f"/cases/{cases[SHIZHONG]}", headers=people["shizhong"][1])
    assert own.status_code == 200 and own.json()["transitions"]
    params = {"table": "cases", "row_key": str(lixia)}
    r = demo_client.get("/audit", headers=people["shizhong_admin"][1], params=params)
    assert r.status_code == 200 and r.json() == []
    r = demo_client.get("/audit", headers=people["city_admin"][1], params=params)
    assert r.status_code == 200 and r.json()


def test_app_code_never_names_a_partition() -> None:
    """Reads go through the parents (their policies apply); only the owner's partition
    maintenance (gis/platform/partitions.py, migrations) names months."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    month = re.compile(r"\b(case_transitions|audit_log)_(\d{6}|default)\b")
    named = [f"{path.relative_to(root)}:{n}"
             for folder in ("api", "gis", "maps")
             for path in sorted((root / folder).rglob("*.py"))
             if "migrations" not in path.parts and path.name != "partitions.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if month.search(line)]
    assert named == []
