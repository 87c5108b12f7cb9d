"""Fixtures: one throwaway PostGIS database per test run, migrated, with the demo city."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.db import database_url, drop_database, ensure_database, make_engine
from gis.migrate import upgrade
from gis.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def test_db_url(settings: Settings):
    """A fresh database in the private cluster (or the external server), dropped afterwards."""
    name = f"citygrid_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database_url(settings, dbname=name)
    ensure_database(url)
    yield url
    if not os.environ.get("CITYGRID_KEEP_TEST_DB"):
        drop_database(url)


@pytest.fixture(scope="session")
def engine(test_db_url) -> Iterator[Engine]:
    """Engine on the throwaway database, schema migrated to head."""
    eng = make_engine(test_db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_engine(engine: Engine) -> Engine:
    """The throwaway database with the demo city loaded once for the whole run."""
    from gis.demo.load import load_demo

    with engine.connect() as conn:
        loaded = conn.execute(text("SELECT count(*) FROM districts")).scalar()
    if not loaded:
        load_demo(engine, progress=False)
    return engine


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
