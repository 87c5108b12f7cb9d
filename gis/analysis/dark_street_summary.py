"""Dark-street results for planners: per area, per street class, and what the run was.

Dark length per street class (示范街 strict / 规范街 managed / 商业街 flexible) is how
rectification is planned: a dark 示范街 comes first. `run_dark_streets` is what the API, the
page and the CLI call: the stretches, the per-area and per-class summaries and the method
statement (AnalysisAbout) of one run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.about import AnalysisAbout, now_in_china
from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox, bbox_filter, bbox_params
from gis.analysis.dark_streets import (
    ProgressReport,
    find_dark_streets,
    find_dark_streets_kdtree,
)
from gis.analysis.labels import STREET_CLASS_LABELS
from gis.platform.errors import InvalidInputError

SummaryLevel = Literal["grid", "street", "district"]
DarkMethod = Literal["postgis", "kdtree"]


@dataclass(frozen=True)
class DarkStreetRun:
    """Dark stretches of one run, dark length per street class, and what the run was."""

    stretches: gpd.GeoDataFrame
    by_class: pd.DataFrame
    about: AnalysisAbout


def run_dark_streets(session: Session, *, method: DarkMethod = "kdtree",
                     threshold_m: float = 30.0, step_m: float = 5.0, bbox: BBox | None = None,
                     metric_epsg: int = DEFAULT_METRIC_EPSG,
                     progress: ProgressReport | None = None) -> DarkStreetRun:
    """Find dark stretches with `method`, sum them per street class and state the method.

    Examples
    --------
    >>> run = run_dark_streets(session, threshold_m=30)  # doctest: +SKIP
    >>> run.by_class[["street_class_zh", "dark_m", "dark_share"]]  # doctest: +SKIP
    """
    if method == "postgis":
        stretches = find_dark_streets(session, threshold_m=threshold_m, step_m=step_m,
                                      bbox=bbox, metric_epsg=metric_epsg)
    elif method == "kdtree":
        stretches = find_dark_streets_kdtree(session, threshold_m=threshold_m, step_m=step_m,
                                             bbox=bbox, metric_epsg=metric_epsg,
                                             progress=progress)
    else:
        raise InvalidInputError(f"unknown method {method!r}; expected postgis or kdtree")
    by_class = dark_by_street_class(stretches, road_length_by_class(
        session, bbox=bbox, metric_epsg=metric_epsg))
    parameters = {"method": method, "threshold_m": threshold_m, "step_m": step_m,
                  "bbox": list(bbox) if bbox else None, "metric_epsg": metric_epsg}
    return DarkStreetRun(stretches, by_class, dark_streets_about(
        parameters=parameters, by_class=by_class, bbox=bbox, as_of=now_in_china()))


def summarise_dark_streets(gaps: pd.DataFrame, *, by: SummaryLevel = "district") -> pd.DataFrame:
    """Stretch count, total gap and dark length, roads affected and worst distance per area.

    Examples
    --------
    >>> gaps = pd.DataFrame({"district_code": ["370102", "370102"], "road_id": [1, 2],
    ...                      "gap_m": [80.0, 50.0], "dark_m": [20.0, 0.0],
    ...                      "max_distance_m": [40.0, 25.0]})
    >>> row = summarise_dark_streets(gaps).iloc[0]
    >>> int(row.gaps), float(row.gap_m), int(row.roads)
    (2, 130.0, 2)
    """
    if by not in ("grid", "street", "district"):
        raise InvalidInputError(f"unknown summary level {by!r}; expected grid, street, district")
    key = f"{by}_code"
    frame = pd.DataFrame(gaps).assign(**{key: lambda f: f[key].fillna("")})
    summary = (frame.groupby(key, sort=False)
               .agg(gaps=("gap_m", "size"), gap_m=("gap_m", "sum"), dark_m=("dark_m", "sum"),
                    roads=("road_id", "nunique"), max_distance_m=("max_distance_m", "max"))
               .reset_index().sort_values(["dark_m", "gap_m"], ascending=False)
               .reset_index(drop=True))
    summary[key] = summary[key].replace("", None)
    return summary


def road_length_by_class(session: Session, *, bbox: BBox | None, metric_epsg: int
                         ) -> pd.DataFrame:
    """Roads and their total length (metres, metric CRS) per street class in the bbox."""
    rows = session.execute(text(
        f"SELECT r.street_class, count(*), sum(ST_Length(ST_Transform(r.geom, :srid))) "
        f"FROM roads r WHERE {bbox_filter('r.geom')} GROUP BY r.street_class"),
        {"srid": metric_epsg, **bbox_params(bbox)}).all()
    return pd.DataFrame([tuple(r) for r in rows],
                        columns=["street_class", "roads_total", "road_m"]).astype(
        {"roads_total": int, "road_m": float})


def dark_by_street_class(gaps: pd.DataFrame, roads: pd.DataFrame | None = None) -> pd.DataFrame:
    """Dark length per street class (示范街 first), with the class's road length when given.

    Examples
    --------
    >>> gaps = pd.DataFrame({"street_class": ["managed", "demonstration", "managed"],
    ...                      "road_id": [1, 2, 1], "dark_m": [20.0, 5.0, 10.0]})
    >>> dark_by_street_class(gaps)[["street_class_zh", "dark_m", "roads"]].values.tolist()
    [['示范街', 5.0, 1], ['规范街', 30.0, 1]]
    """
    frame = pd.DataFrame(gaps)
    summary = (frame.groupby("street_class").agg(stretches=("dark_m", "size"),
                                                 dark_m=("dark_m", "sum"),
                                                 roads=("road_id", "nunique"))
               if not frame.empty else
               pd.DataFrame(columns=["stretches", "dark_m", "roads"],
                            index=pd.Index([], name="street_class")))
    if roads is not None:
        summary = summary.join(roads.set_index("street_class"), how="outer")
        summary["dark_share"] = (summary["dark_m"].fillna(0) / summary["road_m"]).round(4)
    summary = summary.fillna({"stretches": 0, "dark_m": 0.0, "roads": 0}).reset_index()
    summary = summary.astype({"stretches": int, "roads": int, "dark_m": float})
    summary["dark_m"] = summary["dark_m"].round(2)
    order = {name: i for i, name in enumerate(STREET_CLASS_LABELS)}
    summary.insert(1, "street_class_zh", summary["street_class"].map(STREET_CLASS_LABELS)
                   .fillna(summary["street_class"]))
    summary = summary.iloc[summary["street_class"].map(lambda c: order.get(c, 99)).argsort(
        kind="stable")]
    return summary.reset_index(drop=True)


def dark_streets_about(*, parameters: dict[str, Any], by_class: pd.DataFrame,
                       bbox: BBox | None, as_of: dt.datetime) -> AnalysisAbout:
    """The method statement of a dark-street run, with the dark length per street class."""
    finder = ("PostGIS 地理索引 KNN 查最近亮灯路灯" if parameters["method"] == "postgis"
              else "scipy cKDTree 查最近亮灯路灯")
    road_m = float(by_class["road_m"].sum()) if "road_m" in by_class else 0.0
    area = ("范围框 " + ",".join(f"{v:g}" for v in bbox) + " 内的道路" if bbox
            else "全部道路")
    notes = []
    for row in by_class.itertuples():
        share = getattr(row, "dark_share", float("nan"))
        share_zh = f"，占该类道路 {share:.1%}" if share == share else ""
        notes.append(f"{row.street_class_zh}：死角 {row.dark_m:,.0f} 米（{row.stretches} 段，"
                     f"{row.roads} 条路）{share_zh}")
    return AnalysisAbout(
        title="路灯亮灯死角",
        method=(f"沿每条道路每 {parameters['step_m']:g} 米取样，{finder}（完好、亮灯、在用）；"
                f"距离超过 {parameters['threshold_m']:g} 米的连续样点为一处死角，再在相邻亮点"
                "样点之间按线段与圆的解析交点精确切出超距路段。地图画的是超距路段本身，"
                "长度即报告的死角长度；灯距另列。"),
        parameters=parameters, study_area=f"{area}（共 {road_m / 1000:,.1f} 公里）",
        as_of=as_of,
        validated="两种算法（PostGIS KNN 与 scipy cKDTree）结果一致；采样点与 cKDTree 逐点"
                  "复算一致（Jaccard 1.0）",
        notes=notes)


