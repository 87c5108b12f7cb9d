"""Case numbers per district: the prefix comes from the district of the grid a case routes to.

Filed by the city centre, by a district sub-centre or by a resident through Open311, a case
in 市中区 is numbered SZ..., in 天桥区 TQ..., in 历下区 LX... (CitySettings.case_prefixes);
CITYGRID_CITY_CASE_PREFIX stays the fallback. `next_case_no` counts every case of the day
whatever row-level security shows the caller (migration 0031).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.dispatch.deadlines import CHINA_TZ
from gis.platform.settings import CitySettings
from tests.support.accounts import headers_for

PREFIXES = {"370102": "LX", "370103": "SZ", "370105": "TQ"}


def _point_in(engine: Engine, district: str) -> tuple[float, float]:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid_cells "
            "WHERE code LIKE :d ORDER BY code LIMIT 1 OFFSET 80) s"), {"d": f"{district}%"}).one()
    return float(row[0]), float(row[1])


def _complaint(xy: tuple[float, float]) -> dict[str, object]:
    return {"category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": xy[0], "y": xy[1], "description": "案件编号前缀测试"}


def _today_no(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}{dt.datetime.now(CHINA_TZ):%Y%m%d}\d{{4,9}}$")


@pytest.mark.parametrize("district", sorted(PREFIXES))
def test_centre_files_with_the_districts_prefix(demo_client: TestClient, demo_engine: Engine,
                                                district: str) -> None:
    r = demo_client.post("/cases", headers=headers_for(demo_engine, "dispatcher"),
                         json=_complaint(_point_in(demo_engine, district)))
    assert r.status_code == 201, r.text
    assert r.json()["grid_code"].startswith(district)
    assert _today_no(PREFIXES[district]).match(r.json()["case_no"]), r.json()["case_no"]


def test_district_dispatcher_after_the_centre_gets_a_free_number(
        demo_client: TestClient, demo_engine: Engine) -> None:
    """The 市中区 sub-centre files after the centre filed in 市中区 and 历下区 the same day."""
    city = headers_for(demo_engine, "dispatcher")
    shizhong = headers_for(demo_engine, "dispatcher", district_code="370103")
    numbers = []
    for who, district in ((city, "370102"), (city, "370103"), (shizhong, "370103"),
                          (shizhong, "370103")):
        r = demo_client.post("/cases", headers=who,
                             json=_complaint(_point_in(demo_engine, district)))
        assert r.status_code == 201, r.text
        numbers.append(r.json()["case_no"])
    assert [n[:2] for n in numbers] == ["LX", "SZ", "SZ", "SZ"]
    assert numbers[1] < numbers[2] < numbers[3]


def test_open311_request_gets_the_districts_prefix(demo_client: TestClient,
                                                   demo_engine: Engine) -> None:
    lon, lat = _point_in(demo_engine, "370103")
    token = headers_for(demo_engine, "dispatcher")["Authorization"].removeprefix("Bearer ")
    r = demo_client.post("/open311/v2/requests.json", json={
        "service_code": "event-0102", "lat": lat, "long": lon, "api_key": token,
        "description": "市中区路边暴露垃圾"})
    assert r.status_code == 201, r.text
    (created,) = r.json()
    assert _today_no("SZ").match(created["service_request_id"]), created


def test_next_case_no_counts_cases_the_caller_cannot_see(demo_engine: Engine) -> None:
    """A 市中区 user bound to the app role sees no 历下区 case, yet never reuses its number."""
    day = dt.datetime.now(CHINA_TZ).date()
    headers_for(demo_engine, "dispatcher", district_code="370103")
    with demo_engine.begin() as conn:
        username = conn.execute(text(
            "SELECT username FROM users WHERE district_code = '370103' "
            "ORDER BY id DESC LIMIT 1")).scalar_one()
        # A 历下区 case with today's LX number far ahead of any other; not simulated, so the
        # demo city's own counts and deadline checks (tests/demo) do not take it for theirs.
        grid = conn.execute(text("SELECT code FROM grid_cells WHERE code LIKE '370102%' "
                                 "LIMIT 1")).scalar_one()
        taken = f"LX{day:%Y%m%d}0900"
        conn.execute(text("""
            INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
                raw_crs, reported_at, grid_code, simulated, geom)
            SELECT :n, 'event', '0102', 'patrol', ST_X(c), ST_Y(c), 'wgs84', now(), code, false, c
            FROM (SELECT code, ST_PointOnSurface(geom) AS c FROM grid_cells
                  WHERE code = :g) s"""), {"n": taken, "g": grid})
    with demo_engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL ROLE citygrid_app"))
        conn.execute(text("SELECT set_config('citygrid.actor', :u, true)"), {"u": username})
        assert conn.execute(text("SELECT count(*) FROM cases WHERE case_no = :n"),
                            {"n": taken}).scalar_one() == 0
        following = conn.execute(text("SELECT next_case_no('LX', :d)"),
                                 {"d": day}).scalar_one()
    assert following > taken, following


def test_settings() -> None:
    city = CitySettings()
    assert city.case_prefix_for("370103001001001") == "SZ"
    assert city.case_prefix_for("370112001001001") == "LX"  # not named: the fallback
    assert city.case_prefix_for(None) == "LX"
    # A deployment that set only the one prefix keeps it for every case.
    assert CitySettings(case_prefix="JN").case_prefix_for("370103001001001") == "JN"
    custom = CitySettings(case_prefix="JN", case_prefixes={"370103": "SZ"})
    assert custom.case_prefix_for("370103001") == "SZ"
    assert custom.case_prefix_for("370102001") == "JN"
    with pytest.raises(ValidationError, match="share a case prefix"):
        CitySettings(case_prefixes={"370102": "LX", "370103": "LX"})
    with pytest.raises(ValidationError, match="6-digit district"):
        CitySettings(case_prefixes={"3701": "LX"})


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYGRID_CITY_CASE_PREFIXES", '{"370102": "LXQ", "370105": "TQ"}')
    city = CitySettings()
    assert city.case_prefix_for("370102001") == "LXQ"
    assert city.case_prefix_for("370103001") == "LX"
