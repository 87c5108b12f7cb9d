"""scalar_geodesy.edge_nearest gives geodesy.edge_nearest's bits, edge by edge.

POST /route's nearest other grid measures its few edges with the float version; the batch
path and the full search use the compiled one (gis/dispatch/engine/sphere.py). Compared bit for
bit on random edges around the city (short grid edges and long ones), on degenerate edges,
with the point on a vertex, on an edge's interior and on the edge's great circle outside it.
Both use the C library's sin and cos, as PostGIS does; the numpy version they replaced failed
here on CPUs where numpy computes float64 sin/cos with its own AVX-512 code (SVML).
"""

from __future__ import annotations

import numpy as np

from gis.dispatch.engine import geodesy, scalar_geodesy, sphere


def _compare(plon: np.ndarray, plat: np.ndarray, alon: np.ndarray, alat: np.ndarray,
             blon: np.ndarray, blat: np.ndarray) -> None:
    args = [geodesy.rad(v) for v in (plon, plat, alon, alat, blon, blat)]
    want = geodesy.edge_nearest(*args)
    # The batch kernel's version, from frames computed once per point and per edge.
    frames = sphere.edge_frames(alon, alat, blon, blat)
    framed = sphere.edge_nearest_framed_many(args[0], args[1], frames, np.arange(len(plon)))
    for w, f in zip(want, framed, strict=True):
        np.testing.assert_array_equal(f, w)
    for i in range(len(plon)):
        got = scalar_geodesy.edge_nearest(*(float(a[i]) for a in args))
        expected = tuple(float(w[i]) for w in want)
        assert got == expected, (i, [float(a[i]) for a in (plon, plat, alon, alat, blon,
                                                            blat)], got, expected)


def test_random_edges_around_the_city_match_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    plon, plat = rng.uniform(116.8, 117.25, n), rng.uniform(36.48, 36.87, n)
    # Half short edges near the point (grid cells), half anywhere in the city.
    near = np.arange(n) < n // 2
    spread = np.where(near, 0.003, 0.4)
    alon, alat = plon + rng.normal(0, spread), plat + rng.normal(0, spread)
    blon, blat = alon + rng.normal(0, spread), alat + rng.normal(0, spread)
    _compare(plon, plat, alon, alat, blon, blat)


def test_degenerate_vertex_and_on_edge_cases_match_bit_for_bit() -> None:
    a = np.array([117.0, 36.6])
    b = np.array([117.002, 36.601])
    mid = (a + b) / 2
    beyond = b + (b - a)
    cases = [
        (a, a, a),          # degenerate edge, point on it
        (b, a, a),          # degenerate edge, point away
        (a, a, b),          # point on the start vertex
        (b, a, b),          # point on the end vertex
        (mid, a, b),        # point on the edge
        (beyond, a, b),     # on the great circle, outside the edge
        (mid + np.array([0, 1e-9]), a, b),
        (np.array([117.001, 36.6]), np.array([117.0, 36.6]), np.array([117.002, 36.6])),
        (np.array([117.0, 36.7]), np.array([117.0, 36.6]), np.array([117.0, 36.8])),
    ]
    p, s, e = (np.array([c[k] for c in cases]) for k in range(3))
    _compare(p[:, 0], p[:, 1], s[:, 0], s[:, 1], e[:, 0], e[:, 1])


def test_rad_matches() -> None:
    values = np.random.default_rng(3).uniform(-180, 180, 1000)
    assert [scalar_geodesy.rad(float(v)) for v in values] == geodesy.rad(values).tolist()
