"""Dark streets (路灯亮灯死角): road stretches too far from any working streetlight.

Method. Every road is sampled every `step_m` metres (and at its far end) in the metric CRS.
Each sample takes the distance to the nearest *working* light (intact, lit, in use); samples
farther than `threshold_m` are dark. A maximal run of dark samples on one road is one gap.
Between the lit samples bounding the run, gis.analysis.dark_stretches cuts the dark stretch
exactly (the points farther than the threshold from every working light): that stretch is the
row's geometry, what the map draws, and `dark_m` is its length. `start_m`/`end_m`/`gap_m`
describe the light-to-light gap around it (the lights bounding the run, projected onto the
road), so a street lit every 20 m except for one 80 m hole yields a gap of 80 m, a dark stretch
of 20 m (130..150 m) and `max_distance_m` 40 m. A run that reaches a road end with no light
beyond it extends to that end.

Two interchangeable paths give the same gaps: `find_dark_streets` samples and finds the runs
in PostGIS (KNN on the partial geography index of migration 0005, gaps-and-islands with window
functions, the lights near each run by ST_DWithin); `find_dark_streets_kdtree` pulls roads
and lights once and uses scipy's cKDTree, which `bench/deadzones.py` shows is the faster one at
city scale. Summaries per area and street class: gis.analysis.dark_street_summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from shapely.ops import substring
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.areas import locate_areas
from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox, bbox_filter, bbox_params
from gis.analysis.dark_stretches import cut_dark_stretches, stretch_midpoints
from gis.platform.errors import InvalidInputError

GAP_COLUMNS = ["road_id", "road_name", "street_class", "start_m", "end_m", "gap_m", "dark_m",
               "max_distance_m", "samples", "grid_code", "street_code", "district_code"]
ProgressReport = Callable[[int, int], None]  # (roads done, roads in all)
CHUNK_SAMPLES = 50_000  # samples per chunk of roads: a few ms of overhead each, a bar that moves
WORKING_LIGHT = "l.state = 'intact' AND l.lit AND l.in_use"  # matches the partial index


@dataclass(frozen=True)
class DarkStreetOptions:
    """Parameters of a dark-street run, checked once."""

    threshold_m: float = 30.0
    step_m: float = 5.0

    def __post_init__(self) -> None:
        if not self.threshold_m > 0:
            raise InvalidInputError(f"threshold_m must be > 0, not {self.threshold_m!r}")
        if not 0.5 <= self.step_m <= self.threshold_m:
            raise InvalidInputError(
                f"step_m must be between 0.5 and threshold_m ({self.threshold_m}), "
                f"not {self.step_m!r}")


_POSTGIS_SQL = """
WITH road AS (
    SELECT r.id, r.name, r.street_class, g, ST_Length(g) AS len
    FROM roads r, LATERAL (SELECT ST_Transform(r.geom, :srid) AS g) t
    WHERE {bbox}
), sample AS (
    SELECT r.id AS road_id, s.i, s.pos,
           ST_LineInterpolatePoint(r.g, s.pos / r.len) AS pt
    FROM road r
    CROSS JOIN LATERAL (
        SELECT i, least(i * :step, r.len) AS pos
        FROM generate_series(0, ceil(r.len / :step)::int) AS i) s
), nearest AS (
    SELECT s.road_id, s.i, s.pos, k.dist, k.lm
    FROM sample s
    LEFT JOIN LATERAL (
        SELECT ST_Distance(lm, s.pt) AS dist, lm
        FROM (SELECT ST_Transform(l.geom, :srid) AS lm
              FROM streetlights l
              WHERE {working}
              ORDER BY l.geom::geography <-> ST_Transform(s.pt, 4326)::geography
              LIMIT 1) nn
    ) k ON true
), flagged AS (
    SELECT road_id, i, pos, dist,
           (dist IS NULL OR dist > :threshold) AS dark,
           lag(lm) OVER w AS prev_lm, lead(lm) OVER w AS next_lm,
           lag(pos) OVER w AS prev_pos, lead(pos) OVER w AS next_pos
    FROM nearest
    WINDOW w AS (PARTITION BY road_id ORDER BY i)
), run AS (
    SELECT road_id, min(pos) AS first_pos, max(pos) AS last_pos, max(dist) AS max_dist,
           bool_or(dist IS NULL) AS no_light, count(*) AS samples,
           (array_agg(prev_lm ORDER BY i))[1] AS prev_lm,
           (array_agg(next_lm ORDER BY i DESC))[1] AS next_lm,
           (array_agg(prev_pos ORDER BY i))[1] AS prev_pos,
           (array_agg(next_pos ORDER BY i DESC))[1] AS next_pos
    FROM (SELECT *, i - row_number() OVER (PARTITION BY road_id ORDER BY i) AS grp
          FROM flagged WHERE dark) d
    GROUP BY road_id, grp
), gap AS (
    SELECT u.*, r.name, r.street_class, r.len, r.g,
           CASE WHEN u.prev_lm IS NULL THEN 0
                ELSE least(ST_LineLocatePoint(r.g, u.prev_lm) * r.len, u.first_pos) END
               AS start_m,
           CASE WHEN u.next_lm IS NULL THEN r.len
                ELSE greatest(ST_LineLocatePoint(r.g, u.next_lm) * r.len, u.last_pos) END
               AS end_m,
           coalesce(u.prev_pos, 0) AS lo, coalesce(u.next_pos, r.len) AS hi
    FROM run u JOIN road r ON r.id = u.road_id
)
SELECT road_id, name AS road_name, street_class, start_m, end_m, end_m - start_m AS gap_m,
       CASE WHEN no_light THEN NULL ELSE max_dist END AS max_distance_m, samples,
       lo, hi, ST_AsBinary(g) AS road_wkb, near.xs, near.ys
