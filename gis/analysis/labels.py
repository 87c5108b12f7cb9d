"""Chinese labels and definitions shared by the analyses, maps and reports (no database here).

maps/ may import this module; the analysis modules themselves read the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Indicator name -> (label, numerator, denominator): the single definition of every rate.
RATES: dict[str, tuple[str, str, str]] = {
    "filing_rate": ("立案率", "filed", "accepted"),
    "dispatch_rate": ("派遣率", "dispatched", "filed"),
    "closure_rate": ("结案率", "closed", "due"),
    "on_time_rate": ("按期结案率", "closed_on_time", "due"),
    "rework_rate": ("返工率", "reworked", "due"),
    "extension_rate": ("延期率", "extended", "due"),
    "reply_rate": ("回复率", "replied", "accepted"),
    "completion_rate": ("办结率", "completed", "accepted"),
    "satisfaction_rate": ("满意率", "satisfied", "surveyed"),
}
COUNT_LABELS = {"accepted": "受理数", "filed": "立案数", "dispatched": "派遣数",
                "due": "应结案数", "closed": "结案数", "closed_on_time": "按期结案数",
                "reworked": "返工数", "extended": "延期数", "replied": "回复数",
                "completed": "办结数", "surveyed": "回访数", "satisfied": "满意数",
                "open_overdue": "超期未结数"}
GROUP_LABELS = {"city": "全市", "district": "区", "street": "街道", "grid": "单元网格",
                "owner": "责任单位", "category": "案件类别"}
# Confidence bins as ArcGIS reports them: ±3 = 99 %, ±2 = 95 %, ±1 = 90 % (FDR-adjusted
# pseudo p). Gi* tests the neighbourhood, so the label names a 区域, not the cell alone.
GI_BIN_LABELS = {3: "热点区域 99%", 2: "热点区域 95%", 1: "热点区域 90%", 0: "不显著",
                 -1: "冷点区域 90%", -2: "冷点区域 95%", -3: "冷点区域 99%"}
RISK_LABELS = {"high": "高", "medium": "中", "low": "低"}
COVER_STATE_LABELS = {"damaged": "破损", "missing": "丢失"}
PERIOD_LABELS = {"daily": "日报", "weekly": "周报", "monthly": "月报"}
METHOD_LABELS = {"network": "路网距离", "straight": "直线距离"}
# Street classes in the order rectification is planned (the strictest first).
STREET_CLASS_LABELS = {"demonstration": "示范街", "managed": "规范街", "commercial": "商业街",
                       "other": "其他道路"}


@dataclass
class ReportData:
    """Everything a daily / weekly / monthly report shows, computed by gis.analysis.reports."""

    kind: str  # daily, weekly, monthly
    city: str
    period_label: str
    generated_at: str
    city_row: dict[str, object]  # counts and rates of the whole scope
    districts: pd.DataFrame  # ranked: rank, key, name, counts..., rates...
    streets: pd.DataFrame
    categories: pd.DataFrame  # the categories with most intake
    trend: pd.DataFrame  # label, accepted, due, closed, closed_on_time, on_time_rate, ...
    cover_risks: pd.DataFrame = field(default_factory=pd.DataFrame)  # by cover class
    notes: list[str] = field(default_factory=list)
