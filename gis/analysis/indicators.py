"""Performance indicators (考核指标) with the exact denominators city reports use.

Rates are computed from counts by one pure function, `compute_rates`, so a published report
can be checked by hand: the Zhengzhou weekly figures (due 52,434, closed 43,523) give 结案率
83.01 %. `count_indicators` produces the counts from the cases table for any period and
grouping. Cohorts, for a period [start, end) judged as of `as_of` (default: the period end):

- intake (受理): cases reported in the period. 立案 = intake cases filed (status past
  collection and not rejected); 派遣 = intake cases dispatched by `as_of`;
  回复 = intake cases replied to by `as_of`; 办结 = intake cases closed by `as_of`.
- due (应结案): cases whose handling deadline `due_at` falls in the period, whenever they were
  reported. 结案 = closed by `as_of`; 按期结案 = closed no later than `due_at`;
  返工 = reworked at least once; 延期 = extended at least once.
- surveyed (回访): cases surveyed in the period; 满意 = answer in `satisfied_values`
  (满意 and 基本满意 by default, as most hotline reports count them).
- open overdue (超期未结): cases still open at `as_of` whose deadline has passed, whatever the
  period: the backlog an on-time rate would otherwise hide.

One as_of rule for every count: a report for a past day is the same report whatever happened
afterwards. Each case is taken as it stood at `as_of`: reported by then, its status the
`from_status` of its first case_transitions row after `as_of`, or its status now when nothing
was recorded since (立案 means that status is past collection and not rejected), its handling
deadline the one in force then (an extension granted later is undone with its
case_extensions.previous_due_at; a case dispatched later has none), its rework and extension
counts less those recorded later. Steps stamped once and never
moved (dispatched_at, closed_at, replied_at, surveyed_at) are compared with `as_of` directly.
Cases loaded without an audit trail (an import of the old system's history) have only their
columns: their status is the stored one unless a later transition names the one before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ
from gis.analysis.labels import COUNT_LABELS, RATES
from gis.platform.errors import InvalidInputError

GroupBy = Literal["city", "district", "street", "grid", "owner", "category"]
GROUP_BYS: tuple[GroupBy, ...] = ("city", "district", "street", "grid", "owner", "category")


@dataclass(frozen=True)
class IndicatorCounts:
    """The numerators and denominators behind every indicator."""

    accepted: int = 0  # 受理数
    filed: int = 0  # 立案数
    dispatched: int = 0  # 派遣数
    due: int = 0  # 应结案数
    closed: int = 0  # 结案数
    closed_on_time: int = 0  # 按期结案数
    reworked: int = 0  # 返工数
    extended: int = 0  # 延期数
    replied: int = 0  # 回复数
    completed: int = 0  # 办结数
    surveyed: int = 0  # 回访数
    satisfied: int = 0  # 满意数
    open_overdue: int = 0  # 超期未结数


def percent(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator in percent, rounded half-up to 0.01; None when nothing is due.

    Examples
    --------
    >>> percent(43_523, 52_434)
    Decimal('83.01')
    >>> percent(0, 0) is None
    True
    """
    if numerator < 0 or denominator < 0:
        raise InvalidInputError(f"counts must not be negative: {numerator}/{denominator}")
    if denominator == 0:
        return None
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)


def compute_rates(counts: IndicatorCounts) -> dict[str, Decimal | None]:
    """Every indicator of RATES, in percent, from `counts`.

    Parameters
    ----------
    counts : IndicatorCounts
        Numerators and denominators; a numerator larger than its denominator is refused.

    Returns
    -------
    dict
        Rate name (e.g. ``closure_rate``) to a percentage rounded to 0.01, or None when the
        denominator is zero.

    Examples
    --------
    Zhengzhou weekly report: accepted 51,571, filed 51,229, dispatched 49,151, due 52,434,
    closed 43,523 of which 40,394 on time.

    >>> rates = compute_rates(IndicatorCounts(accepted=51_571, filed=51_229,
    ...     dispatched=49_151, due=52_434, closed=43_523, closed_on_time=40_394))
    >>> str(rates["closure_rate"]), str(rates["on_time_rate"])
    ('83.01', '77.04')
    """
    values = asdict(counts)
    rates: dict[str, Decimal | None] = {}
    for name, (label, num, den) in RATES.items():
        if values[num] > values[den]:
            raise InvalidInputError(
                f"{label}: {num} = {values[num]} exceeds {den} = {values[den]}")
        rates[name] = percent(values[num], values[den])
    return rates


