"""Sane request values shared by every route: one datetime window, one date window.

Python and PostgreSQL both accept years 1 to 9999 and offsets up to a day, but converting
`0001-01-01T00:00+14:00` to UTC or city time, or adding a deadline to `9999-12-31`, overflows
(a 500), and no complaint, zone slot or report of this platform lies outside 2000-2100. So every
date and time a client sends passes through these types: outside the window, or with an offset
beyond the real world's ±14:00, it is a 422 (Open311: 400) that names the value.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, TypeAdapter, ValidationError

EARLIEST = dt.datetime(2000, 1, 1)
LATEST = dt.datetime(2100, 12, 31, 23, 59, 59, 999999)
MAX_OFFSET = dt.timedelta(hours=14)
WINDOW = "2000-01-01 .. 2100-12-31"


def sane_moment(value: dt.datetime) -> dt.datetime:
    """`value` if its offset is within ±14:00 and its wall time in 2000-2100; else ValueError."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise ValueError(f"{value.isoformat()} has UTC offset {value.strftime('%z')}; "
                         "offsets must be within -14:00 .. +14:00")
    # The wall time, not UTC: converting an extreme value is what overflows.
    if not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
        raise ValueError(f"{value.isoformat()} is outside {WINDOW}")
    return value


def sane_day(value: dt.date) -> dt.date:
    """`value` if it lies within 2000-2100, else ValueError."""
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(f"{value.isoformat()} is outside {WINDOW}")
    return value


# Naive values are city time (each route says so); aware ones keep their offset.
SaneDatetime = Annotated[dt.datetime, AfterValidator(sane_moment)]
SaneAwareDatetime = Annotated[AwareDatetime, AfterValidator(sane_moment)]
SaneDate = Annotated[dt.date, AfterValidator(sane_day)]

_MOMENT: TypeAdapter[dt.datetime] = TypeAdapter(SaneDatetime)
_DAY: TypeAdapter[dt.date] = TypeAdapter(SaneDate)


def parse_moment(text: str, *, name: str) -> dt.datetime | dt.date:
    """An RFC 3339 datetime or a date in the sane window, or ValueError naming `name`."""
    errors = []
    for adapter in (_MOMENT, _DAY):
        try:
            return adapter.validate_python(text.strip())
        except ValidationError as exc:
            errors.append(exc.errors()[0]["msg"])
    raise ValueError(f"{name}={text!r}: {errors[0].removeprefix('Value error, ')}")


# Paging bounds: far above any real table here, far below PostgreSQL's bigint.
MAX_OFFSET_ROWS = 10_000_000
