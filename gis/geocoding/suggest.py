"""Suggestions while typing: one query string -> addresses, places, roads, communities, grid
codes, case numbers or coordinates, ranked, each with a WGS84 point and its grid.

A desk's search box sends a request per keystroke, so everything but the grid lookup and the
exact case / grid-code reads comes from the in-memory index (`gis.geocoding.index`): one query
costs a few milliseconds, not one round trip per name. Hostile text is refused with
`InvalidInputError` naming the value; the caller maps it to a 400.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from rapidfuzz import fuzz, process
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.geo.coords import SUPPORTED_CRS, normalise_crs, to_wgs84
from gis.geocoding.index import Entry, GeocodeIndex, current_index
from gis.geocoding.match import _middle, match
from gis.geocoding.normalize import MAX_ADDRESS_CHARS, name_key, normalize_text
from gis.geocoding.parse import parse_address
from gis.geocoding.service import district_name_of, elsewhere, grid_codes, metric_to_wgs84
from gis.platform.errors import InvalidInputError
from gis.platform.settings import CitySettings

MAX_SUGGESTIONS = 20
SuggestionKind = Literal["address", "place", "road", "community", "grid", "case", "coordinates"]
# gazetteer kind -> suggestion kind
NAME_KIND = {"road": "road", "community": "community", "subdistrict": "community",
             "compound": "place", "station": "place", "facility": "place",
             "stall_zone": "place", "site": "place"}
PUBLIC_NAME_KINDS = frozenset({"road", "station", "facility", "stall_zone"})
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf(?:inity)?|nan)"
_COORDS = re.compile(rf"^\s*({_NUMBER})\s*(?:[,，;；/]\s*|\s+)({_NUMBER})\s*$", re.I)
_GRID = re.compile(r"^[0-9]{4,15}$")
_CASE = re.compile(r"^[A-Z]{0,4}[0-9]{6,24}$")
# Text that can only be an address, not a bare name: a number, a crossing, a side, an offset.
_ADDRESSISH = re.compile(r"[0-9]|与|和|跟|及|/|、|交|口|门|侧|对面|边|往|向|米|号|楼|栋|幢|座|单元")
_DIVISION = re.compile(r"^[\u4e00-\u9fff]{1,7}?(?:省|自治区|市|区|县)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Suggestion(BaseModel):
    """One thing the typed text may mean, with a point to show and its grid."""

    kind: SuggestionKind
    label: str = Field(description="what to show (zh-CN)")
    lon: float = Field(description="WGS84")
    lat: float
    grid_code: str | None = Field(default=None, description="unit grid containing the point")
    case_no: str | None = Field(default=None, description="for kind case")
    level: str | None = Field(default=None, description="address: match level (doorplate, "
                              "interpolated, intersection, landmark, road, community); "
                              "place: gazetteer kind (station, facility, stall_zone, "
                              "compound, site)")
    score: float | None = Field(default=None, ge=0, le=1)


class SuggestResult(BaseModel):
    """The query as read and its suggestions, best first."""

    query: str
    suggestions: list[Suggestion]


@dataclass(frozen=True)
class Hit:
    """A suggestion before its point is turned into WGS84 and given a grid."""

    kind: str
    label: str
    x: float  # metric CRS
    y: float
    level: str | None
    score: float


def check_suggest_query(q: str) -> str:
    """The query stripped; refused (naming the value) when empty, too long or control text."""
    if len(q) > MAX_ADDRESS_CHARS:
        raise InvalidInputError(f"q has {len(q)} characters; at most {MAX_ADDRESS_CHARS} "
                                f"are read (q starts {q[:20]!r})")
    bad = _CONTROL.search(q)
    if bad:
        raise InvalidInputError(f"q {q[:40]!r} contains the control character "
                                f"U+{ord(bad.group()):04X}")
    q = q.strip()
    if not q:
        raise InvalidInputError("q is empty")
    return q


def check_limit(limit: int) -> int:
    """`limit` if between 1 and MAX_SUGGESTIONS, else refused."""
    if not 1 <= limit <= MAX_SUGGESTIONS:
        raise InvalidInputError(f"limit {limit} is not between 1 and {MAX_SUGGESTIONS}")
    return limit


def parse_coordinates(q: str, crs: str, city: CitySettings) -> tuple[float, float] | None:
    """WGS84 (lon, lat) of "x,y" or "y,x" in `crs`, the order that falls in the city; None
    when `q` is not two numbers or neither order lies in the city."""
    m = _COORDS.match(q)
    if m is None:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    for raw, value in ((m.group(1), a), (m.group(2), b)):
        if not math.isfinite(value):
            raise InvalidInputError(f"coordinate {raw!r} in q is not a finite number")
    x1, y1, x2, y2 = city.bbox
    for lon, lat in ((a, b), (b, a)):
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            continue
        wlon, wlat = to_wgs84(lon, lat, crs)
        if x1 <= wlon <= x2 and y1 <= wlat <= y2:
            return float(wlon), float(wlat)
    return None


def name_hits(index: GeocodeIndex, q: str, limit: int,
              kinds: frozenset[str] | None = None) -> list[Hit]:
    """Gazetteer names containing the typed text (exact, prefix, inside), else fuzzy ones."""
    key = name_key(q)
    if not key:
        return []
    scored: list[tuple[float, str]] = []
    for name in index.sorted_names:
        if key in name:
            score = 1.0 if name == key else (0.95 if name.startswith(key) else 0.85)
            # shorter names first among equals: 经十路 before 经十路辅路
            scored.append((score - min(len(name) - len(key), 40) * 0.001, name))
    if not scored and len(key) >= 3:
        # A typo in a whole name (经肆十路); plain ratio: WRatio costs ~10 ms over 1,000 names.
        for name, ratio, _ in process.extract(key, index.sorted_names, scorer=fuzz.ratio,
                                              limit=limit, score_cutoff=75.0):
            scored.append((ratio / 100.0 * 0.8, name))
    scored.sort(key=lambda s: (-s[0], s[1]))
    hits: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for score, name in scored:
        for entry in index.by_name[name]:
            if kinds is not None and entry.kind not in kinds:
                continue
            ident = (entry.kind, entry.key)
            if ident in seen:  # a road's aliases: one suggestion per road
                continue
            seen.add(ident)
            hits.append(_name_hit(entry, round(score, 3)))
        if len(hits) >= limit:
            break
    return hits[:limit]


def _name_hit(entry: Entry, score: float) -> Hit:
    x, y = _middle(entry.geom)
    kind = NAME_KIND.get(entry.kind, "place")
    label = entry.canonical if entry.name == entry.canonical else \
        f"{entry.canonical}（{entry.name}）"
    level = entry.kind if kind == "place" else None
    return Hit(kind, label, x, y, level, score)


@lru_cache(maxsize=4)
def own_prefixes(city_name: str) -> tuple[str, ...]:
    """The served city's province, city and district names, full and short (山东省, 山东,
    济南市, 济南, 历下区, 历下), longest first: typed before an address, they say nothing."""
    import cpca  # imported late: it loads its division table on first use

    row = cpca.transform([city_name]).iloc[0]
    names = {str(row[k]) for k in ("省", "市", "区") if isinstance(row[k], str) and row[k]}
    names |= {n[:-1] for n in names if len(n) > 2 and n[-1] in "省市区县"}
    return tuple(sorted(names, key=len, reverse=True))


def strip_own_prefix(text: str, city: CitySettings) -> str:
    """`text` (normalised) without the served city's own division names in front."""
    prefixes = own_prefixes(city.name)
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if text.startswith(p) and text[len(p):] not in ("", "省", "市", "区", "县"):
                text, changed = text[len(p):], True
                break  # from the longest again: 济南市 before 济南
    return text


