"""Batch routing's per-point loops, compiled (numba): containment near edges, near boundary.

`RoutingIndex.nearest_other(inside=True)` in numpy expanded every (point, candidate grid,
edge) row into arrays: ring distances, raster boxes, a sort of a few million keys, planar
distances, winding numbers and sphere distances, each a pass over memory. `near_pairs` does
the same steps per point in registers and stops early where it can: the ring check ends at
the first edge within reach, and only the candidates whose box is within reach are measured.
`locate_checked` is GridRaster.locate's exact test on the points of edge-touched raster cells.

The arithmetic is that of gis.dispatch.engine.polygons and gis.dispatch.engine.geodesy, step
by step and in the same order (numba compiles it without fast-math, so no reassociation or
fused multiply-add), with the C library's sines and cosines (gis.dispatch.engine.sphere).
`near_pairs` stops before the spheroid: it returns, per candidate within reach, the nearest
point on the sphere, and marks the pairs that can win (`needed`): the spheroid metres of a
pair lie between R_LO and R_HI times its sphere angle; only those are measured in
GeographicLib by the caller.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gis.dispatch.engine.sphere import edge_nearest_framed, point_frame, rad_one

# Metres per radian of sphere angle between two WGS84 points lie within [b^2/a, a^2/b]
# (6,335,439 to 6,399,594 m); these bounds are wider, for any length of line.
R_LO, R_HI = 6_300_000.0, 6_450_000.0
_CHECK = -1
_MAX_CAND = 64  # candidates per point before the loop reallocates its scratch space


@njit(cache=True, nogil=True)
def _ring_within(px: float, py: float, g: int, pad: float, ax: np.ndarray, ay: np.ndarray,
                 bx: np.ndarray, by: np.ndarray, first: np.ndarray) -> bool:
    """Polygons.ring_distance(p, g) <= pad, stopping at the first edge within pad."""
    best = np.inf
    for e in range(first[g], first[g + 1]):
        dx, dy = bx[e] - ax[e], by[e] - ay[e]
        x, y = px - ax[e], py - ay[e]
        length2 = dx * dx + dy * dy
        if length2 == 0:
            r = 0.0
        else:
            r = min(max((x * dx + y * dy) / length2, 0.0), 1.0)
        x -= r * dx
        y -= r * dy
        d2 = x * x + y * y
        if d2 < best:
            best = d2
            if math.sqrt(best) <= pad:
                return True
    return math.sqrt(best) <= pad


@njit(cache=True, nogil=True)
def _planar(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """geodesy.planar_seg_dist for one point and one segment."""
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        r = 0.0
    else:
        r = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
    if r < 0:
        cx, cy = ax, ay
    elif r > 1:
        cx, cy = bx, by
    else:
        cx, cy = ax + r * dx, ay + r * dy
    hx, hy = cx - px, cy - py
    return math.sqrt(hx * hx + hy * hy)


@njit(cache=True, nogil=True)
def _intersects(px: float, py: float, h: int, ax: np.ndarray, ay: np.ndarray, bx: np.ndarray,
                by: np.ndarray, ring: np.ndarray, hole: np.ndarray, first: np.ndarray) -> bool:
    """Polygons._winding for one pair: inside (exterior winds, no hole does) or on an edge."""
    in_ext = False
    in_hole = False
    wn = 0
    e0, e1 = first[h], first[h + 1]
    for e in range(e0, e1):
        xa, ya, xb, yb = ax[e], ay[e], bx[e], by[e]
        if not (xa == xb and ya == yb) and py <= max(ya, yb) and py >= min(ya, yb):
            side = (px - xa) * (yb - ya) - (xb - xa) * (py - ya)
            if side == 0 and px >= min(xa, xb) and px <= max(xa, xb):
                return True  # on the boundary
            if side < 0 and ya <= py and py < yb:
                wn += 1
            elif side > 0 and yb <= py and py < ya:
                wn -= 1
        if e + 1 == e1 or ring[e + 1] != ring[e]:  # end of a ring
            if wn != 0:
                if hole[ring[e]]:
                    in_hole = True
                else:
                    in_ext = True
            wn = 0
    return in_ext and not in_hole


@njit(cache=True, nogil=True)
def near_pairs(x: np.ndarray, y: np.ndarray, own: np.ndarray, reach: float, factor: float,
               ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray,
               ring: np.ndarray, hole: np.ndarray, first: np.ndarray, bounds: np.ndarray,
               x0: float, y0: float, step: float, nx: int, ny: int, value: np.ndarray,
               cand_first: np.ndarray, cand_poly: np.ndarray,
               frames: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per point inside grid own[i]: every other grid within `reach` (planar), nearest points.

    Returns pairs (point, grid, hit, sphere angle, nearest lon, lat in radians, needed):
    `needed` marks the pairs whose spheroid metres can be the point's smallest.
    """
    pad = reach * (1 + 1e-9) + 1e-12
    cap = max(len(x), 16)
    o_pt = np.empty(cap, np.int64)
    o_poly = np.empty(cap, np.int64)
    o_hit = np.empty(cap, np.bool_)
    o_sph = np.empty(cap, np.float64)
    o_lon = np.empty(cap, np.float64)
    o_lat = np.empty(cap, np.float64)
    n_out = 0
    cand = np.empty(_MAX_CAND, np.int64)
    for i in range(len(x)):
        px, py, g = x[i], y[i], own[i]
        if not _ring_within(px, py, g, pad, ax, ay, bx, by, first):
            continue
        # Grids meeting the raster cells of the reach box (as GridRaster.box_pairs).
        iu1 = int(min(max(math.floor(((px - pad) - x0) / step), 0), nx - 1))
        iv1 = int(min(max(math.floor(((py - pad) - y0) / step), 0), ny - 1))
        iu2 = int(min(max(math.floor(((px + pad) - x0) / step), 0), nx - 1))
        iv2 = int(min(max(math.floor(((py + pad) - y0) / step), 0), ny - 1))
        k = 0
        for iv in range(iv1, iv2 + 1):
            for iu in range(iu1, iu2 + 1):
                c = iv * nx + iu
                v = value[c]
                if v >= 0:
                    lo, hi, single = 0, 1, True
                elif v == _CHECK:
                    lo, hi, single = cand_first[c], cand_first[c + 1], False
                else:
                    continue
                for j in range(lo, hi):
                    h = v if single else cand_poly[j]
                    if h == g:
                        continue
                    seen = False
                    for m in range(k):
                        if cand[m] == h:
                            seen = True
                            break
                    if seen:
                        continue
                    if k == len(cand):
                        grown = np.empty(2 * k, np.int64)
                        grown[:k] = cand[:k]
                        cand = grown
                    cand[k] = h
                    k += 1
        if k == 0:
            continue
        plon = rad_one(px)
        p0, p1, p2, cos_p, sin_p = point_frame(plon, rad_one(py))
        for m in range(k):
            h = cand[m]
            b = bounds[h]
            gx = max(max(b[0] - px, px - b[2]), 0.0)
            gy = max(max(b[1] - py, py - b[3]), 0.0)
            if math.sqrt(gx * gx + gy * gy) > reach:
                continue
            best = np.inf
            for e in range(first[h], first[h + 1]):
                d = _planar(px, py, ax[e], ay[e], bx[e], by[e])
                if d < best:
                    best = d
            hit = _intersects(px, py, h, ax, ay, bx, by, ring, hole, first)
            if (0.0 if hit else best) > reach:
                continue
            # Polygons._metres: edges within factor x the nearest planar one; the first with
            # the smallest sphere distance gives the nearest point.
            limit = best * factor + 1e-15
            s_best, s_lon, s_lat = np.inf, 0.0, 0.0
            for e in range(first[h], first[h + 1]):
                if _planar(px, py, ax[e], ay[e], bx[e], by[e]) > limit:
                    continue
                s, nlon, nlat = edge_nearest_framed(plon, p0, p1, p2, cos_p, sin_p, frames[e])
                if s < s_best:
                    s_best, s_lon, s_lat = s, nlon, nlat
            if n_out == len(o_pt):
                o_pt, o_poly, o_hit = _grow_i(o_pt), _grow_i(o_poly), _grow_b(o_hit)
                o_sph, o_lon, o_lat = _grow_f(o_sph), _grow_f(o_lon), _grow_f(o_lat)
            o_pt[n_out], o_poly[n_out], o_hit[n_out] = i, h, hit
            o_sph[n_out], o_lon[n_out], o_lat[n_out] = s_best, s_lon, s_lat
            n_out += 1
    needed = _needed(o_pt[:n_out], o_hit[:n_out], o_sph[:n_out])
    return (o_pt[:n_out], o_poly[:n_out], o_hit[:n_out], o_sph[:n_out], o_lon[:n_out],
            o_lat[:n_out], needed)


