"""Filing a case the way the desk routes it: snapped points, case numbers, the recent list,
and (on the demo city) an address without coordinates."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from api.routes.dispatch.cases import CaseDetailOut, CaseOut, SupervisedGroupOut
from tests.dispatch.test_cases_api import client, complaint  # noqa: F401  (fixture)
from tests.dispatch.test_workflow import GRID_WEST
from tests.support.accounts import headers_for

# 0.0002 deg west of GRID_WEST (118.000 .. 118.001, 37.0000 .. 37.0008): ~18 m outside.
OUTSIDE_WEST = (117.9998, 37.0004)
CASE_NO = re.compile(r"^LX20260930[0-9]{4}$")


def test_point_just_outside_is_filed_like_route_snaps_it(client):  # noqa: F811
    routed = client.post("/route", json={"x": OUTSIDE_WEST[0], "y": OUTSIDE_WEST[1],
                                         "category_code": "0102"})
    assert routed.status_code == 200, routed.text
    assert routed.json()["snapped"] is True and routed.json()["grid_code"] == GRID_WEST

    created = client.post("/cases", json=complaint(x=OUTSIDE_WEST[0], y=OUTSIDE_WEST[1]))
    assert created.status_code == 201, created.text
    case = CaseDetailOut.model_validate(created.json())
    assert case.grid_code == GRID_WEST
    assert case.snapped is True
    assert case.snap_distance_m == pytest.approx(routed.json()["snap_distance_m"], abs=0.05)
    assert 15 < (case.snap_distance_m or 0) < 20
    # The raw point is kept, not moved into the grid.
    assert (case.raw_x, case.raw_y) == OUTSIDE_WEST


def test_point_inside_is_not_snapped_and_far_point_is_refused(client):  # noqa: F811
    inside = CaseDetailOut.model_validate(client.post("/cases", json=complaint()).json())
    assert inside.snapped is False and inside.snap_distance_m is None
    far = client.post("/cases", json=complaint(x=117.99, y=37.0004))  # ~900 m out
    assert far.status_code == 422
    assert "more than the 50 m a point may be snapped" in far.json()["detail"]


def test_case_numbers_have_one_format_and_resolve(client, session):  # noqa: F811
    session.execute(text("""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
            raw_crs, reported_at, geom)
        VALUES ('LX202609300041', 'event', '0102', 'patrol', 118.0008, 37.0004, 'wgs84',
                '2026-09-30T08:00:00+08:00', ST_SetSRID(ST_MakePoint(118.0008, 37.0004), 4326))
    """))
    first = client.post("/cases", json=complaint()).json()
    second = client.post("/cases", json=complaint()).json()
    assert CASE_NO.match(first["case_no"]) and CASE_NO.match(second["case_no"])
    # The serial of the day continues after the highest number already given that day.
    assert (first["case_no"], second["case_no"]) == ("LX202609300042", "LX202609300043")
    # The case number works wherever the id does.
    assert client.get(f"/cases/{first['case_no']}").json()["id"] == first["id"]
    filed = client.post(f"/cases/{first['case_no']}/actions/file",
                        json={"at": "2026-09-30T09:01:00+08:00"})
    assert filed.status_code == 200, filed.text
    # Messages cite the case number, never the internal id.
    refused = client.post(f"/cases/{first['case_no']}/actions/close",
                          json={"at": "2026-09-30T09:02:00+08:00"})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert first["case_no"] in detail and f"#{first['id']}" not in detail
    assert f"case {first['id']} " not in detail
    note = client.post(f"/cases/{second['case_no']}/actions/reject",
                       json={"at": "2026-09-30T09:03:00+08:00"})
    assert note.status_code == 422 and second["case_no"] in note.json()["detail"]


def test_renumbered_case_is_found_by_its_former_number(client, session):  # noqa: F811
    case = client.post("/cases", json=complaint()).json()
    session.execute(text("UPDATE cases SET former_case_no = '2026093000000077' WHERE id = :id"),
                    {"id": case["id"]})
    assert client.get("/cases/2026093000000077").json()["case_no"] == case["case_no"]


def test_new_case_heads_the_recent_list_not_behind_overdue_ones(client, session):  # noqa: F811
    # Many old, overdue cases first; then one filed now.
    old = [client.post("/cases", json=complaint(
        reported_at="2026-01-05T09:00:00+08:00")).json()["case_no"] for _ in range(3)]
    new = client.post("/cases", json=complaint(reported_at=None)).json()
    overdue = [c["case_no"] for c in client.get("/cases", params={"limit": 3}).json()]
    assert new["case_no"] not in overdue  # the deadline-ordered list buries it
    recent = [CaseOut.model_validate(c) for c in client.get("/cases/recent").json()]
    # Newest first; the user's own older filings follow.
    assert [r.case_no for r in recent] == [new["case_no"], *reversed(old)]
    assert recent[0].reported_at >= dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    # Someone else sees the last 24 h only.
    other = client.get("/cases/recent", headers=headers_for(session, "dispatcher")).json()
    assert [c["case_no"] for c in other] == [new["case_no"]]
    mine = client.get("/cases/recent", params={"mine": "true"}).json()
    assert len(mine) == 4
    assert client.get("/cases/recent", params={"hours": 0}).status_code == 422


def test_supervised_groups_cite_case_numbers(client):  # noqa: F811
    numbers = [client.post("/cases", json=complaint(
        reported_at=f"2026-09-{day:02d}T09:00:00+08:00")).json()["case_no"]
        for day in (1, 2, 3)]
    (group,) = [SupervisedGroupOut.model_validate(g)
                for g in client.get("/cases/supervised").json()]
    assert group.case_nos == numbers


# -- address without coordinates, on the demo city's doorplates ------------------------------

@pytest.fixture
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    """A session on the demo city whose writes are rolled back after the test."""
    with demo_engine.connect() as conn:
        trans = conn.begin()
        sess = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield sess
        finally:
            sess.close()
            trans.rollback()


@pytest.fixture
def demo_case_client(demo_settings, demo_session) -> Iterator[TestClient]:
    app = create_app(demo_settings)
    app.dependency_overrides[get_session] = lambda: demo_session
    with TestClient(app, headers=headers_for(demo_session, "dispatcher")) as test_client:
        yield test_client


def a_doorplate(session: Session) -> tuple[str, str]:
    """An address an operator would say, and the unit grid its plate lies in."""
    row = session.execute(text("""
        SELECT d.road_name, d.number, d.suffix,
               (SELECT c.code FROM grid_cells c WHERE ST_Intersects(c.geom, d.geom)
                ORDER BY c.code LIMIT 1) AS grid
        FROM doorplates d WHERE d.road_name IS NOT NULL AND d.suffix = ''
        ORDER BY d.id LIMIT 1 OFFSET 500""")).one()
    return f"历下区{row.road_name}{row.number}号", row.grid


def cases_count(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM cases")).scalar_one())


def test_case_filed_by_address_alone(demo_case_client, demo_session):
    address, grid = a_doorplate(demo_session)
    body = {"category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "address": f" {address} ", "description": "门前暴露垃圾"}
    created = demo_case_client.post("/cases", json=body)
    assert created.status_code == 201, created.text
    case = CaseDetailOut.model_validate(created.json())
    assert case.address == address  # the text as typed (trimmed)
    assert (case.geocode_level, case.grid_code) == ("doorplate", grid)
    assert case.geocode_score is not None and case.geocode_score >= 0.6
    assert case.raw_crs == "wgs84" and (case.raw_x, case.raw_y) == (case.lon, case.lat)
    assert re.match(r"^LX[0-9]{12}$", case.case_no)


def test_address_that_cannot_be_located_is_refused_and_nothing_written(demo_case_client,
                                                                       demo_session):
    before = cases_count(demo_session)
    for address in ("火星大道9999号", "历下区"):
        refused = demo_case_client.post("/cases", json={
            "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "address": address})
        assert refused.status_code == 422, refused.text
        assert "地址无法定位" in refused.json()["detail"]
        assert "could not be located" in refused.json()["detail"]
    assert cases_count(demo_session) == before


def test_coordinates_win_over_the_address(demo_case_client, demo_session):
    address, _ = a_doorplate(demo_session)
    point = demo_session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), code "
        "FROM grid_cells ORDER BY code LIMIT 1")).one()
    created = demo_case_client.post("/cases", json={
        "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
        "x": point[0], "y": point[1], "address": address})
    assert created.status_code == 201, created.text
    case = created.json()
    assert (case["grid_code"], case["address"], case["geocode_level"]) == (point[2], address,
                                                                           None)
    half = demo_case_client.post("/cases", json={
        "category_type": "event", "category_code": "0102", "channel": "hotline_12345",
        "x": point[0], "address": address})
    assert half.status_code == 422 and "both coordinates" in half.json()["detail"]
    nothing = demo_case_client.post("/cases", json={
        "category_type": "event", "category_code": "0102", "channel": "hotline_12345"})
    assert nothing.status_code == 422 and "coordinates (x, y) or an address" in \
        nothing.json()["detail"]