def address_hits(index: GeocodeIndex, q: str, limit: int, city: CitySettings) -> list[Hit]:
    """The geocoder's candidates when `q` reads as an address (number, building, crossing)."""
    rest = strip_own_prefix(normalize_text(q), city)
    if not _ADDRESSISH.search(rest):
        return []
    if _DIVISION.match(rest):
        # Another division may be named (青岛市…), or a compound (甸柳一区): let cpca read it,
        # and suggest nothing in another district or city.
        parsed = parse_address(q, district_name=district_name_of(city))
        if elsewhere(parsed, city):
            return []
    else:
        # The usual case, skipping cpca's per-call cost (its pandas frame: ~10 ms a call).
        parsed = parse_address(rest, district_name=district_name_of(city), admin=False)
    is_address = (parsed.cross is not None or parsed.number is not None
                  or parsed.building is not None or parsed.side is not None
                  or parsed.offset is not None)
    if not is_address:
        return []
    return [Hit("address", c.name, c.x, c.y, c.level, c.score)
            for c in match(parsed, index, limit=limit)
            if c.level in ("doorplate", "interpolated", "intersection", "landmark")]


def rank_hits(index: GeocodeIndex, q: str, limit: int, city: CitySettings,
              kinds: frozenset[str] | None = None) -> list[Hit]:
    """Address candidates and matching names, best first, one per spot and label."""
    name_text = strip_own_prefix(normalize_text(q), city)
    hits = address_hits(index, q, limit, city) + name_hits(index, name_text, limit, kinds)
    hits.sort(key=lambda h: -h.score)
    out: list[Hit] = []
    for h in hits:
        if all(h.label != o.label or math.hypot(h.x - o.x, h.y - o.y) > 5.0 for o in out):
            out.append(h)
    return out[:limit]


