"""Case numbers: one format everywhere, `<prefix><city date YYYYMMDD><serial of the day>`.

`LX202612030001` is the first case reported on 3 December 2026 (city time) in 历下 (prefix
`LX`); each district has its own prefix (`CitySettings.case_prefixes`, chosen from the grid
the case routes to: 市中 `SZ`, 天桥 `TQ`; `CitySettings.case_prefix` for a district not named).
The serial has at least four digits and grows past 9999 on a day that needs it. The database
function `next_case_no` (migration 0020) hands the serial out under a transaction-scoped
advisory lock, so concurrent filings never collide and a number is never reused while its
case exists; since migration 0031 it counts every case, not only those the caller's
row-level security shows (a district user would otherwise reuse another district's number).
The demo generator writes the same format.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.deadlines import CHINA_TZ

CASE_NO = re.compile(r"^(?P<prefix>[A-Z]{1,6})(?P<day>[0-9]{8})(?P<serial>[0-9]{4,9})$")


def format_case_no(prefix: str, day: dt.date, serial: int) -> str:
    """The case number of the `serial`-th case of `day` (city date)."""
    return f"{prefix}{day:%Y%m%d}{serial:04d}"


def next_case_no(session: Session, reported_at: dt.datetime, prefix: str) -> str:
    """The next free case number of `reported_at`'s city date; locked until commit."""
    day = reported_at.astimezone(CHINA_TZ).date()
    number: str = session.execute(text("SELECT next_case_no(:prefix, :day)"),
                                  {"prefix": prefix, "day": day}).scalar_one()
    return number


def is_case_no(reference: str) -> bool:
    """True when `reference` is written like a case number (not whether the case exists)."""
    return CASE_NO.match(reference) is not None
