"""When a stall zone is open: weekly slots (across midnight allowed) within yearly seasons.

A slot `{"days": [5], "start": "18:00", "end": "02:00"}` opens on Friday at 18:00 and closes on
Saturday at 02:00: the days name the day a slot *starts*, and an end at or before the start
means the slot runs past midnight. A season `{"from": "06-01", "to": "09-29"}` recurs every
year; `from` after `to` wraps the new year (11-15 .. 02-15). No seasons means all year. A night
that starts on a season's last day runs to its end, like the slot says.

Two schedules overlap when some instant exists, in some year, at which both are open. Because
weekdays drift across years, a calendar date can fall on any weekday, so the check walks every
date of a leap year with every weekday it could have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from gis.platform.errors import InvalidInputError

DAY_MINUTES = 24 * 60
_LEAP_YEAR = 2024  # a leap year, so 02-29 exists


@dataclass(frozen=True)
class Slot:
    """A weekly slot: ISO weekdays it starts on, start and end minute of the day."""

    days: frozenset[int]
    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        """True when the slot ends on the next day (end at or before start)."""
        return self.end <= self.start


@dataclass(frozen=True)
class Season:
    """A yearly date range, inclusive, as (month, day) pairs."""

    start: tuple[int, int]
    end: tuple[int, int]

    def contains(self, day: date) -> bool:
        """True when `day` (any year) falls in the range."""
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


@dataclass(frozen=True)
class Schedule:
    """When a zone is open: its slots, limited to its seasons (none = all year)."""

    slots: tuple[Slot, ...]
    seasons: tuple[Season, ...] = ()

    def in_season(self, day: date) -> bool:
        """True when a slot starting on `day` belongs to the season."""
        return not self.seasons or any(s.contains(day) for s in self.seasons)

    def minutes_open(self, day: date, weekday: int) -> list[tuple[int, int]]:
        """Minute ranges [a, b) of calendar `day` (with ISO `weekday`) during which it is open."""
        ranges: list[tuple[int, int]] = []
        if self.in_season(day):
            for slot in self.slots:
                if weekday in slot.days:
                    ranges.append((slot.start, DAY_MINUTES if slot.crosses_midnight
                                   else slot.end))
        previous = day - timedelta(days=1)
        previous_weekday = 7 if weekday == 1 else weekday - 1
        if self.in_season(previous):
            for slot in self.slots:
                if slot.crosses_midnight and previous_weekday in slot.days and slot.end > 0:
                    ranges.append((0, slot.end))
        return ranges

    def is_open(self, at: datetime) -> bool:
        """True when the zone is open at local time `at` (naive, city time)."""
        minute = at.hour * 60 + at.minute
        return any(a <= minute < b for a, b in self.minutes_open(at.date(), at.isoweekday()))


def parse_minute(value: str) -> int:
    """Minutes since midnight of 'HH:MM'; InvalidInputError naming the value otherwise."""
    try:
        hours, minutes = value.split(":")
        h, m = int(hours), int(minutes)
    except (AttributeError, ValueError):
        raise InvalidInputError(f"time {value!r} must be HH:MM") from None
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise InvalidInputError(f"time {value!r} must be between 00:00 and 23:59")
    return h * 60 + m


def parse_month_day(value: str) -> tuple[int, int]:
    """(month, day) of 'MM-DD', checked against a leap-year calendar."""
    try:
        month, day = (int(p) for p in value.split("-"))
        date(_LEAP_YEAR, month, day)
    except (AttributeError, ValueError):
        raise InvalidInputError(f"season date {value!r} must be a real MM-DD") from None
    return month, day


def parse_schedule(time_slots: Iterable[Mapping[str, Any]],
                   seasons: Iterable[Mapping[str, Any]] = ()) -> Schedule:
    """Schedule from the JSON stored in stall_zones.time_slots / seasons."""
    slots: list[Slot] = []
    for raw in time_slots:
        days = frozenset(int(d) for d in raw["days"])
        if not days or not days <= set(range(1, 8)):
            raise InvalidInputError(f"slot days {sorted(days)} must be ISO weekdays 1..7")
        start, end = parse_minute(raw["start"]), parse_minute(raw["end"])
        if start == end:
            # A 24-hour slot is legal but rare; written 00:00-00:00 it is unambiguous.
            if start != 0:
                raise InvalidInputError(
                    f"slot {raw['start']}-{raw['end']} is empty; write 00:00-00:00 for all day")
        slots.append(Slot(days, start, end))
    if not slots:
        raise InvalidInputError("a zone needs at least one time slot")
    parsed_seasons = tuple(Season(parse_month_day(s["from"]), parse_month_day(s["to"]))
                           for s in seasons)
    return Schedule(tuple(slots), parsed_seasons)


def first_common_time(a: Schedule, b: Schedule) -> tuple[str, int, str] | None:
    """A moment both are open as ('MM-DD', ISO weekday, 'HH:MM'), or None if they never meet."""
    day = date(_LEAP_YEAR, 1, 1)
    while day.year == _LEAP_YEAR:
        for weekday in range(1, 8):
            ra, rb = a.minutes_open(day, weekday), b.minutes_open(day, weekday)
            for a0, a1 in ra:
                for b0, b1 in rb:
                    if a0 < b1 and b0 < a1:
                        minute = max(a0, b0)
                        return (f"{day:%m-%d}", weekday, f"{minute // 60:02d}:{minute % 60:02d}")
        day += timedelta(days=1)
    return None


def schedules_overlap(a: Schedule, b: Schedule) -> bool:
    """True when some instant exists, in some year, at which both schedules are open."""
    return first_common_time(a, b) is not None
