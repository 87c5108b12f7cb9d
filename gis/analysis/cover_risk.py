"""Manhole cover risk (井盖隐患): covers damaged or missing, by type and owner, and for how long.

A missing cover is an open hole in the road: always high risk. A damaged one is low risk for
its first `damaged_medium_after_h` (default 4 h, the time a repair crew needs to arrive),
medium until `damaged_high_after_h` (default 24 h) and high after. The time counts from the
cover's last state change (updated_at); an open component case of the same class within
`case_radius_m` is shown beside it, so a dispatcher sees whether anyone is already on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.about import AnalysisAbout
from gis.analysis.common import BBox, bbox_filter, bbox_params
from gis.platform.errors import InvalidInputError


def find_cover_risks(
    session: Session,
    *,
    as_of: dt.datetime | None = None,
    bbox: BBox | None = None,
    damaged_high_after_h: float = 24.0,
    damaged_medium_after_h: float = 4.0,
    case_radius_m: float = 30.0,
) -> gpd.GeoDataFrame:
    """Covers in use that are damaged or missing, riskiest first.

    Parameters
    ----------
    session : Session
        Open session; only read.
    as_of : datetime, optional
        Moment the waiting time is measured at (timezone-aware); the database's now() if None.
    bbox : tuple of float, optional
        lon_min, lat_min, lon_max, lat_max (EPSG:4326).
    damaged_high_after_h : float
        Hours after which a damaged cover counts as high risk.
    damaged_medium_after_h : float
        Hours after which a damaged cover counts as medium risk (low before).
    case_radius_m : float
        Radius to look for an open case about the cover.

    Returns
    -------
    GeoDataFrame
        Points (EPSG:4326): ``code``, ``cover_class``, ``class_name``, ``state``, ``owner``,
        ``maintainer``, ``grid_code``, ``district_code``, ``since``, ``hours`` (waiting),
        ``open_case_no``, ``risk`` ("high"/"medium"/"low").

    Examples
    --------
    >>> risks = find_cover_risks(session)  # doctest: +SKIP
    >>> summarise_cover_risks(risks, by="owner")  # doctest: +SKIP
    """
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInputError(f"as_of {as_of.isoformat()} needs a timezone")
    if damaged_high_after_h < 0 or case_radius_m < 0:
        raise InvalidInputError(
            f"damaged_high_after_h ({damaged_high_after_h}) and case_radius_m "
            f"({case_radius_m}) must not be negative")
    if not 0 <= damaged_medium_after_h <= damaged_high_after_h:
        raise InvalidInputError(
            f"damaged_medium_after_h ({damaged_medium_after_h}) must be between 0 and "
            f"damaged_high_after_h ({damaged_high_after_h})")
    risks = gpd.read_postgis(text(f"""
        WITH now AS (SELECT coalesce(CAST(:as_of AS timestamptz), now()) AS t)
        SELECT m.code, m.cover_class, k.name_zh AS class_name, m.state, m.owner, m.maintainer,
               m.grid_code, left(m.grid_code, 6) AS district_code, m.updated_at AS since,
               round((extract(epoch FROM (now.t - m.updated_at)) / 3600)::numeric, 1)::float8
                   AS hours,
               c.case_no AS open_case_no,
               r.risk,
               m.geom
        FROM manhole_covers m CROSS JOIN now
        CROSS JOIN LATERAL (SELECT CASE
            WHEN m.state = 'missing'
              OR now.t - m.updated_at > make_interval(secs => :high_h * 3600) THEN 'high'
            WHEN now.t - m.updated_at > make_interval(secs => :medium_h * 3600) THEN 'medium'
            ELSE 'low' END AS risk) r
        JOIN component_classes k ON k.code = m.cover_class
        LEFT JOIN LATERAL (
            SELECT case_no FROM cases c
            WHERE c.category_type = 'component' AND c.category_code = m.cover_class
              AND c.status NOT IN ('closed', 'evaluated', 'rejected')
              AND c.reported_at <= now.t
              AND ST_DWithin(c.geom::geography, m.geom::geography, :radius)
            ORDER BY c.reported_at LIMIT 1) c ON true
        WHERE m.in_use AND m.state IN ('damaged', 'missing') AND m.updated_at <= now.t
          AND {bbox_filter('m.geom')}
        ORDER BY array_position(ARRAY['high', 'medium', 'low'], r.risk), m.state DESC,
                 m.updated_at, m.code
    """), session.connection(), geom_col="geom",
        params={"as_of": as_of, "high_h": float(damaged_high_after_h),
                "medium_h": float(damaged_medium_after_h), "radius": case_radius_m,
                **bbox_params(bbox)})
    risks["open_case_no"] = risks["open_case_no"].astype(object).where(
        risks["open_case_no"].notna(), None)
    return risks


def summarise_cover_risks(risks: pd.DataFrame, *, by: str = "cover_class") -> pd.DataFrame:
    """Damaged, missing and high-risk counts and the longest wait per class, owner or district.

    Examples
    --------
    >>> risks = pd.DataFrame({"owner": ["排水管理处", "排水管理处", "燃气公司"],
    ...                       "state": ["missing", "damaged", "damaged"],
    ...                       "risk": ["high", "medium", "high"], "hours": [5.0, 2.0, 30.0]})
    >>> summarise_cover_risks(risks, by="owner")[["owner", "missing", "high"]].values.tolist()
    [['排水管理处', 1, 1], ['燃气公司', 0, 1]]
    """
    if by not in ("cover_class", "owner", "district_code", "grid_code"):
        raise InvalidInputError(f"unknown grouping {by!r}; expected cover_class, owner, "
                                "district_code or grid_code")
    frame = pd.DataFrame(risks)
    summary = frame.groupby(by, dropna=False).agg(
        damaged=("state", lambda s: int((s == "damaged").sum())),
        missing=("state", lambda s: int((s == "missing").sum())),
        high=("risk", lambda s: int((s == "high").sum())),
        medium=("risk", lambda s: int((s == "medium").sum())),
        low=("risk", lambda s: int((s == "low").sum())),
        longest_hours=("hours", "max")).reset_index()
    if "class_name" in frame and by == "cover_class":
        names = frame.drop_duplicates("cover_class").set_index("cover_class")["class_name"]
        summary.insert(1, "class_name", summary["cover_class"].map(names))
    return summary.sort_values(["high", "missing", "longest_hours"],
                               ascending=False).reset_index(drop=True)


def cover_risk_about(risks: pd.DataFrame, parameters: dict[str, Any], *, study_area: str,
                     as_of: dt.datetime) -> AnalysisAbout:
    """The method statement of a cover-risk run, with the count per risk level."""
    counts = {level: int((risks["risk"] == level).sum()) if not risks.empty else 0
              for level in ("high", "medium", "low")}
    return AnalysisAbout(
        title="井盖隐患",
        method=(f"在用井盖中状态为丢失或破损者：丢失一律高风险；破损按自最近一次状态变更起的"
                f"等待时间分级，不足 {parameters['damaged_medium_after_h']:g} 小时为低风险，"
                f"不足 {parameters['damaged_high_after_h']:g} 小时为中风险，超过为高风险。"
                f"{parameters['case_radius_m']:g} 米内同类在办部件案件一并列出，"
                "便于判断是否已有人处置。"),
        parameters=parameters, study_area=study_area, as_of=as_of,
        validated="规则逐条由构造数据测试（丢失、破损 2 小时、72 小时、停用、完好）",
        notes=[f"高风险 {counts['high']} 个，中风险 {counts['medium']} 个，"
               f"低风险 {counts['low']} 个。"])
