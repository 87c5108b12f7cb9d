"""Distances as PostGIS computes them, vectorised: planar degrees and geography metres.

The routing index must give the SQL path's numbers to the centimetre, so these follow the
PostGIS code paths step by step rather than any "better" formula:

* planar: `lw_dist2d_pt_seg` (projection parameter r clamped to the segment's ends);
* geography point to polygon: the nearest point of each edge on the *sphere*
  (`edge_distance_to_point`: robust cross product, foot of the perpendicular, inside the
  edge's cone or else the nearer end), the edge with the smallest sphere distance wins, and
  the metres are the spheroid (GeographicLib) distance from the point to that nearest point;
* geography point to point: GeographicLib inverse on WGS84; PostGIS rounds every geography
  distance to 1e-8 m (ticket #2168), so do we.
"""

from __future__ import annotations

import numpy as np
from pyproj import Geod

# WGS84 as PostGIS builds it from PROJ (a, b), and GeographicLib's flattening from them.
_A = 6378137.0
_B = _A * (1.0 - 1.0 / 298.257223563)
GEOD = Geod(a=_A, f=(_A - _B) / _A)


def _rad(deg: np.ndarray) -> np.ndarray:
    return np.pi * deg / 180.0  # deg2rad as PostGIS writes it (M_PI * d / 180.0)


def _deg(rad: np.ndarray) -> np.ndarray:
    return rad * 180.0 / np.pi  # spheroid_distance's (r * 180.0 / M_PI)


def geodesic_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray,
               lat2: np.ndarray) -> np.ndarray:
    """Metres between WGS84 points (radians in, as PostGIS holds them), rounded to 1e-8 m."""
    if len(lon1) == 0:
        return np.zeros(0)
    _, _, dist = GEOD.inv(_deg(lon1), _deg(lat1), _deg(lon2), _deg(lat2))
    dist = np.asarray(dist, dtype=np.float64)
    dist[(lon1 == lon2) & (lat1 == lat2)] = 0.0
    return np.round(dist * 1e8) / 1e8


def point_point_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray,
                  lat2: np.ndarray) -> np.ndarray:
    """ST_Distance(geography, geography) between points given in degrees."""
    return geodesic_m(_rad(lon1), _rad(lat1), _rad(lon2), _rad(lat2))


def planar_seg_dist(px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray,
                    bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Planar distance from points to segments, as lw_dist2d_pt_seg computes it."""
    dx, dy = bx - ax, by - ay
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
    r = np.where((dx == 0) & (dy == 0), 0.0, r)
    cx = np.where(r < 0, ax, np.where(r > 1, bx, ax + r * dx))
    cy = np.where(r < 0, ay, np.where(r > 1, by, ay + r * dy))
    hx, hy = cx - px, cy - py
    return np.sqrt(hx * hx + hy * hy)


def _cart(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    cl = np.cos(lat)
    return np.stack([cl * np.cos(lon), cl * np.sin(lon), np.sin(lat)])


def _normalise(v: np.ndarray) -> np.ndarray:
    d = np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d == 0, 0.0, v / d)


def _sphere_distance(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray,
                     lat2: np.ndarray) -> np.ndarray:
    d_lon = lon2 - lon1
    cos_d_lon = np.cos(d_lon)
    cos_e, sin_e = np.cos(lat2), np.sin(lat2)
    cos_s, sin_s = np.cos(lat1), np.sin(lat1)
    a1 = (cos_e * np.sin(d_lon)) ** 2
    a2 = (cos_s * sin_e - sin_s * cos_e * cos_d_lon) ** 2
    return np.arctan2(np.sqrt(a1 + a2), sin_s * sin_e + cos_s * cos_e * cos_d_lon)


def _robust_cross(plon: np.ndarray, plat: np.ndarray, qlon: np.ndarray,
                  qlat: np.ndarray) -> np.ndarray:
    lon_qpp = (qlon + plon) / -2.0
    lon_qmp = (qlon - plon) / 2.0
    s_minus, s_plus = np.sin(plat - qlat), np.sin(plat + qlat)
    s_qpp, s_qmp, c_qpp, c_qmp = np.sin(lon_qpp), np.sin(lon_qmp), np.cos(lon_qpp), np.cos(lon_qmp)
    return np.stack([s_minus * s_qpp * c_qmp - s_plus * c_qpp * s_qmp,
                     s_minus * c_qpp * c_qmp + s_plus * s_qpp * s_qmp,
                     np.cos(plat) * np.cos(qlat) * np.sin(qlon - plon)])


def edge_nearest(plon: np.ndarray, plat: np.ndarray, alon: np.ndarray, alat: np.ndarray,
                 blon: np.ndarray, blat: np.ndarray) -> tuple[np.ndarray, ...]:
    """(sphere distance, nearest lon, nearest lat) from points to great-circle edges (radians)."""
    n = _normalise(_robust_cross(alon, alat, blon, blat))
    p = _cart(plon, plat)
    k = _normalise(p - n * (p * n).sum(axis=0))
    klon, klat = np.arctan2(k[1], k[0]), np.arcsin(np.clip(k[2], -1.0, 1.0))
    # edge_point_in_cone: closer to the bisector of the edge's ends than its start is.
    vs, ve = _cart(alon, alat), _cart(blon, blat)
    vcp = _normalise(vs + ve)
    vs_dot, vp_dot = (vs * vcp).sum(axis=0), (_cart(klon, klat) * vcp).sum(axis=0)
    in_cone = (vp_dot > vs_dot) | (np.abs(vp_dot - vs_dot) < 2e-16)
    d1 = np.where(in_cone, _sphere_distance(plon, plat, klon, klat), 1e9)
    d2 = _sphere_distance(plon, plat, alon, alat)
    d3 = _sphere_distance(plon, plat, blon, blat)
    best = d1.copy()
    lon, lat = klon.copy(), klat.copy()
    take = d2 < best
    best[take], lon[take], lat[take] = d2[take], alon[take], alat[take]
    take = d3 < best
    best[take], lon[take], lat[take] = d3[take], blon[take], blat[take]
    degenerate = (alon == blon) & (alat == blat)
    best[degenerate], lon[degenerate], lat[degenerate] = (d2[degenerate], alon[degenerate],
                                                          alat[degenerate])
    return best, lon, lat


def rad(deg: np.ndarray) -> np.ndarray:
    """Degrees to radians the PostGIS way (so round trips match its bits)."""
    return _rad(np.asarray(deg, dtype=np.float64))
