"""Daily, weekly and monthly reports (每天一通报、每周一汇报、每月一大报): the numbers behind them.

`build_report` gathers the indicators of the period for the whole scope, ranks districts and
streets, lists the categories with most intake, the trend over the previous periods and the
manhole covers still at risk; maps.analysis.render_report turns the result into HTML.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ, period_containing, previous_periods
from gis.analysis.cover_risk import find_cover_risks, summarise_cover_risks
from gis.analysis.indicators import (
    IndicatorCounts,
    count_indicators,
    count_photo_indicators,
    indicator_table,
    rank_groups,
)
from gis.analysis.labels import ReportData

TREND_PERIODS = {"daily": 14, "weekly": 8, "monthly": 12}


def build_report(
    session: Session,
    *,
    kind: str,
    day: dt.date,
    city: str,
    scope: str | None = None,
    now: dt.datetime | None = None,
) -> ReportData:
    """The report of the daily, weekly or monthly period containing `day`.

    Parameters
    ----------
    session : Session
        Open session; only read.
    kind : {"daily", "weekly", "monthly"}
        Period length; weeks run Monday to Sunday.
    day : date
        Any day inside the period.
    city : str
        Name printed on the report.
    scope : str, optional
        Grid-code prefix limiting the report to a district or street.
    now : datetime, optional
        The moment the report is made (default: now); a period still running is judged as of
        this moment, a finished one as of its end.

    Examples
    --------
    >>> report = build_report(session, kind="weekly", day=dt.date(2024, 5, 8),
    ...                       city="济南市历下区")  # doctest: +SKIP
    >>> report.districts[["rank", "name", "on_time_rate", "open_overdue"]]  # doctest: +SKIP
    """
    period = period_containing(kind, day)
    now = now or dt.datetime.now(CHINA_TZ)
    as_of = min(period.end, now)

    def table(by: str, start: dt.datetime, end: dt.datetime,
              at: dt.datetime) -> pd.DataFrame:
        rows = count_indicators(session, start=start, end=end, by=by,  # type: ignore[arg-type]
                                as_of=at, scope=scope)
        return indicator_table(rows)

    city_table = table("city", period.start, period.end, as_of)
    if city_table.empty:
        city_table = indicator_table([("city", "全市", IndicatorCounts())])
    city_row = {str(k): v for k, v in city_table.iloc[0].to_dict().items()}
    # Photo evidence (处置后照片率, 核查及时率) under the same as_of rule as the counts.
    photos = count_photo_indicators(session, start=period.start, end=period.end, as_of=as_of,
                                    scope=scope)
    city_row.update(closed_with_after_photo=photos.closed_with_after_photo,
                    photo_closed=photos.closed, verification_due=photos.verification_due,
                    verified_on_time=photos.verified_on_time,
                    after_photo_rate=_float(photos.after_photo_rate),
                    verification_on_time_rate=_float(photos.verification_on_time_rate))
    districts = rank_groups(table("district", period.start, period.end, as_of))
    streets = rank_groups(table("street", period.start, period.end, as_of))
    categories = (table("category", period.start, period.end, as_of)
                  .sort_values(["accepted", "key"], ascending=[False, True]).head(10))

    trend_rows = []
    for past in previous_periods(period, TREND_PERIODS[kind]):
        if past.start > now:
            break
        t = table("city", past.start, past.end, min(past.end, now))
        row = t.iloc[0].to_dict() if not t.empty else {"accepted": 0, "due": 0, "closed": 0,
                                                        "closed_on_time": 0,
                                                        "on_time_rate": None,
                                                        "open_overdue": 0}
        label = (past.start.strftime("%m-%d") if kind != "monthly"
                 else past.start.strftime("%Y-%m"))
        trend_rows.append({"label": label, **{k: row.get(k) for k in (
            "accepted", "due", "closed", "closed_on_time", "on_time_rate", "open_overdue")}})
    trend = pd.DataFrame(trend_rows, columns=["label", "accepted", "due", "closed",
                                              "closed_on_time", "on_time_rate",
                                              "open_overdue"])

    risks = find_cover_risks(session, as_of=as_of)
    if scope is not None and not risks.empty:
        risks = risks[risks["grid_code"].fillna("").str.startswith(scope)]
    cover = summarise_cover_risks(risks) if not risks.empty else pd.DataFrame()
    notes = []
    if as_of < period.end:
        notes.append(f"本期尚未结束，数据截至 {as_of.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}。")
    notes.append("超期未结：截至期末已过处置时限仍未结案的案件，不论受理于哪一期。")
    return ReportData(kind=kind, city=city, period_label=period.label_zh,
                      generated_at=now.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
                      city_row=city_row, districts=districts, streets=streets,
                      categories=categories, trend=trend, cover_risks=cover, notes=notes)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
