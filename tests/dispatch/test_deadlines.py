"""Deadlines: Chinese working days with 调休, rules by category/urgency/area, overdue listing."""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import pytest
from sqlalchemy import text

from gis.dispatch.cases import get_case, list_cases, transition
from gis.dispatch.deadlines import CHINA_TZ, add_working_days, find_rule, list_overdue
from gis.platform.errors import InvalidInputError
from tests.dispatch.test_workflow import insert_grids, new_case

CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def grids(session):
    insert_grids(session)
    return session


def test_calendar_facts_the_tests_rely_on():
    # 2026 National Day: 1-7 Oct off; Sat 10 Oct and Sun 20 Sep are make-up working days.
    assert chinese_calendar.is_holiday(dt.date(2026, 10, 1))
    assert chinese_calendar.is_holiday(dt.date(2026, 10, 7))
    assert dt.date(2026, 10, 10).weekday() == 5
    assert chinese_calendar.is_workday(dt.date(2026, 10, 10))
    assert dt.date(2026, 9, 20).weekday() == 6
    assert chinese_calendar.is_workday(dt.date(2026, 9, 20))


def test_one_working_day_before_national_day_lands_after_the_holiday():
    due, approximate = add_working_days(dt.datetime(2026, 9, 30, 10, 0, tzinfo=CST), 1)
    assert due == dt.datetime(2026, 10, 8, 10, 0, tzinfo=CST)
    assert approximate is False


def test_make_up_saturday_counts_as_a_working_day():
    due, _ = add_working_days(dt.datetime(2026, 10, 9, 16, 30, tzinfo=CST), 1)
    assert due == dt.datetime(2026, 10, 10, 16, 30, tzinfo=CST)  # Saturday, 调休
    due, _ = add_working_days(dt.datetime(2026, 9, 19, 11, 0, tzinfo=CST), 1)
    assert due == dt.datetime(2026, 9, 21, 0, 0, tzinfo=CST)  # Sat off; Sun 20 Sep counts


def test_ordinary_weekend_is_skipped():
    due, _ = add_working_days(dt.datetime(2026, 11, 13, 9, 0, tzinfo=CST), 1)  # a Friday
    assert due == dt.datetime(2026, 11, 16, 9, 0, tzinfo=CST)


def test_start_during_holiday_counts_from_next_working_day():
    due, _ = add_working_days(dt.datetime(2026, 10, 3, 10, 0, tzinfo=CST), 1)
    assert due == dt.datetime(2026, 10, 9, 0, 0, tzinfo=CST)  # the whole of 8 Oct


def test_working_days_are_judged_in_china_time():
    # 20:00 UTC on 30 Sep is already 1 Oct 04:00 in China, a holiday.
    due, _ = add_working_days(dt.datetime(2026, 9, 30, 20, 0, tzinfo=dt.UTC), 1)
    assert due == dt.datetime(2026, 10, 9, 0, 0, tzinfo=CHINA_TZ)


def test_beyond_the_calendar_data_is_weekends_only_and_flagged():
    due, approximate = add_working_days(dt.datetime(2026, 12, 31, 10, 0, tzinfo=CST), 2)
    assert due == dt.datetime(2027, 1, 4, 10, 0, tzinfo=CST)  # Fri 1 Jan treated as working
    assert approximate is True


def test_naive_and_non_positive_inputs_are_refused():
    with pytest.raises(InvalidInputError, match="no time zone"):
        add_working_days(dt.datetime(2026, 9, 30, 10, 0), 1)
    with pytest.raises(InvalidInputError, match="not 0"):
        add_working_days(dt.datetime(2026, 9, 30, 10, 0, tzinfo=CST), 0)


@pytest.mark.parametrize(("category_type", "code", "urgency", "area", "step", "expected"), [
    ("event", "0102", "urgent", "city", "dispatch", (10, "minutes")),
    ("event", "0102", "normal", "city", "dispatch", (30, "minutes")),
    ("event", "0102", "normal", "city", "verify", (1, "hours")),
    ("event", "0102", "normal", "rural", "verify", (2, "hours")),
    ("event", "0102", "normal", "city", "handle", (3, "working_days")),
    ("component", "0102", "normal", "city", "handle", (2, "hours")),  # missing sewer cover
    ("component", "0118", "normal", "city", "handle", (1, "working_days")),  # streetlight
    ("component", "0101", "normal", "city", "handle", (3, "working_days")),
])
def test_seeded_rules(session, category_type, code, urgency, area, step, expected):
    rule = find_rule(session, category_type=category_type, category_code=code, urgency=urgency,
                     area_type=area, step=step)
    assert (rule.duration, rule.unit) == expected


