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

from gis.dispatch.engine import sphere

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


def edge_nearest(plon: np.ndarray, plat: np.ndarray, alon: np.ndarray, alat: np.ndarray,
                 blon: np.ndarray, blat: np.ndarray) -> tuple[np.ndarray, ...]:
    """(sphere distance, nearest lon, nearest lat) from points to great-circle edges (radians).

    `edge_distance_to_point` with the robust cross product, the foot of the perpendicular,
    edge_point_in_cone and the nearer end, compiled in gis.dispatch.engine.sphere so that
    the sines and cosines are the C library's (PostGIS') on every CPU.
    """
    def flat(v: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(v, dtype=np.float64)

    return sphere.edge_nearest_many(flat(plon), flat(plat), flat(alon), flat(alat), flat(blon),
                                    flat(blat))


def rad(deg: np.ndarray) -> np.ndarray:
    """Degrees to radians the PostGIS way (so round trips match its bits)."""
    return _rad(np.asarray(deg, dtype=np.float64))
