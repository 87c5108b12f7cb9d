"""Throwaway PostGIS databases for tests: one per run or per module, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from gis.platform.db import database_url, drop_database, ensure_database, make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings


def throwaway_database(settings: Settings, kind: str) -> Iterator[URL]:
    """Create a uniquely named database for this run; drop it afterwards."""
    name = f"citygrid_{kind}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database_url(settings, dbname=name)
    ensure_database(url)
    yield url
    if not os.environ.get("CITYGRID_KEEP_TEST_DB"):
        drop_database(url)


def seeded_database(settings: Settings, kind: str,
                    seed: Callable[[Session], object]) -> Iterator[URL]:
    """A throwaway database migrated to head with `seed(session)` committed in it."""
    for url in throwaway_database(settings, kind):
        engine = make_engine(url)
        try:
            upgrade(engine)
            with transaction(engine) as session:
                seed(session)
        finally:
            engine.dispose()
        yield url


def move_data_versions(session: Session) -> None:
    """Move the data versions now, as commit would, inside a test's rolled-back transaction."""
    # Migration 0030 moves them in a deferred trigger at commit; firing the pending deferred
    # events and deferring again is what a commit does first, without ending the transaction.
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    session.execute(text("SET CONSTRAINTS ALL DEFERRED"))
