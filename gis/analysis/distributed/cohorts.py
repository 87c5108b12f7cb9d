"""Indicator counts of a frame of archived cases: the cohorts of gis.analysis.indicators.

`frame_counts` is the vectorised form of gis.analysis.indicators' counting query for cases
without an audit trail (the archive keeps each case's final columns, no case_transitions),
which is how that query judges such cases too: a case's status at `as_of` is its stored status,
its deadline the stored one once dispatched by `as_of`, its rework and extension counts the
stored ones. tests/analysis/test_distributed.py checks it against count_indicators on the same
cases in PostGIS. Rates come from the same `compute_rates`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gis.analysis.indicators import GroupBy, IndicatorCounts, check_period
from gis.platform.errors import InvalidInputError

COUNT_NAMES = tuple(IndicatorCounts.__dataclass_fields__)
# Archive columns the counts read.
COLUMNS = ["grid_code", "category_code", "channel", "status", "reported_at", "dispatched_at",
           "due_at", "closed_at", "replied_at", "surveyed_at", "satisfaction",
           "reworked_count", "extended_count"]
_KEY_LENGTH = {"district": 6, "street": 9}


def group_keys(frame: pd.DataFrame, by: GroupBy) -> pd.Series:
    """Group key of each row as count_indicators forms it (None for cases without a grid)."""
    if by == "city":
        return pd.Series("city", index=frame.index, dtype=object)
    if by in _KEY_LENGTH or by == "grid":
        grid = frame["grid_code"].astype(object)
        keys = grid.str[: _KEY_LENGTH[by]] if by in _KEY_LENGTH else grid
        return keys.where(grid.notna(), None)
    raise InvalidInputError(f"grouping {by!r} is not available on the archive; expected city, "
                            "district, street or grid")


def _le(values: pd.Series, moment: dt.datetime | pd.Series) -> np.ndarray:
    """values <= moment, false where values is null (SQL's NULL in a FILTER)."""
    return (values <= moment).fillna(False).to_numpy(dtype=bool)


def _in(values: pd.Series, start: dt.datetime, end: dt.datetime) -> np.ndarray:
    """start <= values < end, false where null."""
    return ((values >= start) & (values < end)).fillna(False).to_numpy(dtype=bool)


def frame_counts(frame: pd.DataFrame, *, start: dt.datetime, end: dt.datetime,
                 by: GroupBy = "district", as_of: dt.datetime | None = None,
                 scope: str | None = None, categories: Sequence[str] | None = None,
                 channels: Sequence[str] | None = None,
                 satisfied_values: Sequence[str] = ("satisfied", "basically"),
                 ) -> dict[str | None, IndicatorCounts]:
    """Indicator counts per group of the archived cases in `frame` for [start, end).

    The same cohorts, as_of rule and filters as gis.analysis.indicators.count_indicators;
    groups with nothing in any cohort are left out, as there.
    """
    check_period(start, end, as_of)
    as_of = as_of or end
    reported = frame["reported_at"]
    keep = ((reported < end) | (reported <= as_of)).to_numpy(dtype=bool)
    if scope is not None:
        keep &= frame["grid_code"].astype(object).str.startswith(scope).fillna(False).to_numpy(
            dtype=bool)
    if categories:
        keep &= frame["category_code"].isin(list(categories)).to_numpy(dtype=bool)
    if channels:
        keep &= frame["channel"].isin(list(channels)).to_numpy(dtype=bool)
    cases = frame[keep]
    reported = cases["reported_at"]
    status = cases["status"].astype(object)
    exists = _le(reported, as_of)  # h.status is null for a case reported after as_of
    dispatched = _le(cases["dispatched_at"], as_of)
    due_at = cases["due_at"].where(dispatched)  # the deadline in force at as_of
    intake = _in(reported, start, end) & exists
    due = _in(due_at, start, end)
    surveyed = _in(cases["surveyed_at"], start, end) & _le(cases["surveyed_at"], as_of)
    closed = status.isin(["closed", "evaluated"]).to_numpy(dtype=bool) & _le(
        cases["closed_at"], as_of)
    rejected = (status == "rejected").to_numpy(dtype=bool)
    open_overdue = ~closed & exists & ~rejected & (due_at < as_of).fillna(False).to_numpy(
        dtype=bool)
    filed = exists & ~status.isin(["collected", "rejected"]).to_numpy(dtype=bool)
    flags = pd.DataFrame({
        "accepted": intake,
        "filed": intake & filed,
        "dispatched": intake & dispatched,
        "due": due,
        "closed": due & closed,
        "closed_on_time": due & closed & _le(cases["closed_at"], due_at),
        "reworked": due & (cases["reworked_count"] > 0).to_numpy(dtype=bool),
        "extended": due & (cases["extended_count"] > 0).to_numpy(dtype=bool),
        "replied": intake & _le(cases["replied_at"], as_of),
        "completed": intake & closed,
        "surveyed": surveyed,
        "satisfied": surveyed & cases["satisfaction"].isin(list(satisfied_values)).to_numpy(
            dtype=bool),
        "open_overdue": open_overdue,
    }, index=cases.index)
    active = intake | due | surveyed | open_overdue
    flags = flags[active]
    if flags.empty:
        return {}
    keys = group_keys(cases[active], by)
    # dropna=False: cases without a grid form the group None, as in the SQL.
    sums = flags.astype(np.int64).groupby(keys, sort=True, dropna=False).sum()
    return {(key if isinstance(key, str) else None):
            IndicatorCounts(**{n: int(row[n]) for n in COUNT_NAMES})
            for key, row in sums.iterrows()}


def add_counts(left: IndicatorCounts, right: IndicatorCounts) -> IndicatorCounts:
    """Field-by-field sum of two counts (cohorts of disjoint sets of cases add up)."""
    return IndicatorCounts(**{n: getattr(left, n) + getattr(right, n) for n in COUNT_NAMES})