def _group_sql(by: GroupBy) -> tuple[str, str, str]:
    """(key expression, name expression, extra joins) of a grouping."""
    if by == "city":
        return "'city'", "'全市'", ""
    if by == "district":
        return ("left(c.grid_code, 6)", "(SELECT name FROM districts WHERE code = "
                "left(c.grid_code, 6))", "")
    if by == "street":
        return ("left(c.grid_code, 9)", "(SELECT name FROM subdistricts WHERE code = "
                "left(c.grid_code, 9))", "")
    if by == "grid":
        return "c.grid_code", "c.grid_code", ""
    if by == "owner":
        # The owner of the case's day (ownership is versioned), not today's owner.
        return ("o.owner_name", "o.owner_name", """
        LEFT JOIN LATERAL (
            SELECT owner_name FROM grid_owners g
            WHERE g.grid_code = c.grid_code
              AND (c.reported_at AT TIME ZONE :tz)::date <@ daterange(g.valid_from, g.valid_to)
            LIMIT 1) o ON true""")
    if by == "category":
        return ("c.category_type || ':' || c.category_code", """CASE c.category_type
            WHEN 'event' THEN (SELECT name_zh FROM event_categories WHERE code = c.category_code)
            ELSE (SELECT name_zh FROM component_classes WHERE code = c.category_code) END""", "")
    raise InvalidInputError(f"unknown grouping {by!r}; expected one of {', '.join(GROUP_BYS)}")


_COUNTS_SQL = """
SELECT {key} AS key, min({name}) AS name,
    count(*) FILTER (WHERE intake) AS accepted,
    count(*) FILTER (WHERE intake AND h.status NOT IN ('collected', 'rejected')) AS filed,
    count(*) FILTER (WHERE intake AND c.dispatched_at <= :as_of) AS dispatched,
    count(*) FILTER (WHERE due) AS due,
    count(*) FILTER (WHERE due AND closed) AS closed,
    count(*) FILTER (WHERE due AND closed AND c.closed_at <= h.due_at) AS closed_on_time,
    count(*) FILTER (WHERE due AND h.reworked > 0) AS reworked,
    count(*) FILTER (WHERE due AND h.extended > 0) AS extended,
    count(*) FILTER (WHERE intake AND c.replied_at <= :as_of) AS replied,
    count(*) FILTER (WHERE intake AND closed) AS completed,
    count(*) FILTER (WHERE surveyed) AS surveyed,
    count(*) FILTER (WHERE surveyed AND c.satisfaction = ANY(:satisfied)) AS satisfied,
    count(*) FILTER (WHERE open_overdue) AS open_overdue
FROM cases c
{joins}
-- What the audit recorded after as_of, one row per case (see the module docstring): the first
-- later step names the status the case had at as_of, the first later extension the deadline.
LEFT JOIN (
    SELECT t.case_id,
           count(*) FILTER (WHERE t.action = 'rework') AS reworks,
           count(*) FILTER (WHERE t.action = 'extend') AS extensions,
           (array_agg(t.from_status ORDER BY t.at, t.id))[1] AS first_from_status,
           (array_agg(e.previous_due_at ORDER BY t.at, t.id)
               FILTER (WHERE e.id IS NOT NULL))[1] AS first_previous_due_at
    FROM case_transitions t
    LEFT JOIN case_extensions e ON e.transition_id = t.id
    WHERE t.at > :as_of
    GROUP BY t.case_id) later ON later.case_id = c.id
CROSS JOIN LATERAL (SELECT
    -- No later step: the status now is the status then.
    CASE WHEN c.reported_at <= :as_of
         THEN coalesce(later.first_from_status, c.status) END AS status,
    CASE WHEN c.dispatched_at <= :as_of
         THEN coalesce(later.first_previous_due_at, c.due_at) END AS due_at,
    c.reworked_count - coalesce(later.reworks, 0) AS reworked,
    c.extended_count - coalesce(later.extensions, 0) AS extended
) h
CROSS JOIN LATERAL (SELECT
    c.reported_at >= :start AND c.reported_at < :end AND c.reported_at <= :as_of AS intake,
    coalesce(h.due_at >= :start AND h.due_at < :end, false) AS due,
    coalesce(c.surveyed_at >= :start AND c.surveyed_at < :end AND c.surveyed_at <= :as_of,
             false) AS surveyed,
    coalesce(c.status IN ('closed', 'evaluated') AND c.closed_at <= :as_of, false) AS closed
) f
CROSS JOIN LATERAL (SELECT
    coalesce(NOT f.closed AND h.status <> 'rejected' AND h.due_at < :as_of, false)
        AS open_overdue
) ov
-- Every counted case existed by as_of or was reported in the period.
WHERE (c.reported_at < :end OR c.reported_at <= :as_of)
  AND (CAST(:scope AS text) IS NULL OR c.grid_code LIKE :scope || '%')
  AND (CAST(:categories AS text[]) IS NULL OR c.category_code = ANY(:categories))
  AND (CAST(:channels AS text[]) IS NULL OR c.channel = ANY(:channels))
GROUP BY 1
HAVING count(*) FILTER (WHERE intake OR due OR surveyed OR open_overdue) > 0
ORDER BY 1 NULLS LAST
"""


