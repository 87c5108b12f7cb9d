"""The analysis result cache: reused while the inputs are unchanged, recomputed after an edit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.analysis_cache import COMPUTED_AT
from api.deps import get_session
from api.main import create_app
from api.routes import analysis as routes
from gis.analysis.result_cache import INPUTS, read_scope_and_versions
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.analysis.test_dark_streets import insert_light
from tests.support.accounts import headers_for
from tests.support.databases import move_data_versions

DARK = {"bbox": BBOX_Q, "step_m": 4}


@pytest.fixture
def app(test_settings, session: Session) -> FastAPI:
    build_city(session)
    move_data_versions(session)  # as if the city had been committed before the app starts
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    return app


@pytest.fixture
def client(app: FastAPI, session: Session) -> Iterator[TestClient]:
    with TestClient(app, headers=headers_for(session, "analyst")) as c:
        yield c


def _dark_m(client: TestClient) -> tuple[float, str]:
    r = client.get("/analysis/dark-streets", params=DARK)
    assert r.status_code == 200, r.text
    return sum(f["properties"]["dark_m"] for f in r.json()["features"]), r.headers[COMPUTED_AT]


def test_reused_until_an_input_changes(client: TestClient, app: FastAPI,
                                       session: Session) -> None:
    dark, stamp = _dark_m(client)
    assert dark > 0
    cache = app.state.analysis_cache
    entries = len(cache)
    again, stamp_again = _dark_m(client)
    assert (again, stamp_again) == (dark, stamp) and len(cache) == entries  # reused
    # An edit to a table dark streets do not read keeps the result...
    session.execute(text("UPDATE stations SET name = name || '站'"))
    move_data_versions(session)
    assert _dark_m(client)[1] == stamp
    # ...a light in the 80 m hole is an input: the next call computes afresh and sees it.
    insert_light(session, 99, 140, -500)
    move_data_versions(session)
    lit, _ = _dark_m(client)
    assert lit < dark and len(cache) == entries + 2  # the result and its encoded answer


def test_page_and_report_are_reused_too(client: TestClient, app: FastAPI) -> None:
    first = client.get("/analysis/map/dark-streets", params=DARK)
    second = client.get("/analysis/map/dark-streets", params=DARK)
    assert first.status_code == 200 and first.text == second.text
    assert first.headers[COMPUTED_AT] == second.headers[COMPUTED_AT]
    week = {"day": "2024-05-08"}
    report = client.get("/reports/weekly", params=week)
    assert report.headers[COMPUTED_AT] == client.get("/reports/weekly",
                                                     params=week).headers[COMPUTED_AT]
    # The downloads reuse the report's figures rather than counting again.
    before = len(app.state.analysis_cache)
    assert client.get("/reports/weekly/report.xlsx", params=week).status_code == 200
    assert len(app.state.analysis_cache) == before


def test_clock_bound_results_expire(test_settings, session: Session,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    build_city(session)
    calls: list[int] = []
    real = routes.find_cover_risks
    monkeypatch.setattr(routes, "find_cover_risks",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    for seconds, computed in ((300, 1), (0, 2)):
        calls.clear()
        settings = test_settings.model_copy(update={"api": test_settings.api.model_copy(
            update={"analysis_cache_seconds": seconds})})
        app = create_app(settings)
        app.dependency_overrides[get_session] = lambda: session
        with TestClient(app, headers=headers_for(session, "analyst")) as client:
            for _ in range(2):
                assert client.get("/analysis/cover-risk",
                                  params={"bbox": BBOX_Q}).status_code == 200
        # Hours waited move with the clock: with a 0 s bound nothing is reused.
        assert len(calls) == computed, seconds


def test_scope_is_part_of_the_key(session: Session) -> None:
    tables = INPUTS["dark_streets"]
    role, owner, versions = read_scope_and_versions(session, tables)
    assert role  # the database role is in the key as well
    assert owner == "" and len(versions) == len(tables)
    session.execute(text("SELECT set_config('citygrid.owner_name', '某责任单位', true)"))
    assert read_scope_and_versions(session, tables)[1] == "某责任单位"
    insert_light(session, 98, 150, -500)
    # The versions move at commit (migration 0030), not at the write.
    assert read_scope_and_versions(session, tables)[2] == versions
    move_data_versions(session)
    assert read_scope_and_versions(session, tables)[2] != versions
