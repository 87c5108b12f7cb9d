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
from sqlalchemy.engine import URL, Engine

from api.analysis_cache import COMPUTED_AT, REFRESHING
from api.main import create_app
from api.routes import analysis as routes
from gis.platform.db import make_engine, transaction
from gis.platform.settings import Settings
from tests.analysis.test_analysis_api import build_city
from tests.analysis.test_indicators import at, insert_case
from tests.support.accounts import headers_for
from tests.support.databases import seeded_database

WEEK = {"period": "weekly", "day": "2024-05-08", "by": "city"}


@pytest.fixture(scope="module")
def stale_db(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "stale", build_city)


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
