"""The walking network of the coverage analysis: tolerance merge, islands, joins by projection.

Road vertices closer than `tolerance_m` (0.5 m) are one node: every pair within the tolerance is
found with a scipy cKDTree and the pairs are united (connected components of the pair graph,
i.e. union-find), so two roads whose ends are 0.3 m apart join wherever the 0.5 m grid lines
fall. Chains merge too (single linkage): ends 0.4 m and 0.4 m apart are one node. A road that
ends mid-way along another, with no vertex of the other within the tolerance, does not connect.

Points (stations, grid centres) join by projection onto the nearest road segment, not the
nearest vertex, so a centre beside a 300 m block joins mid-block. A point joins its nearest
segment and, when that lies on a smaller island, also the nearest segment of the main island
(the longest) within `max_snap_m`, so a station a few metres from a two-road island still joins
the main network behind it (as OpenTripPlanner and R5 link stops to the main graph). Islands
(connected parts of the road graph) and snap distances are reported, never hidden. Distances
are exact along the segments: projection points split their segments before one multi-source
Dijkstra (scipy.sparse.csgraph).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

NODE_TOLERANCE_M = 0.5
TINY = 1e-9  # csgraph reads an explicit 0 as "no edge"


@dataclass(frozen=True)
class WalkNetwork:
    """Road segments between merged nodes, and the islands they form."""

    start: np.ndarray  # node of each segment's start
    end: np.ndarray
    xy0: np.ndarray  # (n x 2) segment start coordinates, metric
    xy1: np.ndarray
    length: np.ndarray
    island: np.ndarray  # island of each segment (0 = the longest)
    n_nodes: int
    merged: int  # vertex pairs of different roads united by the tolerance
    island_m: np.ndarray  # road length per island, longest first

    @property
    def islands(self) -> int:
        """How many separate parts the network falls into."""
        return len(self.island_m)


def build_network(lines: np.ndarray, *, tolerance_m: float = NODE_TOLERANCE_M) -> WalkNetwork:
    """Segments of `lines` (metric LineStrings) with vertices within `tolerance_m` united.

    Examples
    --------
    Two roads whose ends are 0.3 m apart are one network; 0.7 m apart, two islands.

    >>> a = shapely.LineString([(0, 0), (100, 0)])
    >>> build_network(np.array([a, shapely.LineString([(100.3, 0), (200, 0)])])).islands
    1
    >>> build_network(np.array([a, shapely.LineString([(100.7, 0), (200, 0)])])).islands
    2
    """
    coords, line_index = shapely.get_coordinates(lines, return_index=True)
    n = len(coords)
    pairs = cKDTree(coords).query_pairs(tolerance_m, output_type="ndarray") if n else \
        np.empty((0, 2), dtype=np.int64)
    union = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_nodes, node_of = connected_components(union, directed=False)
    merged = int((line_index[pairs[:, 0]] != line_index[pairs[:, 1]]).sum())
    same_line = line_index[1:] == line_index[:-1]
    start, end = node_of[:-1][same_line], node_of[1:][same_line]
    xy0, xy1 = coords[:-1][same_line], coords[1:][same_line]
    keep = start != end  # a segment shorter than the tolerance collapses into its node
    start, end, xy0, xy1 = start[keep], end[keep], xy0[keep], xy1[keep]
    length = np.hypot(*(xy1 - xy0).T)
    graph = sparse.coo_matrix((np.ones(len(start)), (start, end)), shape=(n_nodes, n_nodes))
    _, node_island = connected_components(graph, directed=False)
    island = node_island[start]
    # Renumber islands by road length, longest first, leaving out nodes without segments.
    per_island = pd.Series(length).groupby(island).sum().sort_values(ascending=False)
    rank = pd.Series(np.arange(len(per_island)), index=per_island.index)
    return WalkNetwork(start=start, end=end, xy0=xy0, xy1=xy1, length=length,
                       island=rank.loc[island].to_numpy(), n_nodes=n_nodes, merged=merged,
                       island_m=per_island.to_numpy())


def join_points(network: WalkNetwork, points: np.ndarray, *, max_snap_m: float) -> pd.DataFrame:
    """Joins of `points` to the network: the nearest segment, and the main island's nearest.

    Returns one row per join: ``point``, ``segment``, ``t`` (metres from the segment start to
    the projection), ``snap_m`` (the straight walk from the point to it), ``island``.
    """
    columns = ["point", "segment", "t", "snap_m", "island"]
    if not len(points) or not len(network.length):
        return pd.DataFrame(columns=columns)
    segments = shapely.linestrings(np.stack([network.xy0, network.xy1], axis=1))
    tree = shapely.STRtree(np.asarray(segments, dtype=object))
    point_idx, seg_idx = tree.query(shapely.points(points), predicate="dwithin",
                                    distance=max_snap_m)
    a, b = network.xy0[seg_idx], network.xy1[seg_idx]
    length = network.length[seg_idx]
    t = np.clip(np.einsum("ij,ij->i", points[point_idx] - a, b - a) / length, 0.0, length)
    foot = a + (b - a) * (t / length)[:, None]
    joins = pd.DataFrame({"point": point_idx, "segment": seg_idx, "t": t,
                          "snap_m": np.hypot(*(points[point_idx] - foot).T),
                          "island": network.island[seg_idx]})
    # Only these two: a join to every island in reach would let a walk cut across country
    # from island to island along the straight snap legs.
    nearest = joins.groupby("point")["snap_m"].idxmin().to_numpy()
    main = joins[joins["island"] == 0].groupby("point")["snap_m"].idxmin().to_numpy()
    keep = np.unique(np.r_[nearest, main])
    return joins.loc[keep, columns].sort_values(["point", "snap_m"]).reset_index(drop=True)


def network_distances(network: WalkNetwork, sources: pd.DataFrame, targets: pd.DataFrame,
                      n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Shortest walk from the nearest source to each target, through their joins.

    `sources` and `targets` are joins (see `join_points`). Returns per target the metres
    (inf when no source shares an island with it) and the source point index (-1).
    """
    distance, nearest = np.full(n_targets, np.inf), np.full(n_targets, -1)
    if sources.empty or targets.empty:
        return distance, nearest
    joins = pd.concat([sources.assign(kind=0), targets.assign(kind=1)], ignore_index=True)
    joins["node"] = network.n_nodes + np.arange(len(joins))
    # Split every joined segment at its projection points: a -> p1 -> ... -> pk -> b.
    split = joins.sort_values(["segment", "t"])
    seg = split["segment"].to_numpy()
    first = np.r_[True, seg[1:] != seg[:-1]]
    last = np.r_[seg[1:] != seg[:-1], True]
    prev_node = np.where(first, network.start[seg], np.r_[-1, split["node"].to_numpy()[:-1]])
    prev_t = np.where(first, 0.0, np.r_[0.0, split["t"].to_numpy()[:-1]])
    rows = [prev_node, split["node"].to_numpy()[last]]
    cols = [split["node"].to_numpy(), network.end[seg[last]]]
    weights = [split["t"].to_numpy() - prev_t,
               network.length[seg[last]] - split["t"].to_numpy()[last]]
    untouched = np.setdiff1d(np.arange(len(network.length)), seg)
    rows.append(network.start[untouched])
    cols.append(network.end[untouched])
    weights.append(network.length[untouched])
    # One virtual node per source, tied to its join points by the walk to them.
    source_joins = joins[joins["kind"] == 0]
    source_ids = np.unique(source_joins["point"].to_numpy())
    base = network.n_nodes + len(joins)
    virtual = base + np.searchsorted(source_ids, source_joins["point"].to_numpy())
    rows.append(virtual)
    cols.append(source_joins["node"].to_numpy())
    weights.append(source_joins["snap_m"].to_numpy())
    edges = pd.DataFrame({"u": np.concatenate(rows), "v": np.concatenate(cols),
                          "w": np.maximum(np.concatenate(weights), TINY)})
    # Parallel edges must keep the shortest, not add up as a sparse matrix would.
    edges[["u", "v"]] = np.sort(edges[["u", "v"]].to_numpy(), axis=1)
    edges = edges.groupby(["u", "v"], as_index=False).agg(w=("w", "min"))
    size = base + len(source_ids)
    graph = sparse.csr_matrix((edges["w"], (edges["u"], edges["v"])), shape=(size, size))
    dist, _, origin = dijkstra(graph, directed=False, indices=base + np.arange(len(source_ids)),
                               min_only=True, return_predecessors=True)
    target_joins = joins[joins["kind"] == 1]
    total = target_joins["snap_m"].to_numpy() + dist[target_joins["node"].to_numpy()]
    frame = pd.DataFrame({"point": target_joins["point"].to_numpy(), "total": total,
                          "origin": origin[target_joins["node"].to_numpy()]})
    frame = frame[np.isfinite(frame["total"])]
    if frame.empty:
        return distance, nearest
    best = frame.loc[frame.groupby("point")["total"].idxmin()]
    points = best["point"].to_numpy(dtype=int)
    distance[points] = best["total"].to_numpy()
    nearest[points] = source_ids[best["origin"].to_numpy(dtype=int) - base]
    return distance, nearest
