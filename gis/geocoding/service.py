"""Geocode for a session: text -> candidates in WGS84/GCJ-02 with grids and the best one routed;
and back: a point -> the nearest doorplate, road and community as text ("…号附近").

An address in another district or city is refused with the reason, not matched to a namesake
road here; an answer under `CONFIDENT_SCORE` says so (`confident` false) and is not routed.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.routing import RouteResult, route_point
from gis.dispatch.routing_settings import RoutingSettings
from gis.geo.coords import normalise_crs, to_wgs84, wgs84_to_gcj02
from gis.geocoding.index import current_index
from gis.geocoding.match import match
from gis.geocoding.normalize import MAX_ADDRESS_CHARS
from gis.geocoding.parse import ParsedAddress, parse_address
from gis.platform.errors import InvalidInputError, OutsideCityError
from gis.platform.settings import CitySettings

CONFIDENT_SCORE = 0.6
REVERSE_DOORPLATE_M = 60.0  # farther than this, the reverse answer names the road only
Level = Literal["doorplate", "interpolated", "intersection", "landmark", "road", "community"]


class GeocodeCandidate(BaseModel):
    """One place an address may mean."""

    level: Level = Field(description="doorplate (exact), interpolated (between known plates "
                         "of the same side), intersection, landmark, road or community only")
    score: float = Field(ge=0, le=1)
    name: str = Field(description="what was matched, as the gazetteer writes it")
    why: str = Field(description="how it was matched (zh-CN)")
    lon: float = Field(description="WGS84")
    lat: float
    gcj02_lon: float = Field(description="the same point in GCJ-02 (AMap, WeChat)")
    gcj02_lat: float
    grid_code: str | None = Field(None, description="unit grid containing the point")


class GeocodeResult(BaseModel):
    """Candidates for one address, best first, and the routing of the best when confident."""

    query: str
    normalized: str
    parsed: dict[str, Any]
    confident: bool
    message: str
    candidates: list[GeocodeCandidate]
    route: RouteResult | None = None


class ReverseResult(BaseModel):
    """What is at a point: the address to write on a case."""

    lon: float
    lat: float
    address: str = Field(description="e.g. 济南市历下区模拟经三路12号附近")
    doorplate: str | None
    doorplate_distance_m: float | None
    road: str | None
    road_distance_m: float | None
    community_code: str | None
    community_name: str | None
    subdistrict_name: str | None


@lru_cache(maxsize=8)
def metric_to_wgs84(metric_epsg: int) -> Transformer:
    """The transformer from the metric CRS to WGS84 (lon, lat order)."""
    return Transformer.from_crs(metric_epsg, 4326, always_xy=True)


def check_query(q: str) -> str:
    """The query stripped; refused when empty or longer than an address can be."""
    q = q.strip()
    if not q:
        raise InvalidInputError("the address is empty")
    if len(q) > MAX_ADDRESS_CHARS:
        raise InvalidInputError(f"the address has {len(q)} characters; at most "
                                f"{MAX_ADDRESS_CHARS} are read")
    return q


def elsewhere(parsed: ParsedAddress, city: CitySettings) -> str | None:
    """Why the address lies outside the city served (another district or city), else None."""
    code = parsed.admin_code
    if not code:
        return None
    if code.endswith("00"):  # only a province or city was named
        same = code[:4] == city.code[:4] or code[2:] == "0000"
        return None if same else f"地址在{parsed.city or parsed.province}，不在{city.name}"
    if not city.serves(code):
        return f"地址在{parsed.city or ''}{parsed.district}，不在{city.name}"
    return None


def geocode(session: Session, q: str, *, city: CitySettings, limit: int = 5,
            routing: RoutingSettings | None = None, at: datetime | None = None) -> GeocodeResult:
    """Candidates for address `q`; with `routing`, the confident best one is routed too."""
    q = check_query(q)
    parsed = parse_address(q, district_name=district_name_of(city))
    refused = elsewhere(parsed, city)
    if refused:
        return GeocodeResult(query=q, normalized=parsed.text, parsed=parsed.as_dict(),
                             confident=False, message=refused, candidates=[])
    index = current_index(session, metric_epsg=city.metric_epsg)
    found = match(parsed, index, limit=limit)
    candidates = _to_wgs84_candidates(session, found, city.metric_epsg)
    confident = bool(candidates) and candidates[0].score >= CONFIDENT_SCORE
    if not candidates:
        message = "未找到该地址，请核对道路名、门牌号或换用附近的地名"
    elif confident:
        message = f"最佳匹配：{candidates[0].name}（{candidates[0].why}）"
    else:
        message = (f"把握不足（{candidates[0].score:.2f} < {CONFIDENT_SCORE}）："
                   f"{candidates[0].why}，请补充门牌号或地标")
    route = None
    if confident and routing is not None:
        best = candidates[0]
        try:
            route = route_point(session, x=best.lon, y=best.lat, crs="wgs84",
                                at=at or datetime.now(routing.tz), settings=routing, city=city)
        except OutsideCityError:
            route = None
    return GeocodeResult(query=q, normalized=parsed.text, parsed=parsed.as_dict(),
                         confident=confident, message=message, candidates=candidates,
                         route=route)


def district_name_of(city: CitySettings) -> str:
    """The district part of the city's name: 济南市历下区 -> 历下区."""
    name = city.name
    return name.split("市", 1)[1] if "市" in name[:-1] else name