FROM gap
LEFT JOIN LATERAL (  -- every working light that can light a point between the lit samples
    SELECT array_agg(ST_X(lm)) AS xs, array_agg(ST_Y(lm)) AS ys
    FROM (SELECT ST_Transform(l.geom, :srid) AS lm FROM streetlights l
          WHERE {working} AND ST_DWithin(
              l.geom::geography,
              ST_Transform(ST_LineSubstring(g, lo / len, hi / len), 4326)::geography,
              :threshold * 1.01 + 1)) q
) near ON true
ORDER BY road_id, start_m
"""


def find_dark_streets(
    session: Session,
    *,
    threshold_m: float = 30.0,
    step_m: float = 5.0,
    bbox: BBox | None = None,
    metric_epsg: int = DEFAULT_METRIC_EPSG,
) -> gpd.GeoDataFrame:
    """Find road stretches farther than `threshold_m` from the nearest working light (PostGIS).

    Parameters
    ----------
    session : Session
        Open session; only read.
    threshold_m : float
        Largest acceptable distance in metres from any point of a road to a working light.
    step_m : float
        Sampling step along each road, in metres (0.5 to `threshold_m`).
    bbox : tuple of float, optional
        lon_min, lat_min, lon_max, lat_max (EPSG:4326): only roads meeting it are analysed.
        Lights outside it still count.
    metric_epsg : int
        Metric CRS in which roads are sampled and distances measured.

    Returns
    -------
    GeoDataFrame
        One row per dark stretch (EPSG:4326 LineString, MultiLineString when a light lights
        a few metres inside the run): road, `start_m`/`end_m` of the gap along the road,
        `gap_m` (spacing of the bounding lights), `dark_m` (the stretch's length),
        `max_distance_m` (None when no working light exists at all), `samples`, and the
        `grid_code`, `street_code`, `district_code` holding the stretch's midpoint.

    Examples
    --------
    >>> gaps = find_dark_streets(session, threshold_m=30, step_m=4)  # doctest: +SKIP
    >>> gaps[["road_name", "gap_m", "max_distance_m"]].head()  # doctest: +SKIP
    """
    options = DarkStreetOptions(threshold_m, step_m)
    sql = _POSTGIS_SQL.format(bbox=bbox_filter("r.geom"), working=WORKING_LIGHT)
    # Floats, always: an int step would make PostgreSQL divide in integer arithmetic.
    params = {"srid": metric_epsg, "step": float(options.step_m),
              "threshold": float(options.threshold_m),
              **bbox_params(bbox)}
    runs = pd.read_sql(text(sql), session.connection(), params=params)
    lines = shapely.from_wkb([bytes(b) for b in runs["road_wkb"]])
    near = [np.column_stack([xs or [], ys or []]).astype(float)
            for xs, ys in zip(runs["xs"], runs["ys"], strict=True)]
    geometry, dark_m = cut_dark_stretches(lines, runs[["lo", "hi"]].to_numpy(float), near,
                                          radius=options.threshold_m)
    frame = runs.drop(columns=["lo", "hi", "road_wkb", "xs", "ys"]).assign(dark_m=dark_m)
    gaps = gpd.GeoDataFrame(frame, geometry=list(geometry), crs=metric_epsg).to_crs(4326)
    return _with_areas(session, _tidy(gaps.rename_geometry("geom")))


def find_dark_streets_kdtree(
    session: Session,
    *,
    threshold_m: float = 30.0,
    step_m: float = 5.0,
    bbox: BBox | None = None,
    metric_epsg: int = DEFAULT_METRIC_EPSG,
    progress: ProgressReport | None = None,
) -> gpd.GeoDataFrame:
    """Same result as `find_dark_streets`, computed in memory with a scipy cKDTree.

    Roads and working lights are read once in the metric CRS; sampling, nearest-light search
    and the merging of dark runs are vectorised (shapely 2, numpy, scipy), over chunks of
    roads so that `progress(roads_done, roads_total)` can be called after each chunk.

    Examples
    --------
    >>> gaps = find_dark_streets_kdtree(session, threshold_m=30)  # doctest: +SKIP
    """
    options = DarkStreetOptions(threshold_m, step_m)
    roads, lines, lights = read_dark_street_inputs(session, bbox=bbox, metric_epsg=metric_epsg)
    gaps = dark_gaps_in_chunks(lines, lights, threshold_m=options.threshold_m,
                               step_m=options.step_m, progress=progress)
    return dark_gaps_frame(session, roads, gaps, metric_epsg=metric_epsg)


def read_dark_street_inputs(session: Session, *, bbox: BBox | None, metric_epsg: int
                            ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Roads (id, name, street_class), their metric lines and the working lights' metric xy."""
    conn = session.connection()
    # Geometries travel as binary WGS84 and are projected here with pyproj, vectorised: at city
    # scale that is several times faster than ST_Transform row by row plus text parsing.
    roads = pd.read_sql(text(
        f"SELECT r.id, r.name, r.street_class, ST_AsBinary(r.geom) AS wkb "
        f"FROM roads r WHERE {bbox_filter('r.geom')} ORDER BY r.id"), conn,
        params=bbox_params(bbox))
    collected = conn.execute(text(
        f"SELECT ST_AsBinary(ST_Collect(l.geom)) FROM streetlights l WHERE {WORKING_LIGHT}"
    )).scalar()
    to_metric = Transformer.from_crs(4326, metric_epsg, always_xy=True)
    lonlat = (shapely.get_coordinates(shapely.from_wkb(bytes(collected))) if collected
              else np.empty((0, 2)))
    lights = np.column_stack(to_metric.transform(lonlat[:, 0], lonlat[:, 1]))
    lines = shapely.transform(shapely.from_wkb([bytes(b) for b in roads["wkb"]]),
                              lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1])))
    return roads.drop(columns="wkb"), lines, lights


