"""Indicators: the rate arithmetic (Zhengzhou weekly report) and the counts from real cases."""

from __future__ import annotations

import datetime as dt
import doctest
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import common, indicators
from gis.analysis.common import CHINA_TZ, period_containing
from gis.analysis.indicators import (
    IndicatorCounts,
    compute_rates,
    count_indicators,
    indicator_table,
    percent,
    rank_groups,
)
from gis.platform.errors import InvalidInputError
from tests.analysis.test_dark_streets import (
    COMMUNITY,
    DISTRICT,
    STREET,
    insert_areas,
    lonlat,
    square,
)

ZHENGZHOU = IndicatorCounts(accepted=51_571, filed=51_229, dispatched=49_151, due=52_434,
                            closed=43_523, closed_on_time=40_394)
WEEK = period_containing("weekly", dt.date(2024, 5, 8))  # Mon 6 May - Sun 12 May 2024
GRID1, GRID2 = COMMUNITY + "01", COMMUNITY + "02"


def test_zhengzhou_weekly_figures() -> None:
    rates = compute_rates(ZHENGZHOU)
    assert rates["closure_rate"] == Decimal("83.01")  # 43,523 / 52,434
    assert rates["on_time_rate"] == Decimal("77.04")  # 40,394 / 52,434
    assert rates["filing_rate"] == Decimal("99.34")  # 51,229 / 51,571
    assert rates["dispatch_rate"] == Decimal("95.94")  # 49,151 / 51,229
    assert rates["satisfaction_rate"] is None  # nobody surveyed: no rate, not 0 %


def test_percent_rounds_half_up_and_refuses_impossible_counts() -> None:
    assert percent(1, 8) == Decimal("12.50")
    assert percent(1, 800) == Decimal("0.13")  # 0.125 -> 0.13, not banker's 0.12
    assert percent(2, 3) == Decimal("66.67")
    with pytest.raises(InvalidInputError, match="结案率: closed = 5 exceeds due = 4"):
        compute_rates(IndicatorCounts(due=4, closed=5))
    assert doctest.testmod(indicators, optionflags=doctest.ELLIPSIS).failed == 0
    assert doctest.testmod(common).failed == 0


def at(day: int, hour: int = 9, month: int = 5) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, tzinfo=CHINA_TZ)


def insert_case(session: Session, no: str, *, reported: dt.datetime, status: str,
                grid: str = GRID1, code: str = "0101", kind: str = "event",
                dispatched: dt.datetime | None = None, due: dt.datetime | None = None,
                closed: dt.datetime | None = None, reworked: int = 0, extended: int = 0,
                satisfaction: str | None = None, surveyed: dt.datetime | None = None,
                replied: dt.datetime | None = None, xy: tuple[float, float] = (50, 50),
                channel: str = "hotline_12345", repeat_of: int | None = None) -> int:
    lon, lat = lonlat(*xy)
    return session.execute(text("""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y, raw_crs,
            reported_at, closed_at, status, grid_code, geom, dispatched_at, due_at,
            reworked_count, extended_count, satisfaction, surveyed_at, replied_at,
            repeat_of, repeat_group_id)
        VALUES (:no, :kind, :code, :channel, :x, :y, 'wgs84', :reported, :closed, :status, :grid,
            ST_SetSRID(ST_MakePoint(:x, :y), 4326), :dispatched, :due, :reworked, :extended,
            :satisfaction, :surveyed, :replied, :repeat_of, :repeat_of)
        RETURNING id"""), {
        "no": no, "kind": kind, "code": code, "channel": channel, "x": lon, "y": lat,
        "reported": reported, "closed": closed, "status": status, "grid": grid,
        "dispatched": dispatched, "due": due, "reworked": reworked, "extended": extended,
        "satisfaction": satisfaction, "surveyed": surveyed, "replied": replied,
        "repeat_of": repeat_of}).scalar_one()


