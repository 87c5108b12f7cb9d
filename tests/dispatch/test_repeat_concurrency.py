"""Repeat linking under concurrency: many complaints at one spot while the cases move on."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from gis.dispatch.cases import transition
from gis.platform.db import make_engine, transaction
from gis.platform.settings import Settings
from tests.dispatch.test_workflow import insert_grids, new_case
from tests.support.databases import seeded_database

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=CST)
WRITERS = 6
CASES_EACH = 6


@pytest.fixture(scope="module")
def grid_url(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "repeats", insert_grids)


@pytest.fixture(scope="module")
def committed(grid_url: URL) -> Iterator[Engine]:
    engine = make_engine(grid_url)
    yield engine
    engine.dispose()


def test_concurrent_complaints_at_one_spot_link_into_one_group_without_errors(committed):
    """Writers file complaints at one spot while others file and dispatch the earlier ones."""
    with transaction(committed) as session:
        seeds = [new_case(session, at=T0 + dt.timedelta(minutes=i)).id for i in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS * 2)

    def complain(worker: int) -> None:
        start.wait()
        for i in range(CASES_EACH):
            try:
                with transaction(committed) as session:
                    new_case(session, at=T0 + dt.timedelta(hours=1, minutes=worker * 10 + i))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    def act(worker: int) -> None:
        start.wait()
        for i in range(CASES_EACH):
            try:
                with transaction(committed) as session:
                    ids = session.execute(text("""
                        SELECT id FROM cases WHERE status = 'collected'
                        ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED""")).scalars().all()
                    for case_id in ids:
                        transition(session, case_id, "file", actor="受理员 李四",
                                   at=T0 + dt.timedelta(hours=2, minutes=worker * 10 + i))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=complain, args=(w,)) for w in range(WRITERS)]
    threads += [threading.Thread(target=act, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [str(e)[:1500] for e in errors] == []
    with transaction(committed) as session:
        groups = session.execute(text("""
            SELECT count(*), count(DISTINCT coalesce(repeat_group_id, -1)),
                   bool_and(supervised), min(repeat_group_id)
            FROM cases""")).one()
    assert groups[0] == len(seeds) + WRITERS * CASES_EACH
    # Every complaint at the spot is one group, numbered by the oldest root, all supervised.
    assert groups[1] == 1 and groups[2] and groups[3] == seeds[0]