def test_rules_are_configuration(session):
    session.execute(text("""
        INSERT INTO deadline_rules (category_type, category_code_prefix, step, duration, unit)
        VALUES ('event', '05', 'handle', 6, 'hours')"""))
    rule = find_rule(session, category_type="event", category_code="0510", urgency="normal",
                     area_type="city", step="handle")
    assert (rule.duration, rule.unit, rule.category_code_prefix) == (6, "hours", "05")


def test_streetlight_dispatched_before_national_day(grids):
    reported = dt.datetime(2026, 9, 30, 9, 0, tzinfo=CST)
    case = new_case(grids, at=reported, category_type="component", category_code="0118")
    assert case.dispatch_due_at == reported + dt.timedelta(minutes=30)
    transition(grids, case.id, "file", actor="d", at=reported + dt.timedelta(minutes=5))
    case = transition(grids, case.id, "dispatch", actor="d",
                      at=reported + dt.timedelta(minutes=10))
    assert case.due_at == dt.datetime(2026, 10, 8, 9, 10, tzinfo=CST)
    assert case.due_approximate is False
    case = transition(grids, case.id, "handle", actor="d", at=reported + dt.timedelta(hours=2))
    case = transition(grids, case.id, "report", actor="d", at=reported + dt.timedelta(hours=3))
    assert case.verify_due_at == reported + dt.timedelta(hours=4)


def test_missing_sewer_cover_urgent_deadlines(grids):
    reported = dt.datetime(2026, 10, 3, 22, 0, tzinfo=CST)  # holidays do not stop the clock
    case = new_case(grids, at=reported, category_type="component", category_code="0102",
                    urgency="urgent")
    assert case.dispatch_due_at == reported + dt.timedelta(minutes=10)
    transition(grids, case.id, "file", actor="d", at=reported + dt.timedelta(minutes=3))
    case = transition(grids, case.id, "dispatch", actor="d",
                      at=reported + dt.timedelta(minutes=6))
    assert case.due_at == reported + dt.timedelta(hours=2, minutes=6)


def test_overdue_listing(grids):
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=CST)  # Monday
    late = new_case(grids, at=t0, category_type="component", category_code="0102")
    transition(grids, late.id, "file", actor="d", at=t0 + dt.timedelta(minutes=5))
    transition(grids, late.id, "dispatch", actor="d", at=t0 + dt.timedelta(minutes=10))
    on_time = new_case(grids, at=t0, category_type="component", category_code="0118")
    transition(grids, on_time.id, "file", actor="d", at=t0 + dt.timedelta(minutes=5))
    transition(grids, on_time.id, "dispatch", actor="d", at=t0 + dt.timedelta(minutes=10))
    never_dispatched = new_case(grids, at=t0, category_code="0104")
    closed = new_case(grids, at=t0, category_type="component", category_code="0102")
    for minutes, step in enumerate(["file", "dispatch", "handle", "report", "close"], start=1):
        transition(grids, closed.id, step, actor="d", at=t0 + dt.timedelta(minutes=minutes))

    at = t0 + dt.timedelta(hours=3)
    overdue = {c.case_id: c for c in list_overdue(grids, at=at)}
    assert late.id in overdue and never_dispatched.id in overdue
    assert on_time.id not in overdue and closed.id not in overdue
    assert overdue[late.id].step == "handle"
    assert overdue[late.id].overdue_by == dt.timedelta(minutes=50)
    assert overdue[never_dispatched.id].step == "dispatch"
    assert overdue[never_dispatched.id].due_at == t0 + dt.timedelta(minutes=30)
    # One minute before the 2-hour limit nothing about `late` is overdue yet.
    early = list_overdue(grids, at=t0 + dt.timedelta(hours=2, minutes=9))
    assert late.id not in {c.case_id for c in early}

    listed = {c.id for c in list_cases(grids, overdue=True, at=at, status="dispatched")}
    assert late.id in listed and on_time.id not in listed
    not_overdue = {c.id for c in list_cases(grids, overdue=False, at=at, limit=10_000)}
    assert {on_time.id, closed.id} <= not_overdue and late.id not in not_overdue
    assert get_case(grids, late.id).current_due_at == t0 + dt.timedelta(hours=2, minutes=10)
