"""PostGIS' point-to-edge step on the sphere, compiled (numba) with the C library's sin and cos.

`edge_distance_to_point` in PostGIS finds the nearest point of a great-circle edge with sines,
cosines, atan2 and asin of the C library. numpy's float64 sin and cos differ from those in
the last bit on CPUs where numpy uses its own AVX-512 versions (SVML), and that last bit
moved about 1 % of near-boundary metres by 1e-8 m against the SQL path on such a machine.
Compiled without fast-math (no reassociation, no fused multiply-add), these functions give
the C library's bits, as scalar_geodesy does in plain Python, on every CPU. The steps are
scalar_geodesy's, operation by operation (tests/dispatch/test_scalar_geodesy.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Columns of an edge's frame (edge_frames): what edge_nearest_one derives from the edge alone.
_N, _C, _VS, _COS_A, _SIN_A, _COS_B, _SIN_B, _LON_A, _LAT_A, _LON_B, _LAT_B = (
    0, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14)
FRAME_COLUMNS = 15


@njit(cache=True, nogil=True)
def _normalise(x: float, y: float, z: float) -> tuple[float, float, float]:
    d = math.sqrt(x * x + y * y + z * z)
    if d == 0:
        return 0.0, 0.0, 0.0
    return x / d, y / d, z / d


@njit(cache=True, nogil=True)
def _cart(lon: float, lat: float) -> tuple[float, float, float]:
    cl = math.cos(lat)
    return cl * math.cos(lon), cl * math.sin(lon), math.sin(lat)


@njit(cache=True, nogil=True)
def edge_nearest_one(plon: float, plat: float, alon: float, alat: float, blon: float,
                     blat: float) -> tuple[float, float, float]:
    """(sphere distance, nearest lon, nearest lat) from a point to one edge, in radians."""
    frame = np.empty(FRAME_COLUMNS)
    _fill_frame(frame, alon, alat, blon, blat)
    p0, p1, p2, cos_p, sin_p = point_frame(plon, plat)
    return edge_nearest_framed(plon, p0, p1, p2, cos_p, sin_p, frame)


@njit(cache=True, nogil=True)
def rad_one(deg: float) -> float:
    """geodesy.rad for one value."""
    return math.pi * deg / 180.0


@njit(cache=True, nogil=True)
def edge_nearest_many(plon: np.ndarray, plat: np.ndarray, alon: np.ndarray, alat: np.ndarray,
                      blon: np.ndarray, blat: np.ndarray) -> tuple[np.ndarray, ...]:
    """edge_nearest_one over arrays: (sphere distance, nearest lon, nearest lat)."""
    n = len(plon)
    d, lon, lat = np.empty(n), np.empty(n), np.empty(n)
    frame = np.empty(FRAME_COLUMNS)  # one scratch frame, refilled per row
    for i in range(n):
        _fill_frame(frame, alon[i], alat[i], blon[i], blat[i])
        p0, p1, p2, cos_p, sin_p = point_frame(plon[i], plat[i])
        d[i], lon[i], lat[i] = edge_nearest_framed(plon[i], p0, p1, p2, cos_p, sin_p, frame)
    return d, lon, lat


@njit(cache=True, nogil=True)
def _fill_frame(row: np.ndarray, alon: float, alat: float, blon: float, blat: float) -> None:
    """An edge's frame (radians in): the steps of PostGIS' edge_distance_to_point that depend
    on the edge alone (robust normal, cone bisector), its ends and their sines and cosines."""
    lon_qpp = (blon + alon) / -2.0
    lon_qmp = (blon - alon) / 2.0
    s_minus, s_plus = math.sin(alat - blat), math.sin(alat + blat)
    s_qpp, s_qmp = math.sin(lon_qpp), math.sin(lon_qmp)
    c_qpp, c_qmp = math.cos(lon_qpp), math.cos(lon_qmp)
    n0, n1, n2 = _normalise(s_minus * s_qpp * c_qmp - s_plus * c_qpp * s_qmp,
                            s_minus * c_qpp * c_qmp + s_plus * s_qpp * s_qmp,
                            math.cos(alat) * math.cos(blat) * math.sin(blon - alon))
    s0, s1, s2 = _cart(alon, alat)
    e0, e1, e2 = _cart(blon, blat)
    c0, c1, c2 = _normalise(s0 + e0, s1 + e1, s2 + e2)
    row[_N], row[_N + 1], row[_N + 2] = n0, n1, n2
    row[_C], row[_C + 1], row[_C + 2] = c0, c1, c2
    row[_VS] = s0 * c0 + s1 * c1 + s2 * c2
    row[_COS_A], row[_SIN_A] = math.cos(alat), math.sin(alat)
    row[_COS_B], row[_SIN_B] = math.cos(blat), math.sin(blat)
    row[_LON_A], row[_LAT_A], row[_LON_B], row[_LAT_B] = alon, alat, blon, blat


@njit(cache=True, nogil=True)
def edge_frames(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Per edge (degrees in): its frame (_fill_frame)."""
    out = np.empty((len(ax), FRAME_COLUMNS))
    for e in range(len(ax)):
        _fill_frame(out[e], rad_one(ax[e]), rad_one(ay[e]), rad_one(bx[e]), rad_one(by[e]))
    return out


