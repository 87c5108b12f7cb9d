"""The database itself refuses bad rows, even from a writer that skips the Python validation.

Every attempt runs in its own SAVEPOINT inside a rolled-back session; a valid row of each kind
is accepted first, so a failure to reject cannot hide behind a broken fixture.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gis.models.tables import MODELS, Base

CHECK = "23514"  # check_violation
EXCLUSION = "23P01"  # exclusion_violation
INVALID_PARAMETER = "22023"  # PostGIS: SRID or geometry type does not match the column

DISTRICT, SUBDISTRICT, COMMUNITY = "379901", "379901901", "379901901901"
GRID = COMMUNITY + "01"
SQUARE = "POLYGON((117.030 36.660, 117.031 36.660, 117.031 36.661, 117.030 36.661, 117.030 36.660))"
BOWTIE = "POLYGON((117.030 36.660, 117.031 36.661, 117.031 36.660, 117.030 36.661, 117.030 36.660))"
POINT = "POINT(117.0305 36.6605)"


def geom(wkt: str, srid: int = 4326) -> str:
    return f"ST_GeomFromText('{wkt}', {srid})"


@pytest.fixture
def city(session: Session) -> Session:
    """A district, subdistrict, community and one grid cell, all rolled back afterwards."""
    area = geom(f"MULTIPOLYGON((({SQUARE[9:-2]})))")
    session.execute(text(f"INSERT INTO districts (code, name, source, geom) "
                         f"VALUES ('{DISTRICT}', '测试区', 'test', {area})"))
    session.execute(text(f"INSERT INTO subdistricts (code, name, district_code, geom) "
                         f"VALUES ('{SUBDISTRICT}', '测试街道', '{DISTRICT}', {area})"))
    session.execute(text(f"INSERT INTO communities (code, name, subdistrict_code, geom) "
                         f"VALUES ('{COMMUNITY}', '测试社区', '{SUBDISTRICT}', {area})"))
    session.execute(text(f"INSERT INTO grid_cells (code, community_code, geom) "
                         f"VALUES ('{GRID}', '{COMMUNITY}', {geom(SQUARE)})"))
    return session


def accepted(session: Session, sql: str) -> None:
    with session.begin_nested():
        session.execute(text(sql))


def rejected(session: Session, sql: str, pgcode: str, constraint: str | None = None) -> str:
    """Run `sql` in a savepoint; it must fail with `pgcode` (and name `constraint`)."""
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(text(sql))
    orig = info.value.orig
    assert getattr(orig, "pgcode", None) == pgcode, str(orig)
    if constraint is not None:
        assert orig.diag.constraint_name == constraint, str(orig)
    return str(orig)


def grid_sql(code: str, community: str = COMMUNITY, wkt: str = SQUARE, srid: int = 4326) -> str:
    return (f"INSERT INTO grid_cells (code, community_code, geom) "
            f"VALUES ('{code}', '{community}', {geom(wkt, srid)})")


def test_grid_cell_geometry_rules(city: Session) -> None:
    accepted(city, grid_sql(COMMUNITY + "02"))
    rejected(city, grid_sql(COMMUNITY + "03", wkt=BOWTIE), CHECK, "grid_cells_geom_check")
    message = rejected(city, grid_sql(COMMUNITY + "04", srid=3857), INVALID_PARAMETER)
    assert "SRID" in message
    line = "LINESTRING(117.03 36.66, 117.04 36.67)"
    message = rejected(city, grid_sql(COMMUNITY + "05", wkt=line), INVALID_PARAMETER)
    assert "type" in message.lower()


def test_area_is_generated(city: Session) -> None:
    area = city.execute(text("SELECT area_m2 FROM grid_cells WHERE code = :c"),
                        {"c": GRID}).scalar()
    # 0.001° x 0.001° at 36.66°N: about 111 m x 89 m.
    assert 9_000 < area < 11_000


def test_grid_cell_codes(city: Session) -> None:
    accepted(city, grid_sql(COMMUNITY + "123"))  # 15 digits (DB11) is fine too
    rejected(city, grid_sql(COMMUNITY + "0"), CHECK, "grid_cells_code_check")  # 13 digits
    rejected(city, grid_sql(COMMUNITY + "0A"), CHECK, "grid_cells_code_check")
    # A code under another community than the one named: only the CHECK can refuse it.
    rejected(city, grid_sql("37990190190201"), CHECK, "grid_cells_check")


def component_sql(table: str, code: str, wkt: str = POINT) -> str:
    return (f"INSERT INTO {table} (code, owner, maintainer, geom) "
            f"VALUES ('{code}', '路灯管理处', '养护公司', {geom(wkt)})")


def test_component_codes(city: Session) -> None:
    accepted(city, component_sql("streetlights", "3701020118000001"))
    rejected(city, component_sql("streetlights", "3701020101000002"), CHECK,
             "streetlights_code_check")
    accepted(city, component_sql("manhole_covers", "3701020102000001"))
    cover = city.execute(text("SELECT cover_class FROM manhole_covers "
                              "WHERE code = '3701020102000001'")).scalar()
    assert cover == "0102"
    rejected(city, component_sql("manhole_covers", "3701020118000003"), CHECK,
             "manhole_covers_code_check")


def test_points_must_be_real_lon_lat(city: Session) -> None:
    accepted(city, component_sql("streetlights", "3701020118000010"))
    rejected(city, component_sql("streetlights", "3701020118000011", "POINT(200 36.66)"), CHECK,
             "streetlights_geom_check")
    nan_point = ("INSERT INTO streetlights (code, owner, maintainer, geom) VALUES "
                 "('3701020118000012', 'a', 'b', ST_SetSRID(ST_MakePoint('NaN', 36.66), 4326))")
    rejected(city, nan_point, CHECK, "streetlights_geom_check")


def test_road_street_class_enum(city: Session) -> None:
    sql = ("INSERT INTO roads (name, street_class, width_m, geom) VALUES "
           "('泉城路', '{cls}', 20, {g})").replace(
        "{g}", geom("LINESTRING(117.03 36.66, 117.04 36.66)"))
    accepted(city, sql.replace("{cls}", "demonstration"))
    rejected(city, sql.replace("{cls}", "main"), CHECK, "roads_street_class_check")


def stall_zone_sql(capacity: int) -> str:
    slots = '[{"days": [5, 6], "start": "18:00", "end": "22:30"}]'
    return ("INSERT INTO stall_zones (name, zone_type, district_code, time_slots, capacity, "
            f"operator, geom) VALUES ('测试夜市', 'night_market', '{DISTRICT}', '{slots}', "
            f"{capacity}, '街道办', {geom(SQUARE)})")


def test_stall_zone_capacity(city: Session) -> None:
    accepted(city, stall_zone_sql(120))
    rejected(city, stall_zone_sql(-1), CHECK, "stall_zones_capacity_check")


def owner_sql(valid_from: str, valid_to: str | None) -> str:
    to = f"'{valid_to}'" if valid_to else "NULL"
    return ("INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from, "
            f"valid_to) VALUES ('{GRID}', '张三', 'grid_worker', '13800000000', '{valid_from}', "
            f"{to})")


def test_owner_periods_never_overlap(city: Session) -> None:
    accepted(city, owner_sql("2024-01-01", "2025-01-01"))
    accepted(city, owner_sql("2025-01-01", None))  # [from, to): back to back is fine
    rejected(city, owner_sql("2024-06-01", "2024-07-01"), EXCLUSION)
    rejected(city, owner_sql("2026-01-01", None), EXCLUSION)


# ---------------------------------------------------------------------------------------------
# ORM models against the migrated database


def test_models_cover_every_table_of_the_initial_schema() -> None:
    expected = {"districts", "subdistricts", "communities", "grid_cells", "grid_owners",
                "stations", "roads", "stall_zones", "streetlights", "manhole_covers",
                "facilities", "cases", "component_classes", "event_categories"}
    assert set(MODELS) == expected
    assert set(Base.metadata.tables) == expected


def test_model_columns_match_the_database(engine) -> None:
    inspector = inspect(engine)
    mismatches = {}
    for name, table in Base.metadata.tables.items():
        in_db = {c["name"]: c for c in inspector.get_columns(name)}
        in_model = {c.name: c for c in table.columns}
        if set(in_db) != set(in_model):
            mismatches[name] = (sorted(set(in_db) - set(in_model)),
                                sorted(set(in_model) - set(in_db)))
            continue
        for column in table.columns:
            db_column = in_db[column.name]
            if bool(db_column["nullable"]) != bool(column.nullable):
                mismatches[f"{name}.{column.name}"] = ("nullable", db_column["nullable"])
            if bool(db_column.get("computed")) != (column.computed is not None):
                mismatches[f"{name}.{column.name}"] = ("computed", db_column.get("computed"))
    assert not mismatches, f"ORM and database differ (db-only, model-only): {mismatches}"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_case_raw_coordinates_must_be_finite(engine, bad: str) -> None:
    """0001's `raw_x = raw_x` let NaN through (PostgreSQL orders NaN equal to itself)."""
    with engine.connect() as conn, pytest.raises(DBAPIError, match="cases_raw_finite"):
        conn.execute(text(
            "INSERT INTO cases (case_no, channel, category_type, category_code, "
            "raw_x, raw_y, raw_crs, reported_at, geom) VALUES ('NAN-1', 'patrol', 'event', "
            "'0101', CAST(:bad AS float8), 36.66, 'wgs84', now(), "
            "ST_SetSRID(ST_MakePoint(117.03, 36.66), 4326))"), {"bad": bad})


def test_public_views_hide_internal_columns(engine) -> None:
    with engine.connect() as conn:
        columns = {(r.table_name, r.column_name) for r in conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'pub'"))}
    tables = {t for t, _ in columns}
    assert {"facilities", "stations", "stall_zones", "streetlights"} <= tables
    assert "cases" not in tables
    leaked = {(t, c) for t, c in columns if c in {"owner", "staff", "status", "maintainer"}
              and t != "service_requests"}
    assert leaked == set()
    # Open311 publishes a request's status (GeoReport v2 `status`), never its reporter.
    open311 = {c for t, c in columns if t == "service_requests"}
    assert "status" in open311 and not {c for c in open311 if c.startswith("reporter_")}
