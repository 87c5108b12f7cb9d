"""Staff suggestions while typing (`GET /geocode/suggest`) against the demo city."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.geo.coords import wgs84_to_bd09, wgs84_to_gcj02
from tests.support.accounts import headers_for

GRID_OF = """SELECT c.code FROM grid_cells c WHERE ST_Intersects(c.geom, d.geom)
              ORDER BY c.code LIMIT 1"""


@pytest.fixture(scope="module")
def client(demo_settings, demo_engine):
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as c:
        yield c


def suggest(client: TestClient, q: str, **params) -> list[dict]:
    answer = client.get("/geocode/suggest", params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    assert answer.json()["query"] == q.strip()
    return answer.json()["suggestions"]


def test_doorplate_address_comes_first_with_its_grid(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        p = conn.execute(text(f"""SELECT d.road_name, d.number, ({GRID_OF}) AS grid
            FROM doorplates d WHERE road_name IS NOT NULL AND suffix = ''
            ORDER BY id LIMIT 1 OFFSET 500""")).one()
    for q in (f"{p.road_name}{p.number}号", f"历下区{p.road_name}{p.number}號",
              f"山东省济南市{p.road_name} {p.number}号"):
        best = suggest(client, q)[0]
        assert (best["kind"], best["level"], best["grid_code"]) == ("address", "doorplate",
                                                                     p.grid), q
        assert best["label"] == f"{p.road_name}{p.number}号"


def test_place_road_and_community_names_by_part(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        facility = conn.execute(text("SELECT name FROM facilities ORDER BY id LIMIT 1")
                                ).scalar_one()
        road = conn.execute(text("SELECT name FROM roads ORDER BY id LIMIT 1")).scalar_one()
        community = conn.execute(text("SELECT name FROM communities ORDER BY code LIMIT 1")
                                 ).scalar_one()
    found = suggest(client, facility[:-1])  # typed so far: all but the last character
    assert any(s["kind"] == "place" and s["label"] == facility and s["level"] == "facility"
               for s in found), found
    for q in (road, f"山东省济南市历下区{road}", f"济南{road}"):  # own city's prefix: no matter
        found = suggest(client, q)
        assert found[0]["kind"] == "road" and found[0]["label"] == road, q
        assert found[0]["score"] == 1, q
    assert len({s["label"] for s in found}) == len(found)  # aliases: one suggestion per road
    found = suggest(client, community)
    assert found[0]["kind"] == "community" and found[0]["grid_code"] is not None


def test_grid_code_exact_and_prefix(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        codes = list(conn.execute(text("SELECT code FROM grid_cells ORDER BY code LIMIT 3"))
                     .scalars())
    found = suggest(client, codes[1])
    assert [(s["kind"], s["grid_code"]) for s in found] == [("grid", codes[1])]
    found = suggest(client, codes[0][:12], limit=3)
    assert [s["grid_code"] for s in found] == codes
    assert all(s["kind"] == "grid" and s["label"].startswith("网格") for s in found)


def test_case_number_exact(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        case = conn.execute(text("""SELECT case_no, grid_code, ST_X(geom) AS lon FROM cases
                                    WHERE grid_code IS NOT NULL ORDER BY id LIMIT 1""")).one()
    found = suggest(client, case.case_no.lower())
    assert found[0]["kind"] == "case" and found[0]["case_no"] == case.case_no
    assert found[0]["grid_code"] == case.grid_code and found[0]["lon"] == pytest.approx(case.lon)
    assert suggest(client, case.case_no[:-1] + "X") == [] or all(
        s["kind"] != "case" for s in suggest(client, case.case_no[:-1] + "X"))


def test_coordinates_in_either_order_and_any_crs(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        case = conn.execute(text("""SELECT grid_code, ST_X(geom) AS lon, ST_Y(geom) AS lat
            FROM cases WHERE grid_code IS NOT NULL ORDER BY id LIMIT 1 OFFSET 10""")).one()
    glon, glat = wgs84_to_gcj02(case.lon, case.lat)
    blon, blat = wgs84_to_bd09(case.lon, case.lat)
    for q, crs in [(f"{case.lon},{case.lat}", "wgs84"), (f"{case.lat}, {case.lon}", "wgs84"),
                   (f"{case.lat} {case.lon}", "WGS-84"), (f"{glon}，{glat}", "gcj02"),
                   (f"{blat},{blon}", "bd09")]:
        found = suggest(client, q, crs=crs)
        assert [s["kind"] for s in found] == ["coordinates"], q
        assert found[0]["lon"] == pytest.approx(case.lon, abs=1e-6), q
        assert found[0]["lat"] == pytest.approx(case.lat, abs=1e-6), q
        assert found[0]["grid_code"] == case.grid_code, q
    assert suggest(client, "10,10") == []  # two numbers, but not a point of this city


def test_address_in_another_city_is_not_suggested(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        p = conn.execute(text("""SELECT road_name, number FROM doorplates
            WHERE road_name IS NOT NULL AND suffix = '' ORDER BY id LIMIT 1""")).one()
    assert suggest(client, f"青岛市市南区{p.road_name}{p.number}号") == []
    found = suggest(client, f"济南市历下区{p.road_name}{p.number}号")
    assert found[0]["kind"] == "address"


@pytest.mark.parametrize("params, named", [
    ({"q": "泉城路" + "1" * 10_000}, "10003 characters"),
    ({"q": "inf,36.66"}, "'inf'"),
    ({"q": "117.05, nan"}, "'nan'"),
    ({"q": "1e999,36.66"}, "'1e999'"),
    ({"q": "泉城路\x07180号"}, "U+0007"),
    ({"q": "   "}, "q is empty"),
    ({"q": "泉城路", "limit": 0}, "limit 0"),
    ({"q": "泉城路", "limit": 1000}, "limit 1000"),
    ({"q": "117.05,36.66", "crs": "mars"}, "mars"),
])
def test_hostile_input_is_400_naming_the_value(client: TestClient, params, named):
    answer = client.get("/geocode/suggest", params=params)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["detail"]


def test_nul_and_sql_looking_text(client: TestClient, demo_engine: Engine):
    assert client.get("/geocode/suggest", params={"q": "泉城路\x00"}).status_code == 400
    for q in ["'; DROP TABLE cases; --", "370102' OR '1'='1", "LX2025' OR 1=1 --",
              "%", "_", "\\", "模拟%"]:
        answer = client.get("/geocode/suggest", params={"q": q})
        assert answer.status_code == 200, q
        assert all(s["kind"] not in ("case", "grid") for s in answer.json()["suggestions"]), q
    with demo_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cases")).scalar_one() > 0


def test_suggest_is_staff_only(demo_settings):
    with TestClient(create_app(demo_settings)) as anonymous:
        assert anonymous.get("/geocode/suggest", params={"q": "泉城路"}).status_code == 401
