"""The gazetteer and doorplates held in memory, in the metric CRS, rebuilt when they change.

A hotline desk asks one address at a time and a batch asks thousands: one database round trip
per name would cap both at a few hundred a second. The index is read once per process and
database and re-read when `gazetteer_version` (bumped by the triggers of migration 0015 in
the same transaction as any edit of a named layer or a doorplate) has moved.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from rapidfuzz import fuzz, process
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.geocoding.normalize import name_key, road_core

FUZZY_CUTOFF = 72.0  # rapidfuzz ratio (0-100) below which a name is not a candidate


@dataclass(frozen=True)
class Entry:
    """One gazetteer name: what it is, where it comes from, its shape (metric CRS)."""

    kind: str
    key: str
    name: str
    canonical: str
    geom: BaseGeometry


@dataclass
class Plates:
    """Known doorplates of one road side (odd or even), sorted by number."""

    numbers: np.ndarray
    xy: np.ndarray


@dataclass
class GeocodeIndex:
    """Names, roads, doorplates and buildings of one database snapshot."""

    stamp: tuple[Any, ...]
    entries: list[Entry]
    by_name: dict[str, list[Entry]] = field(default_factory=dict)
    by_core: dict[str, set[str]] = field(default_factory=dict)
    roads: dict[str, Entry] = field(default_factory=dict)
    plates: dict[tuple[str, int, str], tuple[float, float]] = field(default_factory=dict)
    sides: dict[tuple[str, int], Plates] = field(default_factory=dict)
    buildings: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    sorted_names: list[str] = field(default_factory=list)
    road_tree: shapely.STRtree | None = None
    road_list: list[Entry] = field(default_factory=list)

    def finish(self) -> GeocodeIndex:
        """Build the lookup tables from `entries`."""
        for e in self.entries:
            self.by_name.setdefault(name_key(e.name), []).append(e)
            if e.kind == "road":
                self.by_core.setdefault(road_core(e.name), set()).add(e.canonical)
                if e.name == e.canonical:
                    self.roads[e.canonical] = e
        self.sorted_names = sorted(self.by_name)
        self.road_list = list(self.roads.values())
        if self.road_list:
            self.road_tree = shapely.STRtree([e.geom for e in self.road_list])
        return self

    def lookup(self, name: str, kinds: frozenset[str] | None = None
               ) -> list[tuple[Entry, float]]:
        """Entries named `name` (exact, 路/街 variant, prefix, then fuzzy), with a similarity."""
        key = name_key(name)
        found = [(e, 1.0) for e in self.by_name.get(key, []) if _kind_ok(e, kinds)]
        if found:
            return found
        if kinds is None or "road" in kinds:
            canon = self.by_core.get(road_core(key), set())
            found = [(self.roads[c], 0.95) for c in sorted(canon) if c in self.roads]
            if found:
                return found
        # A name given short: 模拟第2医院 for 模拟第2医院门诊入口.
        start = bisect.bisect_left(self.sorted_names, key)
        for candidate in self.sorted_names[start:start + 5]:
            if not candidate.startswith(key) or len(key) < 3:
                break
            found.extend((e, 0.9) for e in self.by_name[candidate] if _kind_ok(e, kinds))
        if found:
            return found
        hits = process.extract(key, self.sorted_names, scorer=fuzz.ratio, limit=3,
                               score_cutoff=FUZZY_CUTOFF)
        return [(e, score / 100.0 * 0.9) for candidate, score, _ in hits
                for e in self.by_name[candidate] if _kind_ok(e, kinds)]

    def road_sides(self, road: str, number: int) -> Plates | None:
        """Known plates on the side of the road that `number` belongs to (odd or even)."""
        return self.sides.get((road, number % 2))

    def nearest_road(self, xy: tuple[float, float]) -> Entry | None:
        """The road nearest a point (metric CRS)."""
        if self.road_tree is None:
            return None
        idx = self.road_tree.nearest(shapely.Point(xy))
        return None if idx is None else self.road_list[int(idx)]


def _kind_ok(entry: Entry, kinds: frozenset[str] | None) -> bool:
    return kinds is None or entry.kind in kinds


_STAMP_SQL = "SELECT version FROM gazetteer_version"


def load_index(session: Session, *, metric_epsg: int) -> GeocodeIndex:
    """Read the gazetteer and doorplates of this database into a new index."""
    stamp = tuple(session.execute(text(_STAMP_SQL)).one())
    rows = session.execute(text("""
        SELECT kind, source_key, name, canonical, ST_AsBinary(ST_Transform(geom, :epsg)) AS g
        FROM gazetteer ORDER BY kind, source_key, name
    """), {"epsg": metric_epsg}).all()
    geoms: Any = shapely.from_wkb([bytes(r.g) for r in rows]) if rows else []
    index = GeocodeIndex(stamp=stamp, entries=[
        Entry(r.kind, r.source_key, r.name, r.canonical, g)
        for r, g in zip(rows, geoms, strict=True)])
    plates = session.execute(text("""
        SELECT d.road_name, d.number, d.suffix, d.compound_id, d.building,
               ST_X(p.g) AS x, ST_Y(p.g) AS y
        FROM doorplates d, LATERAL (SELECT ST_Transform(d.geom, :epsg) AS g) p
        ORDER BY d.road_name, d.number, d.suffix, d.compound_id, d.building
    """), {"epsg": metric_epsg}).all()
    add_plates(index, plates)
    return index.finish()


def add_plates(index: GeocodeIndex, plates: Sequence[Any]) -> None:
    """Doorplate rows (road_name, number, suffix, compound_id, building, x, y) into `index`."""
    by_side: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for r in plates:
        if r.road_name is not None:
            index.plates[(r.road_name, r.number, r.suffix)] = (r.x, r.y)
            if r.suffix == "":
                by_side.setdefault((r.road_name, r.number % 2), []).append((r.number, r.x, r.y))
        else:
            index.buildings[(str(r.compound_id), r.building)] = (r.x, r.y)
    for side, items in by_side.items():
        arr = np.asarray(items, dtype=float)
        index.sides[side] = Plates(numbers=arr[:, 0].astype(int), xy=arr[:, 1:3])


_CACHE: dict[str, GeocodeIndex] = {}
_LOCK = threading.Lock()


def current_index(session: Session, *, metric_epsg: int) -> GeocodeIndex:
    """The cached index of this session's database, re-read if the data changed since."""
    return cached_index(session, metric_epsg=metric_epsg, name="staff", stamp_sql=_STAMP_SQL,
                        loader=load_index)


def cached_index(session: Session, *, metric_epsg: int, name: str, stamp_sql: str,
                 loader: Callable[..., GeocodeIndex]) -> GeocodeIndex:
    """Index `name` of this session's database from `loader`, re-read when the version read
    by `stamp_sql` has moved (the public search keeps its own index of the `pub` views)."""
    bind = session.get_bind()
    engine: Any = getattr(bind, "engine", bind)  # a Connection's engine, or the engine itself
    # No credentials in the key; the public index is kept apart by its name, not its role.
    url = engine.url.set(username=None, password=None)
    cache_key = f"{url.render_as_string()}|{metric_epsg}|{name}"
    stamp = tuple(session.execute(text(stamp_sql)).one())
    cached = _CACHE.get(cache_key)
    if cached is not None and cached.stamp == stamp:
        return cached
    with _LOCK:
        cached = _CACHE.get(cache_key)
        if cached is not None and cached.stamp == stamp:
            return cached
        index = loader(session, metric_epsg=metric_epsg)
        _CACHE[cache_key] = index
        return index