@njit(cache=True, nogil=True)
def locate_checked(x: np.ndarray, y: np.ndarray, cell: np.ndarray, ax: np.ndarray,
                   ay: np.ndarray, bx: np.ndarray, by: np.ndarray, ring: np.ndarray,
                   hole: np.ndarray, first: np.ndarray, cand_first: np.ndarray,
                   cand_poly: np.ndarray) -> np.ndarray:
    """GridRaster.locate's exact step: per point the first candidate of its cell holding it.

    Candidates are in polygon order within a cell, so the first hit is the smallest number,
    as on shared edges; -1 when every candidate misses (a point just outside the grid).
    """
    out = np.full(len(x), -1, np.int64)
    for i in range(len(x)):
        c = cell[i]
        for j in range(cand_first[c], cand_first[c + 1]):
            if _intersects(x[i], y[i], cand_poly[j], ax, ay, bx, by, ring, hole, first):
                out[i] = cand_poly[j]
                break
    return out


@njit(cache=True, nogil=True)
def _needed(pt: np.ndarray, hit: np.ndarray, sph: np.ndarray) -> np.ndarray:
    """Pairs whose metres can be their point's smallest (pairs of a point are consecutive)."""
    out = np.zeros(len(pt), np.bool_)
    start = 0
    while start < len(pt):
        end = start
        bound = np.inf
        while end < len(pt) and pt[end] == pt[start]:
            bound = min(bound, 0.0 if hit[end] else sph[end] * R_HI)
            end += 1
        for j in range(start, end):
            out[j] = hit[j] or sph[j] * R_LO <= bound + 1e-6
        start = end
    return out


@njit(cache=True, nogil=True)
def _grow_i(a: np.ndarray) -> np.ndarray:
    b = np.empty(2 * len(a), np.int64)
    b[:len(a)] = a
    return b


@njit(cache=True, nogil=True)
def _grow_b(a: np.ndarray) -> np.ndarray:
    b = np.empty(2 * len(a), np.bool_)
    b[:len(a)] = a
    return b


@njit(cache=True, nogil=True)
def _grow_f(a: np.ndarray) -> np.ndarray:
    b = np.empty(2 * len(a), np.float64)
    b[:len(a)] = a
    return b
