"""The default analysis views are computed right after startup, so first visitors reuse them.

On a committed database with the app's own sessions: the warm-up thread computes dark streets
and the reports of today once each, and a city-wide analyst's first requests for those views
compute nothing (the counting wrappers see only the warm-up thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL, Engine

from api.main import create_app
from api.routes import analysis as routes
from api.warmup import wait_for_warmups
from gis.platform.db import make_engine
from gis.platform.settings import Settings
from tests.analysis.test_analysis_api import build_city
from tests.support.accounts import headers_for
from tests.support.databases import seeded_database

WARMUP_THREAD = "citygrid-analysis-warmup"


@pytest.fixture(scope="module")
def warm_db(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "warm", build_city)


@pytest.fixture
def engine(warm_db: URL) -> Iterator[Engine]:
    engine = make_engine(warm_db)
    yield engine
    engine.dispose()


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    threads: list[str] = []
    real = getattr(routes, name)
    monkeypatch.setattr(routes, name, lambda *a, **k: threads.append(
        threading.current_thread().name) or real(*a, **k))
    return threads


def test_first_requests_reuse_the_warmed_views(settings: Settings, warm_db: URL,
                                                engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dark = _counted(monkeypatch, "run_dark_streets")
    reports = _counted(monkeypatch, "build_report")
    copy = settings.model_copy(deep=True)
    copy.db.url = warm_db.render_as_string(hide_password=False)
    copy.api.warm_analyses = True
    app = create_app(copy)
    with TestClient(app, headers=headers_for(engine, "analyst")) as client:
        thread, _ = app.state.analysis_warmup
        # What bench/pages.py waits on before its first page.
        assert wait_for_warmups(app, timeout=120) is True
        assert not thread.is_alive()
        assert dark == [WARMUP_THREAD] and reports == [WARMUP_THREAD] * 3
        assert client.get("/analysis/dark-streets").status_code == 200
        assert client.get("/analysis/map/dark-streets").status_code == 200
        assert client.get("/reports/weekly").status_code == 200
    # Nothing more was computed: the requests found the warm-up's results.
    assert dark == [WARMUP_THREAD] and reports == [WARMUP_THREAD] * 3


def test_off_by_setting(settings: Settings, warm_db: URL, engine: Engine) -> None:
    copy = settings.model_copy(deep=True)
    copy.db.url = warm_db.render_as_string(hide_password=False)
    assert copy.api.warm_analyses is False  # the suite's settings switch it off
    app = create_app(copy)
    with TestClient(app, headers=headers_for(engine, "analyst")):
        assert getattr(app.state, "analysis_warmup", None) is None


def test_the_analysis_maps_first_tiles_are_warmed(settings: Settings, warm_db: URL,
                                                   engine: Engine,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from api.analysis_warmup import default_tile_layers
    from api.routes import analysis_tiles
    from api.tile_warmup import city_extent, fitted_view_tiles

    copy = settings.model_copy(deep=True)
    copy.db.url = warm_db.render_as_string(hide_password=False)
    copy.api.warm_analyses = True
    app = create_app(copy)
    with TestClient(app, headers=headers_for(engine, "analyst")) as client:
        assert wait_for_warmups(app, timeout=120) is True
        extent = city_extent(app)
        assert extent is not None
        tiles = fitted_view_tiles(extent)
        encoded: list[object] = []
        real = analysis_tiles.encode_tile
        monkeypatch.setattr(analysis_tiles, "encode_tile",
                            lambda *a, **k: encoded.append(a) or real(*a, **k))
        for path in ("dark-streets/stretches", "cover-risk/covers", "hotspots/cells",
                     "coverage-gaps/gaps"):
            for tile in tiles:
                answer = client.get(f"/tiles/analysis/{path}/{tile.z}/{tile.x}/{tile.y}.pbf")
                assert answer.status_code == 200, (path, tile, answer.text)
        # Every one came from the tile cache: nothing was encoded in a request.
        assert encoded == []
        elsewhere = tiles[0]
        client.get(f"/tiles/analysis/dark-streets/stretches/{elsewhere.z + 3}/"
                   f"{elsewhere.x * 8}/{elsewhere.y * 8}.pbf")
        assert len(encoded) == 1
    assert {name for name, _ in default_tile_layers(app)} == {
        "coverage gaps", "coverage covered", "dark streets", "hotspot cells", "hotspot heat",
        "cover risk"}
