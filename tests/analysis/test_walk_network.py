"""The coverage walking network on small constructed networks, and a networkx peer check.

Pure cases (no database) for the tolerance merge and the projection joins; one PostGIS case
for a station beside a small island; a random network recomputed with networkx from an
independent slow construction (pairwise vertex union, shapely projection, networkx
multi-source Dijkstra).
"""

from __future__ import annotations

import doctest
import itertools

import networkx as nx
import numpy as np
import pytest
import shapely
from shapely import LineString
from sqlalchemy.orm import Session

from gis.analysis import walk_network
from gis.analysis.station_coverage import run_coverage
from gis.analysis.walk_network import build_network, join_points, network_distances
from tests.analysis.test_dark_streets import BBOX, METRIC, insert_areas, insert_road, square
from tests.analysis.test_station_coverage import insert_station


def walk(lines: list[LineString], sources: list[tuple[float, float]],
         targets: list[tuple[float, float]], max_snap_m: float = 200.0) -> np.ndarray:
    network = build_network(np.array(lines, dtype=object))
    src, tgt = np.array(sources, dtype=float), np.array(targets, dtype=float)
    distance, _ = network_distances(network, join_points(network, src, max_snap_m=max_snap_m),
                                    join_points(network, tgt, max_snap_m=max_snap_m), len(tgt))
    return distance


def test_ends_0_3_m_apart_join_and_0_7_m_apart_do_not() -> None:
    # 100.1 and 100.4 fall on either side of a 0.5 m grid line: rounding kept them apart.
    west = LineString([(0, 0), (100.1, 0)])
    joined = [west, LineString([(100.4, 0), (300, 0)])]
    apart = [west, LineString([(100.8, 0), (300, 0)])]
    assert build_network(np.array(joined)).islands == 1
    assert build_network(np.array(joined)).merged == 1
    assert build_network(np.array(apart)).islands == 2
    # The station at the west end reaches the east end only across the merged node.
    d_joined = walk(joined, [(0, 0)], [(300, 0)], max_snap_m=0.1)
    assert d_joined[0] == pytest.approx(100.1 + 199.6, abs=1e-6)
    assert np.isinf(walk(apart, [(0, 0)], [(300, 0)], max_snap_m=0.1)[0])


def test_a_centre_beside_a_long_segment_joins_mid_segment() -> None:
    road = [LineString([(0, 0), (1000, 0)])]  # one segment, no vertex in between
    d = walk(road, [(0, 0)], [(500, 10), (990, -3)])
    assert d.tolist() == pytest.approx([510.0, 993.0])
    # Station and centre on the same segment: the walk stays on it.
    assert walk(road, [(400, 5)], [(450, 5)])[0] == pytest.approx(60.0)


def test_parallel_segments_keep_the_shorter() -> None:
    # Two roads between the same two nodes: a straight one (100 m) and a detour (300 m).
    roads = [LineString([(0, 0), (100, 0)]), LineString([(0, 0), (0, 100), (100, 100), (100, 0)])]
    assert walk(roads, [(0, 0)], [(100, 0)], max_snap_m=0.1)[0] == pytest.approx(100.0)
    assert doctest.testmod(walk_network).failed == 0


def test_a_station_beside_a_small_island_still_reaches_the_main_network(
        session: Session) -> None:
    # Main street y = 0; a two-road island 6.4 m north of the station; the grid beside the
    # main street 139 m east. Joined to its nearest segment only, the station sat on the island.
    insert_areas(session, {"01": square(100, -60, 80)})
    insert_road(session, [(-500, 0), (500, 0)], "主街")
    insert_road(session, [(-20, 26.4), (20, 26.4)], "孤岛甲")
    insert_road(session, [(20, 26.4), (20, 60)], "孤岛乙")
    insert_station(session, 0, 20)
    run = run_coverage(session, threshold_m=500, method="network", bbox=BBOX,
                       metric_epsg=METRIC)
    [cell] = run.cells.itertuples()
    assert cell.network_m == pytest.approx(20 + 140 + 20, abs=0.01)  # centre (140, -20)
    assert cell.covered and not cell.review and cell.island == 0
    assert run.network["islands"] == 2 and run.network["islands_with_station"] == 2
    assert (run.network["main_island_share"] - 1000 / (1000 + 40 + 33.6)) < 1e-4
    [station] = run.network["stations"]
    assert station["snap_m"] == pytest.approx(6.4, abs=0.01)
    assert station["islands_joined"] == 2
    assert any("2 个孤岛" in note for note in run.about.notes)
    assert "并查集" in run.about.method


