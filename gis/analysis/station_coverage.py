"""Station coverage gaps (社区城管工作站服务盲区): unit grids too far from every station.

Distance is measured from a grid's representative point (ST_PointOnSurface) to the nearest
community station. Two distances are kept apart, never mixed: `straight_m` (always) and
`network_m`, the walk along the street network (gis.analysis.walk_network: vertices within
0.5 m united, points joined by projection onto the nearest segment of each island within
`max_snap_m`, one multi-source Dijkstra). `distance_m` is the one `method` decides by; with the
network, a grid that cannot reach a station (too far from any road, or on an island without a
station) has no distance, is not covered and is flagged for review, as is a grid whose walk is
more than `DETOUR_REVIEW` times the straight line (a river, a rail line, a missing link).

Network choice: the Debian cluster here has no pgRouting, and a city's street graph (tens of
thousands of edges) fits easily in memory, so the roads are read once and searched with
scipy.sparse.csgraph (scipy is already needed for cKDTree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.about import AnalysisAbout, now_in_china
from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox, bbox_filter, bbox_params
from gis.analysis.walk_network import (
    NODE_TOLERANCE_M,
    WalkNetwork,
    build_network,
    join_points,
    network_distances,
)
from gis.platform.errors import InvalidInputError, NotFoundError

Method = Literal["auto", "network", "straight"]
DETOUR_REVIEW = 3.0  # a walk longer than 3x the straight line is worth a look
REVIEW_FAR = "距路网超过 {:g} 米，无法按路网计算"
REVIEW_ISLAND = "所在路网孤岛没有工作站"
REVIEW_DETOUR = "路网距离超过直线距离 3 倍"
COLUMNS = ["grid_code", "area_m2", "distance_m", "network_m", "straight_m", "snap_m",
           "island", "station_code", "station_name", "method", "covered", "review",
           "review_reason", "geom"]


@dataclass(frozen=True)
class CoverageRun:
    """Grids of a coverage run, the network it walked on, and what the run was."""

    cells: gpd.GeoDataFrame
    network: dict[str, Any]  # islands, merged vertex pairs, station snaps
    about: AnalysisAbout


def find_coverage_gaps(session: Session, **options: Any) -> gpd.GeoDataFrame:
    """The grids of `run_coverage` alone (same options)."""
    return run_coverage(session, **options).cells


def run_coverage(
    session: Session,
    *,
    threshold_m: float = 1000.0,
    method: Method = "auto",
    bbox: BBox | None = None,
    metric_epsg: int = DEFAULT_METRIC_EPSG,
    max_snap_m: float = 200.0,
) -> CoverageRun:
    """Distance from every unit grid to its nearest station, and whether it is covered.

    Parameters
    ----------
    session : Session
        Open session; only read.
    threshold_m : float
        A grid farther than this from every station is a coverage gap.
    method : {"auto", "network", "straight"}
        "network" walks along roads, "straight" measures the straight line, "auto" uses the
        network when roads exist.
    bbox : tuple of float, optional
        Only grids meeting this lon/lat box; stations and roads around it still count.
    metric_epsg : int
        Metric CRS of the distances.
    max_snap_m : float
        The farthest a grid centre or station may be from a road to join the network.

    Returns
    -------
    CoverageRun
        ``cells``: one row per grid (EPSG:4326 polygons): ``grid_code``, ``area_m2``,
        ``distance_m`` (by `method`; None when the network cannot reach the grid),
        ``network_m``, ``straight_m``, ``snap_m``, ``island``, ``station_code``,
        ``station_name``, ``method``, ``covered``, ``review``, ``review_reason``;
        ``network``: islands, merged vertices, station snaps; ``about``: the method statement.

    Examples
    --------
    >>> run = run_coverage(session, threshold_m=800)  # doctest: +SKIP
    >>> summarise_coverage(run.cells, by="district")  # doctest: +SKIP
    """
    inputs = read_coverage_inputs(session, threshold_m=threshold_m, method=method, bbox=bbox,
                                  metric_epsg=metric_epsg, max_snap_m=max_snap_m)
    cells = coverage_cells(inputs, inputs.grids, threshold_m=threshold_m, max_snap_m=max_snap_m)
    return CoverageRun(cells, inputs.report, coverage_about(
        cells, inputs.report, coverage_parameters(threshold_m, method, max_snap_m, bbox,
                                                  metric_epsg),
        bbox=bbox, use_network=inputs.network is not None))


@dataclass(frozen=True)
class CoverageInputs:
    """What every grid's distance is measured against: stations, and the walk network."""

    grids: gpd.GeoDataFrame  # grid_code, area_m2, x, y (metric representative point), geom
    stations: pd.DataFrame  # code, name, x, y (metric)
    network: WalkNetwork | None  # None: straight-line distances
    source_joins: pd.DataFrame  # the stations' joins to the network (empty without one)
    report: dict[str, Any]