def to_suggestions(session: Session, hits: list[Hit], metric_epsg: int,
                   with_grid: bool = True) -> list[Suggestion]:
    """Hits (metric CRS) as WGS84 suggestions, with their grids read in one query."""
    if not hits:
        return []
    lon, lat = metric_to_wgs84(metric_epsg).transform(np.array([h.x for h in hits]),
                                                      np.array([h.y for h in hits]))
    grids = grid_codes(session, list(lon), list(lat)) if with_grid else [None] * len(hits)
    return [Suggestion(kind=h.kind, label=h.label,  # type: ignore[arg-type]
                       lon=round(float(lon[i]), 7), lat=round(float(lat[i]), 7),
                       grid_code=grids[i], level=h.level, score=h.score)
            for i, h in enumerate(hits)]


_CASE_SQL = """
SELECT case_no, ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code FROM cases
WHERE case_no = :q OR case_no = upper(:q) LIMIT 1
"""
_GRID_SQL = """
SELECT g.code, ST_X(p.g) AS lon, ST_Y(p.g) AS lat, cm.name AS community
FROM grid_cells g
CROSS JOIN LATERAL (SELECT ST_PointOnSurface(g.geom) AS g) p
LEFT JOIN communities cm ON cm.code = g.community_code
WHERE g.code BETWEEN :lo AND :hi ORDER BY g.code LIMIT :limit
"""


def suggest(session: Session, q: str, *, city: CitySettings, limit: int = 8,
            crs: str = "wgs84") -> SuggestResult:
    """Staff suggestions for `q`: coordinates, case number, grid codes, addresses and names."""
    q = check_suggest_query(q)
    limit = check_limit(limit)
    if len(crs) > 20:
        raise InvalidInputError(f"crs {crs[:20]!r}... is not one of {', '.join(SUPPORTED_CRS)}")
    crs_name = normalise_crs(crs)
    out: list[Suggestion] = []
    point = parse_coordinates(q, crs_name, city)
    if point is not None:
        grid = grid_codes(session, [point[0]], [point[1]])[0]
        out.append(Suggestion(kind="coordinates",
                              label=f"坐标 {point[0]:.6f}, {point[1]:.6f}（WGS84，"
                                    f"输入为{crs_name.upper()}）",
                              lon=round(point[0], 7), lat=round(point[1], 7), grid_code=grid,
                              score=1.0))
        return SuggestResult(query=q, suggestions=out)
    if _COORDS.match(q):  # two numbers that are not a point of this city
        return SuggestResult(query=q, suggestions=[])
    upper = q.upper()
    if _CASE.match(upper):
        row = session.execute(text(_CASE_SQL), {"q": q}).first()
        if row is not None:
            out.append(Suggestion(kind="case", label=f"案件 {row.case_no}", lon=row.lon,
                                  lat=row.lat, grid_code=row.grid_code, case_no=row.case_no,
                                  score=1.0))
    if _GRID.match(q):
        lo, hi = q, q + "9" * (15 - len(q))
        for row in session.execute(text(_GRID_SQL), {"lo": lo, "hi": hi,
                                                     "limit": limit - len(out)}):
            out.append(Suggestion(kind="grid", label=f"网格 {row.code}（{row.community or ''}）",
                                  lon=round(row.lon, 7), lat=round(row.lat, 7),
                                  grid_code=row.code,
                                  score=1.0 if row.code == q else 0.9))
    if out:
        return SuggestResult(query=q, suggestions=out[:limit])
    index = current_index(session, metric_epsg=city.metric_epsg)
    hits = rank_hits(index, q, limit, city)
    return SuggestResult(query=q, suggestions=to_suggestions(session, hits, city.metric_epsg))
