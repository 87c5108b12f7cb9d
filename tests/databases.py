"""Throwaway PostGIS databases for tests: one per run or per module, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from sqlalchemy.engine import URL

from gis.db import database_url, drop_database, ensure_database
from gis.settings import Settings


def throwaway_database(settings: Settings, kind: str) -> Iterator[URL]:
    """Create a uniquely named database for this run; drop it afterwards."""
    name = f"citygrid_{kind}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database_url(settings, dbname=name)
    ensure_database(url)
    yield url
    if not os.environ.get("CITYGRID_KEEP_TEST_DB"):
        drop_database(url)