def check_period(start: dt.datetime, end: dt.datetime, as_of: dt.datetime | None) -> None:
    """Refuse naive datetimes and an empty or reversed period (InvalidInputError)."""
    for moment in (start, end, as_of):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInputError(f"datetime {moment.isoformat()} needs a timezone")
    if not start < end:
        raise InvalidInputError(f"period start {start.isoformat()} is not before end "
                                f"{end.isoformat()}")


def count_indicators(
    session: Session,
    *,
    start: dt.datetime,
    end: dt.datetime,
    by: GroupBy = "city",
    as_of: dt.datetime | None = None,
    scope: str | None = None,
    categories: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    satisfied_values: Sequence[str] = ("satisfied", "basically"),
) -> list[tuple[str | None, str | None, IndicatorCounts]]:
    """Indicator counts per group for the period [start, end), judged as of `as_of`.

    Parameters
    ----------
    session : Session
        Open session; only read.
    start, end : datetime
        Period bounds, timezone-aware.
    by : {"city", "district", "street", "grid", "owner", "category"}
        Grouping. Areas come from the case's unit grid code (cases without a grid form the
        group None); owner is the grid owner valid on the day the case was reported.
    as_of : datetime, optional
        When the state is judged; defaults to `end` (a past week is reported as it closed).
    scope : str, optional
        Grid-code prefix: a district (6 digits), street (9), community (12) or grid.
    categories, channels : list of str, optional
        Keep only these category codes / intake channels (e.g. hotline_12345).
    satisfied_values : list of str
        Survey answers counted as satisfied.

    Returns
    -------
    list of (key, name, IndicatorCounts)

    Examples
    --------
    >>> week = period_containing("weekly", dt.date(2024, 5, 8))  # doctest: +SKIP
    >>> count_indicators(session, start=week.start, end=week.end, by="district")  # doctest: +SKIP
    [('370102', '历下区', IndicatorCounts(accepted=120, ...))]
    """
    check_period(start, end, as_of)
    if scope is not None and not (scope.isdigit() and len(scope) in (6, 9, 12, 14, 15)):
        raise InvalidInputError(f"scope {scope!r} is not a district, street, community or grid "
                                "code")
    key, name, joins = _group_sql(by)
    sql = _COUNTS_SQL.format(key=key, name=name, joins=joins)
    params = {"start": start, "end": end, "as_of": as_of or end, "scope": scope,
              "categories": list(categories) if categories else None,
              "channels": list(channels) if channels else None,
              "satisfied": list(satisfied_values), "tz": str(CHINA_TZ)}
    names = [f.name for f in fields(IndicatorCounts)]
    return [(row.key, row.name, IndicatorCounts(**{n: int(getattr(row, n)) for n in names}))
            for row in session.execute(text(sql), params)]