def coverage_parameters(threshold_m: float, method: Method, max_snap_m: float,
                        bbox: BBox | None, metric_epsg: int) -> dict[str, Any]:
    """The parameters a coverage run records in its method statement."""
    return {"threshold_m": threshold_m, "method": method, "max_snap_m": max_snap_m,
            "node_tolerance_m": NODE_TOLERANCE_M, "detour_review": DETOUR_REVIEW,
            "bbox": list(bbox) if bbox else None, "metric_epsg": metric_epsg}


def read_coverage_inputs(session: Session, *, threshold_m: float, method: Method,
                         bbox: BBox | None, metric_epsg: int, max_snap_m: float
                         ) -> CoverageInputs:
    """Grids, stations and (unless straight) the walk network with the stations joined."""
    if not threshold_m > 0:
        raise InvalidInputError(f"threshold_m must be > 0, not {threshold_m!r}")
    if method not in ("auto", "network", "straight"):
        raise InvalidInputError(f"unknown method {method!r}; expected auto, network, straight")
    conn = session.connection()
    params = {"srid": metric_epsg, **bbox_params(bbox)}
    grids = gpd.read_postgis(text(f"""
        SELECT g.code AS grid_code, g.area_m2, ST_X(p) AS x, ST_Y(p) AS y, g.geom
        FROM grid_cells g, LATERAL (SELECT ST_Transform(ST_PointOnSurface(g.geom), :srid) AS p) t
        WHERE {bbox_filter('g.geom')} ORDER BY g.code"""), conn, geom_col="geom", params=params)
    stations = pd.read_sql(text("""
        SELECT s.code, s.name, ST_X(p) AS x, ST_Y(p) AS y
        FROM stations s, LATERAL (SELECT ST_Transform(s.geom, :srid) AS p) t ORDER BY s.code"""),
        conn, params={"srid": metric_epsg})
    if stations.empty:
        raise NotFoundError("no community stations in the stations table: nothing to measure")
    report: dict[str, Any] = {"roads": 0, "islands": 0, "merged_vertex_pairs": 0,
                              "stations": []}
    lines = np.empty(0, dtype=object)
    if method != "straight":
        lines = _read_roads(session, bbox=bbox, margin_m=threshold_m + max_snap_m,
                            metric_epsg=metric_epsg)
        if len(lines) == 0 and method == "network":
            raise NotFoundError("no roads to measure network distance on; use method=straight")
    if len(lines) == 0:
        return CoverageInputs(grids, stations, None, pd.DataFrame(), report)
    network = build_network(lines)
    sources = stations[["x", "y"]].to_numpy(dtype=float)
    source_joins = join_points(network, sources, max_snap_m=max_snap_m)
    report = network_report(network, stations, source_joins, roads=len(lines))
    return CoverageInputs(grids, stations, network, source_joins, report)


