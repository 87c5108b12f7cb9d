"""Case deadlines from the deadline_rules table, in wall-clock time or Chinese working days.

Working days follow the official calendar with 调休: a make-up working Saturday counts, a
public holiday does not (package `chinese-calendar`). Its data ends in a known year; past it
working days are counted as Monday-Friday and the result is flagged `approximate`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import InvalidInputError, NotFoundError

# Working days are judged by the date on the wall in China, whatever zone a timestamp has.
CHINA_TZ = ZoneInfo("Asia/Shanghai")
STEPS = ("dispatch", "handle", "verify")
UNITS = ("minutes", "hours", "working_days")
# Longest run of consecutive non-working days we accept before suspecting a calendar bug.
_MAX_DAYS_OFF = 30

# The deadline of the step a case is in: dispatch (from report), handle (from dispatch, until
# reported back) or verify (from report back, until closed). Closed cases have none.
CURRENT_STEP_SQL = """CASE
    WHEN c.status IN ('collected', 'filed') THEN 'dispatch'
    WHEN c.status IN ('dispatched', 'handled') THEN 'handle'
    WHEN c.status = 'reported' THEN 'verify' END"""
CURRENT_DUE_SQL = """CASE
    WHEN c.status IN ('collected', 'filed') THEN c.dispatch_due_at
    WHEN c.status IN ('dispatched', 'handled') THEN c.due_at
    WHEN c.status = 'reported' THEN c.verify_due_at END"""


@dataclass(frozen=True)
class DeadlineRule:
    """A row of deadline_rules: for matching cases, `step` must finish within the duration."""

    id: int
    category_type: str | None
    category_code_prefix: str | None
    urgency: str | None
    area_type: str | None
    step: str
    duration: int
    unit: str


@dataclass(frozen=True)
class Deadline:
    """A computed due time; `approximate` when counted beyond the holiday calendar's data."""

    due_at: dt.datetime
    approximate: bool
    rule: DeadlineRule


@dataclass(frozen=True)
class OverdueCase:
    """An open case past the deadline of the step it is in."""

    case_id: int
    case_no: str
    status: str
    step: str
    due_at: dt.datetime
    overdue_by: dt.timedelta
    category_type: str
    category_code: str
    grid_code: str | None


def is_working_day(day: dt.date) -> tuple[bool, bool]:
    """(working?, approximate?) for `day` in the Chinese calendar with 调休."""
    try:
        return bool(chinese_calendar.is_workday(day)), False
    except NotImplementedError:
        # No official schedule for that year yet: weekends only, flagged for the caller.
        return day.weekday() < 5, True


def add_working_days(start: dt.datetime, days: int) -> tuple[dt.datetime, bool]:
    """`start` moved forward by `days` Chinese working days; returns (due, approximate).

    The due time is the same clock time on the `days`-th working day after the start day.
    A start on a non-working day begins the clock at 00:00 of the next working day.
    """
    _check_aware(start)
    if days <= 0:
        raise InvalidInputError(f"working days must be positive, not {days}")
    local = start.astimezone(CHINA_TZ)
    day, approximate = local.date(), False
    working, approx = is_working_day(day)
    approximate |= approx
    clock = local.timetz()
    if not working:
        day, approx = _next_working_day(day)
        approximate |= approx
        clock = dt.time(0, 0, tzinfo=CHINA_TZ)
    for _ in range(days):
        day, approx = _next_working_day(day)
        approximate |= approx
    due = dt.datetime.combine(day, clock.replace(tzinfo=None), tzinfo=CHINA_TZ)
    return due, approximate


def add_duration(start: dt.datetime, *, duration: int, unit: str) -> tuple[dt.datetime, bool]:
    """`start` plus a rule's duration; minutes and hours are wall-clock, never approximate."""
    _check_aware(start)
    if unit == "minutes":
        return start + dt.timedelta(minutes=duration), False
    if unit == "hours":
        return start + dt.timedelta(hours=duration), False
    if unit == "working_days":
        return add_working_days(start, duration)
    raise InvalidInputError(f"unknown deadline unit {unit!r}; expected one of {', '.join(UNITS)}")


def find_rule(session: Session, *, category_type: str, category_code: str, urgency: str,
              area_type: str, step: str) -> DeadlineRule:
    """The most specific deadline rule for a case and step (longest code prefix first)."""
    if step not in STEPS:
        raise InvalidInputError(f"unknown deadline step {step!r}; expected one of "
                                f"{', '.join(STEPS)}")
    row = session.execute(text("""
        SELECT id, category_type, category_code_prefix, urgency, area_type, step, duration, unit
        FROM deadline_rules
        WHERE step = :step
          AND (category_type IS NULL OR category_type = :category_type)
          AND (category_code_prefix IS NULL OR :category_code LIKE category_code_prefix || '%')
          AND (urgency IS NULL OR urgency = :urgency)
          AND (area_type IS NULL OR area_type = :area_type)
        ORDER BY coalesce(length(category_code_prefix), 0) DESC,
                 (category_type IS NOT NULL) DESC, (urgency IS NOT NULL) DESC,
                 (area_type IS NOT NULL) DESC, id
        LIMIT 1"""), {"step": step, "category_type": category_type,
                      "category_code": category_code, "urgency": urgency,
                      "area_type": area_type}).mappings().first()
    if row is None:
        raise NotFoundError(
            f"no deadline rule for step {step!r}, {category_type} {category_code}, "
            f"urgency {urgency!r}, area {area_type!r}; add one to deadline_rules")
    return DeadlineRule(**row)


def compute_due(session: Session, *, category_type: str, category_code: str, urgency: str,
                area_type: str, step: str, start: dt.datetime) -> Deadline:
    """Deadline of `step` for a case of this kind when the step's clock starts at `start`."""
    rule = find_rule(session, category_type=category_type, category_code=category_code,
                     urgency=urgency, area_type=area_type, step=step)
    due, approximate = add_duration(start, duration=rule.duration, unit=rule.unit)
    return Deadline(due_at=due, approximate=approximate, rule=rule)


def list_overdue(session: Session, *, at: dt.datetime) -> list[OverdueCase]:
    """Open cases whose current step's deadline is before `at`, most overdue first."""
    _check_aware(at)
    rows = session.execute(text(f"""
        SELECT id AS case_id, case_no, status, step, current_due AS due_at, category_type,
               category_code, grid_code
        FROM (SELECT c.*, {CURRENT_STEP_SQL} AS step, {CURRENT_DUE_SQL} AS current_due
              FROM cases c) c
        WHERE current_due < :at
        ORDER BY current_due, id"""), {"at": at}).mappings().all()
    return [OverdueCase(**row, overdue_by=at - row["due_at"]) for row in rows]


def _next_working_day(day: dt.date) -> tuple[dt.date, bool]:
    approximate = False
    for _ in range(_MAX_DAYS_OFF):
        day += dt.timedelta(days=1)
        working, approx = is_working_day(day)
        approximate |= approx
        if working:
            return day, approximate
    raise InvalidInputError(f"no working day within {_MAX_DAYS_OFF} days before {day}")


def _check_aware(moment: dt.datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"timestamp {moment.isoformat()} has no time zone; "
                                "give an offset such as +08:00")
