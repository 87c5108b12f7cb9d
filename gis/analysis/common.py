"""Shared pieces of the analyses: bounding boxes, reporting periods, the China wall clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from gis.platform.errors import InvalidInputError

# Reporting periods follow the wall clock in China, whatever zone a timestamp is stored in.
CHINA_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_METRIC_EPSG = 4548  # CitySettings.metric_epsg; callers pass the configured one
BBox = tuple[float, float, float, float]
PeriodKind = Literal["daily", "weekly", "monthly"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("daily", "weekly", "monthly")


def bbox_params(bbox: BBox | None) -> dict[str, float | None]:
    """SQL parameters x1..y2 of `bbox` (all None when absent), checked for order."""
    if bbox is None:
        return {"x1": None, "y1": None, "x2": None, "y2": None}
    x1, y1, x2, y2 = bbox
    if not (x1 < x2 and y1 < y2):
        raise InvalidInputError(f"bbox {bbox!r} needs lon_min < lon_max and lat_min < lat_max")
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def bbox_filter(column: str) -> str:
    """SQL condition keeping rows whose `column` (EPSG:4326) meets the bbox parameters."""
    return (f"(CAST(:x1 AS float8) IS NULL OR {column} && "
            "ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326))")


@dataclass(frozen=True)
class Period:
    """A half-open reporting period [start, end) in China time."""

    kind: str
    start: dt.datetime
    end: dt.datetime

    @property
    def label_zh(self) -> str:
        """E.g. '2024-05-06 至 2024-05-12' (the last day is inclusive for readers)."""
        last = (self.end - dt.timedelta(days=1)).date()
        first = self.start.date()
        return str(first) if first == last else f"{first} 至 {last}"


def period_containing(kind: str, day: dt.date) -> Period:
    """The daily, weekly (Monday to Sunday) or monthly period containing `day`.

    Examples
    --------
    >>> period_containing("weekly", dt.date(2024, 5, 8)).label_zh
    '2024-05-06 至 2024-05-12'
    """
    if kind == "daily":
        first, last = day, day + dt.timedelta(days=1)
    elif kind == "weekly":
        first = day - dt.timedelta(days=day.weekday())
        last = first + dt.timedelta(days=7)
    elif kind == "monthly":
        first = day.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1)
    else:
        raise InvalidInputError(f"unknown period {kind!r}; expected one of "
                                f"{', '.join(PERIOD_KINDS)}")
    return Period(kind, _midnight(first), _midnight(last))


def previous_periods(period: Period, count: int) -> list[Period]:
    """`count` periods of the same kind ending with `period`, oldest first."""
    periods = [period]
    while len(periods) < count:
        before = (periods[0].start - dt.timedelta(days=1)).date()
        periods.insert(0, period_containing(period.kind, before))
    return periods


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=CHINA_TZ)
