"""District sub-centres: a district dispatcher reads and dispatches only their district's cases.

Migration 0028's restrictive policy on `cases` enforces it in the database, so every query
path (case detail, lists, workflow actions, raw SQL in the app role) is covered at once.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.analysis.result_cache import read_scope_and_versions
from tests.support.accounts import headers_for

LIXIA, SHIZHONG = "370102", "370103"


def _point_in(engine: Engine, district: str) -> tuple[float, float]:
    """A point inside a unit grid of `district` (WGS84)."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid_cells "
            "WHERE code LIKE :d ORDER BY code LIMIT 1 OFFSET 40) s"), {"d": f"{district}%"}).one()
    return float(row[0]), float(row[1])


def _complaint(xy: tuple[float, float]) -> dict[str, object]:
    return {"category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": xy[0], "y": xy[1], "description": "路边暴露垃圾（分中心测试）"}


@pytest.fixture(scope="module")
def accounts(demo_engine: Engine) -> dict[str, dict[str, str]]:
    return {"city": headers_for(demo_engine, "dispatcher"),
            "shizhong": headers_for(demo_engine, "dispatcher", district_code=SHIZHONG)}


@pytest.fixture(scope="module")
def cases(demo_client: TestClient, demo_engine: Engine,
          accounts: dict[str, dict[str, str]]) -> dict[str, int]:
    """One new case in 历下区 and one in 市中区, taken by the city centre."""
    made = {}
    for district in (LIXIA, SHIZHONG):
        r = demo_client.post("/cases", headers=accounts["city"],
                             json=_complaint(_point_in(demo_engine, district)))
        assert r.status_code == 201, r.text
        assert r.json()["grid_code"].startswith(district)
        made[district] = r.json()["id"]
    return made


def test_district_dispatcher_cannot_read_or_dispatch_another_districts_case(
        demo_client: TestClient, accounts, cases) -> None:
    lixia = cases[LIXIA]
    shizhong = accounts["shizhong"]
    assert demo_client.get(f"/cases/{lixia}", headers=shizhong).status_code == 404
    for action in ("file", "dispatch"):
        r = demo_client.post(f"/cases/{lixia}/actions/{action}", headers=shizhong, json={})
        assert r.status_code == 404, r.text
    # Nothing changed: the centre still sees it as taken, not filed.
    assert demo_client.get(f"/cases/{lixia}",
                           headers=accounts["city"]).json()["status"] == "collected"


def test_district_dispatcher_dispatches_their_own_districts_case(
        demo_client: TestClient, accounts, cases) -> None:
    own = cases[SHIZHONG]
    for action in ("file", "dispatch"):
        r = demo_client.post(f"/cases/{own}/actions/{action}", headers=accounts["shizhong"],
                             json={})
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "dispatched"


def test_city_centre_reads_and_dispatches_every_district(
        demo_client: TestClient, accounts, cases) -> None:
    city = accounts["city"]
    assert demo_client.get(f"/cases/{cases[SHIZHONG]}", headers=city).status_code == 200
    for action in ("file", "dispatch"):
        r = demo_client.post(f"/cases/{cases[LIXIA]}/actions/{action}", headers=city, json={})
        assert r.status_code == 200, r.text


def test_lists_hold_only_the_district(demo_client: TestClient, accounts, cases) -> None:
    mine = demo_client.get("/cases", headers=accounts["shizhong"],
                           params={"limit": 500}).json()
    assert mine and {c["grid_code"][:6] for c in mine} == {SHIZHONG}
    every = demo_client.get("/cases", headers=accounts["city"], params={"limit": 500}).json()
    assert LIXIA in {c["grid_code"][:6] for c in every if c["grid_code"]}


def test_district_dispatcher_cannot_take_a_case_into_another_district(
        demo_client: TestClient, demo_engine: Engine, accounts) -> None:
    r = demo_client.post("/cases", headers=accounts["shizhong"],
                         json=_complaint(_point_in(demo_engine, LIXIA)))
    assert r.status_code == 403, r.text


def test_policy_holds_for_raw_sql_in_the_app_role(demo_engine: Engine, accounts) -> None:
    """Any query of the app role tagged with the district user sees only their district."""
    with demo_engine.connect() as conn:
        username = conn.execute(text(
            "SELECT username FROM users WHERE district_code = :d ORDER BY id DESC LIMIT 1"),
            {"d": SHIZHONG}).scalar_one()
        conn.rollback()
        with conn.begin():
            conn.execute(text("SET LOCAL ROLE citygrid_app"))
            conn.execute(text("SELECT set_config('citygrid.actor', :u, true)"), {"u": username})
            seen = dict(conn.execute(text(
                "SELECT left(grid_code, 6), count(*) FROM cases GROUP BY 1")).all())
            changed = conn.execute(text(
                "UPDATE cases SET description = description "
                "WHERE left(grid_code, 6) = :d"), {"d": LIXIA}).rowcount
        assert set(seen) == {SHIZHONG} and changed == 0
        with conn.begin():
            conn.execute(text("SET LOCAL ROLE citygrid_app"))
            conn.execute(text("SELECT set_config('citygrid.actor', 'cli:test', true)"))
            every = {r[0] for r in conn.execute(text("SELECT DISTINCT left(grid_code, 6) "
                                                      "FROM cases WHERE grid_code IS NOT NULL"))}
        assert {LIXIA, SHIZHONG, "370105"} <= every


def test_analysis_cache_keeps_district_results_apart(demo_engine: Engine, accounts) -> None:
    """A district dispatcher's analyses (computed over their district) are cached apart."""
    with demo_engine.connect() as conn:
        username = conn.execute(text(
            "SELECT username FROM users WHERE district_code = :d ORDER BY id DESC LIMIT 1"),
            {"d": SHIZHONG}).scalar_one()
        conn.rollback()
        roles = []
        for actor in (username, "cli:test"):
            with conn.begin():
                conn.execute(text("SET LOCAL ROLE citygrid_app"))
                conn.execute(text("SELECT set_config('citygrid.actor', :u, true)"), {"u": actor})
                roles.append(read_scope_and_versions(Session(bind=conn), ["cases"])[0])
    assert roles == [f"citygrid_app@{SHIZHONG}", "citygrid_app"]
