"""Indicators judged as of a past moment stay the same whatever happens to the cases later.

Cases go through the real workflow (create_case, transition), so every step is in the
case_transitions audit the as_of rule reads; the report is computed, later steps are taken
(filing, dispatch, extension, rework, closing, rejection, a new case), and the same report is
computed again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ, period_containing
from gis.analysis.indicators import IndicatorCounts, count_indicators
from gis.dispatch.cases import create_case, transition
from tests.analysis.test_dark_streets import DISTRICT, insert_areas, lonlat, square

WEEK = period_containing("weekly", dt.date(2024, 5, 8))  # Mon 6 May - Sun 12 May 2024
TUESDAY = period_containing("daily", dt.date(2024, 5, 7))
ACTOR = "调度员"


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=CHINA_TZ)


REPORT_TIME = at(8, 12)  # the weekly report printed on Wednesday noon


def new_case(session: Session, reported: dt.datetime, x: float) -> int:
    lon, lat = lonlat(x, 50)
    # Urgent: handled within 4 hours, so deadlines fall inside the week.
    return create_case(session, category_type="event", category_code="0101", channel="patrol",
                       x=lon, y=lat, reported_at=reported, actor=ACTOR,
                       urgency="urgent").id


def step(session: Session, case_id: int, *actions: str, when: dt.datetime, **kwargs) -> None:
    for action in actions:
        note = "理由" if action in ("reject", "rework", "extend") else ""
        transition(session, case_id, action, actor=ACTOR, at=when, note=note,
                   **(kwargs if action == "extend" else {}))


def reports(session: Session) -> dict[str, list]:
    return {
        "week as of Wednesday noon": count_indicators(
            session, start=WEEK.start, end=WEEK.end, as_of=REPORT_TIME, scope=DISTRICT),
        "Tuesday": count_indicators(session, start=TUESDAY.start, end=TUESDAY.end,
                                    scope=DISTRICT),
        "week by grid as of Wednesday noon": count_indicators(
            session, start=WEEK.start, end=WEEK.end, as_of=REPORT_TIME, scope=DISTRICT,
            by="grid"),
    }


@pytest.fixture
def cases(session: Session) -> dict[str, int]:
    """Four cases as they stood on Wednesday noon."""
    insert_areas(session, {"01": square(0, 0, 100)})
    ids = {
        # Collected Tuesday, filed only on Thursday.
        "filed_later": new_case(session, at(7, 9), 10),
        # Dispatched Wednesday morning, due 13:30; extended and reworked in the afternoon.
        "extended_later": new_case(session, at(8, 9), 30),
        # Dispatched Tuesday, overdue since Tuesday 12:10, closed Wednesday afternoon.
        "closed_later": new_case(session, at(7, 8), 50),
        # Collected Tuesday, rejected Wednesday afternoon.
        "rejected_later": new_case(session, at(7, 10), 70),
    }
    step(session, ids["extended_later"], "file", "dispatch", when=at(8, 9, 30))
    step(session, ids["closed_later"], "file", "dispatch", when=at(7, 8, 10))
    session.flush()
    return ids


def happen_later(session: Session, ids: dict[str, int]) -> None:
    """Everything after Wednesday noon."""
    step(session, ids["extended_later"], "extend", when=at(8, 13), extend_to=at(10, 18))
    step(session, ids["extended_later"], "handle", "report", when=at(8, 15))
    step(session, ids["extended_later"], "rework", when=at(8, 16))
    step(session, ids["extended_later"], "handle", "report", when=at(9, 10))
    step(session, ids["extended_later"], "close", when=at(9, 11))
    step(session, ids["closed_later"], "handle", "report", "close", when=at(8, 15))
    step(session, ids["closed_later"], "reply", when=at(8, 16))
    step(session, ids["rejected_later"], "reject", when=at(8, 14))
    step(session, ids["filed_later"], "file", "dispatch", when=at(9, 9))
    step(session, ids["filed_later"], "handle", "report", "close", when=at(9, 11))
    new_case(session, at(8, 15), 90)  # reported after the report was printed
    session.flush()


def test_past_report_is_reproduced_exactly_after_later_events(session: Session,
                                                               cases) -> None:
    before = reports(session)
    [(_, _, week)] = before["week as of Wednesday noon"]
    assert week == IndicatorCounts(accepted=4, filed=2, dispatched=2, due=2, open_overdue=1)
    [(_, _, tuesday)] = before["Tuesday"]
    assert tuesday == IndicatorCounts(accepted=3, filed=1, dispatched=1, due=1,
                                      open_overdue=1)

    happen_later(session, cases)

    assert reports(session) == before
    # The later steps did happen: the week as it closed sees them.
    [(_, _, closed_week)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                             scope=DISTRICT)
    assert closed_week == IndicatorCounts(
        accepted=5, filed=3, dispatched=3, due=3, closed=3, closed_on_time=2, reworked=1,
        extended=1, replied=1, completed=3)


def test_deadline_in_force_at_as_of_ignores_later_extensions(session: Session,
                                                             cases) -> None:
    happen_later(session, cases)
    # Wednesday 14:00: the 13:30 deadline was already extended at 13:00, so not overdue.
    [(_, _, after)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                       as_of=at(8, 14), scope=DISTRICT)
    assert (after.extended, after.open_overdue) == (1, 1)  # only the Tuesday case
    # Wednesday 12:59, before the extension, the old deadline (13:30) was in force and ahead.
    [(_, _, before)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                        as_of=at(8, 12, 59), scope=DISTRICT)
    assert (before.extended, before.due, before.open_overdue) == (0, 2, 1)
    # The extended case is due on Friday 18:00: Thursday's report is not overdue on it.
    [(_, _, thursday)] = count_indicators(session, start=WEEK.start, end=WEEK.end,
                                          as_of=at(9, 8), scope=DISTRICT)
    assert thursday.open_overdue == 0
