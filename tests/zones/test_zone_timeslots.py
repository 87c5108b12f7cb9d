"""Zone schedules: weekly slots across midnight, yearly seasons, overlap between two zones."""

from __future__ import annotations

from datetime import datetime

import pytest

from gis.platform.errors import InvalidInputError
from gis.zones.timeslots import first_common_time, parse_schedule, schedules_overlap

EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]


def sched(*slots: tuple[list[int], str, str], seasons: list[tuple[str, str]] = ()):
    return parse_schedule([{"days": d, "start": s, "end": e} for d, s, e in slots],
                          [{"from": f, "to": t} for f, t in seasons])


def test_plain_slot_is_open_inside_and_closed_at_its_end() -> None:
    morning = sched(([1, 2, 3, 4, 5], "05:00", "08:00"))
    assert morning.is_open(datetime(2026, 6, 1, 5, 0))  # Monday
    assert morning.is_open(datetime(2026, 6, 1, 7, 59))
    assert not morning.is_open(datetime(2026, 6, 1, 8, 0))  # end is exclusive
    assert not morning.is_open(datetime(2026, 6, 6, 6, 0))  # Saturday


def test_slot_across_midnight_belongs_to_the_day_it_starts() -> None:
    friday_night = sched(([5], "18:00", "02:00"))
    assert friday_night.is_open(datetime(2026, 6, 5, 23, 30))  # Friday
    assert friday_night.is_open(datetime(2026, 6, 6, 1, 59))  # Saturday early morning
    assert not friday_night.is_open(datetime(2026, 6, 6, 2, 0))
    assert not friday_night.is_open(datetime(2026, 6, 5, 1, 0))  # Friday early: Thursday's
    assert not friday_night.is_open(datetime(2026, 6, 6, 19, 0))  # Saturday evening


def test_sunday_night_runs_into_monday() -> None:
    sunday = sched(([7], "20:00", "01:00"))
    assert sunday.is_open(datetime(2026, 6, 8, 0, 30))  # Monday 00:30
    assert not sunday.is_open(datetime(2026, 6, 2, 0, 30))  # Tuesday 00:30


def test_season_limits_the_days_and_a_night_finishes_after_the_last_day() -> None:
    melons = sched((EVERY_DAY, "18:00", "01:00"), seasons=[("06-01", "09-29")])
    assert melons.is_open(datetime(2026, 6, 1, 19, 0))
    assert not melons.is_open(datetime(2026, 5, 31, 19, 0))
    assert melons.is_open(datetime(2026, 9, 30, 0, 30))  # the night of 09-29
    assert not melons.is_open(datetime(2026, 9, 30, 19, 0))


def test_season_wrapping_the_new_year() -> None:
    winter = sched((EVERY_DAY, "10:00", "16:00"), seasons=[("11-15", "02-15")])
    assert winter.is_open(datetime(2026, 12, 31, 12, 0))
    assert winter.is_open(datetime(2027, 1, 10, 12, 0))
    assert not winter.is_open(datetime(2026, 3, 1, 12, 0))


def test_leap_day_season_is_accepted() -> None:
    leap = sched((EVERY_DAY, "08:00", "09:00"), seasons=[("02-29", "02-29")])
    assert leap.is_open(datetime(2028, 2, 29, 8, 30))


def test_overlap_of_weekly_slots() -> None:
    friday_night = sched(([5], "18:00", "02:00"))
    assert schedules_overlap(friday_night, sched(([6], "01:00", "03:00")))  # Sat 01:00-02:00
    assert not schedules_overlap(friday_night, sched(([6], "02:00", "05:00")))  # touching
    assert not schedules_overlap(friday_night, sched(([1, 2, 3, 4], "18:00", "23:00")))
    assert schedules_overlap(friday_night, sched(([5], "21:00", "21:30")))


def test_overlap_reports_a_common_moment() -> None:
    common = first_common_time(sched(([5], "18:00", "02:00")), sched(([6], "01:00", "03:00")))
    assert common is not None
    _day, weekday, time = common
    assert weekday == 6 and time == "01:00"


def test_seasons_apart_never_overlap_even_at_the_same_hours() -> None:
    summer = sched((EVERY_DAY, "18:00", "22:00"), seasons=[("06-01", "09-29")])
    october = sched((EVERY_DAY, "18:00", "22:00"), seasons=[("10-01", "10-31")])
    shoulder = sched((EVERY_DAY, "18:00", "22:00"), seasons=[("09-29", "10-05")])
    assert not schedules_overlap(summer, october)
    assert schedules_overlap(summer, shoulder)
    assert schedules_overlap(summer, sched((EVERY_DAY, "21:00", "23:00")))  # all-year zone


def test_night_after_season_end_meets_next_season_morning() -> None:
    # 09-29's night runs into 09-30 01:00, when a zone starting 09-30 at 00:00 is open.
    summer = sched((EVERY_DAY, "22:00", "01:00"), seasons=[("06-01", "09-29")])
    autumn = sched((EVERY_DAY, "00:00", "02:00"), seasons=[("09-30", "10-31")])
    assert schedules_overlap(summer, autumn)


def test_weekday_drift_across_years_counts() -> None:
    # Some year has 06-01 on a Saturday, so a Saturday-only zone on that single day clashes.
    one_day = sched((EVERY_DAY, "08:00", "10:00"), seasons=[("06-01", "06-01")])
    saturdays = sched(([6], "09:00", "11:00"))
    assert schedules_overlap(one_day, saturdays)


@pytest.mark.parametrize("slot,season", [
    ({"days": [8], "start": "08:00", "end": "09:00"}, None),
    ({"days": [], "start": "08:00", "end": "09:00"}, None),
    ({"days": [1], "start": "24:00", "end": "09:00"}, None),
    ({"days": [1], "start": "08:00", "end": "08:00"}, None),
    ({"days": [1], "start": "08:00", "end": "09:00"}, {"from": "02-30", "to": "03-01"}),
])
def test_bad_schedules_are_refused_naming_the_value(slot, season) -> None:
    with pytest.raises(InvalidInputError):
        parse_schedule([slot], [season] if season else [])


def test_all_day_slot() -> None:
    always = sched(([3], "00:00", "00:00"))
    assert always.is_open(datetime(2026, 6, 3, 0, 0))  # Wednesday
    assert always.is_open(datetime(2026, 6, 3, 23, 59))
    assert not always.is_open(datetime(2026, 6, 4, 0, 0))