def _to_wgs84_candidates(session: Session, found: list[Any],
                         metric_epsg: int) -> list[GeocodeCandidate]:
    if not found:
        return []
    lon, lat = metric_to_wgs84(metric_epsg).transform([c.x for c in found], [c.y for c in found])
    glon, glat = wgs84_to_gcj02(lon, lat)
    grids = grid_codes(session, list(lon), list(lat))
    return [GeocodeCandidate(level=c.level, score=c.score, name=c.name, why=c.why,
                             lon=round(float(lon[i]), 7), lat=round(float(lat[i]), 7),
                             gcj02_lon=round(float(glon[i]), 7), gcj02_lat=round(float(glat[i]), 7),
                             grid_code=grids[i])
            for i, c in enumerate(found)]


def grid_codes(session: Session, lon: list[float], lat: list[float]) -> list[str | None]:
    """The unit grid containing each point (smallest code on shared edges), or None."""
    rows = session.execute(text("""
        SELECT u.i, (SELECT c.code FROM grid_cells c
                     WHERE ST_Intersects(c.geom, ST_SetSRID(ST_MakePoint(u.x, u.y), 4326))
                     ORDER BY c.code LIMIT 1) AS code
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY u(x, y, i)
    """), {"xs": [float(v) for v in lon], "ys": [float(v) for v in lat]}).all()
    codes = {int(r.i): r.code for r in rows}
    return [codes.get(i + 1) for i in range(len(lon))]


_REVERSE_SQL = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
SELECT plate.label, plate.m AS plate_m, road.name AS road, road.m AS road_m,
       cm.code AS community_code, cm.name AS community_name, sd.name AS subdistrict_name
FROM p
LEFT JOIN LATERAL (
    SELECT coalesce(d.road_name || d.number || d.suffix || '号',
                    c.name || d.building || '号楼') AS label,
           ST_Distance(d.geom::geography, p.g::geography) AS m
    FROM doorplates d LEFT JOIN compounds c ON c.id = d.compound_id
    ORDER BY d.geom <-> p.g LIMIT 1) plate ON true
LEFT JOIN LATERAL (
    SELECT r.name, ST_Distance(r.geom::geography, p.g::geography) AS m
    FROM roads r ORDER BY r.geom <-> p.g LIMIT 1) road ON true
LEFT JOIN communities cm ON ST_Intersects(cm.geom, p.g)
LEFT JOIN subdistricts sd ON sd.code = cm.subdistrict_code
ORDER BY cm.code LIMIT 1
"""


def reverse_geocode(session: Session, *, x: float, y: float, crs: str = "wgs84",
                    city: CitySettings) -> ReverseResult:
    """The nearest doorplate, road and the community at (x, y) in `crs`, as address text."""
    lon, lat = to_wgs84(x, y, normalise_crs(crs))
    x1, y1, x2, y2 = city.bbox
    if not (x1 <= lon <= x2 and y1 <= lat <= y2):
        raise OutsideCityError(f"point ({x}, {y}) {crs} = WGS84 ({lon:.6f}, {lat:.6f}) is "
                               f"outside {city.name}")
    row = session.execute(text(_REVERSE_SQL), {"lon": lon, "lat": lat}).one()
    plate = row.label if row.plate_m is not None and row.plate_m <= REVERSE_DOORPLATE_M else None
    where = plate or row.road or row.community_name or ""
    return ReverseResult(
        lon=lon, lat=lat, address=f"{city.name}{where}附近" if where else city.name,
        doorplate=plate, doorplate_distance_m=None if plate is None else round(row.plate_m, 1),
        road=row.road, road_distance_m=None if row.road_m is None else round(row.road_m, 1),
        community_code=row.community_code, community_name=row.community_name,
        subdistrict_name=row.subdistrict_name)
