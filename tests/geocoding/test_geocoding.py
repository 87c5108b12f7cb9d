"""Geocoding against the demo city: gazetteer upkeep, doorplates to grids, the API, batch."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.main import create_app
from gis.geocoding.service import geocode
from gis.platform.settings import CitySettings
from tests.support.accounts import headers_for

CITY = CitySettings()
GRID_OF = """SELECT c.code FROM grid_cells c WHERE ST_Intersects(c.geom, d.geom)
              ORDER BY c.code LIMIT 1"""


@pytest.fixture(scope="module")
def client(demo_settings, demo_engine):
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as c:
        yield c


def test_demo_city_has_doorplates_on_both_sides(demo_engine: Engine):
    with demo_engine.connect() as conn:
        plates = conn.execute(text(
            "SELECT count(*) FILTER (WHERE number % 2 = 1), count(*) FILTER (WHERE number % 2 = 0),"
            " count(*) FILTER (WHERE compound_id IS NOT NULL) FROM doorplates")).one()
        kinds = dict(conn.execute(text("SELECT kind, count(*) FROM gazetteer GROUP BY kind")).all())
    assert plates[0] > 5_000 and plates[1] > 5_000 and plates[2] > 300
    assert {"road", "community", "subdistrict", "compound", "station", "facility",
            "stall_zone", "site"} <= set(kinds)


def test_gazetteer_follows_edits_in_the_same_transaction(demo_engine: Engine):
    with demo_engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("""INSERT INTO roads (name, street_class, width_m, geom) VALUES
            ('测试新路', 'other', 10, ST_GeomFromText('LINESTRING(117.05 36.66, 117.06 36.66)',
                                                    4326))"""))
        conn.execute(text(
            "INSERT INTO road_aliases (road_name, alias) VALUES ('测试新路', '新路')"))
        names = set(conn.execute(text(
            "SELECT name FROM gazetteer WHERE source_key = '测试新路'")).scalars())
        assert names == {"测试新路", "新路"}
        conn.execute(text("UPDATE roads SET name = '测试改名路' WHERE name = '测试新路'"))
        assert conn.execute(text(
            "SELECT count(*) FROM gazetteer WHERE name = '测试新路'")).scalar_one() == 0
        assert conn.execute(text(
            "SELECT count(*) FROM gazetteer WHERE name = '测试改名路'")).scalar_one() == 1
        trans.rollback()
    with demo_engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM gazetteer WHERE name LIKE '测试%'")).scalar_one() == 0


def test_known_doorplates_resolve_to_their_grid(demo_engine: Engine):
    with Session(demo_engine) as session:
        plates = session.execute(text(f"""
            SELECT d.road_name, d.number, d.suffix, ({GRID_OF}) AS grid FROM doorplates d
            WHERE d.road_name IS NOT NULL ORDER BY d.id LIMIT 40 OFFSET 1000""")).all()
        forms = ["济南市历下区{r}{n}{s}号", "{r}{n}{s}号", "{r} {n}{s} 號"]
        for i, p in enumerate(plates):
            q = forms[i % 3].format(r=p.road_name, n=p.number, s=p.suffix)
            if i % 4 == 0:
                q = q.replace("模拟", "")  # the alias an operator says
            result = geocode(session, q, city=CITY)
            assert result.confident, q
            best = result.candidates[0]
            assert (best.level, best.grid_code) == ("doorplate", p.grid), q


def test_missing_number_is_interpolated_on_its_side(demo_engine: Engine):
    with demo_engine.connect() as conn:
        trans = conn.begin()
        plate = conn.execute(text("""
            SELECT d.id, d.road_name, d.number FROM doorplates d
            WHERE d.road_name IS NOT NULL AND d.suffix = ''
              AND EXISTS (SELECT 1 FROM doorplates b WHERE b.road_name = d.road_name
                          AND b.number = d.number - 2)
              AND EXISTS (SELECT 1 FROM doorplates a WHERE a.road_name = d.road_name
                          AND a.number = d.number + 2)
            ORDER BY d.id LIMIT 1 OFFSET 200""")).one()
        conn.execute(text("DELETE FROM doorplates WHERE id = :id"), {"id": plate.id})
        result = geocode(Session(bind=conn), f"{plate.road_name}{plate.number}号", city=CITY)
        best = result.candidates[0]
        assert best.level == "interpolated"
        metres = conn.execute(text("""
            SELECT ST_Distance(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,
                               geom::geography) FROM doorplates WHERE id = :id"""),
            {"lon": best.lon, "lat": best.lat, "id": plate.id}).scalar_one_or_none()
        trans.rollback()
    assert metres is None  # deleted inside the transaction: compare with the neighbours instead
    with demo_engine.connect() as conn:
        metres = conn.execute(text("""
            SELECT ST_Distance(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,
                               geom::geography) FROM doorplates WHERE id = :id"""),
            {"lon": best.lon, "lat": best.lat, "id": plate.id}).scalar_one()
    assert metres < 30


def test_compound_building_landmark_and_intersection(demo_engine: Engine):
    with Session(demo_engine) as session:
        building = session.execute(text(f"""
            SELECT c.name, d.building, ({GRID_OF}) AS grid FROM doorplates d
            JOIN compounds c ON c.id = d.compound_id ORDER BY d.id LIMIT 1 OFFSET 20""")).one()
        found = geocode(session, f"{building.name}{building.building}号楼2单元301室", city=CITY)
        assert found.candidates[0].level == "doorplate"
        assert found.candidates[0].grid_code == building.grid
        hospital = session.execute(text(
            "SELECT name FROM sensitive_sites WHERE kind = 'hospital' ORDER BY id LIMIT 1")
        ).scalar_one()
        found = geocode(session, hospital.replace("门诊入口", "") + "东门", city=CITY)
        assert found.candidates[0].level == "landmark" and found.confident
        a, b = session.execute(text("""
            SELECT a.name, b.name FROM roads a JOIN roads b ON a.name <> b.name
              AND ST_Intersects(a.geom, b.geom) AND a.name LIKE '模拟经%' AND b.name LIKE '模拟纬%'
            ORDER BY a.id, b.id LIMIT 1""")).one()
        found = geocode(session, f"{a[2:]}与{b[2:]}交叉口往东50米", city=CITY)
        assert found.candidates[0].level == "intersection" and found.confident


def test_unknown_and_elsewhere_give_empty_lists(client: TestClient):
    for q in ["火星路1号", "历城区花园路5号", "青岛市市南区香港中路5号", "嗯嗯嗯"]:
        answer = client.get("/geocode", params={"q": q})
        assert answer.status_code == 200, q
        assert answer.json()["candidates"] == [] and not answer.json()["confident"]


def test_api_answers_with_grid_route_and_gcj02(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        p = conn.execute(text(f"""SELECT d.road_name, d.number, ({GRID_OF}) AS grid
            FROM doorplates d WHERE road_name IS NOT NULL ORDER BY id LIMIT 1 OFFSET 77""")).one()
    body = client.get("/geocode", params={"q": f"{p.road_name}{p.number}号"}).json()
    assert body["route"]["grid_code"] == p.grid == body["candidates"][0]["grid_code"]
    best = body["candidates"][0]
    assert 0.001 < abs(best["gcj02_lon"] - best["lon"]) < 0.02  # GCJ-02 shift of ~500 m
    back = client.get("/geocode/reverse", params={"lon": best["lon"], "lat": best["lat"]})
    assert back.status_code == 200
    assert back.json()["doorplate"] == f"{p.road_name}{p.number}号"
    assert back.json()["address"].endswith("号附近")


@pytest.mark.parametrize("params, status", [
    ({"q": "泉城路\x00180号"}, 400),
    ({"q": "1" * 10_000}, 422),
    ({"q": "泉" * 5_000}, 422),  # 45,000 characters once URL-encoded
    ({"q": ""}, 422),
    ({"q": "泉城路1号", "limit": 0}, 422),
])
def test_hostile_queries_are_4xx(client: TestClient, params, status):
    assert client.get("/geocode", params=params).status_code == status


@pytest.mark.parametrize("params", [{"lon": "inf", "lat": 36.66}, {"lon": "nan", "lat": 36.66},
                                   {"lon": 10, "lat": 10}, {"lon": 117.0, "lat": 36.66,
                                                            "crs": "mars"}])
def test_reverse_refuses_bad_points(client: TestClient, params):
    assert 400 <= client.get("/geocode/reverse", params=params).status_code < 500


def test_geocoding_is_staff_only(demo_settings):
    with TestClient(create_app(demo_settings)) as anonymous:
        assert anonymous.get("/geocode", params={"q": "泉城路1号"}).status_code == 401


def test_batch_routes_rows_that_have_only_an_address(client: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        plates = conn.execute(text(f"""SELECT d.road_name, d.number, ({GRID_OF}) AS grid
            FROM doorplates d WHERE road_name IS NOT NULL ORDER BY id LIMIT 3 OFFSET 300""")).all()
    rows = [{"事发地址": f"{p.road_name}{p.number}号", "类别": "0505"} for p in plates]
    rows += [{"事发地址": "火星路1号", "类别": "0505"}, {"事发地址": plates[0].road_name,
                                                 "类别": "0505"}]
    upload = io.BytesIO(pd.DataFrame(rows).to_csv(index=False).encode("utf-8"))
    answer = client.post("/route/batch", files={"file": ("热线.csv", upload, "text/csv")})
    assert answer.status_code == 200, answer.text
    out = pd.read_csv(io.BytesIO(answer.content), dtype=str, keep_default_na=False)
    assert list(out["grid_code"][:3]) == [p.grid for p in plates]
    assert list(out["geocode_level"][:3]) == ["doorplate"] * 3
    assert out["grid_code"][3] == "" and out["reason"][3].startswith("address not geocoded")
    assert out["grid_code"][4] == "" and "把握不足" in out["reason"][4]  # a road, no number
