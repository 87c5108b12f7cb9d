"""Case API round trip over real PostGIS; each test's writes are rolled back afterwards."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.deps import get_session
from api.main import create_app
from api.routes.dispatch.cases import CaseDetailOut, CaseOut, OverdueCaseOut, SupervisedGroupOut
from tests.dispatch.test_workflow import GRID_WEST, WEST_POINT, insert_grids
from tests.support.accounts import headers_for


@pytest.fixture
def client(test_settings, session):
    """The app on the test database; routes commit only a savepoint of the test transaction."""
    insert_grids(session)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "dispatcher")) as test_client:
        yield test_client


def complaint(**changes):
    body = {"category_type": "event", "category_code": "0102", "channel": "wechat",
            "x": WEST_POINT[0], "y": WEST_POINT[1], "reported_at": "2026-09-30T09:00:00+08:00",
            "description": "路边暴露垃圾"}
    return {**body, **changes}


def act(client, case_id, action, at, **body):
    return client.post(f"/cases/{case_id}/actions/{action}",
                       json={"at": at, **body})


def test_round_trip_through_the_workflow(client, session):
    created = client.post("/cases", json=complaint())
    assert created.status_code == 201, created.text
    case = CaseDetailOut.model_validate(created.json())
    assert case.status == "collected"
    assert case.grid_code == GRID_WEST
    assert case.raw_crs == "wgs84"
    assert case.allowed_actions == ["file", "reject"]
    assert [t.action for t in case.transitions] == ["collect"]

    steps = [("file", {}), ("dispatch", {}), ("handle", {}), ("report", {}), ("close", {}),
             ("evaluate", {"satisfaction": "satisfied"})]
    for minute, (action, extra) in enumerate(steps, start=1):
        response = act(client, case.id, action, f"2026-09-30T09:{minute:02d}:00+08:00", **extra)
        assert response.status_code == 200, response.text
    fetched = CaseDetailOut.model_validate(client.get(f"/cases/{case.id}").json())
    assert fetched.status == "evaluated"
    assert fetched.satisfaction == "satisfied"
    assert fetched.due_at == dt.datetime.fromisoformat("2026-10-10T09:02:00+08:00")
    assert [t.action for t in fetched.transitions] == [
        "collect", "file", "dispatch", "handle", "report", "close", "evaluate"]
    # The signed-in user is recorded, whatever the body says.
    assert {t.actor for t in fetched.transitions} == {client.get("/auth/me").json()["username"]}
    stored = session.execute(text("SELECT count(*) FROM case_transitions WHERE case_id = :id"),
                             {"id": case.id}).scalar_one()
    assert stored == 7


def test_refused_action_is_409_and_changes_nothing(client):
    case_id = client.post("/cases", json=complaint()).json()["id"]
    act(client, case_id, "file", "2026-09-30T09:01:00+08:00")
    response = act(client, case_id, "close", "2026-09-30T09:02:00+08:00")
    assert response.status_code == 409
    assert "cannot close a case that is 'filed'" in response.json()["detail"]
    case = client.get(f"/cases/{case_id}").json()
    assert case["status"] == "filed"
    assert len(case["transitions"]) == 2


@pytest.mark.parametrize(("changes", "bad_value"), [
    ({"category_type": "building"}, "building"),
    ({"category_code": "12a4"}, "12a4"),
    ({"channel": "fax"}, "fax"),
    ({"crs": "epsg:3857"}, "epsg:3857"),
    ({"reported_at": "2026-09-30T09:00:00"}, "2026-09-30T09:00:00"),  # no offset
    ({"category_code": "0999"}, "0999"),  # well-formed but not in the code table
])
def test_bad_bodies_are_422_naming_the_value(client, changes, bad_value):
    response = client.post("/cases", json=complaint(**changes))
    assert response.status_code == 422
    assert bad_value in response.text


def test_unknown_case_and_action(client):
    assert client.get("/cases/987654321").status_code == 404
    case_id = client.post("/cases", json=complaint()).json()["id"]
    response = act(client, case_id, "teleport", "2026-09-30T09:01:00+08:00")
    assert response.status_code == 422
    assert "'teleport'" in response.json()["detail"]


def test_lists_overdue_and_supervised(client):
    ids = [client.post("/cases", json=complaint(
        reported_at=f"2026-09-0{day}T09:00:00+08:00")).json()["id"] for day in (1, 2, 3)]
    at = "2026-09-03T10:00:00+08:00"
    overdue = client.get("/cases/overdue", params={"at": at})
    assert overdue.status_code == 200
    rows = {r["case_id"]: OverdueCaseOut.model_validate(r) for r in overdue.json()}
    assert set(ids) <= set(rows)
    assert rows[ids[2]].step == "dispatch"
    assert rows[ids[2]].overdue_by_minutes == 30

    listed = client.get("/cases", params={"status": "collected", "overdue": "true", "at": at,
                                          "limit": 10_000})
    assert {c["id"] for c in listed.json()} >= set(ids)
    CaseOut.model_validate(listed.json()[0])
    assert client.get("/cases", params={"status": "lost"}).status_code == 422

    supervised = client.get("/cases/supervised")
    assert supervised.status_code == 200
    groups = [SupervisedGroupOut.model_validate(g) for g in supervised.json()]
    assert any(g.case_ids == ids for g in groups)
    assert all(client.get(f"/cases/{i}").json()["supervised"] for i in ids)
