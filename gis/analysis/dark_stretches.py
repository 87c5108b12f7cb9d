"""The dark stretches themselves: the exact parts of a road beyond the threshold from every light.

Sampling (gis.analysis.dark_streets) finds *where* a road is dark: a run of dark samples
between two lit ones. Drawing the whole light-to-light gap would show a reader four times the
dark length (an 80 m gap between lights 30 m apart holds 20 m of dark street). So each run is
cut exactly: on every straight segment of the road between the lit samples that bound the run,
the part within `threshold_m` of a light P is the interval t0 ± sqrt(r² - d²) around P's
projection (d its distance from the segment's line); the dark stretch is what no such interval
covers. No buffer polygons (they are inscribed, so they would overstate the dark part), no
dependence on the sampling step inside the run. Both dark-street methods hand their runs to
`cut_dark_stretches`, so they draw identical lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.ops import substring

MIN_PIECE_M = 1e-6  # a tangent touch is not a dark stretch


def dark_intervals(line: LineString, lights: np.ndarray, *, radius: float,
                   lo: float = 0.0, hi: float | None = None) -> list[tuple[float, float]]:
    """Intervals (metres along `line`) within [lo, hi] farther than `radius` from all `lights`.

    Examples
    --------
    Lights at 100 m and 180 m, threshold 30 m: 130..150 m is dark.

    >>> road = LineString([(0, 0), (200, 0)])
    >>> dark_intervals(road, np.array([[100.0, 0.0], [180.0, 0.0]]), radius=30, lo=96, hi=184)
    [(130.0, 150.0)]
    """
    hi = float(line.length) if hi is None else float(hi)
    lo = float(lo)
    if hi - lo <= MIN_PIECE_M:
        return []
    coords = np.asarray(line.coords, dtype=float)[:, :2]
    seg_len = np.hypot(*np.diff(coords, axis=0).T)
    along = np.r_[0.0, np.cumsum(seg_len)]
    lights = np.asarray(lights, dtype=float).reshape(-1, 2)
    lit: list[tuple[float, float]] = []
    keep = seg_len > 0
    if len(lights) and keep.any():
        a, length, start = coords[:-1][keep], seg_len[keep], along[:-1][keep]
        unit = (coords[1:][keep] - a) / length[:, None]
        rel = lights[None, :, :] - a[:, None, :]  # segments x lights x 2
        t0 = np.einsum("slk,sk->sl", rel, unit)
        d2 = np.einsum("slk,slk->sl", rel, rel) - t0**2
        half = np.sqrt(np.maximum(radius**2 - d2, 0.0))
        s, _ = np.nonzero(d2 < radius**2)
        t_in = t0[d2 < radius**2]
        h_in = half[d2 < radius**2]
        first = np.clip(t_in - h_in, 0.0, length[s]) + start[s]
        last = np.clip(t_in + h_in, 0.0, length[s]) + start[s]
        lit = sorted(zip(first.tolist(), last.tolist(), strict=True))
    dark, cursor = [], lo
    for first_m, last_m in lit:
        if last_m <= cursor:
            continue
        if first_m > cursor:
            dark.append((cursor, min(first_m, hi)))
        cursor = max(cursor, last_m)
        if cursor >= hi:
            break
    if cursor < hi:
        dark.append((cursor, hi))
    return [(round(s0, 6), round(s1, 6)) for s0, s1 in dark if s1 - s0 > MIN_PIECE_M]


def dark_stretch(line: LineString, intervals: Sequence[tuple[float, float]]
                 ) -> LineString | MultiLineString | None:
    """The line pieces of `intervals` along `line` (None when there are none)."""
    # Every interval is longer than MIN_PIECE_M, so substring gives a LineString, not a Point.
    pieces = [cast(LineString, substring(line, s0, s1)) for s0, s1 in intervals]
    if not pieces:
        return None
    return pieces[0] if len(pieces) == 1 else MultiLineString(pieces)


def cut_dark_stretches(lines: Sequence[LineString] | np.ndarray, windows: np.ndarray,
                       lights: Sequence[np.ndarray], *, radius: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Dark stretch geometry and length per run: `lines[i]` cut to `windows[i]` (lo, hi).

    `lights[i]` holds (at least) every working light within `radius` of that window, metric.
    """
    geometry = np.empty(len(lines), dtype=object)
    length = np.zeros(len(lines))
    for i, (line, (lo, hi), near) in enumerate(zip(lines, windows, lights, strict=True)):
        intervals = dark_intervals(line, near, radius=radius, lo=lo, hi=hi)
        geometry[i] = dark_stretch(line, intervals)
        length[i] = sum(s1 - s0 for s0, s1 in intervals)
    return geometry, length


def stretch_midpoints(geometry: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Lon and lat of the middle of each stretch (EPSG:4326 lines), to find its grid."""
    mid = shapely.line_interpolate_point(np.asarray(geometry, dtype=object), 0.5,
                                         normalized=True)
    return shapely.get_x(mid), shapely.get_y(mid)
