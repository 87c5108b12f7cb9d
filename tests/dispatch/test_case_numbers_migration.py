"""Migration 0020: cases numbered the old way (16 digits) get the one format, keep the old
number, and next_case_no continues each day's serial."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.dispatch.case_numbers import CASE_NO, format_case_no
from gis.platform.db import make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings
from tests.support.databases import throwaway_database

INSERT = """
INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y, raw_crs,
    reported_at, geom)
VALUES (:no, 'event', '0101', 'patrol', 117.03, 36.66, 'wgs84', :at,
        ST_SetSRID(ST_MakePoint(117.03, 36.66), 4326))"""


@pytest.fixture
def before_0020(settings: Settings) -> Iterator[Engine]:
    for url in throwaway_database(settings, "caseno0020"):
        engine = make_engine(url)
        try:
            upgrade(engine, "0019")
            yield engine
        finally:
            engine.dispose()


def test_old_numbers_are_renumbered_and_still_known(before_0020: Engine) -> None:
    with before_0020.begin() as conn:
        for no, at in (("2026120300000042", "2026-12-03T10:00:00+08:00"),
                       ("LX202612030007", "2026-12-03T09:00:00+08:00"),
                       ("2026120300000043", "2026-12-03T11:00:00+08:00"),
                       # 23:30 UTC on the 2nd is the 3rd in the city; the number says the 2nd.
                       ("2026120200000044", "2026-12-02T15:30:00+00:00")):
            conn.execute(text(INSERT), {"no": no, "at": at})
    upgrade(before_0020)
    with before_0020.connect() as conn:
        rows = dict(conn.execute(text(
            "SELECT former_case_no, case_no FROM cases WHERE former_case_no IS NOT NULL")).all())
        assert rows == {"2026120300000042": "LX202612030008",
                        "2026120300000043": "LX202612030009",
                        "2026120200000044": "LX202612020001"}
        assert all(CASE_NO.match(n) for n in conn.execute(text(
            "SELECT case_no FROM cases")).scalars())
        assert conn.execute(text("SELECT next_case_no('LX', '2026-12-03')")).scalar_one() == \
            format_case_no("LX", dt.date(2026, 12, 3), 10)
        with pytest.raises(Exception, match="1-6 capital letters"):
            conn.execute(text("SELECT next_case_no('lx%', '2026-12-03')"))
