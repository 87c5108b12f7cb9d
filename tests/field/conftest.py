"""A throwaway database for the field-work tests: two test grids with owners, committed.

The live-update and field-app tests run a real server whose writes commit (and case audit
rows can never be deleted), so they get a database of their own instead of the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from api.main import create_app
from gis.platform.db import make_engine
from gis.platform.settings import Settings
from tests.dispatch.test_workflow import GRID_EAST, GRID_WEST, insert_grids
from tests.support.browser import serve
from tests.support.databases import seeded_database

OWNER_WEST = "网格员甲"
OWNER_EAST = "网格员乙"
WEST_POINT = (118.0005, 37.0004)
EAST_POINT = (118.0015, 37.0004)
LIGHT_WEST = "3701020118905001"


def seed(session: Session) -> None:
    """The two test grids, one owner each, and a streetlight in the west grid."""
    insert_grids(session)
    for grid, owner in ((GRID_WEST, OWNER_WEST), (GRID_EAST, OWNER_EAST)):
        session.execute(text(
            "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from) "
            "VALUES (:g, :o, 'grid_worker', '0531-00000000', current_date - 30)"),
            {"g": grid, "o": owner})
    session.execute(text(
        "INSERT INTO streetlights (code, owner, maintainer, grid_code, geom) VALUES "
        "(:c, '城市照明管理处', '照明养护公司', :g, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
        {"c": LIGHT_WEST, "g": GRID_WEST, "x": WEST_POINT[0] + 0.0001, "y": WEST_POINT[1]})


@pytest.fixture(scope="session")
def field_db_url(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "field", seed)


@pytest.fixture(scope="session")
def field_engine(field_db_url: URL) -> Iterator[Engine]:
    engine = make_engine(field_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def field_settings(settings: Settings, field_db_url: URL, tmp_path_factory) -> Settings:
    copy = settings.model_copy(deep=True)
    copy.db.url = field_db_url.render_as_string(hide_password=False)
    copy.media.dir = tmp_path_factory.mktemp("field-media")
    return copy


def jpeg(color: tuple[int, int, int] = (90, 140, 60)) -> bytes:
    """A small JPEG, as a phone camera would send (without EXIF)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def field_base_url(field_settings: Settings) -> Iterator[str]:
    """The app over the field database on a real loopback server."""
    with serve(create_app(field_settings)) as base:
        yield base


def wait_sent(page, total: int, timeout: int = 20_000) -> None:
    """Wait until the field page's queue has had `total` items accepted since it loaded.

    `#queue-count` reads 0 before a click has queued anything, so it cannot say "sent".
    """
    page.wait_for_function(f"() => window.__field.sent() >= {total}", timeout=timeout)