def indicator_table(
    rows: Sequence[tuple[str | None, str | None, IndicatorCounts]],
) -> pd.DataFrame:
    """Counts and rates (percent) side by side, one row per group, open overdue included.

    Examples
    --------
    >>> table = indicator_table([("410100", "郑州市", IndicatorCounts(due=52_434,
    ...     closed=43_523, closed_on_time=40_394, open_overdue=12))])
    >>> table.loc[0, ["closure_rate", "on_time_rate"]].tolist(), int(table.loc[0, "open_overdue"])
    ([83.01, 77.04], 12)
    """
    records = []
    for key, name, counts in rows:
        rates = {k: (None if v is None else float(v)) for k, v in compute_rates(counts).items()}
        records.append({"key": key, "name": name, **asdict(counts), **rates})
    columns = ["key", "name", *COUNT_LABELS, *RATES]
    return pd.DataFrame.from_records(records, columns=columns)


def rank_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Groups ranked for a report: on-time rate, then closure rate, then fewest overdue.

    Groups with nothing due rank last. The rank starts at 1.
    """
    ranked = table.assign(_nodue=table["due"] == 0).sort_values(
        ["_nodue", "on_time_rate", "closure_rate", "open_overdue"],
        ascending=[True, False, False, True], na_position="last", kind="stable")
    ranked = ranked.drop(columns="_nodue").reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked


@dataclass(frozen=True)
class PhotoIndicatorCounts:
    """Counts behind the photo-evidence indicators (case_media, migration 0018)."""

    closed: int = 0  # 结案数: cases closed in the period
    closed_with_after_photo: int = 0  # 有处置后照片的结案数
    verification_due: int = 0  # 应核查数: verification deadline in the period
    verified_on_time: int = 0  # 按时核查数: a verification photo by the deadline

    @property
    def after_photo_rate(self) -> Decimal | None:
        """处置后照片率 = closed with an after photo / closed."""
        return percent(self.closed_with_after_photo, self.closed)

    @property
    def verification_on_time_rate(self) -> Decimal | None:
        """核查及时率 = verified on time / verification due."""
        return percent(self.verified_on_time, self.verification_due)


# A photo counts only if uploaded by the moment that matters (closing, the deadline, as_of)
# and not superseded by as_of: a wrong photo replaced later did not prove anything then.
_PHOTO_COUNTS_SQL = """
WITH photo AS (
    SELECT case_id, stage, uploaded_at FROM case_media
    WHERE uploaded_at <= :as_of AND (superseded_at IS NULL OR superseded_at > :as_of)
)
SELECT
    count(*) FILTER (WHERE c.closed_at >= :start AND c.closed_at < :end
                     AND c.closed_at <= :as_of) AS closed,
    count(*) FILTER (WHERE c.closed_at >= :start AND c.closed_at < :end
                     AND c.closed_at <= :as_of AND EXISTS (
        SELECT 1 FROM photo p WHERE p.case_id = c.id AND p.stage = 'handling'
          AND p.uploaded_at <= c.closed_at)) AS closed_with_after_photo,
    count(*) FILTER (WHERE c.verify_due_at >= :start AND c.verify_due_at < :end
                     AND c.verify_due_at <= :as_of) AS verification_due,
    count(*) FILTER (WHERE c.verify_due_at >= :start AND c.verify_due_at < :end
                     AND c.verify_due_at <= :as_of AND EXISTS (
        SELECT 1 FROM photo p WHERE p.case_id = c.id AND p.stage = 'verification'
          AND p.uploaded_at <= c.verify_due_at)) AS verified_on_time
FROM cases c
WHERE c.status <> 'rejected'
  AND (CAST(:scope AS text) IS NULL OR c.grid_code LIKE CAST(:scope AS text) || '%')
"""


def count_photo_indicators(session: Session, *, start: dt.datetime, end: dt.datetime,
                           as_of: dt.datetime | None = None,
                           scope: str | None = None) -> PhotoIndicatorCounts:
    """Photo-evidence counts for [start, end) as of `as_of` (default `end`).

    The after-photo share takes the cases closed in the period and counts those with a
    handling (处置后) photo uploaded before closing; verification on time (核查及时率) takes the
    cases whose verification deadline (set at 处理反馈) falls in the period and counts those
    with a verification (核查) photo uploaded by that deadline. Deadlines not yet reached at
    `as_of` are not due yet.
    """
    check_period(start, end, as_of)
    row = session.execute(text(_PHOTO_COUNTS_SQL), {
        "start": start, "end": end, "as_of": as_of or end, "scope": scope}).mappings().one()
    return PhotoIndicatorCounts(**{k: int(v) for k, v in row.items()})
