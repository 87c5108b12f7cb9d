"""`citygrid db dump|restore` on throwaway databases of their own (never the shared ones).

Each test migrates a fresh database, seeds known rows (a district outline, stations and a road,
so polygons, points and lines), and checks that a restore brings back exactly those rows and
geometries, that bad archives and occupied targets change nothing, and that no temporary
`_restore_` / `_replaced_` database is left behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from cli.main import app
from gis.platform.backup import client_program, dump_database, restore_database
from gis.platform.db import database_url, drop_database, ensure_database, make_engine
from gis.platform.errors import BackupError
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings

runner = CliRunner()

DISTRICT = ("370102", "历下区",
            "SRID=4326;MULTIPOLYGON(((117.0 36.6,117.1 36.6,117.1 36.7,117.0 36.7,117.0 36.6)))")
STATIONS = [
    ("ST-001", "泉城路社区城管工作站", "0531-86061234", 5, "SRID=4326;POINT(117.0201 36.6612)"),
    ("ST-002", "解放路社区城管工作站", "13805310002", 3, "SRID=4326;POINT(117.0455 36.6583)"),
]
ROAD = ("泉城路", "demonstration", 24.0,
        "SRID=4326;LINESTRING(117.0150 36.6620,117.0250 36.6625,117.0300 36.6630)")


def _other_databases(url: URL) -> list[str]:
    """Databases whose names start with this test database's name (temp and replaced copies)."""
    engine = make_engine(url.set(database="postgres"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p "
                                     "AND datname <> :n ORDER BY datname"),
                                {"p": f"{url.database}\\_%", "n": url.database}).scalars()
            return list(rows)
    finally:
        engine.dispose()


def _throwaway(settings: Settings, kind: str) -> URL:
    return database_url(settings, dbname=f"citygrid_{kind}_{os.getpid()}_{uuid.uuid4().hex[:6]}")


@pytest.fixture
def backup_db(settings: Settings) -> Iterator[URL]:
    """A migrated database with known rows; dropped afterwards with any side databases."""
    url = _throwaway(settings, "backup")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO districts (code, name, source, geom) "
                              "VALUES (:c, :n, 'test', ST_GeomFromEWKT(:g))"),
                         {"c": DISTRICT[0], "n": DISTRICT[1], "g": DISTRICT[2]})
            for code, name, phone, staff, geom in STATIONS:
                conn.execute(text(
                    "INSERT INTO stations (code, name, address, phone, staff, opening_hours, "
                    "geom) VALUES (:c, :n, '济南市历下区', :p, :s, '08:30-17:30', "
                    "ST_GeomFromEWKT(:g))"), {"c": code, "n": name, "p": phone, "s": staff,
                                               "g": geom})
            conn.execute(text("INSERT INTO roads (name, street_class, width_m, geom) "
                              "VALUES (:n, :k, :w, ST_GeomFromEWKT(:g))"),
                         {"n": ROAD[0], "k": ROAD[1], "w": ROAD[2], "g": ROAD[3]})
    finally:
        engine.dispose()
    yield url
    for leftover in _other_databases(url):
        drop_database(url.set(database=leftover))
    drop_database(url)


def snapshot(url: URL) -> dict[str, Any]:
    """Every seeded row with its geometry as EWKT (SRID included), plus log and revision."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            def rows(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(row) for row in conn.execute(text(sql))]

            return {
                "districts": rows("SELECT code, name, ST_AsEWKT(geom) FROM districts "
                                  "ORDER BY code"),
                "stations": rows("SELECT id, code, name, phone, staff, ST_AsEWKT(geom), "
                                 "GeometryType(geom) FROM stations ORDER BY id"),
                "roads": rows("SELECT id, name, street_class, width_m, ST_AsEWKT(geom) "
                              "FROM roads ORDER BY id"),
                "audit_rows": conn.execute(text("SELECT count(*) FROM audit_log")).scalar(),
                "revision": conn.execute(text("SELECT version_num FROM alembic_version"))
                .scalar(),
            }
    finally:
        engine.dispose()


def vandalise(url: URL) -> None:
    """Change, delete and add rows after the dump."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE stations SET name = '改名', "
                              "geom = ST_Translate(geom, 0.001, 0.001) WHERE code = 'ST-001'"))
            conn.execute(text("DELETE FROM stations WHERE code = 'ST-002'"))
            conn.execute(text("DELETE FROM roads"))
            conn.execute(text(
                "INSERT INTO stations (code, name, address, phone, staff, opening_hours, geom) "
                "VALUES ('ST-999', '新站', '无', '13900000000', 1, '全天', "
                "ST_SetSRID(ST_MakePoint(117.05, 36.65), 4326))"))
    finally:
        engine.dispose()


def test_restore_with_force_brings_back_exactly_the_dumped_rows(backup_db: URL,
                                                                tmp_path: Path) -> None:
    before = snapshot(backup_db)
    assert [row[1] for row in before["stations"]] == ["ST-001", "ST-002"]
    assert before["stations"][0][5] == STATIONS[0][4]
    archive = dump_database(backup_db, tmp_path / "city.dump")
    assert archive.read_bytes()[:5] == b"PGDMP"
    assert archive.stat().st_mode & 0o077 == 0  # holds password hashes: owner only
    assert not list(tmp_path.glob("*.partial"))

    vandalise(backup_db)
    assert snapshot(backup_db) != before

    messages: list[str] = []
    assert restore_database(backup_db, archive, replace=True,
                            progress=messages.append) == backup_db.database
    after = snapshot(backup_db)
    assert after == before  # rows, geometries with SRID and the (append-only) audit log
    assert any("stations" in message for message in messages)
    assert _other_databases(backup_db) == []

    # The restored database is a working citygrid database: PostGIS, constraints, sequences.
    engine = make_engine(backup_db)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT ST_Distance(a.geom::geography, b.geom::geography) "
                                     "FROM stations a, stations b WHERE a.code = 'ST-001' "
                                     "AND b.code = 'ST-002'")).scalar() > 2000
            new_id = conn.execute(text(
                "INSERT INTO stations (code, name, address, phone, staff, opening_hours, geom) "
                "VALUES ('ST-003', '新站', '无', '13900000000', 1, '全天', "
                "ST_SetSRID(ST_MakePoint(117.05, 36.65), 4326)) RETURNING id")).scalar()
            assert new_id == max(row[0] for row in before["stations"]) + 1
        with pytest.raises(Exception, match="check constraint"), engine.begin() as conn:
            conn.execute(text("UPDATE stations SET phone = 'not a phone'"))
    finally:
        engine.dispose()


