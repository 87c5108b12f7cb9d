"""Station coverage gaps (社区城管工作站服务盲区): unit grids too far from every station.

Distance is measured from a grid's representative point (ST_PointOnSurface) to the nearest
community station, along the street network when one exists, else in a straight line.

Network choice: the Debian cluster here has no pgRouting, and a city's street graph (tens of
thousands of edges) fits easily in memory, so the network path reads the roads once and runs
one multi-source Dijkstra with scipy.sparse.csgraph (scipy is already needed for cKDTree):
every road is split into pieces of at most `node_spacing_m`, vertices closer than 0.5 m are one
node (so roads that share an end or a vertex connect; a road ending mid-way along another
without a shared vertex does not), stations and grid points join the network at their nearest
node, and the straight stretch to that node is added to the distance. A grid point farther
than `max_snap_m` from any road, or in a part of the network no station reaches, falls back to
straight-line distance; `method` says which one each grid got.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox, bbox_filter, bbox_params
from gis.platform.errors import InvalidInputError, NotFoundError

Method = Literal["auto", "network", "straight"]
NODE_TOLERANCE_M = 0.5


def network_distances(
    lines: np.ndarray, sources: np.ndarray, targets: np.ndarray, *, node_spacing_m: float = 20.0,
    max_snap_m: float = 200.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Shortest distance along `lines` from the nearest of `sources` to each of `targets`.

    Parameters
    ----------
    lines : array of LineString
        The street network in a metric CRS.
    sources, targets : ndarray (n x 2)
        Metric coordinates of stations and of grid points.
    node_spacing_m : float
        Roads are split into pieces no longer than this; snapping error is at most half.
    max_snap_m : float
        Targets (and sources) farther than this from the network get no network distance.

    Returns
    -------
    (distance, source_index)
        Per target: metres (inf when unreachable) and the index of the nearest source (-1).

    Examples
    --------
    An L-shaped street: 300 m east then 400 m north. The target at the far end is 500 m away
    in a straight line but 700 m along the street.

    >>> street = np.array([shapely.LineString([(0, 0), (300, 0), (300, 400)])])
    >>> d, s = network_distances(street, np.array([[0.0, 0.0]]), np.array([[300.0, 400.0]]))
    >>> round(float(d[0]), 3), int(s[0])
    (700.0, 0)
    """
    if len(lines) == 0 or len(sources) == 0:
        return np.full(len(targets), np.inf), np.full(len(targets), -1)
    pieces = shapely.segmentize(lines, node_spacing_m)
    coords, line_index = shapely.get_coordinates(pieces, return_index=True)
    # One node per 0.5 m cell: roads sharing a vertex (to rounding) are connected.
    keys = np.round(coords / NODE_TOLERANCE_M).astype(np.int64)
    nodes, first, node_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    node_of = node_of.ravel()
    node_xy = coords[first]  # a real vertex, not the rounded key: snapping stays exact
    same_line = line_index[1:] == line_index[:-1]
    a, b = node_of[:-1][same_line], node_of[1:][same_line]
    length = np.hypot(*(coords[1:][same_line] - coords[:-1][same_line]).T)
    keep = a != b

    n_nodes = len(nodes)
    tree = cKDTree(node_xy)
    source_snap, source_node = tree.query(sources)
    ok = source_snap <= max_snap_m
    # One virtual node per source, tied to its road node by the straight snap distance
    # (a tiny floor: csgraph reads an explicit 0 as "no edge").
    virtual = n_nodes + np.arange(len(sources))
    rows = np.r_[a[keep], virtual[ok]]
    cols = np.r_[b[keep], source_node[ok]]
    weights = np.r_[length[keep], np.maximum(source_snap[ok], 1e-9)]
    size = n_nodes + len(sources)
    graph = sparse.csr_matrix((weights, (rows, cols)), shape=(size, size))
    if not ok.any():
        return np.full(len(targets), np.inf), np.full(len(targets), -1)
    dist, _, origin = dijkstra(graph, directed=False, indices=virtual[ok], min_only=True,
                               return_predecessors=True)
    target_snap, target_node = tree.query(targets)
    distance = target_snap + dist[target_node]
    nearest = np.where(np.isfinite(distance), origin[target_node] - n_nodes, -1)
    far = target_snap > max_snap_m
    distance[far], nearest[far] = np.inf, -1
    return distance, nearest


def find_coverage_gaps(
    session: Session,
    *,
    threshold_m: float = 1000.0,
    method: Method = "auto",
    bbox: BBox | None = None,
    metric_epsg: int = DEFAULT_METRIC_EPSG,
    node_spacing_m: float = 20.0,
    max_snap_m: float = 200.0,
) -> gpd.GeoDataFrame:
    """Distance from every unit grid to its nearest station, and whether it is covered.

    Parameters
    ----------
    session : Session
        Open session; only read.
    threshold_m : float
        A grid farther than this from every station is a coverage gap.
    method : {"auto", "network", "straight"}
        "network" measures along roads (falling back per grid, see the module notes),
        "straight" in a straight line, "auto" uses the network when roads exist.
    bbox : tuple of float, optional
        Only grids meeting this lon/lat box; stations and roads around it still count.
    metric_epsg : int
        Metric CRS of the distances.
    node_spacing_m, max_snap_m : float
        Network granularity and the farthest a point may be from the road to join it.

    Returns
    -------
    GeoDataFrame
        One row per grid (EPSG:4326 polygons): ``grid_code``, ``area_m2``, ``distance_m``,
        ``station_code``, ``station_name``, ``method`` ("network" or "straight"), ``covered``.

    Examples
    --------
    >>> cells = find_coverage_gaps(session, threshold_m=800)  # doctest: +SKIP
    >>> summarise_coverage(cells, by="district")  # doctest: +SKIP
    """
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
    targets = grids[["x", "y"]].to_numpy(dtype=float)
    sources = stations[["x", "y"]].to_numpy(dtype=float)
    straight, straight_source = cKDTree(sources).query(targets) if len(targets) else (
        np.empty(0), np.empty(0, dtype=int))

    distance, source = np.asarray(straight, float), np.asarray(straight_source, int)
    used = np.full(len(grids), "straight", dtype=object)
    if method != "straight":
        lines = _read_roads(session, bbox=bbox, margin_m=threshold_m + max_snap_m,
                            metric_epsg=metric_epsg)
        if len(lines) == 0 and method == "network":
            raise NotFoundError("no roads to measure network distance on; use method=straight")
        if len(lines):
            net, net_source = network_distances(lines, sources, targets,
                                                node_spacing_m=node_spacing_m,
                                                max_snap_m=max_snap_m)
            reached = np.isfinite(net)
            distance = np.where(reached, net, distance)
            source = np.where(reached, net_source, source)
            used[reached] = "network"
    out = grids.drop(columns=["x", "y"]).copy()
    out["distance_m"] = np.round(distance, 2)
    out["station_code"] = stations["code"].to_numpy()[source] if len(out) else []
    out["station_name"] = stations["name"].to_numpy()[source] if len(out) else []
    out["method"] = used
    out["covered"] = out["distance_m"] <= threshold_m
    columns = ["grid_code", "area_m2", "distance_m", "station_code", "station_name", "method",
               "covered", "geom"]
    return out[columns].set_geometry("geom")


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
