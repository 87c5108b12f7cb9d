"""Address search for the public convenience map: public places, roads and doorplates only.

It reads through the public role, so only the `pub` views of migrations 0006 and 0019: the
names of roads, stations, facilities and approved stall zones, the road doorplates and the
gazetteer version (`pub.geocode_*`), and road lines from `pub.roads` (for crossings).
Communities, compounds, sensitive sites, cases, grid owners and contacts are not in those
views, so no query here can return them; answers carry no grid code either (no public answer
does: tests/public/test_public_leaks.py). The index is cached per database like the staff
one and re-read when the gazetteer version moves.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.geocoding.index import Entry, GeocodeIndex, add_plates, cached_index
from gis.geocoding.service import metric_to_wgs84
from gis.geocoding.suggest import Hit, check_suggest_query, rank_hits
from gis.platform.errors import InvalidInputError
from gis.platform.settings import CitySettings

PUBLIC_MAX_CHARS = 64  # a place or an address; longer text is not a search
PUBLIC_MAX_LIMIT = 10
_STAMP_SQL = "SELECT version FROM pub.geocode_version"
PublicKind = Literal["address", "place", "road"]


class PublicSuggestion(BaseModel):
    """A public place, road or address: the staff suggestion without grid and case (public
    answers never carry grid codes)."""

    kind: PublicKind
    label: str = Field(description="what to show (zh-CN)")
    lon: float = Field(description="WGS84")
    lat: float
    level: str | None = Field(default=None, description="address: match level; place: "
                              "station, facility or stall_zone")
    score: float | None = Field(default=None, ge=0, le=1)


class PublicSuggestResult(BaseModel):
    """The query as read and its suggestions, best first."""

    query: str
    suggestions: list[PublicSuggestion]


def load_public_index(session: Session, *, metric_epsg: int) -> GeocodeIndex:
    """The public names, road lines and road doorplates of the `pub` views, as an index."""
    stamp = tuple(session.execute(text(_STAMP_SQL)).one())
    roads: dict[str, Any] = {r.name: r.g for r in session.execute(text("""
        SELECT name, ST_AsBinary(ST_Transform(ST_LineMerge(ST_Collect(geom)), :epsg)) AS g
        FROM pub.roads GROUP BY name"""), {"epsg": metric_epsg})}
    names = session.execute(text("""
        SELECT kind, source_key, name, canonical,
               ST_X(p) AS x, ST_Y(p) AS y
        FROM pub.geocode_names n,
             LATERAL ST_Transform(ST_SetSRID(ST_MakePoint(n.lon::float8, n.lat::float8), 4326),
                                  :epsg) p
        ORDER BY kind, source_key, name"""), {"epsg": metric_epsg}).all()
    entries = []
    for r in names:
        line = roads.get(r.canonical) if r.kind == "road" else None
        geom: Any = shapely.from_wkb(bytes(line)) if line is not None else shapely.Point(r.x, r.y)
        entries.append(Entry(r.kind, r.source_key, r.name, r.canonical, geom))
    index = GeocodeIndex(stamp=stamp, entries=entries)
    plates = session.execute(text("""
        SELECT d.road_name, d.number, d.suffix, NULL AS compound_id, NULL AS building,
               ST_X(p) AS x, ST_Y(p) AS y
        FROM pub.geocode_doorplates d,
             LATERAL ST_Transform(ST_SetSRID(ST_MakePoint(d.lon::float8, d.lat::float8), 4326),
                                  :epsg) p
        ORDER BY d.road_name, d.number, d.suffix"""), {"epsg": metric_epsg}).all()
    add_plates(index, plates)
    return index.finish()


def public_index(session: Session, *, metric_epsg: int) -> GeocodeIndex:
    """The cached public index of this session's database, re-read after edits."""
    return cached_index(session, metric_epsg=metric_epsg, name="public", stamp_sql=_STAMP_SQL,
                        loader=load_public_index)


def public_suggest(session: Session, q: str, *, city: CitySettings,
                   limit: int = 5) -> PublicSuggestResult:
    """Public places, roads and doorplate addresses for `q` (the convenience map's search)."""
    if len(q) > PUBLIC_MAX_CHARS:
        raise InvalidInputError(f"q has {len(q)} characters; at most {PUBLIC_MAX_CHARS} "
                                f"(q starts {q[:20]!r})")
    if not 1 <= limit <= PUBLIC_MAX_LIMIT:
        raise InvalidInputError(f"limit {limit} is not between 1 and {PUBLIC_MAX_LIMIT}")
    q = check_suggest_query(q)
    index = public_index(session, metric_epsg=city.metric_epsg)
    hits = rank_hits(index, q, limit, city)
    return PublicSuggestResult(query=q, suggestions=_public_suggestions(hits,
                                                                        city.metric_epsg))


def _public_suggestions(hits: list[Hit], metric_epsg: int) -> list[PublicSuggestion]:
    if not hits:
        return []
    lon, lat = metric_to_wgs84(metric_epsg).transform(np.array([h.x for h in hits]),
                                                      np.array([h.y for h in hits]))
    return [PublicSuggestion(kind=h.kind, label=h.label,  # type: ignore[arg-type]
                             lon=round(float(lon[i]), 7), lat=round(float(lat[i]), 7),
                             level=h.level, score=h.score)
            for i, h in enumerate(hits)]
