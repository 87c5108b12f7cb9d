"""Indicators (办结率, 按期结案率, 满意率 ...) per period and district over years, on dask.

Archive source: each worker reads one month of archived cases and counts, with
`cohorts.frame_counts`, what they contribute to every requested period (a case reported in
March can fall due, be surveyed or be overdue in April); counts of disjoint cases add up, so
the partial counts are summed per period and group. PostGIS source: each worker runs
gis.analysis.indicators.count_indicators itself for one period (audit trail and as_of rules
included). Rates always come from gis.analysis.indicators.compute_rates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gis.analysis.distributed.archive import Month, month_bounds
from gis.analysis.distributed.cluster import run_map
from gis.analysis.distributed.cohorts import COLUMNS, add_counts, frame_counts
from gis.analysis.distributed.sources import ArchiveSource, DatabaseSource, period_of
from gis.analysis.indicators import GroupBy, IndicatorCounts, compute_rates, count_indicators
from gis.platform.db import make_engine, transaction

if TYPE_CHECKING:
    from distributed import Client

CountKey = tuple[str, str | None]  # (period label, group key)


@dataclass(frozen=True)
class ReportPeriod:
    """A labelled reporting period [start, end) in China time."""

    label: str
    start: dt.datetime
    end: dt.datetime


def report_periods(months: Sequence[Month], kind: str = "month") -> list[ReportPeriod]:
    """The months, quarters or years that `months` cover, in order.

    Examples
    --------
    >>> [p.label for p in report_periods([(2023, 12), (2024, 1), (2024, 2)], "year")]
    ['2023', '2024']
    """
    periods: dict[str, ReportPeriod] = {}
    for month in sorted(months):
        label = period_of(month, kind)
        start, end = month_bounds(month)
        first = periods.get(label)
        periods[label] = ReportPeriod(label, first.start if first else start, end)
    return list(periods.values())


def _relevance(frame: pd.DataFrame) -> np.ndarray:
    """Latest moment at which a case can still be in a cohort (int64 µs; max when open).

    A case can count in a period starting at T (intake, due, surveyed, or still open and
    overdue at as_of >= T) only if it was reported, fell due or was surveyed at or after T, or
    was not closed before T.
    """
    stamps = [frame[c].to_numpy(dtype="datetime64[us]").astype(np.int64)
              for c in ("reported_at", "due_at", "surveyed_at", "closed_at")]
    nat = np.iinfo(np.int64).min  # NaT
    latest = np.maximum.reduce(stamps)  # NaT is the smallest int64, so it never wins
    closed = frame["status"].isin(["closed", "evaluated"]).to_numpy(dtype=bool) & (
        stamps[3] != nat)
    return np.where(closed, latest, np.iinfo(np.int64).max)


def _month_counts(month: Month, *, source: ArchiveSource, periods: Sequence[ReportPeriod],
                  by: GroupBy, as_of: dt.datetime | None,
                  satisfied_values: Sequence[str]) -> dict[CountKey, IndicatorCounts]:
    """Map step: what one archived month contributes to the counts of every period."""
    frame = source.read(month, COLUMNS)
    relevance = _relevance(frame)
    order = np.argsort(relevance, kind="stable")
    frame, relevance = frame.iloc[order], relevance[order]
    month_start = month_bounds(month)[0]
    out: dict[CountKey, IndicatorCounts] = {}
    for period in periods:
        moment = as_of or period.end
        if month_start >= period.end and month_start > moment:
            continue  # reported after the period and after as_of: in no cohort
        threshold = pd.Timestamp(min(period.start, moment)).tz_convert("UTC")
        first = int(np.searchsorted(relevance, threshold.value // 1000, side="left"))
        counts = frame_counts(frame.iloc[first:], start=period.start, end=period.end, by=by,
                              as_of=as_of, satisfied_values=satisfied_values)
        for key, value in counts.items():
            out[(period.label, key)] = value
    return out


def _period_counts_db(period: ReportPeriod, *, source: DatabaseSource, by: GroupBy,
                      as_of: dt.datetime | None,
                      satisfied_values: Sequence[str]) -> dict[CountKey, IndicatorCounts]:
    """Map step on PostGIS: count_indicators of one period."""
    engine = make_engine(source.engine_url(), pool_size=1)
    try:
        with transaction(engine) as session:
            rows = count_indicators(session, start=period.start, end=period.end, by=by,
                                    as_of=as_of, satisfied_values=satisfied_values)
    finally:
        engine.dispose()
    return {(period.label, key): counts for key, _, counts in rows}


def distributed_indicators(source: ArchiveSource | DatabaseSource, months: Sequence[Month], *,
                           client: Client | None, period: str = "month",
                           by: GroupBy = "district", as_of: dt.datetime | None = None,
                           satisfied_values: Sequence[str] = ("satisfied", "basically"),
                           periods: Sequence[ReportPeriod] | None = None,
                           ) -> dict[CountKey, IndicatorCounts]:
    """Counts per (period, group) for the periods `months` cover, in parallel.

    From the archive every month of `months` is read once and counts toward every period, so
    include the months before the first period whose cases may fall due or stay open in it.
    From PostGIS each period is one count_indicators query. `as_of` None: each period as it
    closed (its end), as count_indicators does.
    """
    wanted = list(periods) if periods is not None else report_periods(months, period)
    if isinstance(source, DatabaseSource):
        parts = run_map(client, _period_counts_db, wanted, source=source, by=by, as_of=as_of,
                        satisfied_values=satisfied_values)
    else:
        parts = run_map(client, _month_counts, list(months), source=source, periods=wanted,
                        by=by, as_of=as_of, satisfied_values=satisfied_values)
    total: dict[CountKey, IndicatorCounts] = {}
    for part in parts:
        for key, counts in part.items():
            total[key] = add_counts(total[key], counts) if key in total else counts
    return dict(sorted(total.items(), key=lambda item: (item[0][0], item[0][1] or "")))


def indicators_single_process(source: ArchiveSource, months: Sequence[Month], *,
                              period: str = "month", by: GroupBy = "district",
                              as_of: dt.datetime | None = None,
                              satisfied_values: Sequence[str] = ("satisfied", "basically"),
                              periods: Sequence[ReportPeriod] | None = None,
                              ) -> dict[CountKey, IndicatorCounts]:
    """The reference: every period counted on all cases of `months` in one frame."""
    frame = pd.concat([source.read(m, COLUMNS) for m in months], ignore_index=True)
    out: dict[CountKey, IndicatorCounts] = {}
    for wanted in (list(periods) if periods is not None else report_periods(months, period)):
        for key, counts in frame_counts(frame, start=wanted.start, end=wanted.end, by=by,
                                        as_of=as_of,
                                        satisfied_values=satisfied_values).items():
            out[(wanted.label, key)] = counts
    return dict(sorted(out.items(), key=lambda item: (item[0][0], item[0][1] or "")))


def rates_table(counts: dict[CountKey, IndicatorCounts]) -> pd.DataFrame:
    """One row per (period, group): the counts and the rates in percent."""
    records = []
    for (label, key), value in counts.items():
        rates = {k: (None if v is None else float(v)) for k, v in compute_rates(value).items()}
        records.append({"period": label, "key": key, **value.__dict__, **rates})
    return pd.DataFrame.from_records(records)