def coverage_cells(inputs: CoverageInputs, grids: gpd.GeoDataFrame, *, threshold_m: float,
                   max_snap_m: float) -> gpd.GeoDataFrame:
    """Distance, nearest station and coverage of `grids` (some or all of `inputs.grids`).

    Each grid's row depends only on that grid and `inputs`, so the grids may be measured in
    parts (gis.analysis.distributed.coverage_runs) and the parts put together.
    """
    grids = grids.reset_index(drop=True)
    stations = inputs.stations
    targets = grids[["x", "y"]].to_numpy(dtype=float)
    sources = stations[["x", "y"]].to_numpy(dtype=float)
    straight, straight_source = cKDTree(sources).query(targets) if len(targets) else (
        np.empty(0), np.empty(0, dtype=int))
    out = grids.drop(columns=["x", "y"]).copy()
    out["straight_m"] = np.round(np.asarray(straight, float), 2)
    straight_source = np.asarray(straight_source, int)
    for column in ("network_m", "snap_m"):
        out[column] = np.nan
    out["island"] = pd.array([pd.NA] * len(out), dtype="Int64")
    network = inputs.network
    use_network = network is not None
    source = straight_source
    if network is not None:
        target_joins = join_points(network, targets, max_snap_m=max_snap_m)
        net, net_source = network_distances(network, inputs.source_joins, target_joins,
                                            len(targets))
        nearest_join = target_joins.drop_duplicates("point")  # sorted by snap: the nearest
        out.loc[nearest_join["point"].to_numpy(), "snap_m"] = nearest_join["snap_m"].round(
            2).to_numpy()
        out.loc[nearest_join["point"].to_numpy(), "island"] = nearest_join["island"].to_numpy()
        out["network_m"] = np.where(np.isfinite(net), np.round(net, 2), np.nan)
        source = np.where(net_source >= 0, net_source, straight_source)
    out["method"] = "network" if use_network else "straight"
    out["distance_m"] = out["network_m"] if use_network else out["straight_m"]
    out["station_code"] = stations["code"].to_numpy()[source] if len(out) else []
    out["station_name"] = stations["name"].to_numpy()[source] if len(out) else []
    out["covered"] = (out["distance_m"] <= threshold_m).fillna(False).astype(bool)
    out["review_reason"] = _review_reasons(out, use_network, max_snap_m)
    out["review"] = out["review_reason"].notna()
    out["distance_m"] = out["distance_m"].astype(object).where(out["distance_m"].notna(), None)
    return out[COLUMNS].set_geometry("geom")


def _review_reasons(out: pd.DataFrame, use_network: bool, max_snap_m: float) -> pd.Series:
    reasons = pd.Series([None] * len(out), index=out.index, dtype=object)
    if not use_network:
        return reasons
    detour = out["network_m"] > DETOUR_REVIEW * out["straight_m"]
    reasons[detour] = REVIEW_DETOUR
    reasons[out["network_m"].isna()] = REVIEW_ISLAND
    reasons[out["snap_m"].isna()] = REVIEW_FAR.format(max_snap_m)
    return reasons


def network_report(network: WalkNetwork, stations: pd.DataFrame, joins: pd.DataFrame, *,
                   roads: int) -> dict[str, Any]:
    """Islands, merged vertex pairs and how each station joins the network."""
    nearest = joins.drop_duplicates("point")  # sorted by snap distance: the nearest first
    snap = dict(zip(nearest["point"], nearest["snap_m"], strict=True))
    island = dict(zip(nearest["point"], nearest["island"], strict=True))
    snaps = []
    for i, row in enumerate(stations.itertuples()):
        snaps.append({"station_code": row.code, "station_name": row.name,
                      "snap_m": round(float(snap[i]), 2) if i in snap else None,
                      "island": int(island[i]) if i in island else None,
                      "islands_joined": int((joins["point"] == i).sum())})
    with_station = {int(x) for x in joins["island"]}
    return {"roads": roads, "segments": len(network.length), "islands": network.islands,
            "main_island_share": round(float(network.island_m[0] / network.island_m.sum()), 4)
            if network.islands else None,
            "islands_with_station": len(with_station),
            "merged_vertex_pairs": network.merged, "stations": snaps}