def test_garbage_file_is_refused_and_changes_nothing(backup_db: URL, tmp_path: Path) -> None:
    before = snapshot(backup_db)
    garbage = tmp_path / "notes.dump"
    garbage.write_text("this is not a backup\n")
    with pytest.raises(BackupError, match="not a pg_dump custom-format archive") as err:
        restore_database(backup_db, garbage, replace=True)
    assert str(garbage) in str(err.value)

    missing = tmp_path / "nowhere.dump"
    with pytest.raises(BackupError, match="does not exist") as err:
        restore_database(backup_db, missing, replace=True)
    assert str(missing) in str(err.value)

    assert snapshot(backup_db) == before
    assert _other_databases(backup_db) == []


def test_truncated_archive_fails_inside_the_temp_database(backup_db: URL,
                                                          tmp_path: Path) -> None:
    """An archive that passes the header check but breaks mid-restore leaves the target intact."""
    archive = dump_database(backup_db, tmp_path / "city.dump")
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: len(data) - 200])
    vandalise(backup_db)
    changed = snapshot(backup_db)
    with pytest.raises(BackupError) as err:
        restore_database(backup_db, truncated, replace=True)
    assert str(truncated) in str(err.value)
    assert snapshot(backup_db) == changed
    assert _other_databases(backup_db) == []


def test_restore_without_force_refuses_a_database_with_citygrid_tables(
        backup_db: URL, tmp_path: Path) -> None:
    archive = dump_database(backup_db, tmp_path / "city.dump")
    vandalise(backup_db)
    changed = snapshot(backup_db)
    with pytest.raises(BackupError, match="--force") as err:
        restore_database(backup_db, archive)
    assert repr(backup_db.database) in str(err.value)
    assert "alembic_version" in str(err.value)
    assert snapshot(backup_db) == changed
    assert _other_databases(backup_db) == []


def test_archive_of_a_non_citygrid_database_is_refused(backup_db: URL, settings: Settings,
                                                       tmp_path: Path) -> None:
    empty = _throwaway(settings, "backup_empty")
    ensure_database(empty)
    try:
        archive = dump_database(empty, tmp_path / "empty.dump")
    finally:
        drop_database(empty)
    before = snapshot(backup_db)
    with pytest.raises(BackupError, match="not of a citygrid database"):
        restore_database(backup_db, archive, replace=True)
    assert snapshot(backup_db) == before


def test_missing_client_program_names_the_debian_package() -> None:
    with pytest.raises(BackupError, match="postgresql-client-15") as err:
        client_program("pg_dump_nonexistent")
    assert "'pg_dump_nonexistent'" in str(err.value)


def test_cli_dump_then_restore_into_a_new_database(backup_db: URL, tmp_path: Path) -> None:
    env = {"CITYGRID_DATABASE_URL": backup_db.render_as_string(hide_password=False)}
    archive = tmp_path / "cli.dump"
    result = runner.invoke(app, ["db", "dump", str(archive)], env=env)
    assert result.exit_code == 0, result.output
    assert "dumped database" in result.output
    assert archive.read_bytes()[:5] == b"PGDMP"

    copy = f"{backup_db.database}_copy"
    try:
        result = runner.invoke(app, ["db", "restore", str(archive), "--db", copy], env=env)
        assert result.exit_code == 0, result.output
        assert snapshot(backup_db.set(database=copy)) == snapshot(backup_db)

        refused = runner.invoke(app, ["db", "restore", str(archive), "--db", copy], env=env)
        assert refused.exit_code == 2
        assert "--force" in "".join(refused.output.split())

        garbage = tmp_path / "garbage.dump"
        garbage.write_bytes(b"\x00" * 64)
        bad = runner.invoke(app, ["db", "restore", str(garbage), "--force"], env=env)
        assert bad.exit_code == 2
        assert "notapg_dump" in "".join(bad.output.split())
    finally:
        drop_database(backup_db.set(database=copy))


def test_restore_ends_open_sessions_on_the_target(backup_db: URL, tmp_path: Path) -> None:
    """A connected app does not block the swap; its pool reconnects to the restored database."""
    archive = dump_database(backup_db, tmp_path / "city.dump")
    before = snapshot(backup_db)
    vandalise(backup_db)
    app_engine = make_engine(backup_db)  # pre-ping pool, like the web app's
    try:
        held = app_engine.connect()
        held.execute(text("SELECT 1"))
        restore_database(backup_db, archive, replace=True)
        with pytest.raises(Exception, match="terminat"):
            held.execute(text("SELECT count(*) FROM stations"))
        held.close()
        with app_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM stations")).scalar() == len(STATIONS)
    finally:
        app_engine.dispose()
    assert snapshot(backup_db) == before
    assert _other_databases(backup_db) == []
