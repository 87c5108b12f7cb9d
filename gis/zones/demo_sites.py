"""Simulated sensitive sites for the demo city: school gates, kindergartens, hospitals, metro
exits and fire lanes, placed deterministically (fixed seed) beside the demo's roads.

No POI data for Chinese cities ships offline, so these are invented and stored with
simulated = true. Gates and exits stand just off a road's edge, as real ones do; fire lanes run
from a road edge into the block behind it. Call after the roads are loaded, inside the loader's
transaction; nothing here commits.
"""

from __future__ import annotations

import math
import random

from shapely import wkb
from shapely.geometry import LineString, Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.settings import CitySettings

DEFAULT_COUNTS = {"school_gate": 30, "kindergarten": 30, "hospital": 8, "metro_exit": 6,
                  "fire_lane": 40}  # metro_exit: stations, four exits each
_NAMES = {"school_gate": ("第{n}小学", "大门"), "kindergarten": ("{n}号幼儿园", ""),
          "hospital": ("模拟第{n}医院", "门诊入口"), "metro_exit": ("地铁{n}号站", "{exit}口"),
          "fire_lane": ("{n}号小区消防通道", "")}


def add_demo_sites(session: Session, *, city: CitySettings | None = None, seed: int = 20260601,
                   counts: dict[str, int] | None = None) -> dict[str, int]:
    """Insert simulated sensitive sites beside the roads in `city`'s district; counts per kind."""
    city = city or CitySettings()
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    rows = session.execute(text("""
        SELECT r.id, r.street_class, r.width_m,
               ST_AsBinary(ST_Transform(r.geom, :epsg)) AS line
        FROM roads r JOIN districts d ON d.code = :district AND ST_Within(r.geom, d.geom)
        WHERE ST_Length(r.geom::geography) > 60
        ORDER BY r.id
    """), {"epsg": city.metric_epsg, "district": city.district_code}).all()
    if not rows:
        return {kind: 0 for kind in counts}
    rng = random.Random(seed)
    # Schools and hospitals are not put on 示范街: the demo should show conflicts, not a city
    # where every showcase street is unusable.
    ordinary = [r for r in rows if r.street_class != "demonstration"] or rows
    sites: list[tuple[str, str, float | None, str]] = []
    for kind in ("school_gate", "kindergarten", "hospital"):
        for n, road in enumerate(rng.sample(ordinary, min(counts[kind], len(ordinary))), 1):
            point, _ = _beside(_line(road.line), road.width_m, rng, out=3.0)
            name, suffix = _NAMES[kind]
            sites.append((name.format(n=n) + suffix, kind, None, point.wkt))
    for n, road in enumerate(rng.sample(rows, min(counts["metro_exit"], len(rows))), 1):
        line = _line(road.line)
        at = rng.uniform(0.2, 0.8)
        for exit_no, (side, shift) in enumerate(((1, -25), (1, 25), (-1, -25), (-1, 25))):
            point, _ = _beside(line, road.width_m, rng, out=2.0, at=at, side=side, shift=shift)
            name, suffix = _NAMES["metro_exit"]
            sites.append((name.format(n=n) + suffix.format(exit="ABCD"[exit_no]), "metro_exit",
                          None, point.wkt))
    for n, road in enumerate(rng.sample(rows, min(counts["fire_lane"], len(rows))), 1):
        start, normal = _beside(_line(road.line), road.width_m, rng, out=0.5)
        length = rng.uniform(40, 90)
        lane = LineString([(start.x, start.y),
                           (start.x + normal[0] * length, start.y + normal[1] * length)])
        sites.append((_NAMES["fire_lane"][0].format(n=n), "fire_lane", 4.0, lane.wkt))
    inserted: dict[str, int] = dict.fromkeys(counts, 0)
    for name, kind, clear, geom in sites:
        # Only sites that land inside the district: a road near the border may point outside.
        done = session.execute(text("""
            INSERT INTO sensitive_sites (name, kind, clear_width_m, simulated, geom)
            SELECT :name, :kind, :clear, true, g
            FROM (SELECT ST_Transform(ST_GeomFromText(:geom, :epsg), 4326) AS g) AS s
            JOIN districts d ON d.code = :district AND ST_Within(s.g, d.geom)
            RETURNING id
        """), {"name": name, "kind": kind, "clear": clear, "geom": geom,
               "epsg": city.metric_epsg, "district": city.district_code}).first()
        if done is not None:
            inserted[kind] += 1
    return inserted


def _line(raw: bytes | memoryview) -> LineString:
    line = wkb.loads(bytes(raw))
    assert isinstance(line, LineString)  # roads.geom is typed LineString
    return line


def _beside(line: LineString, width_m: float, rng: random.Random, *, out: float,
            at: float | None = None, side: int | None = None,
            shift: float = 0.0) -> tuple[Point, tuple[float, float]]:
    """A point `out` metres beyond the road edge at fraction `at`, and the outward normal."""
    at = rng.uniform(0.15, 0.85) if at is None else at
    side = rng.choice((-1, 1)) if side is None else side
    d = min(max(at * line.length + shift, 0.0), line.length)
    a, b = line.interpolate(max(d - 1.0, 0.0)), line.interpolate(min(d + 1.0, line.length))
    dx, dy = b.x - a.x, b.y - a.y
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm * side, dx / norm * side
    centre = line.interpolate(d)
    offset = width_m / 2 + out
    return Point(centre.x + nx * offset, centre.y + ny * offset), (nx, ny)