def reference_distances(lines: list[LineString], sources: np.ndarray, targets: np.ndarray,
                        tolerance: float, max_snap: float) -> np.ndarray:
    """The slow way: pairwise union, networkx, shapely projections (nearest and main island)."""
    coords = [(i, c) for i, line in enumerate(lines) for c in line.coords]
    parent = list(range(len(coords)))

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in itertools.combinations(range(len(coords)), 2):
        if np.hypot(*np.subtract(coords[a][1], coords[b][1])) <= tolerance:
            parent[find(a)] = find(b)
    graph = nx.Graph()
    segments = []
    k = 0
    for line in lines:
        n = len(line.coords)
        for j in range(n - 1):
            u, v = find(k + j), find(k + j + 1)
            if u != v:
                seg = LineString([line.coords[j], line.coords[j + 1]])
                segments.append((u, v, seg))
                w = min(graph.edges[u, v]["weight"], seg.length) if graph.has_edge(u, v) \
                    else seg.length
                graph.add_edge(u, v, weight=w)
        k += n
    main = max(nx.connected_components(graph),
               key=lambda comp: graph.subgraph(comp).size(weight="weight"))

    def attach(point: np.ndarray, name: str) -> None:
        near = sorted((seg.distance(shapely.Point(point)), u, v, seg) for u, v, seg in segments)
        near = [n for n in near if n[0] <= max_snap]
        on_main = [n for n in near if n[1] in main]
        for d, u, v, seg in {id(n[3]): n for n in near[:1] + on_main[:1]}.values():
            t = seg.project(shapely.Point(point))
            node = ("p", name, id(seg))
            graph.add_edge(name, node, weight=max(d, 1e-9))
            graph.add_edge(node, u, weight=max(t, 1e-9))
            graph.add_edge(node, v, weight=max(seg.length - t, 1e-9))
            for other, t_other in on_segment.setdefault(id(seg), []):
                graph.add_edge(node, other, weight=max(abs(t - t_other), 1e-9))
            on_segment[id(seg)].append((node, t))

    on_segment: dict[int, list[tuple[object, float]]] = {}

    for i, p in enumerate(sources):
        attach(p, f"s{i}")
    for i, p in enumerate(targets):
        attach(p, f"t{i}")
    names = [f"s{i}" for i in range(len(sources)) if graph.has_node(f"s{i}")]
    dist = nx.multi_source_dijkstra_path_length(graph, names)
    return np.array([dist.get(f"t{i}", np.inf) for i in range(len(targets))])


def test_random_network_matches_networkx() -> None:
    rng = np.random.default_rng(7)
    # A jittered 6 x 6 street grid (ends within 0.45 m of each other), some streets missing.
    lines = []
    for i, j in itertools.product(range(6), range(5)):
        if rng.random() < 0.85:
            lines.append(LineString([(j * 120 + rng.uniform(-0.2, 0.2), i * 100),
                                     (j * 120 + 60, i * 100 + rng.uniform(-5, 5)),
                                     ((j + 1) * 120 + rng.uniform(-0.2, 0.2), i * 100)]))
        if rng.random() < 0.85:
            lines.append(LineString([(i * 120, j * 100 + rng.uniform(-0.2, 0.2)),
                                     (i * 120, (j + 1) * 100 + rng.uniform(-0.2, 0.2))]))
    sources = rng.uniform(0, 600, size=(3, 2))
    targets = rng.uniform(-50, 650, size=(60, 2))
    ours = walk(lines, [tuple(p) for p in sources], [tuple(p) for p in targets],
                max_snap_m=40)
    theirs = reference_distances(lines, sources, targets, tolerance=0.5, max_snap=40)
    assert np.isfinite(ours).sum() > 30
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)