@pytest.fixture
def week_of_cases(session: Session) -> None:
    """Eight cases around the week of 6 May 2024; expected counts worked out by hand below."""
    insert_areas(session, {"01": square(0, 0, 100), "02": square(100, 0, 100)})
    session.execute(text("""
        INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from, valid_to)
        VALUES (:g, '甲中队', 'squad', '13912345678', '2024-01-01', '2024-05-08'),
               (:g, '乙中队', 'squad', '13912345679', '2024-05-08', NULL)"""), {"g": GRID1})
    # 1: closed on time, satisfied, replied.
    insert_case(session, "T1", reported=at(6), status="evaluated", dispatched=at(6, 10),
                due=at(8), closed=at(7), satisfaction="satisfied", surveyed=at(8),
                replied=at(6, 11))
    # 2: not filed (rejected), replied.
    insert_case(session, "T2", reported=at(6), status="rejected", replied=at(6, 12))
    # 3: filed, waiting for dispatch.
    insert_case(session, "T3", reported=at(7), status="filed", code="0504")
    # 4: closed late after one rework.
    insert_case(session, "T4", reported=at(7), status="closed", dispatched=at(7, 10),
                due=at(9), closed=at(10), reworked=1)
    # 5: dispatched, due next week.
    insert_case(session, "T5", reported=at(8), status="dispatched", dispatched=at(8, 10),
                due=at(14))
    # 6: reported the week before, extended, due Monday, still open: due and overdue.
    insert_case(session, "T6", reported=at(30, month=4), status="handled",
                dispatched=at(30, 10, month=4), due=at(6, 10), extended=1)
    # 7: backlog in grid 2, overdue since April: overdue but in no cohort of the week.
    insert_case(session, "T7", reported=at(20, month=4), status="dispatched", grid=GRID2,
                dispatched=at(20, 10, month=4), due=at(23, month=4))
    # 8: a streetlight case closed on time, unsatisfied on Saturday.
    insert_case(session, "T8", reported=at(9), status="evaluated", kind="component",
                code="0118", dispatched=at(9, 10), due=at(10, 18), closed=at(10, 15),
                satisfaction="unsatisfied", surveyed=at(11))


def test_counts_of_the_week(session: Session, week_of_cases) -> None:
    [(key, name, counts)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                             scope=DISTRICT)
    assert (key, name) == ("city", "全市")
    assert counts == IndicatorCounts(accepted=6, filed=5, dispatched=4, due=4, closed=3,
                                     closed_on_time=2, reworked=1, extended=1, replied=2,
                                     completed=3, surveyed=2, satisfied=1, open_overdue=2)
    rates = compute_rates(counts)
    assert {k: str(v) for k, v in rates.items()} == {
        "filing_rate": "83.33", "dispatch_rate": "80.00", "closure_rate": "75.00",
        "on_time_rate": "50.00", "rework_rate": "25.00", "extension_rate": "25.00",
        "reply_rate": "33.33", "completion_rate": "50.00", "satisfaction_rate": "50.00"}


def test_as_of_mid_week_sees_only_what_had_happened(session: Session, week_of_cases) -> None:
    [(_, _, counts)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                        as_of=at(8, 12), scope=DISTRICT)
    assert counts.closed == 1  # only case 1 closed by Wednesday noon
    assert counts.open_overdue == 2  # 6 and 7 (case 1's deadline had not passed)
    assert counts.dispatched == 3  # case 8 not yet reported, so neither dispatched


def test_groupings(session: Session, week_of_cases) -> None:
    def table(by: str) -> dict:
        return {key: (name, counts) for key, name, counts in count_indicators(
            session, start=WEEK.start, end=WEEK.end, by=by, scope=DISTRICT)}

    by_grid = table("grid")
    assert by_grid[GRID2][1] == IndicatorCounts(open_overdue=1)
    assert by_grid[GRID1][1].accepted == 6
    assert table("district")[DISTRICT][0] == "测试区"
    assert table("street")[STREET][0] == "测试街道"

    # Ownership changed on Wednesday 8 May: each case goes to the owner of its day.
    by_owner = table("owner")
    assert set(by_owner) == {"甲中队", "乙中队", None}
    first, second = by_owner["甲中队"][1], by_owner["乙中队"][1]
    assert (first.accepted, first.due, first.closed, first.closed_on_time, first.open_overdue) \
        == (4, 3, 2, 1, 1)
    assert (second.accepted, second.due, second.closed, second.closed_on_time) == (2, 1, 1, 1)
    assert by_owner[None][1] == IndicatorCounts(open_overdue=1)  # grid 2 has no owner

    by_category = table("category")
    assert by_category["event:0504"] == ("店外经营", IndicatorCounts(accepted=1, filed=1))
    assert by_category["component:0118"][0] == "路灯"
    assert by_category["component:0118"][1].closed_on_time == 1


def test_filters_and_ranking(session: Session, week_of_cases) -> None:
    rows = count_indicators(session, start=WEEK.start, end=WEEK.end, by="grid", scope=DISTRICT,
                            categories=["0118"])
    assert [(k, c.accepted, c.due) for k, _, c in rows] == [(GRID1, 1, 1)]
    rows = count_indicators(session, start=WEEK.start, end=WEEK.end, by="grid", scope=DISTRICT)
    ranked = rank_groups(indicator_table(rows))
    assert ranked["key"].tolist() == [GRID1, GRID2]  # grid 2 has nothing due: last
    assert ranked.loc[0, "on_time_rate"] == 50.0 and ranked.loc[0, "open_overdue"] == 1


def test_bad_arguments(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="needs a timezone"):
        count_indicators(session, start=dt.datetime(2024, 5, 6), end=WEEK.end)
    with pytest.raises(InvalidInputError, match="'bogus'"):
        count_indicators(session, start=WEEK.start, end=WEEK.end, by="bogus")  # type: ignore
    with pytest.raises(InvalidInputError, match="'12ab'"):
        count_indicators(session, start=WEEK.start, end=WEEK.end, scope="12ab")
