"""Monthly partitions of case_transitions and audit_log (migration 0027, gis.platform.partitions).

Each test module gets its own throwaway database, because archiving detaches and drops whole
months, which the shared test database must not see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from gis.platform import partitions
from gis.platform.db import make_engine, role_url, transaction
from gis.platform.errors import BackupError
from gis.platform.migrate import alembic_config, upgrade
from gis.platform.partitions import (
    archive_expired,
    archive_month,
    ensure_partitions,
    list_partitions,
)
from gis.platform.settings import Settings
from tests.support.databases import throwaway_database

CITY = dt.timezone(dt.timedelta(hours=8))
# 2026-04-01 07:00 in the city is still March in UTC: the month follows city time.
APRIL_MORNING = dt.datetime(2026, 4, 1, 7, 0, tzinfo=CITY)


@pytest.fixture(scope="module")
def part_url(settings: Settings) -> Iterator[URL]:
    yield from throwaway_database(settings, "partitions")


@pytest.fixture(scope="module")
def db(part_url: URL) -> Iterator[Engine]:
    engine = make_engine(part_url)
    upgrade(engine)
    with transaction(engine) as session:
        ensure_partitions(session, months_ahead=2, today=dt.date(2026, 3, 10))
    yield engine
    engine.dispose()


def add_case(conn: Connection, case_no: str) -> int:
    """A bare case row (no grid) for transitions to point at."""
    return int(conn.execute(text("""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
                           raw_crs, reported_at, geom)
        VALUES (:no, 'event', '0101', 'patrol', 117.05, 36.66, 'wgs84', '2020-01-01+08',
                ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326))
        RETURNING id"""), {"no": case_no}).scalar_one())


def add_transitions(conn: Connection, case_id: int, times: list[dt.datetime]) -> list[int]:
    return [int(conn.execute(text("""
        INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at)
        VALUES (:c, 'collect', NULL, 'collected', 'tester', :at) RETURNING id"""),
        {"c": case_id, "at": at}).scalar_one()) for at in times]


def where_rows_are(conn: Connection, table: str, ids: list[int]) -> set[str]:
    return set(conn.execute(text(f"SELECT DISTINCT tableoid::regclass::text FROM {table} "
                                 "WHERE id = ANY(:ids)"), {"ids": ids}).scalars())


def test_rows_land_in_the_partition_of_their_city_month(db: Engine) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "PT-LAND")
        april = add_transitions(conn, case_id, [APRIL_MORNING])
        march = add_transitions(conn, case_id, [APRIL_MORNING - dt.timedelta(hours=8)])
        logged = conn.execute(text(
            "INSERT INTO audit_log (actor, action, table_name, at) "
            "VALUES ('tester', 'BULK', 'cases', :at) RETURNING id"),
            {"at": APRIL_MORNING}).scalar_one()
        stray = add_transitions(conn, case_id, [dt.datetime(2001, 5, 3, tzinfo=CITY)])
        assert where_rows_are(conn, "case_transitions", april) == {"case_transitions_202604"}
        assert where_rows_are(conn, "case_transitions", march) == {"case_transitions_202603"}
        assert where_rows_are(conn, "audit_log", [logged]) == {"audit_log_202604"}
        # A month without a partition waits in DEFAULT until `ensure` gives it its own.
        assert where_rows_are(conn, "case_transitions", stray) == {"case_transitions_default"}
    with transaction(db) as session:
        created = ensure_partitions(session, months_ahead=2, today=dt.date(2026, 3, 10))
    assert "case_transitions_200105" in created
    with db.connect() as conn:
        assert where_rows_are(conn, "case_transitions", stray) == {"case_transitions_200105"}
    # DEFAULT and the moved month are append-only again once the move is over.
    for table in ("case_transitions", "case_transitions_200105"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE case_id = :c"), {"c": case_id})
    with db.connect() as conn:
        assert set(conn.execute(text(
            "SELECT tgenabled FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid = 'case_transitions_default'::regclass")).scalars()) == {"O"}


def test_a_one_month_query_scans_only_that_months_partition(db: Engine) -> None:
    start = dt.datetime(2026, 4, 1, tzinfo=CITY)
    with db.connect() as conn:
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT action, count(*) FROM case_transitions "
            "WHERE at >= :lo AND at < :hi GROUP BY action"),
            {"lo": start, "hi": dt.datetime(2026, 5, 1, tzinfo=CITY)}).scalars())
        scanned = {word for word in plan.replace("(", " ").split()
                   if word.startswith("case_transitions_")}
        audit_plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT * FROM audit_log WHERE at >= :lo AND at < :hi"),
            {"lo": start, "hi": start + dt.timedelta(days=30)}).scalars())
    assert {s.split("_")[2] for s in scanned} == {"202604"}, plan
    assert "case_transitions_default" not in plan and "202603" not in plan
    assert "audit_log_202604" in audit_plan and "audit_log_default" not in audit_plan


def test_archive_round_trip_writes_every_row_then_drops_the_month(db: Engine,
                                                                   tmp_path: Path) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "PT-ARCHIVE")
        times = [dt.datetime(2024, 2, 1, tzinfo=CITY) + dt.timedelta(hours=7 * i)
                 for i in range(97)]
        ids = add_transitions(conn, case_id, times)
        conn.execute(text("INSERT INTO audit_log (actor, action, table_name, at) "
                          "SELECT 'tester', 'BULK', 'cases', :at + g * interval '1 hour' "
                          "FROM generate_series(1, 30) g"),
                     {"at": dt.datetime(2024, 2, 3, tzinfo=CITY)})
    with transaction(db) as session:
        ensure_partitions(session, months_ahead=1, today=dt.date(2026, 3, 10))
    archived = archive_expired(db, retention_months=24, directory=tmp_path,
                               today=dt.date(2026, 3, 10))
    by_name = {a.partition: a for a in archived}
    assert set(by_name) >= {"case_transitions_202402", "audit_log_202402"}
    assert all(a.month < dt.date(2024, 3, 1) for a in archived)

    table = pq.read_table(by_name["case_transitions_202402"].path)
    assert table.num_rows == by_name["case_transitions_202402"].rows == 97
    assert sorted(table.column("id").to_pylist()) == sorted(ids)
    assert table.column("at").to_pylist()[0] == times[0]
    assert pq.read_table(by_name["audit_log_202402"].path).num_rows == 30
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM case_transitions WHERE id = ANY(:i)"),
                            {"i": ids}).scalar() == 0
        assert conn.execute(text("SELECT to_regclass('case_transitions_202402')")).scalar() \
            is None
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE at < '2024-03-01+08' "
                                 "AND at >= '2024-02-01+08'")).scalar() == 0


def test_archive_keeps_the_month_when_the_file_does_not_verify(db: Engine, tmp_path: Path,
                                                              monkeypatch) -> None:
    with db.begin() as conn:
        ids = add_transitions(conn, add_case(conn, "PT-VERIFY"),
                              [dt.datetime(2023, 7, 9, tzinfo=CITY)] * 3)
    with transaction(db) as session:
        ensure_partitions(session, months_ahead=1, today=dt.date(2026, 3, 10))
    real = partitions._write_parquet
    monkeypatch.setattr(partitions, "_write_parquet",
                        lambda session, **kw: real(session, **kw) - 1)  # a short file
    with pytest.raises(BackupError, match="nothing dropped"), transaction(db) as session:
        archive_month(session, table="case_transitions", month=dt.date(2023, 7, 1),
                      directory=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with db.connect() as conn:
        assert where_rows_are(conn, "case_transitions", ids) == {"case_transitions_202307"}


def test_archive_takes_the_extensions_of_the_month_along(db: Engine, tmp_path: Path) -> None:
    with db.begin() as conn:
        case_id = add_case(conn, "PT-EXTEND")
        at = dt.datetime(2022, 9, 5, tzinfo=CITY)
        transition = add_transitions(conn, case_id, [at])[0]
        kept = add_transitions(conn, case_id, [dt.datetime(2026, 3, 5, tzinfo=CITY)])[0]
        for t, when in ((transition, at), (kept, dt.datetime(2026, 3, 5, tzinfo=CITY))):
            conn.execute(text(
                "INSERT INTO case_extensions (case_id, transition_id, previous_due_at, "
                "new_due_at, reason) VALUES (:c, :t, :at, :at + interval '2 days', '延期')"),
                {"c": case_id, "t": t, "at": when})
        # The trigger fills the transition's month key, so the insert names only its id.
        assert conn.execute(text("SELECT transition_at FROM case_extensions "
                                 "WHERE transition_id = :t"), {"t": transition}).scalar() == at
        version = conn.execute(text("SELECT version FROM data_versions "
                                    "WHERE table_name = 'case_extensions'")).scalar_one()
    with transaction(db) as session:
        ensure_partitions(session, months_ahead=1, today=dt.date(2026, 3, 10))
    with transaction(db) as session:
        done = archive_month(session, table="case_transitions", month=dt.date(2022, 9, 1),
                             directory=tmp_path)
    assert [(child, rows) for child, rows, _ in done.dependents] == [("case_extensions", 1)]
    extensions = pq.read_table(tmp_path / "case_extensions_of_case_transitions_2022-09.parquet")
    assert extensions.column("transition_id").to_pylist() == [transition]
    with db.connect() as conn:
        left = conn.execute(text("SELECT transition_id FROM case_extensions "
                                 "WHERE case_id = :c"), {"c": case_id}).scalars().all()
        bulk = conn.execute(text(
            "SELECT after FROM audit_log WHERE action = 'BULK' "
            "AND table_name = 'case_extensions' ORDER BY id DESC LIMIT 1")).scalar_one()
        moved = conn.execute(text("SELECT version FROM data_versions "
                                  "WHERE table_name = 'case_extensions'")).scalar_one()
        guards = set(conn.execute(text(
            "SELECT tgenabled FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid = 'case_extensions'::regclass")).scalars())
    assert left == [kept]  # the other month's extension stays
    assert bulk == {"archived_rows": 1, "with": "case_transitions_202209",
                    "file": "case_extensions_of_case_transitions_2022-09.parquet"}
    assert moved > version and guards == {"O"}


def test_audit_log_stays_insert_only_for_the_app_on_a_new_partition(db: Engine,
                                                                    settings: Settings) -> None:
    with transaction(db) as session:
        created = ensure_partitions(session, months_ahead=1, today=dt.date(2031, 1, 5))
    assert {"audit_log_203101", "case_transitions_203101"} <= set(created)
    app_settings = settings.model_copy(deep=True)
    app_settings.db.url = db.url.render_as_string(hide_password=False)
    app = make_engine(role_url(app_settings, "app"))
    try:
        with app.begin() as conn:
            new_id = conn.execute(text(
                "INSERT INTO audit_log (actor, action, table_name, at) "
                "VALUES ('app', 'BULK', 'cases', '2031-01-10+08') RETURNING id")).scalar_one()
            assert where_rows_are(conn, "audit_log", [new_id]) == {"audit_log_203101"}
        for sql in ("UPDATE audit_log SET actor = 'x' WHERE id = :i",
                    "DELETE FROM audit_log WHERE id = :i",
                    "UPDATE audit_log_203101 SET actor = 'x' WHERE id = :i",
                    "DELETE FROM audit_log_203101 WHERE id = :i",
                    "TRUNCATE audit_log_203101"):
            with pytest.raises(DBAPIError, match="permission denied"), app.begin() as conn:
                conn.execute(text(sql), {"i": new_id})
    finally:
        app.dispose()
    with db.connect() as conn:
        grants = dict(conn.execute(text("""
            SELECT r, (SELECT string_agg(p, ',' ORDER BY p) FROM unnest(ARRAY['SELECT',
                       'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
                       WHERE has_table_privilege(r, 'audit_log_203101', p))
            FROM unnest(ARRAY['citygrid_app', 'citygrid_grid_owner', 'citygrid_public']) r
            """)).all())
        transitions = conn.execute(text(
            "SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid), "
            "has_table_privilege('citygrid_grid_owner', c.oid, 'SELECT') "
            "FROM pg_class c WHERE oid = 'case_transitions_203101'::regclass")).one()
        assert conn.execute(text("SELECT actor FROM audit_log WHERE id = :i"),
                            {"i": new_id}).scalar() == "app"
    assert grants == {"citygrid_app": "INSERT,SELECT", "citygrid_grid_owner": None,
                      "citygrid_public": None}
    # A grid owner reading the partition by name meets the same row-level security, and a
    # district user the district policy (migration 0031): app_all, own_grids, district.
    assert tuple(transitions) == (True, 3, True)


def test_migration_moves_existing_rows_both_ways(settings: Settings) -> None:
    for url in throwaway_database(settings, "partmig"):
        engine = make_engine(url)
        try:
            upgrade(engine, "0026")
            with engine.begin() as conn:
                case_id = add_case(conn, "PT-MIG")
                ids = add_transitions(conn, case_id, [
                    dt.datetime(2025, 1, 31, 23, 30, tzinfo=CITY),
                    dt.datetime(2025, 2, 1, 0, 30, tzinfo=CITY)])
                conn.execute(text(
                    "INSERT INTO case_extensions (case_id, transition_id, previous_due_at, "
                    "new_due_at, reason) VALUES (:c, :t, now(), now() + interval '1 day', "
                    "'延期')"), {"c": case_id, "t": ids[1]})
                audit = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
            upgrade(engine)
            with engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT tableoid::regclass::text FROM case_transitions ORDER BY id")
                ).scalars().all() == ["case_transitions_202501", "case_transitions_202502"]
                assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == audit
                assert conn.execute(text(
                    "SELECT e.transition_at = t.at FROM case_extensions e "
                    "JOIN case_transitions t ON t.id = e.transition_id")).scalar() is True
                kinds = dict(conn.execute(text(
                    "SELECT relname, relkind FROM pg_class "
                    "WHERE relname IN ('case_transitions', 'audit_log', 'cases')")).all())
            assert kinds == {"case_transitions": "p", "audit_log": "p", "cases": "p"}
            with engine.begin() as conn:
                cfg = alembic_config(engine)
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0026")
            with engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT count(*) FROM case_transitions")).scalar() == 2
                assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == audit
                assert dict(conn.execute(text(
                    "SELECT relname, relkind FROM pg_class "
                    "WHERE relname IN ('case_transitions', 'cases', 'case_keys')")).all()
                ) == {"case_transitions": "r", "cases": "r"}
                assert conn.execute(text("SELECT case_no FROM cases")).scalars().all() == [
                    "PT-MIG"]
        finally:
            engine.dispose()


def test_list_shows_months_and_default(db: Engine) -> None:
    with transaction(db) as session:
        parts = list_partitions(session)
    names = {p.name for p in parts}
    assert {"case_transitions_default", "audit_log_default", "case_transitions_202604"} <= names
    assert all((p.month is None) == p.name.endswith("_default") for p in parts)


def test_archive_keeps_geometry_as_geoparquet(db: Engine, tmp_path: Path) -> None:
    import geopandas as gpd

    with db.begin() as conn:
        conn.execute(text("""
            CREATE TABLE geo_history (id bigserial, at timestamptz NOT NULL,
                                      geom geometry(Point, 4326), detail jsonb,
                                      PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"""))
    with transaction(db) as session:
        assert ensure_partitions(session, months_ahead=0, today=dt.date(2024, 5, 20),
                                 tables=["geo_history"]) == ["geo_history_202405"]
    with db.begin() as conn:
        conn.execute(text(
            "INSERT INTO geo_history (at, geom, detail) SELECT '2024-05-02+08', "
            "ST_SetSRID(ST_MakePoint(117 + g / 100.0, 36.6), 4326), jsonb_build_object('n', g) "
            "FROM generate_series(1, 5) g"))
    with transaction(db) as session:
        done = archive_month(session, table="geo_history", month=dt.date(2024, 5, 1),
                             directory=tmp_path)
    frame = gpd.read_parquet(done.path)
    assert done.rows == len(frame) == 5
    assert frame.crs is not None and frame.crs.equals("OGC:CRS84")
    assert [round(p.x, 2) for p in frame.geometry] == [117.01, 117.02, 117.03, 117.04, 117.05]
    assert frame["detail"].iloc[0] == '{"n": 1}'
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM geo_history")).scalar() == 0


def test_cli_ensure_list_archive(db: Engine, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    with db.begin() as conn:
        add_transitions(conn, add_case(conn, "PT-CLI"),
                        [dt.datetime(2019, 11, 2, tzinfo=CITY)] * 4)
    monkeypatch.setenv("CITYGRID_DATABASE_URL", db.url.render_as_string(hide_password=False))
    runner = CliRunner()
    ensured = runner.invoke(app, ["db", "partitions", "ensure", "--months-ahead", "2"])
    assert ensured.exit_code == 0, ensured.output
    assert "case_transitions_201911" in ensured.output
    listed = runner.invoke(app, ["db", "partitions", "list"])
    assert listed.exit_code == 0 and "2019-11" in listed.output and "DEFAULT" in listed.output
    nothing = runner.invoke(app, ["db", "partitions", "archive", "--retention-months", "1200",
                                  "--dir", str(tmp_path)])
    assert nothing.exit_code == 0 and "no month is past the retention" in nothing.output
    archived = runner.invoke(app, ["db", "partitions", "archive", "--retention-months", "48",
                                   "--dir", str(tmp_path)])
    assert archived.exit_code == 0, archived.output
    assert (tmp_path / "case_transitions_2019-11.parquet").exists()
    assert pq.read_metadata(tmp_path / "case_transitions_2019-11.parquet").num_rows == 4
    with db.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('case_transitions_201911')")).scalar() \
            is None