def coverage_about(cells: pd.DataFrame, report: dict[str, Any], parameters: dict[str, Any], *,
                   bbox: BBox | None, use_network: bool) -> AnalysisAbout:
    """The method statement of a coverage run."""
    if use_network:
        method = (f"沿路网步行距离：道路顶点相距 {NODE_TOLERANCE_M:g} 米以内合并为一个节点"
                  "（cKDTree 配对后并查集合并），网格代表点与工作站按垂足接入最近路段（每个路网"
                  f"孤岛取最近一段，{parameters['max_snap_m']:g} 米以内），多源 Dijkstra 求最短"
                  "路；直线距离单独列出，不混入路网距离。路网距离超过直线 3 倍或无法到达的网格"
                  "标记为待核查。")
    else:
        method = "直线距离：网格代表点到最近工作站的直线距离（scipy cKDTree）。"
    notes = [f"待核查网格 {int(cells['review'].sum())} 个，未覆盖 {int((~cells['covered']).sum())}"
             f" 个，共 {len(cells)} 个。"]
    if use_network:
        notes.append(f"路网 {report['roads']} 条道路、{report['segments']} 段，"
                     f"分为 {report['islands']} 个孤岛（最大占总长 "
                     f"{report['main_island_share']:.1%}），{report['islands_with_station']} 个"
                     f"孤岛有工作站接入；容差合并顶点对 {report['merged_vertex_pairs']} 处。")
        far = [s for s in report["stations"] if s["snap_m"] is None or s["snap_m"] > 50]
        for s in far:
            snap = (f"超过 {parameters['max_snap_m']:g}" if s["snap_m"] is None
                    else f"{s['snap_m']:g}")
            notes.append(f"工作站 {s['station_name']} 距路网 {snap} 米。")
    area = ("范围框 " + ",".join(f"{v:g}" for v in bbox) + " 内的单元网格" if bbox
            else "全部单元网格")
    return AnalysisAbout(
        title="社区城管工作站覆盖", method=method, parameters=parameters,
        study_area=f"{area}（{len(cells)} 个）", as_of=now_in_china(),
        validated="路网距离与 networkx 最短路一致（测试中逐个复算）；直线距离即 cKDTree",
        notes=notes)


def summarise_coverage(cells: pd.DataFrame, *, by: Literal["city", "street", "district"] =
                       "district") -> pd.DataFrame:
    """Grids and area uncovered per area (the population-free measure of a coverage gap).

    Examples
    --------
    >>> cells = pd.DataFrame({"grid_code": ["37010200100101", "37010200100102"],
    ...                       "area_m2": [10_000.0, 12_000.0], "covered": [True, False]})
    >>> row = summarise_coverage(cells).iloc[0]
    >>> int(row.grids), int(row.uncovered), float(row.uncovered_km2)
    (2, 1, 0.012)
    """
    widths = {"city": 0, "street": 9, "district": 6}
    if by not in widths:
        raise InvalidInputError(f"unknown summary level {by!r}; expected city, street, district")
    key = f"{by}_code"
    frame = pd.DataFrame(cells).assign(
        **{key: lambda f: f["grid_code"].str[: widths[by]] if widths[by] else "city"},
        _uncovered_area=lambda f: f["area_m2"].where(~f["covered"], 0.0))
    summary = frame.groupby(key).agg(
        grids=("grid_code", "size"), uncovered=("covered", lambda c: int((~c).sum())),
        area_km2=("area_m2", lambda a: a.sum() / 1e6),
        uncovered_km2=("_uncovered_area", lambda a: a.sum() / 1e6)).reset_index()
    summary["uncovered_share"] = (summary["uncovered"] / summary["grids"]).round(4)
    summary[["area_km2", "uncovered_km2"]] = summary[["area_km2", "uncovered_km2"]].round(6)
    return summary.sort_values("uncovered_km2", ascending=False).reset_index(drop=True)


def _read_roads(session: Session, *, bbox: BBox | None, margin_m: float,
                metric_epsg: int) -> np.ndarray:
    where = "true"
    params: dict[str, object] = {"srid": metric_epsg}
    if bbox is not None:
        # Roads reaching `margin_m` beyond the box can carry the shortest path.
        where = ("r.geom && ST_Expand(ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326), "
                 ":margin / 80000.0)")  # > margin metres in degrees at China's latitudes
        params.update(bbox_params(bbox), margin=margin_m)
    rows = session.execute(text(
        f"SELECT ST_AsBinary(ST_Transform(r.geom, :srid)) FROM roads r WHERE {where}"),
        params).scalars().all()
    return shapely.from_wkb([bytes(r) for r in rows]) if rows else np.empty(0, dtype=object)