@njit(cache=True, nogil=True)
def _sphere_from(plon: float, cos_s: float, sin_s: float, lon2: float, cos_e: float,
                 sin_e: float) -> float:
    """_sphere_distance with the sines and cosines of both latitudes given."""
    d_lon = lon2 - plon
    cos_d_lon = math.cos(d_lon)
    a1 = cos_e * math.sin(d_lon)
    a2 = cos_s * sin_e - sin_s * cos_e * cos_d_lon
    return math.atan2(math.sqrt(a1 * a1 + a2 * a2), sin_s * sin_e + cos_s * cos_e * cos_d_lon)


@njit(cache=True, nogil=True)
def point_frame(plon: float, plat: float) -> tuple[float, float, float, float, float]:
    """(x, y, z on the unit sphere, cos, sin of the latitude) of a point given in radians."""
    cl, sl = math.cos(plat), math.sin(plat)
    return cl * math.cos(plon), cl * math.sin(plon), sl, cl, sl


@njit(cache=True, nogil=True)
def edge_nearest_framed(plon: float, p0: float, p1: float, p2: float, cos_p: float,
                        sin_p: float, f: np.ndarray) -> tuple[float, float, float]:
    """edge_nearest_one from the point's frame and the edge's frame: the same bits, fewer sines.

    Every value taken from a frame is the one edge_nearest_one computes from the same inputs
    with the same functions, so the result does not change (test_scalar_geodesy).
    """
    n0, n1, n2 = f[_N], f[_N + 1], f[_N + 2]
    dot = p0 * n0 + p1 * n1 + p2 * n2
    k0, k1, k2 = _normalise(p0 - n0 * dot, p1 - n1 * dot, p2 - n2 * dot)
    klon, klat = math.atan2(k1, k0), math.asin(min(max(k2, -1.0), 1.0))
    ckl = math.cos(klat)
    q0, q1, q2 = ckl * math.cos(klon), ckl * math.sin(klon), math.sin(klat)
    vs_dot = f[_VS]
    vp_dot = q0 * f[_C] + q1 * f[_C + 1] + q2 * f[_C + 2]
    in_cone = vp_dot > vs_dot or abs(vp_dot - vs_dot) < 2e-16
    alon, alat, blon, blat = f[_LON_A], f[_LAT_A], f[_LON_B], f[_LAT_B]
    d2 = _sphere_from(plon, cos_p, sin_p, alon, f[_COS_A], f[_SIN_A])
    if alon == blon and alat == blat:
        return d2, alon, alat
    best, lon, lat = 1e9, klon, klat
    if in_cone:
        best = _sphere_from(plon, cos_p, sin_p, klon, ckl, q2)
    if d2 < best:
        best, lon, lat = d2, alon, alat
    d3 = _sphere_from(plon, cos_p, sin_p, blon, f[_COS_B], f[_SIN_B])
    if d3 < best:
        best, lon, lat = d3, blon, blat
    return best, lon, lat


@njit(cache=True, nogil=True)
def edge_nearest_framed_many(plon: np.ndarray, plat: np.ndarray, frames: np.ndarray,
                             edge: np.ndarray) -> tuple[np.ndarray, ...]:
    """edge_nearest_framed for points (radians) and edge rows of `frames`."""
    n = len(plon)
    d, lon, lat = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        p0, p1, p2, cp, sp = point_frame(plon[i], plat[i])
        d[i], lon[i], lat[i] = edge_nearest_framed(plon[i], p0, p1, p2, cp, sp,
                                                   frames[edge[i]])
    return d, lon, lat
