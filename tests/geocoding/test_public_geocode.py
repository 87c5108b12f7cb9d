"""Anonymous address search (`GET /public/geocode`): public places, roads and addresses only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app

GRID_OF = """SELECT c.code FROM grid_cells c WHERE ST_Intersects(c.geom, d.geom)
              ORDER BY c.code LIMIT 1"""


@pytest.fixture(scope="module")
def anonymous(demo_settings, demo_engine):
    with TestClient(create_app(demo_settings)) as c:
        yield c


def search(client: TestClient, q: str, **params) -> list[dict]:
    answer = client.get("/public/geocode", params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["suggestions"]


def test_doorplates_roads_and_public_places(anonymous: TestClient, demo_engine: Engine):
    with demo_engine.connect() as conn:
        p = conn.execute(text(f"""SELECT d.road_name, d.number, ({GRID_OF}) AS grid
            FROM doorplates d WHERE road_name IS NOT NULL AND suffix = ''
            ORDER BY id LIMIT 1 OFFSET 900""")).one()
        facility = conn.execute(text("SELECT name FROM facilities ORDER BY id LIMIT 1")
                                ).scalar_one()
        station = conn.execute(text("SELECT name FROM stations ORDER BY id LIMIT 1")
                               ).scalar_one()
        a, b = conn.execute(text("""
            SELECT a.name, b.name FROM roads a JOIN roads b ON a.name <> b.name
              AND ST_Intersects(a.geom, b.geom) ORDER BY a.id, b.id LIMIT 1""")).one()
    best = search(anonymous, f"{p.road_name}{p.number}号")[0]
    assert (best["kind"], best["level"]) == ("address", "doorplate")
    assert best["label"] == f"{p.road_name}{p.number}号" and "grid_code" not in best
    with demo_engine.connect() as conn:  # the point is the doorplate's, in its grid
        assert conn.execute(text("""SELECT code FROM grid_cells WHERE ST_Intersects(geom,
            ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) ORDER BY code LIMIT 1"""),
            {"lon": best["lon"], "lat": best["lat"]}).scalar_one() == p.grid
    assert search(anonymous, p.road_name)[0]["kind"] == "road"
    assert any(s["label"] == facility and s["level"] == "facility"
               for s in search(anonymous, facility))
    assert any(s["label"] == station and s["level"] == "station"
               for s in search(anonymous, station))
    crossing = search(anonymous, f"{a}与{b}交叉口")[0]
    assert (crossing["kind"], crossing["level"]) == ("address", "intersection")


def test_never_communities_compounds_sites_cases_or_grids(anonymous: TestClient,
                                                          demo_engine: Engine):
    with demo_engine.connect() as conn:
        community = conn.execute(text("SELECT name FROM communities ORDER BY code LIMIT 1")
                                 ).scalar_one()
        compound, building = conn.execute(text("""SELECT c.name, d.building FROM doorplates d
            JOIN compounds c ON c.id = d.compound_id ORDER BY d.id LIMIT 1""")).one()
        site = conn.execute(text("SELECT name FROM sensitive_sites ORDER BY id LIMIT 1")
                            ).scalar_one()
        case_no = conn.execute(text("SELECT case_no FROM cases ORDER BY id LIMIT 1")
                               ).scalar_one()
        grid = conn.execute(text("SELECT code FROM grid_cells ORDER BY code LIMIT 1")
                            ).scalar_one()
    for q in (community, compound, f"{compound}{building}号楼", site):
        found = search(anonymous, q)
        assert all(s["label"] not in (community, compound, site) for s in found), (q, found)
        assert all(s["level"] in (None, "station", "facility", "stall_zone", "doorplate",
                                  "interpolated", "intersection", "landmark")
                   for s in found), (q, found)
    for q in (case_no, grid, "117.05,36.66"):
        assert all(s["kind"] in ("place", "road", "address") for s in search(anonymous, q)), q
    with demo_engine.connect() as conn:
        draft = conn.execute(text(
            "SELECT name FROM stall_zones WHERE status <> 'approved' ORDER BY id LIMIT 1")
        ).scalar_one_or_none()
    if draft is not None:
        assert all(s["label"] != draft for s in search(anonymous, draft))


def test_new_public_place_is_found_without_restart(anonymous: TestClient,
                                                   demo_engine: Engine):
    name = "测试便民公厕甲"
    assert search(anonymous, name) == [] or all(s["label"] != name
                                                for s in search(anonymous, name))
    with demo_engine.begin() as conn:
        conn.execute(text("""INSERT INTO facilities (name, kind, address, opening_hours, geom)
            VALUES (:n, 'public_toilet', '测试', '全天',
                    ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326))"""), {"n": name})
    try:
        found = search(anonymous, name)
        assert found[0]["label"] == name and found[0]["lon"] == pytest.approx(117.05)
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM facilities WHERE name = :n"), {"n": name})
    assert all(s["label"] != name for s in search(anonymous, name))


@pytest.mark.parametrize("params, named", [
    ({"q": "泉" * 65}, "65 characters"),
    ({"q": "泉城路", "limit": 11}, "limit 11"),
    ({"q": "泉城路", "limit": 0}, "limit 0"),
    ({"q": " "}, "q is empty"),
    ({"q": "泉城路\x1b"}, "U+001B"),
])
def test_abuse_is_capped(anonymous: TestClient, params, named):
    answer = anonymous.get("/public/geocode", params=params)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["detail"]


def test_sql_looking_text_and_nul(anonymous: TestClient):
    assert anonymous.get("/public/geocode", params={"q": "泉\x00"}).status_code == 400
    for q in ["'; DROP VIEW pub.geocode_names; --", "%", "_' OR 1=1 --"]:
        assert anonymous.get("/public/geocode", params={"q": q}).status_code == 200, q
    assert search(anonymous, "模拟")  # the views are still there


def test_views_are_not_ogc_collections(anonymous: TestClient, demo_engine: Engine):
    ids = {c["id"] for c in anonymous.get("/ogc/collections").json()["collections"]}
    assert ids and not any("geocode" in i for i in ids), ids
    with demo_engine.connect() as conn:
        spatial = conn.execute(text("""SELECT count(*) FROM geometry_columns
            WHERE f_table_schema = 'pub' AND f_table_name LIKE 'geocode%'""")).scalar_one()
        granted = conn.execute(text("""SELECT count(*) FROM information_schema.role_table_grants
            WHERE grantee = 'citygrid_public' AND table_schema = 'pub'
              AND table_name LIKE 'geocode%'""")).scalar_one()
    assert (spatial, granted) == (0, 3)
