"""Monthly partitions of cases (migration 0038): months, pruning, keys, archive.

`cases` is partitioned by the city month of `reported_at`; `case_keys` keeps ids and case
numbers unique across months and is the target of every foreign key to a case. A throwaway
database per module, because archiving drops whole months.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from gis.platform.db import make_engine, role_url, session_options, transaction
from gis.platform.errors import ConflictError
from gis.platform.migrate import upgrade
from gis.platform.partitions import archive_expired, archive_month, ensure_partitions
from gis.platform.settings import Settings
from tests.support.databases import throwaway_database

CITY = dt.timezone(dt.timedelta(hours=8))
TODAY = dt.date(2026, 3, 10)


@pytest.fixture(scope="module")
def cp_url(settings: Settings) -> Iterator[URL]:
    yield from throwaway_database(settings, "casepart")


@pytest.fixture(scope="module")
def db(cp_url: URL) -> Iterator[Engine]:
    engine = make_engine(cp_url)
    upgrade(engine)
    with transaction(engine) as session:
        ensure_partitions(session, months_ahead=2, today=TODAY)
    yield engine
    engine.dispose()


def add_case(conn: Connection, case_no: str, reported_at: dt.datetime,
             status: str = "collected", **extra: object) -> int:
    """A bare case row (no grid) reported at `reported_at`."""
    columns = "".join(f", {name}" for name in extra)
    values = "".join(f", :{name}" for name in extra)
    closed = reported_at + dt.timedelta(days=1) if status == "closed" else None
    return int(conn.execute(text(f"""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
                           raw_crs, reported_at, geom, status, closed_at{columns})
        VALUES (:no, 'event', '0101', 'patrol', 117.05, 36.66, 'wgs84', :at,
                ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326), :status, :closed{values})
        RETURNING id"""), {"no": case_no, "at": reported_at, "status": status,
                           "closed": closed, **extra}).scalar_one())


def partition_of(conn: Connection, case_id: int) -> str:
    return str(conn.execute(text("SELECT tableoid::regclass::text FROM cases WHERE id = :i"),
                            {"i": case_id}).scalar_one())


def test_cases_land_in_the_partition_of_their_city_month(db: Engine) -> None:
    with db.begin() as conn:
        # 2026-04-01 07:00 in the city is still March in UTC: the month follows city time.
        april = add_case(conn, "CP-APRIL", dt.datetime(2026, 4, 1, 7, tzinfo=CITY))
        march = add_case(conn, "CP-MARCH", dt.datetime(2026, 3, 31, 23, tzinfo=CITY))
        stray = add_case(conn, "CP-STRAY", dt.datetime(2011, 6, 1, tzinfo=CITY))
        assert partition_of(conn, april) == "cases_202604"
        assert partition_of(conn, march) == "cases_202603"
        assert partition_of(conn, stray) == "cases_default"
    with transaction(db) as session:
        assert "cases_201106" in ensure_partitions(session, months_ahead=2, today=TODAY)
    with db.connect() as conn:
        assert partition_of(conn, stray) == "cases_201106"
        # Moving the row out of DEFAULT kept its key and wrote no audit row for the move.
        assert conn.execute(text("SELECT case_no FROM case_keys WHERE id = :i"),
                            {"i": stray}).scalar() == "CP-STRAY"
        assert conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE table_name = 'cases' AND row_key = :k"),
            {"k": str(stray)}).scalar() == 1


def test_a_period_query_on_cases_scans_only_its_months(db: Engine) -> None:
    with db.connect() as conn:
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT status, count(*) FROM cases "
            "WHERE reported_at >= :lo AND reported_at < :hi GROUP BY status"),
            {"lo": dt.datetime(2026, 4, 1, tzinfo=CITY),
             "hi": dt.datetime(2026, 5, 1, tzinfo=CITY)}).scalars())
    scanned = {word for word in plan.replace("(", " ").split()
               if re.fullmatch(r"cases_(\d{6}|default)", word)}
    assert scanned == {"cases_202604"}, plan
    assert "cases_default" not in plan and "cases_202603" not in plan


def test_case_numbers_and_ids_stay_unique_across_months(db: Engine) -> None:
    with db.begin() as conn:
        first = add_case(conn, "CP-UNIQUE", dt.datetime(2026, 3, 2, tzinfo=CITY))
    with pytest.raises(IntegrityError, match="case_keys_case_no_key"), db.begin() as conn:
        add_case(conn, "CP-UNIQUE", dt.datetime(2026, 4, 2, tzinfo=CITY))
    with pytest.raises(IntegrityError, match="case_keys_pkey"), db.begin() as conn:
        add_case(conn, "CP-UNIQUE-2", dt.datetime(2026, 4, 2, tzinfo=CITY), id=first)
    with db.begin() as conn:
        renamed = add_case(conn, "CP-RENAME", dt.datetime(2026, 3, 3, tzinfo=CITY))
        conn.execute(text("UPDATE cases SET case_no = 'CP-RENAMED', former_case_no = "
                          "'CP-RENAME' WHERE id = :i"), {"i": renamed})
        assert conn.execute(text("SELECT case_no, former_case_no FROM case_keys "
                                 "WHERE id = :i"), {"i": renamed}).one() == (
            "CP-RENAMED", "CP-RENAME")
    # The renamed case's old number is its former number: no other case may take it.
    with pytest.raises(IntegrityError, match="case_keys_former_case_no_key"), \
            db.begin() as conn:
        add_case(conn, "CP-OTHER", dt.datetime(2026, 4, 3, tzinfo=CITY),
                 former_case_no="CP-RENAME")


def test_a_report_time_never_changes(db: Engine) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "CP-MOVE", dt.datetime(2026, 3, 4, tzinfo=CITY))
    with pytest.raises(DBAPIError, match="reported_at never change"), db.begin() as conn:
        conn.execute(text("UPDATE cases SET reported_at = reported_at + interval '40 days' "
                          "WHERE id = :i"), {"i": case_id})
    with db.connect() as conn:
        assert partition_of(conn, case_id) == "cases_202603"


def test_foreign_keys_point_at_case_keys_and_still_restrict(db: Engine) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "CP-FK", dt.datetime(2026, 3, 5, tzinfo=CITY))
        conn.execute(text(
            "INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at) "
            "VALUES (:c, 'collect', NULL, 'collected', 'tester', now())"), {"c": case_id})
        repeat = add_case(conn, "CP-FK-REPEAT", dt.datetime(2026, 4, 5, tzinfo=CITY),
                          repeat_of=case_id, repeat_group_id=case_id)
        targets = set(conn.execute(text(
            "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND conname IN ('case_transitions_case_id_fkey1', "
            "'case_media_case_id_fkey', 'open311_requests_case_id_fkey', "
            "'cases_repeat_of_fkey', 'field_action_times_case_id_fkey')")).scalars())
    assert targets == {"case_keys"}
    assert repeat != case_id
    with pytest.raises(IntegrityError, match="case_transitions_case_id_fkey1"), \
            db.begin() as conn:
        conn.execute(text(
            "INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at) "
            "VALUES (987654321, 'collect', NULL, 'collected', 'tester', now())"))
    with pytest.raises(IntegrityError, match="case_transitions_case_id_fkey1"), \
            db.begin() as conn:
        conn.execute(text("DELETE FROM cases WHERE id = :i"), {"i": case_id})
    with db.begin() as conn:
        lonely = add_case(conn, "CP-LONELY", dt.datetime(2026, 3, 6, tzinfo=CITY))
        conn.execute(text("DELETE FROM cases WHERE id = :i"), {"i": lonely})
        assert conn.execute(text("SELECT count(*) FROM case_keys WHERE id = :i"),
                            {"i": lonely}).scalar() == 0


def test_the_audit_log_names_cases_not_the_partition(db: Engine) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "CP-AUDIT", dt.datetime(2026, 3, 7, tzinfo=CITY))
        conn.execute(text("UPDATE cases SET description = '井盖缺失' WHERE id = :i"),
                     {"i": case_id})
        logged = conn.execute(text(
            "SELECT table_name, action FROM audit_log WHERE row_key = :k "
            "AND table_name LIKE 'cases%' ORDER BY id"), {"k": str(case_id)}).all()
    assert [tuple(r) for r in logged] == [("cases", "INSERT"), ("cases", "UPDATE")]


def test_app_roles_meet_the_same_rules_on_a_case_partition(db: Engine,
                                                           settings: Settings) -> None:
    with transaction(db) as session:
        assert "cases_203202" in ensure_partitions(session, months_ahead=0,
                                                   today=dt.date(2032, 2, 1))
    with db.connect() as conn:
        part = conn.execute(text(
            "SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid), "
            "has_table_privilege('citygrid_public', c.oid, 'SELECT'), "
            "has_table_privilege('citygrid_app', 'case_keys', 'SELECT') "
            "FROM pg_class c WHERE oid = 'cases_203202'::regclass")).one()
    # Row-level security with cases' three policies; no grant to the public role; the keys
    # table is reached only through the triggers.
    assert tuple(part) == (True, 3, False, False)
    app_settings = settings.model_copy(deep=True)
    app_settings.db.url = db.url.render_as_string(hide_password=False)
    app = make_engine(role_url(app_settings, "app"), options=session_options(app_settings, "app"))
    try:
        with app.begin() as conn:
            case_id = add_case(conn, "CP-APP", dt.datetime(2032, 2, 3, tzinfo=CITY))
            assert partition_of(conn, case_id) == "cases_203202"
            # The app's sessions plan lookups by id without proving every month's checks.
            assert conn.execute(text("SHOW constraint_exclusion")).scalar() == "off"
            assert conn.execute(text("SELECT case_no FROM cases WHERE id = :i"),
                                {"i": case_id}).scalar() == "CP-APP"
    finally:
        app.dispose()


def test_next_case_number_counts_archived_months(db: Engine, tmp_path: Path) -> None:
    day = dt.date(2020, 5, 6)
    with db.begin() as conn:
        number = conn.execute(text("SELECT next_case_no('CP', :d)"), {"d": day}).scalar_one()
        closed = add_case(conn, number, dt.datetime(2020, 5, 6, 9, tzinfo=CITY), "closed")
        conn.execute(text(
            "INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at) "
            "VALUES (:c, 'collect', NULL, 'collected', 'tester', '2026-03-01+08')"),
            {"c": closed})
    with transaction(db) as session:
        ensure_partitions(session, months_ahead=2, today=TODAY)
    with transaction(db) as session:
        done = archive_month(session, table="cases", month=day.replace(day=1),
                             directory=tmp_path)
    assert done.rows == 1 and done.dependents == ()
    archived = pq.read_table(done.path)
    assert archived.column("case_no").to_pylist() == [number]
    with db.begin() as conn:
        assert conn.execute(text("SELECT to_regclass('cases_202005')")).scalar() is None
        # The case's key stays behind: its transition keeps its foreign key, and its number
        # is not given out again.
        assert conn.execute(text("SELECT count(*) FROM case_transitions WHERE case_id = :c"),
                            {"c": closed}).scalar() == 1
        following = conn.execute(text("SELECT next_case_no('CP', :d)"),
                                 {"d": day}).scalar_one()
    assert number == "CP202005060001" and following == "CP202005060002"


def test_a_month_with_open_cases_is_not_archived(db: Engine, tmp_path: Path) -> None:
    with db.begin() as conn:
        add_case(conn, "CP-OPEN", dt.datetime(2019, 2, 3, tzinfo=CITY), "dispatched",
                 dispatched_at=dt.datetime(2019, 2, 3, 1, tzinfo=CITY))
        add_case(conn, "CP-DONE", dt.datetime(2019, 2, 4, tzinfo=CITY), "closed")
    with transaction(db) as session:
        ensure_partitions(session, months_ahead=2, today=TODAY)
    with pytest.raises(ConflictError, match="1 case\\(s\\) of 2019-02 are still open"), \
            transaction(db) as session:
        archive_month(session, table="cases", month=dt.date(2019, 2, 1), directory=tmp_path)
    kept: list[tuple[str, int]] = []
    archived = archive_expired(db, retention_months=60, directory=tmp_path, today=TODAY,
                               tables=["cases"], kept=kept)
    assert ("cases_201902", 1) in kept
    assert "cases_201902" not in {a.partition for a in archived}
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cases_201902")).scalar() == 2
