"""geodesy.edge_nearest for a handful of edges and one point, in plain Python floats.

POST /route measures the metres to the nearest other grid over ~5-10 edge rows. On arrays
that small numpy spends its time per operation, not per element: edge_nearest's ~150
operations cost 0.2-0.4 ms of a ~1.5 ms route, the same steps on floats ~10 us per edge.

The arithmetic is that of gis.dispatch.engine.sphere (compiled, behind geodesy.edge_nearest),
operation by operation and in the same order, with the same C library functions, so the bits
are the same on every CPU; tests/dispatch/test_scalar_geodesy.py compares both bit for bit.
"""

from __future__ import annotations

from math import asin, atan2, cos, pi, sin, sqrt

Vec = tuple[float, float, float]


def rad(deg: float) -> float:
    """Degrees to radians as geodesy.rad (M_PI * d / 180.0)."""
    return pi * deg / 180.0


def _normalise(x: float, y: float, z: float) -> Vec:
    d = sqrt(x * x + y * y + z * z)
    if d == 0:
        return 0.0, 0.0, 0.0
    return x / d, y / d, z / d


def _cart(lon: float, lat: float) -> Vec:
    cl = cos(lat)
    return cl * cos(lon), cl * sin(lon), sin(lat)


def _sphere_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    d_lon = lon2 - lon1
    cos_d_lon = cos(d_lon)
    cos_e, sin_e = cos(lat2), sin(lat2)
    cos_s, sin_s = cos(lat1), sin(lat1)
    a1 = cos_e * sin(d_lon)
    a2 = cos_s * sin_e - sin_s * cos_e * cos_d_lon
    return atan2(sqrt(a1 * a1 + a2 * a2), sin_s * sin_e + cos_s * cos_e * cos_d_lon)


def _robust_cross(plon: float, plat: float, qlon: float, qlat: float) -> Vec:
    lon_qpp = (qlon + plon) / -2.0
    lon_qmp = (qlon - plon) / 2.0
    s_minus, s_plus = sin(plat - qlat), sin(plat + qlat)
    s_qpp, s_qmp, c_qpp, c_qmp = sin(lon_qpp), sin(lon_qmp), cos(lon_qpp), cos(lon_qmp)
    return (s_minus * s_qpp * c_qmp - s_plus * c_qpp * s_qmp,
            s_minus * c_qpp * c_qmp + s_plus * s_qpp * s_qmp,
            cos(plat) * cos(qlat) * sin(qlon - plon))


def edge_nearest(plon: float, plat: float, alon: float, alat: float, blon: float,
                 blat: float) -> tuple[float, float, float]:
    """(sphere distance, nearest lon, nearest lat) from a point to one edge (radians)."""
    n0, n1, n2 = _normalise(*_robust_cross(alon, alat, blon, blat))
    p0, p1, p2 = _cart(plon, plat)
    dot = p0 * n0 + p1 * n1 + p2 * n2
    k0, k1, k2 = _normalise(p0 - n0 * dot, p1 - n1 * dot, p2 - n2 * dot)
    klon, klat = atan2(k1, k0), asin(min(max(k2, -1.0), 1.0))
    # edge_point_in_cone: closer to the bisector of the edge's ends than its start is.
    s0, s1, s2 = _cart(alon, alat)
    e0, e1, e2 = _cart(blon, blat)
    c0, c1, c2 = _normalise(s0 + e0, s1 + e1, s2 + e2)
    q0, q1, q2 = _cart(klon, klat)
    vs_dot = s0 * c0 + s1 * c1 + s2 * c2
    vp_dot = q0 * c0 + q1 * c1 + q2 * c2
    in_cone = vp_dot > vs_dot or abs(vp_dot - vs_dot) < 2e-16
    d2 = _sphere_distance(plon, plat, alon, alat)
    if alon == blon and alat == blat:  # a degenerate edge is its start
        return d2, alon, alat
    best, lon, lat = (_sphere_distance(plon, plat, klon, klat) if in_cone else 1e9), klon, klat
    if d2 < best:
        best, lon, lat = d2, alon, alat
    d3 = _sphere_distance(plon, plat, blon, blat)
    if d3 < best:
        best, lon, lat = d3, blon, blat
    return best, lon, lat
