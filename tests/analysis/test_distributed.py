"""The dask path (gis.analysis.distributed) gives exactly the single-process answers.

Indicators: cases in PostGIS (the eight hand-worked cases of tests/analysis/test_indicators.py
plus 240 seeded random ones two months later) are archived by month; the archive counts on a
LocalCluster, the same counts in one process and count_indicators in SQL must agree for every
month, and for the hand-worked week. Hotspots: a small synthetic archive, Gi* per month and per
quarter and category, equal to hotspots_from_points on all of a period's points at once.
"""

from __future__ import annotations

import datetime as dt
import doctest
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ
from gis.analysis.distributed import archive, indicator_runs, sources
from gis.analysis.distributed.archive import export_month, read_month
from gis.analysis.distributed.cluster import DaskSettings, dask_client
from gis.analysis.distributed.cohorts import frame_counts
from gis.analysis.distributed.hotspot_runs import distributed_hotspots, hotspots_single_process
from gis.analysis.distributed.indicator_runs import (
    ReportPeriod,
    distributed_indicators,
    indicators_single_process,
    rates_table,
    report_periods,
)
from gis.analysis.distributed.sources import ArchiveSource, DatabaseSource
from gis.analysis.distributed.synthetic import _chunk, generate_history
from gis.analysis.hotspots import study_area_cells
from gis.analysis.indicators import IndicatorCounts, count_indicators
from gis.platform.db import make_engine, transaction
from gis.platform.errors import InvalidInputError
from gis.platform.settings import Settings
from tests.analysis.test_dark_streets import DISTRICT, insert_areas, square
from tests.analysis.test_indicators import GRID1, GRID2, WEEK, at, insert_case
from tests.support.databases import seeded_database

MONTHS = [(2024, 4), (2024, 5), (2024, 6), (2024, 7)]
# The week of 6 May 2024 as tests/analysis/test_indicators.py works it out by hand.
WEEK_COUNTS = IndicatorCounts(accepted=6, filed=5, dispatched=4, due=4, closed=3,
                              closed_on_time=2, reworked=1, extended=1, replied=2,
                              completed=3, surveyed=2, satisfied=1, open_overdue=2)


def seed_history(session: Session) -> None:
    """The hand-worked week (same cases as test_indicators' week_of_cases) and random cases."""
    insert_areas(session, {"01": square(0, 0, 100), "02": square(100, 0, 100)})
    insert_case(session, "T1", reported=at(6), status="evaluated", dispatched=at(6, 10),
                due=at(8), closed=at(7), satisfaction="satisfied", surveyed=at(8),
                replied=at(6, 11))
    insert_case(session, "T2", reported=at(6), status="rejected", replied=at(6, 12))
    insert_case(session, "T3", reported=at(7), status="filed", code="0504")
    insert_case(session, "T4", reported=at(7), status="closed", dispatched=at(7, 10),
                due=at(9), closed=at(10), reworked=1)
    insert_case(session, "T5", reported=at(8), status="dispatched", dispatched=at(8, 10),
                due=at(14))
    insert_case(session, "T6", reported=at(30, month=4), status="handled",
                dispatched=at(30, 10, month=4), due=at(6, 10), extended=1)
    insert_case(session, "T7", reported=at(20, month=4), status="dispatched", grid=GRID2,
                dispatched=at(20, 10, month=4), due=at(23, month=4))
    insert_case(session, "T8", reported=at(9), status="evaluated", kind="component",
                code="0118", dispatched=at(9, 10), due=at(10, 18), closed=at(10, 15),
                satisfaction="unsatisfied", surveyed=at(11))
    # Random cases reported in June and July (after the week: they cannot change it), with
    # late closures, open backlog, rejections, surveys across month ends, and no grid.
    rng = np.random.default_rng(18)
    for month in MONTHS[2:]:
        frame = _chunk(rng, 120, month, (0.0, 0.0, 1.0, 1.0), np.zeros((1, 2)),
                       np.zeros((0, 2)), 1)
        grids = np.array([GRID1, GRID2, None], dtype=object)[rng.choice(3, 120, p=[.5, .4, .1])]
        for i, row in enumerate(frame.itertuples()):
            def when(value: pd.Timestamp) -> dt.datetime | None:
                return None if pd.isna(value) else value.to_pydatetime()
            insert_case(session, f"R{month[1]}-{i}", reported=when(row.reported_at),
                        status=row.status, grid=grids[i], code=row.category_code,
                        kind=row.category_type, dispatched=when(row.dispatched_at),
                        due=when(row.due_at), closed=when(row.closed_at),
                        reworked=int(row.reworked_count), extended=int(row.extended_count),
                        satisfaction=None if pd.isna(row.satisfaction) else row.satisfaction,
                        surveyed=when(row.surveyed_at), replied=when(row.replied_at),
                        xy=(float(rng.uniform(1, 199)), float(rng.uniform(1, 99))),
                        channel=row.channel)


@pytest.fixture(scope="module")
def history_url(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "distributed", seed_history)