def dark_gaps_frame(session: Session, roads: pd.DataFrame, gaps: dict[str, np.ndarray], *,
                    metric_epsg: int) -> gpd.GeoDataFrame:
    """The result table of `find_dark_streets_kdtree` from its roads and gap arrays."""
    frame = roads.iloc[gaps["road_index"]].reset_index(drop=True)
    frame = frame.rename(columns={"id": "road_id", "name": "road_name"})
    for column in ("start_m", "end_m", "gap_m", "dark_m", "max_distance_m", "samples"):
        frame[column] = gaps[column]
    out = gpd.GeoDataFrame(frame, geometry=gaps["geometry"], crs=metric_epsg).to_crs(4326)
    return _with_areas(session, _tidy(out.rename_geometry("geom")))


def dark_gaps_in_chunks(
    lines: np.ndarray, lights: np.ndarray, *, threshold_m: float, step_m: float,
    progress: ProgressReport | None = None, chunk_samples: int = CHUNK_SAMPLES,
) -> dict[str, np.ndarray]:
    """`dark_gaps_from_arrays` over consecutive chunks of roads, reporting after each chunk.

    A gap never spans two roads, so the chunks' gaps concatenated are exactly the gaps of
    one call; the light tree is built once. Chunks hold about `chunk_samples` samples.

    Examples
    --------
    >>> from shapely import LineString
    >>> roads = np.array([LineString([(0, y), (200, y)]) for y in (0, 500, 1000)])
    >>> lights = np.array([[0.0, 0.0], [200.0, 0.0]])
    >>> seen = []
    >>> gaps = dark_gaps_in_chunks(roads, lights, threshold_m=30, step_m=5, chunk_samples=50,
    ...                            progress=lambda done, total: seen.append((done, total)))
    >>> gaps["road_index"].tolist(), seen
    ([0, 1, 2], [(0, 3), (1, 3), (2, 3), (3, 3)])
    """
    tree = cKDTree(lights) if len(lights) else None
    samples = np.ceil(shapely.length(lines) / step_m).astype(np.int64) + 1
    # Cut where the running sample count crosses a multiple of chunk_samples.
    cuts = np.flatnonzero(np.diff(np.cumsum(samples) // max(chunk_samples, 1))) + 1
    bounds = [0, *cuts.tolist(), len(lines)] if len(lines) else [0, 0]
    parts = []
    if progress is not None:
        progress(0, len(lines))
    for lo, hi in pairwise(bounds):
        part = dark_gaps_from_arrays(lines[lo:hi], lights, threshold_m=threshold_m,
                                     step_m=step_m, tree=tree)
        part["road_index"] = part["road_index"] + lo
        parts.append(part)
        if progress is not None:
            progress(hi, len(lines))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def dark_gaps_from_arrays(
    lines: np.ndarray, lights: np.ndarray, *, threshold_m: float, step_m: float,
    tree: cKDTree | None = None,
) -> dict[str, np.ndarray]:
    """Gaps of `lines` (shapely LineStrings, metric) given light coordinates (n x 2, metric).

    Pure function behind `find_dark_streets_kdtree`; returns column arrays: road_index,
    start_m, end_m, gap_m, dark_m, max_distance_m (NaN when there are no lights), samples,
    geometry (the metric dark stretches). `tree`, a cKDTree of `lights`, saves building it again.

    Examples
    --------
    >>> from shapely import LineString
    >>> road = np.array([LineString([(0, 0), (200, 0)])])
    >>> lights = np.array([[x, 0.0] for x in range(0, 201, 20) if not 100 < x < 180])
    >>> dark_gaps_from_arrays(road, lights, threshold_m=30, step_m=4)["gap_m"].tolist()
    [80.0]
    """
    lengths = shapely.length(lines)
    counts = np.ceil(lengths / step_m).astype(np.int64) + 1
    road_of = np.repeat(np.arange(len(lines)), counts)
    starts = np.cumsum(counts) - counts
    index = np.arange(road_of.size) - np.repeat(starts, counts)
    pos = np.minimum(index * step_m, lengths[road_of])
    xy = _interpolate(lines, road_of, pos)
    if len(lights):
        tree = tree if tree is not None else cKDTree(lights)
        dist, nearest = tree.query(xy, k=1, workers=-1)
    else:
        dist, nearest = np.full(len(xy), np.inf), np.full(len(xy), -1)
    dark = dist > threshold_m

    # A run starts where a sample is dark and its predecessor on the same road is not.
    same_road_prev = np.r_[False, road_of[1:] == road_of[:-1]]
    same_road_next = np.r_[road_of[:-1] == road_of[1:], False]
    prev_dark = np.r_[False, dark[:-1]] & same_road_prev
    next_dark = np.r_[dark[1:], False] & same_road_next
    first = np.flatnonzero(dark & ~prev_dark)
    last = np.flatnonzero(dark & ~next_dark)
    road_index = road_of[first]
    length = lengths[road_index]
    run_id = np.cumsum(dark & ~prev_dark) - 1
    max_dist = np.full(len(first), -np.inf)
    np.maximum.at(max_dist, run_id[dark], dist[dark])

    start = np.zeros(len(first))
    has_prev = same_road_prev[first]
    prev_light = nearest[first[has_prev] - 1]
    start[has_prev] = np.minimum(
        shapely.line_locate_point(lines[road_index[has_prev]],
                                  shapely.points(lights[prev_light])), pos[first[has_prev]])
    end = length.copy()
    has_next = same_road_next[last]
    next_light = nearest[last[has_next] + 1]
    end[has_next] = np.maximum(
        shapely.line_locate_point(lines[road_index[has_next]],
                                  shapely.points(lights[next_light])), pos[last[has_next]])
    # The exact stretch lies between the lit samples bounding the run (or the road's ends).
    lo = np.where(has_prev, pos[np.maximum(first - 1, 0)], 0.0)
    hi = np.where(has_next, pos[np.minimum(last + 1, len(pos) - 1)], length)
    windows = np.column_stack([lo, hi])
    near = _lights_near(lines[road_index], windows, lights, tree, radius=threshold_m)
    geometry, dark_m = cut_dark_stretches(lines[road_index], windows, near,
                                          radius=threshold_m)
    return {"road_index": road_index, "start_m": start, "end_m": end, "gap_m": end - start,
            "dark_m": dark_m, "max_distance_m": np.where(np.isinf(max_dist), np.nan, max_dist),
            "samples": last - first + 1, "geometry": geometry}


def _lights_near(lines: np.ndarray, windows: np.ndarray, lights: np.ndarray,
                 tree: cKDTree | None, *, radius: float) -> list[np.ndarray]:
    """Per window, every light within `radius` of it (a disc around its bounding box)."""
    if tree is None or not len(lines):
        return [np.empty((0, 2))] * len(lines)
    parts = np.array([substring(line, lo, hi) for line, (lo, hi) in zip(lines, windows,
                                                                        strict=True)])
    x1, y1, x2, y2 = shapely.bounds(parts).T
    centres = np.column_stack([(x1 + x2) / 2, (y1 + y2) / 2])
    reach = np.hypot(x2 - x1, y2 - y1) / 2 + radius * 1.001 + 0.01
    return [lights[idx] for idx in tree.query_ball_point(centres, reach)]


def _interpolate(lines: np.ndarray, road_of: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Points at distance `pos` along `lines[road_of]` (n x 2), vectorised over all samples.

    Same result as shapely.line_interpolate_point, about five times faster at millions of
    samples: one searchsorted over the vertices of all lines laid end to end.
    """
    coords, line_index = shapely.get_coordinates(lines, return_index=True)
    step = np.hypot(*np.diff(coords, axis=0).T)
    step[line_index[1:] != line_index[:-1]] = 0.0  # no segment between two lines
    along = np.r_[0.0, np.cumsum(step)]  # vertices of all lines laid end to end
    first = np.searchsorted(line_index, np.arange(len(lines)))
    last = np.searchsorted(line_index, np.arange(len(lines)), side="right") - 1
    target = along[first[road_of]] + pos
    k = np.searchsorted(along, target, side="right") - 1
    k = np.clip(k, first[road_of], last[road_of] - 1)
    seg = along[k + 1] - along[k]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(seg > 0, (target - along[k]) / seg, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return coords[k] + t[:, None] * (coords[k + 1] - coords[k])


def _tidy(gaps: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    gaps = gaps.copy()
    for column in ("start_m", "end_m", "gap_m", "dark_m", "max_distance_m"):
        gaps[column] = gaps[column].astype(float).round(3)
    gaps["samples"] = gaps["samples"].astype(int)
    return gaps


def _with_areas(session: Session, gaps: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Attach the unit grid, street and district holding each gap's midpoint."""
    if gaps.empty:
        for column in ("grid_code", "street_code", "district_code"):
            gaps[column] = pd.Series(dtype=object)
        return gaps[[*GAP_COLUMNS, "geom"]]
    areas = locate_areas(session, *stretch_midpoints(gaps.geometry.values))
    gaps = gaps.reset_index(drop=True).join(areas)
    return gaps[[*GAP_COLUMNS, "geom"]].set_geometry("geom")
