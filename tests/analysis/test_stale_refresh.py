"""After an edit, case-driven analyses answer at once with their previous figures, then fresh.

Cases change all day and every change moves the inputs of reports, indicators, hotspots and
cover risk. A call after such an edit gets the previous result (X-Computed-At unchanged,
X-Refreshing: true) and the new one is computed in a background thread on a session of its
own; the next calls get it. On a committed database with the app's own sessions, as served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from api.analysis_cache import COMPUTED_AT, REFRESHING
from api.main import create_app
from api.routes import analysis as routes
from gis.platform.db import make_engine, transaction
from gis.platform.settings import Settings
from tests.analysis.test_analysis_api import build_city
from tests.analysis.test_indicators import GRID1, GRID2, at, insert_case
from tests.support.accounts import headers_for
from tests.support.databases import seeded_database

WEEK = {"period": "weekly", "day": "2024-05-08", "by": "city"}


OWNER = "甲中队"


def _seed(session: Session) -> None:
    build_city(session)  # its cases lie in GRID1
    session.execute(text(
        "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from) "
        "VALUES (:g, :o, 'squad', '13912345678', '2024-01-01')"), {"g": GRID1, "o": OWNER})


@pytest.fixture(scope="module")
def stale_db(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "stale", _seed)


@pytest.fixture
def engine(stale_db: URL) -> Iterator[Engine]:
    engine = make_engine(stale_db)
    yield engine
    engine.dispose()


def _app_settings(settings: Settings, url: URL, stale_s: float) -> Settings:
    copy = settings.model_copy(deep=True)
    copy.db.url = url.render_as_string(hide_password=False)
    copy.api.analysis_stale_seconds = stale_s
    return copy


def _settled(client: TestClient) -> tuple[int, dict[str, str]]:
    """_filed once no refresh is under way (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        filed, headers = _filed(client)
        if REFRESHING.lower() not in headers:
            return filed, headers
        assert time.monotonic() < deadline, "the background refresh never finished"
        time.sleep(0.1)


def _filed(client: TestClient) -> tuple[int, dict[str, str]]:
    r = client.get("/analysis/indicators", params=WEEK)
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    return row["filed"], dict(r.headers)


def test_edit_answers_with_previous_figures_and_refreshes_in_the_background(
        settings: Settings, stale_db: URL, engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    computed_on: list[str] = []
    real = routes.count_indicators
    monkeypatch.setattr(routes, "count_indicators", lambda *a, **k: computed_on.append(
        threading.current_thread().name) or real(*a, **k))
    app = create_app(_app_settings(settings, stale_db, 300))
    with TestClient(app, headers=headers_for(engine, "analyst")) as client:
        filed, first = _filed(client)
        assert REFRESHING not in {k.title() for k in first}
        with transaction(engine) as session:  # another desk files a case in that week
            insert_case(session, "S1", reported=at(9), status="filed")
        again, second = _filed(client)
        # At once: the figures as they were, saying when, and that new ones are coming.
        assert again == filed
        assert second[REFRESHING.lower()] == "true"
        assert second[COMPUTED_AT.lower()] == first[COMPUTED_AT.lower()]
        deadline = time.monotonic() + 60
        while True:
            now, headers = _filed(client)
            if REFRESHING.lower() not in headers:
                break
            assert time.monotonic() < deadline, "the background refresh never finished"
            time.sleep(0.1)
        assert now == filed + 1
        assert headers[COMPUTED_AT.lower()] >= first[COMPUTED_AT.lower()]
    # Counted twice: the first call in its request, the refresh in its own thread only.
    assert len(computed_on) == 2 and computed_on[1] == "refresh-indicators"
    assert computed_on[0] != "refresh-indicators"


def test_without_a_stale_window_the_edit_is_computed_in_the_request(
        settings: Settings, stale_db: URL, engine: Engine) -> None:
    app = create_app(_app_settings(settings, stale_db, 0))
    with TestClient(app, headers=headers_for(engine, "analyst")) as client:
        filed, _ = _filed(client)
        with transaction(engine) as session:
            insert_case(session, "S2", reported=at(10), status="filed")
        again, headers = _filed(client)
    assert again == filed + 1 and REFRESHING.lower() not in headers


def test_a_page_built_from_a_stale_report_is_not_kept(settings: Settings, stale_db: URL,
                                                      engine: Engine) -> None:
    app = create_app(_app_settings(settings, stale_db, 300))
    week = {"day": "2024-05-08"}
    with TestClient(app, headers=headers_for(engine, "analyst")) as client:
        first = client.get("/reports/weekly", params=week)
        assert first.status_code == 200 and REFRESHING not in first.headers
        with transaction(engine) as session:
            insert_case(session, "S3", reported=at(8), status="filed")
        stale = client.get("/reports/weekly", params=week)
        assert stale.headers[REFRESHING] == "true"
        assert stale.headers[COMPUTED_AT] == first.headers[COMPUTED_AT]
        deadline = time.monotonic() + 60
        while REFRESHING in (fresh := client.get("/reports/weekly", params=week)).headers:
            assert time.monotonic() < deadline, "the background refresh never finished"
            time.sleep(0.1)
    # The page rendered from the stale report was not kept under the new versions: this one
    # is rendered from the refreshed report, which counts the new case.
    assert fresh.text != stale.text


def test_a_grid_owners_refresh_counts_only_their_grids(settings: Settings, stale_db: URL,
                                                        engine: Engine) -> None:
    app = create_app(_app_settings(settings, stale_db, 300))
    owner = headers_for(engine, "grid_owner", owner_name=OWNER)
    with TestClient(app, headers=headers_for(engine, "analyst")) as centre, \
            TestClient(app, headers=owner) as squad:
        city_before, _ = _settled(centre)
        own_before, _ = _settled(squad)
        assert 0 < own_before <= city_before
        with transaction(engine) as session:  # one case in the squad's grid, one elsewhere
            insert_case(session, "S4", reported=at(9), status="filed", grid=GRID1)
            insert_case(session, "S5", reported=at(9), status="filed", grid=GRID2)
        assert _filed(squad)[1][REFRESHING.lower()] == "true"
        assert _filed(centre)[1][REFRESHING.lower()] == "true"
        # Each refresh ran in its caller's scope (row-level security on the grid owner's).
        assert _settled(squad)[0] == own_before + 1
        assert _settled(centre)[0] == city_before + 2