@pytest.fixture(scope="module")
def history_archive(history_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    engine = make_engine(history_url, pool_size=1)
    try:
        with transaction(engine) as session:
            for month in MONTHS:
                export_month(session, root, month)
    finally:
        engine.dispose()
    return root


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """Two thread workers: quick to start; the process case is tested once below."""
    with dask_client(DaskSettings(scheduler=None), workers=2, processes=False) as c:
        yield c


def sql_counts(url: URL, periods: list[ReportPeriod]) -> dict:
    engine = make_engine(url, pool_size=1)
    try:
        with transaction(engine) as session:
            return {(p.label, key): counts for p in periods
                    for key, _, counts in count_indicators(session, start=p.start, end=p.end,
                                                           by="district")}
    finally:
        engine.dispose()


def test_archive_indicators_equal_count_indicators(history_url, history_archive,
                                                   client) -> None:
    source = ArchiveSource(history_archive)
    assert source.months() == MONTHS
    assert sum(len(read_month(archive.month_path(history_archive, m), ["id"]))
               for m in MONTHS) == 248
    periods = [*report_periods(MONTHS, "month"), ReportPeriod("week", WEEK.start, WEEK.end)]
    expected = sql_counts(history_url, periods)
    dask_counts = distributed_indicators(source, MONTHS, client=client, periods=periods)
    single = indicators_single_process(source, MONTHS, periods=periods)
    assert dask_counts == expected
    assert single == expected
    assert dask_counts[("week", DISTRICT)] == WEEK_COUNTS
    # Cases without a grid form the group None, and every month has something to count.
    assert ("2024-06", None) in expected
    assert {label for label, _ in expected} == {"2024-04", "2024-05", "2024-06", "2024-07",
                                                "week"}
    # A fixed as_of (every period judged as of 1 July) agrees too.
    as_of = dt.datetime(2024, 7, 1, tzinfo=CHINA_TZ)
    engine = make_engine(history_url, pool_size=1)
    with transaction(engine) as session:
        late = {("2024-05", key): counts for key, _, counts in count_indicators(
            session, start=periods[1].start, end=periods[1].end, by="street", as_of=as_of)}
    engine.dispose()
    assert distributed_indicators(source, MONTHS, client=client, periods=[periods[1]],
                                  by="street", as_of=as_of) == late
    table = rates_table(dask_counts)
    week = table[(table["period"] == "week") & (table["key"] == DISTRICT)].iloc[0]
    assert (week["closure_rate"], week["on_time_rate"], week["satisfaction_rate"]) == (
        75.0, 50.0, 50.0)


def test_database_source_by_month_on_a_process_worker(history_url) -> None:
    """Workers in other processes read PostGIS month by month with count_indicators."""
    periods = report_periods(MONTHS, "month")
    url = history_url.render_as_string(hide_password=False)
    with dask_client(DaskSettings(scheduler=None), workers=1, processes=True) as c:
        counts = distributed_indicators(DatabaseSource(url), MONTHS, client=c, periods=periods)
    assert counts == sql_counts(history_url, periods)
    assert counts[("2024-05", DISTRICT)].accepted == 6


@pytest.fixture(scope="module")
def synthetic_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("synthetic")
    bbox = (117.00, 36.60, 117.04, 36.63)  # about 120 res-9 cells: Gi* stays quick
    generate_history(root, cases=9_000, first=(2024, 1), last=(2024, 3), bbox=bbox, seed=3,
                     chunk=2_000)
    return root, study_area_cells(bbox, resolution=9)


@pytest.mark.parametrize(("period", "by_category"), [("month", False), ("quarter", True)])
def test_hotspots_dask_equal_single_process(synthetic_archive, client, period,
                                            by_category) -> None:
    root, area = synthetic_archive
    source = ArchiveSource(root)
    months = source.months()
    options = {"period": period, "by_category": by_category, "permutations": 499}
    dask_runs = distributed_hotspots(source, months, area, client=client, **options)
    single = hotspots_single_process(source, months, area, **options)
    assert list(dask_runs) == list(single)
    assert len(single) == (3 if period == "month" else 5)
    for key, cells in single.items():
        pd.testing.assert_frame_equal(pd.DataFrame(dask_runs[key]), pd.DataFrame(cells))
        assert cells.geometry.equals(dask_runs[key].geometry)
    # Every case inside the area is in one cell, and the planted clusters come out hot.
    total = sum(int(cells["cases"].sum()) for cells in single.values())
    assert 8_000 < total <= 9_000
    assert sum(int(cells["hotspot"].sum()) for cells in single.values()) > 0


def test_generator_writes_whole_months(tmp_path) -> None:
    paths = generate_history(tmp_path, cases=1_001, first=(2023, 12), last=(2024, 2),
                             chunk=100)
    assert [p.name for p in paths] == ["cases_2023-12.parquet", "cases_2024-01.parquet",
                                       "cases_2024-02.parquet"]
    frames = [read_month(p, points=True) for p in paths]
    assert [len(f) for f in frames] == [334, 334, 333]
    ids = pd.concat([f["id"] for f in frames])
    assert ids.is_unique and ids.min() == 1 and ids.max() == 1_001
    for month, frame in zip([(2023, 12), (2024, 1), (2024, 2)], frames, strict=True):
        start, end = archive.month_bounds(month)
        assert frame["reported_at"].between(start, end, inclusive="left").all()
        assert (frame["due_at"].dropna() > frame["reported_at"][frame["due_at"].notna()]).all()
    assert not list(tmp_path.glob("*.partial"))


def test_refusals_and_examples() -> None:
    with pytest.raises(InvalidInputError, match="needs a timezone"):
        frame_counts(pd.DataFrame(), start=dt.datetime(2024, 5, 1), end=WEEK.end)
    with pytest.raises(InvalidInputError, match="unknown period"):
        report_periods([(2024, 5)], "fortnight")
    for module in (archive, sources, indicator_runs):
        assert doctest.testmod(module).failed == 0
