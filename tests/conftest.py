"""Fixtures: two throwaway PostGIS databases per run, one empty, one with the demo city."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from gis.platform.db import make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings
from tests.support.databases import throwaway_database


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings()
    # One database serves every test, all from the same client address ("testclient"): shared
    # sign-in and report counts would let one test's failures lock out the next. The tests of
    # the shared throttle (tests/access/test_shared_throttle.py) switch it on for themselves.
    s.api.shared_throttle = False
    # Every app of the suite would compute the default analyses at startup; the warm-up's
    # own tests (tests/analysis/test_analysis_warmup.py) switch it on.
    s.api.warm_analyses = False
    # Likewise the base and analysis tiles of the first views (their thread's statements would
    # land in tests that count an engine's statements); tests/pages/test_tile_warmup.py and the
    # analysis warm-up's tests switch it on.
    s.staff_map.warm_tiles = False
    return s


@pytest.fixture(scope="session")
def test_db_url(settings: Settings) -> Iterator[URL]:
    """An empty migrated database for constructed fixtures (tests roll back or clean up)."""
    yield from throwaway_database(settings, "test")


@pytest.fixture(scope="session")
def engine(test_db_url: URL) -> Iterator[Engine]:
    """Engine on the throwaway database, schema migrated to head."""
    eng = make_engine(test_db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_db_url(settings: Settings) -> Iterator[URL]:
    """A second throwaway database that holds the demo city.

    Kept apart from `engine` so that constructed test cities (which reuse the real 历下区
    codes) never collide with the demo's rows.
    """
    yield from throwaway_database(settings, "demo")


@pytest.fixture(scope="session")
def demo_engine(demo_db_url: URL) -> Iterator[Engine]:
    """The demo city, loaded once for the whole run."""
    from gis.demo.load import load_demo

    eng = make_engine(demo_db_url)
    upgrade(eng)
    load_demo(eng, progress=False)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_settings(settings: Settings, demo_db_url: URL, demo_engine: Engine) -> Settings:
    """Settings pointing the app at the demo database."""
    copy = settings.model_copy(deep=True)
    copy.db.url = demo_db_url.render_as_string(hide_password=False)
    return copy


@pytest.fixture(scope="session")
def test_settings(settings: Settings, test_db_url) -> Settings:
    """Settings pointing the app at the throwaway database."""
    copy = settings.model_copy(deep=True)
    copy.db.url = test_db_url.render_as_string(hide_password=False)
    return copy


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        trans = conn.begin()
        sess = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield sess
        finally:
            sess.close()
            trans.rollback()


@pytest.fixture(scope="module")
def demo_app(demo_settings: Settings):
    """The app over the demo city (its lifespan runs in `demo_client` or a served copy)."""
    from api.main import create_app

    return create_app(demo_settings)


@pytest.fixture(scope="module")
def demo_client(demo_app) -> Iterator:
    """A TestClient of `demo_app` with its lifespan running."""
    from fastapi.testclient import TestClient

    with TestClient(demo_app) as client:
        yield client


@pytest.fixture(scope="module")
def ogc_url(demo_settings: Settings) -> Iterator[str]:
    """/ogc of the demo city on a real loopback server, for GDAL; fails in CI without GDAL."""
    import os
    import shutil

    from api.main import create_app
    from tests.support.browser import serve

    if not shutil.which("ogrinfo"):
        message = "ogrinfo not found (Debian package gdal-bin)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; GDAL tests must run in CI")
        pytest.skip(message)
    # A separate app instance: uvicorn runs the lifespan in its own event loop.
    with serve(create_app(demo_settings)) as base:
        yield f"{base}/ogc"
