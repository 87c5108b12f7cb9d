"""Single-point routing on the in-process routing index: `POST /route` without per-point SQL.

`route_point_indexed` answers exactly as gis.dispatch.routing.route_point (same RouteResult,
same refusals and messages) from the routing index batch routing uses (RoutingIndex of
gis.dispatch.engine.index, its owners, stations, zones and snapping), with an STRtree in place
of the grid raster, following the *single-point* SQL where it differs from the batch SQL:

* the nearest other grid is always named: among the 8 grids nearest in degrees (its own grid
  left out) the nearest in metres, ties to the smallest code; batch looks only in a window;
* the station is among the 8 nearest in degrees the nearest in metres (batch: the Voronoi
  cell in the metric CRS).

Per request the database is read once: one statement returns `routing_version` (is the
index current?) together with the responsibility rule of the category, which no version
counter covers. Requests that name a component or a component category link it in PostGIS
by route_point's own statements (components are many and change often). A session running
as the grid-owner role (row-level security hides other grids' stall zones and components)
is routed by route_point itself.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gis.access.auth import SCOPED_DB_ROLE
from gis.dispatch.engine import geodesy
from gis.dispatch.engine import index as index_sql  # its _CELLS and _ZONES statements
from gis.dispatch.engine.grid import GridRaster
from gis.dispatch.engine.index import RoutingIndex
from gis.dispatch.engine.nearest_other import NeighbourLists
from gis.dispatch.engine.polygons import Polygons
from gis.dispatch.routing import (
    OwnerInfo,
    RouteResult,
    Rule,
    StallZoneInfo,
    StationInfo,
    checked_point,
    fallback_owner,
    find_rule,
    link_component,
    local_time,
    responsible_unit,
    route_point,
)
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.errors import OutsideCityError
from gis.platform.settings import CitySettings
from gis.zones.timeslots import Schedule, parse_schedule

_KNN = 8  # as gis.dispatch.routing._KNN_CANDIDATES
_EPOCH = date(1970, 1, 1)

# The version check and the category's rule (gis.dispatch.routing._RULE) in one round trip.
CHECK_COLUMNS = ("v.version, current_database() AS db, current_user AS db_role, "
                 "r.code_prefix, r.rule_kind, r.responsible_unit, r.notes, r.class_owner")
_CHECK = f"""
SELECT {CHECK_COLUMNS}
FROM routing_version v
LEFT JOIN LATERAL (
    SELECT r.code_prefix, r.rule_kind, r.responsible_unit, r.notes,
           (SELECT default_owner FROM component_classes WHERE code = :code) AS class_owner
    FROM responsibility_rules r
    WHERE r.category_type = :type AND :code LIKE r.code_prefix || '%'
    ORDER BY length(r.code_prefix) DESC LIMIT 1) r ON true
"""
_VERSION = "SELECT version FROM routing_version"
_ZONES = ("SELECT id, name, zone_type, operator, time_slots, seasons FROM stall_zones "
          "WHERE status = 'approved'")


class _Cells:
    """The grid's polygons for one point at a time: an STRtree over PostGIS-exact edge tests.

    Stands in for GridRaster: a single point needs no raster (one tree query finds its few
    candidates), and unlike the raster it allows overlapping cells. The demo city has 128
    sliver overlaps (< 0.01 m2) between communities, which make the raster refuse the grid.
    """

    def __init__(self, polys: np.ndarray) -> None:
        self.polys = polys
        self.edges = Polygons.from_shapely(polys)
        self.tree = shapely.STRtree(polys)
        b = self.edges.bounds
        # A cell's typical size: the first reach of the nearest-other-grid search.
        self.step = float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))

    def near_pairs(self, x: np.ndarray, y: np.ndarray,
                   factor: float) -> tuple[np.ndarray, np.ndarray]:
        """GridRaster.near_pairs (it reads only the tree), for RoutingIndex.snap."""
        return GridRaster.near_pairs(self, x, y, factor)  # type: ignore[arg-type]


class PointIndex(RoutingIndex):
    """The routing index for single points: RoutingIndex with _Cells in place of the raster.

    Owners of the day, stations, stall zones and snapping are RoutingIndex's own code; only
    containment (`locate`) and the grid structure differ. Also keeps what single answers add:
    the stall zones' names, operators and schedules.
    """

    def __init__(self, conn: Connection, *, metric_epsg: int, max_lat: float) -> None:
        cells = pd.DataFrame(conn.execute(text(index_sql._CELLS)).mappings().all(),
                             columns=["code", "community_code", "community_name",
                                      "subdistrict_name", "wkb"])
        cells = cells.sort_values("code", kind="stable").reset_index(drop=True)
        self.cells = cells.drop(columns="wkb")
        self.codes = cells["code"].to_numpy(dtype=object)
        self.grid = (_Cells(shapely.from_wkb(cells["wkb"].map(bytes).to_numpy()))  # type: ignore[assignment]
                     if len(cells) else None)
        self.snap_factor = 1.01 / max(math.cos(math.radians(max_lat)), 0.01)
        # Per grid the candidates of its points' nearest other grid, edge rows laid out.
        self.neighbours = (NeighbourLists(self.grid.edges, self.grid.tree, self.snap_factor)
                           if self.grid is not None else None)
        self._load_owners(conn)
        self._load_stations(conn, metric_epsg)
        self.station_lon = self.stations["lon"].to_numpy(float)
        self.station_lat = self.stations["lat"].to_numpy(float)
        zones = conn.execute(text(index_sql._ZONES)).all()
        self.zone_ids = np.array([z.id for z in zones], dtype=np.int64)
        zone_polys = shapely.from_wkb([bytes(z.wkb) for z in zones])
        self.zones = Polygons.from_shapely(np.asarray(zone_polys)) if len(zones) else None
        self.zone_tree = shapely.STRtree(np.asarray(zone_polys))
        self.zone_info: dict[int, tuple[StallZoneInfo, Schedule]] = {
            int(r.id): (StallZoneInfo(id=r.id, name=r.name, zone_type=r.zone_type,
                                      operator=r.operator),
                        parse_schedule(r.time_slots, r.seasons))
            for r in conn.execute(text(_ZONES))}
        self._neighbours = {}
        self._lock = threading.Lock()
        # Plain arrays and lists: a pandas row lookup costs more than the routing itself.
        cell_cols = ["community_code", "community_name", "subdistrict_name"]
        self.cell_rows: list[Any] = list(self.cells[cell_cols].itertuples(index=False))
        owner_cols = ["owner_name", "owner_kind", "phone", "valid_from", "valid_to"]
        self.owner_list: list[Any] = list(self.owners[owner_cols].itertuples(index=False))
        self.owner_key = np.asarray(self._owner_key, dtype=np.int64)
        self.owner_grid = self.owners["grid"].to_numpy(np.int64)
        self.owner_end = self.owners["end"].to_numpy(np.int64)
        station_cols = ["code", "name", "phone"]
        self.station_rows: list[Any] = list(self.stations[station_cols].itertuples(index=False))

    def owner_row(self, grid_no: int, day: int) -> int:
        """owner_rows for one grid and day (days since 1970), on plain arrays."""
        row = int(np.searchsorted(self.owner_key, grid_no * 10_000_000 + day, side="right")) - 1
        if row < 0 or self.owner_grid[row] != grid_no or self.owner_end[row] <= day:
            return -1
        return row

    def zone_ids_at(self, lon: float, lat: float) -> list[int]:
        """zones_at for one point: ids (ascending) of the approved zones covering it."""
        if self.zones is None:
            return []
        cand = np.sort(self.zone_tree.query(shapely.points(lon, lat))).astype(np.int64)
        hit = self.zones.intersects(np.full(len(cand), lon), np.full(len(cand), lat), cand)
        return sorted(int(z) for z in self.zone_ids[cand[hit]])

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid number holding each point (smallest code on shared edges), -1 for none."""
        result = np.full(len(x), -1, dtype=np.int64)
        grid = self.grid
        if grid is None or len(x) == 0:
            return result
        pt, poly = grid.tree.query(shapely.points(x, y))  # bounding boxes, closed
        hit = grid.edges.intersects(x[pt], y[pt], poly)
        pt, poly = pt[hit], poly[hit]
        order = np.lexsort((poly, pt))
        first = order[np.r_[True, pt[order][1:] != pt[order][:-1]]] if len(pt) else order
        result[pt[first]] = poly[first]
        return result


_CACHE: OrderedDict[tuple[Any, ...], PointIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()
# One build at a time per process: concurrent requests after an edit wait for it instead of
# each compiling the whole grid on the two cores.
_BUILD_LOCK = threading.Lock()


def cached_point_index(*, database: str, version: int, city: CitySettings) -> PointIndex | None:
    """The index `point_index` built for `version` of `database`, or None (no connection)."""
    key = (database, version, city.metric_epsg, max(city.bbox[1::2]))
    with _CACHE_LOCK:
        return _CACHE.get(key)


def point_index(conn: Connection, *, database: str, version: int,
                city: CitySettings) -> PointIndex:
    """The single-routing index for `version` of `database`, built when the version moved."""
    key = (database, version, city.metric_epsg, max(city.bbox[1::2]))
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    with _BUILD_LOCK:
        with _CACHE_LOCK:
            found = _CACHE.get(key)
        if found is not None:
            return found
        built = PointIndex(conn, metric_epsg=city.metric_epsg, max_lat=max(city.bbox[1::2]))
        # An edit committed while building: answer this request, but do not keep the index
        # under a version whose data it may not hold.
        if conn.execute(text(_VERSION)).scalar_one() == version:
            with _CACHE_LOCK:
                _CACHE[key] = built
                while len(_CACHE) > 2:  # current and previous version (open requests)
                    _CACHE.popitem(last=False)
        return built


def _nearest_station(index: PointIndex, lon: float,
                     lat: float) -> tuple[int, float] | None:
    """Row of the station nearest in metres among the 8 nearest in degrees, and the metres."""
    if len(index.station_lon) == 0:
        return None
    dx, dy = index.station_lon - lon, index.station_lat - lat
    planar = np.sqrt(dx * dx + dy * dy)
    rows = np.lexsort((np.arange(len(planar)), planar))[:_KNN]
    metres = geodesy.point_point_m(index.station_lon[rows], index.station_lat[rows],
                                   np.full(len(rows), lon), np.full(len(rows), lat))
    best = np.lexsort((rows, metres))[0]  # rows are in code order: ties to the smallest code
    return int(rows[best]), float(metres[best])


def _nearest_other(index: PointIndex, lon: float, lat: float, own: int,
                   inside: bool = False) -> tuple[int, float] | None:
    """Grid other than `own` nearest in metres among the 8 nearest in degrees, and metres."""
    grid = index.grid
    if grid is None or len(index.codes) < 2:
        return None
    if inside and index.neighbours is not None:  # the point lies in `own` (not snapped)
        found = index.neighbours.nearest_other(lon, lat, own)
        if found is not None:
            return found
    point = shapely.points(lon, lat)
    xs, ys = np.array([lon]), np.array([lat])

    def within(reach: float) -> tuple[np.ndarray, np.ndarray]:
        polys = grid.tree.query(point, predicate="dwithin", distance=reach)
        polys = np.sort(polys[polys != own]).astype(np.int64)
        return polys, grid.edges.planar(np.repeat(xs, len(polys)), np.repeat(ys, len(polys)),
                                        polys)

    reach = grid.step / 2
    polys, planar = within(reach)
    while len(polys) == 0:
        reach *= 4
        polys, planar = within(reach)
    # Every grid nearer in metres than the nearest in degrees lies within this many degrees
    # (a degree of longitude is cos(lat) of one of latitude), so the 8 nearest in degrees
    # outside it can never win the re-ranking; the SQL's answer is among these.
    window = float(planar.min()) * index.snap_factor + 1e-12
    if window > reach:
        polys, planar = within(window)
    keep = planar <= window
    polys, planar = polys[keep], planar[keep]
    knn = np.lexsort((polys, planar))[:_KNN]
    polys = polys[knn]
    metres = grid.edges.geography(np.repeat(xs, len(polys)), np.repeat(ys, len(polys)),
                                        polys, index.snap_factor)
    best = np.lexsort((polys, metres))[0]
    return int(polys[best]), float(metres[best])


def _owner(index: PointIndex, grid_no: int, day: date) -> OwnerInfo:
    row = index.owner_row(grid_no, (day - _EPOCH).days)
    if row < 0:
        return fallback_owner(str(index.cell_rows[grid_no].subdistrict_name))
    owner = index.owner_list[row]

    def day_or_none(value: Any) -> date | None:
        if value is None or pd.isna(value):
            return None
        return value.date() if isinstance(value, datetime) else value  # type: ignore[no-any-return]

    phone = owner.phone
    return OwnerInfo(name=owner.owner_name, kind=owner.owner_kind,
                     phone=None if phone is None or pd.isna(phone) else phone,
                     valid_from=day_or_none(owner.valid_from),
                     valid_to=day_or_none(owner.valid_to), fallback=False)


def _open_zone(index: PointIndex, lon: float, lat: float,
               local: datetime) -> StallZoneInfo | None:
    for zone_id in index.zone_ids_at(lon, lat):
        found = index.zone_info.get(zone_id)
        if found is not None and found[1].is_open(local):
            return found[0]
    return None


def route_point_indexed(session: Session, *, x: float, y: float, crs: str = "wgs84",
                        at: datetime, category_type: str = "event",
                        category_code: str | None = None, component_code: str | None = None,
                        settings: RoutingSettings,
                        city: CitySettings | None = None) -> RouteResult:
    """route_point's answer for (x, y) in `crs` at `at`, from the in-process routing index."""
    city = city or CitySettings()
    # Bad input is refused before the database is asked (route_from_check checks it again).
    checked_point(x, y, crs, category_type, category_code, component_code)
    local_time(at, settings)
    conn = session.connection()
    check = conn.execute(text(_CHECK), {"type": category_type,
                                        "code": category_code or ""}).mappings().one()
    if check["db_role"] == SCOPED_DB_ROLE:
        return route_point(session, x=x, y=y, crs=crs, at=at, category_type=category_type,
                           category_code=category_code, component_code=component_code,
                           settings=settings, city=city)
    return route_from_check(conn, dict(check), x=x, y=y, crs=crs, at=at,
                            category_type=category_type, category_code=category_code,
                            component_code=component_code, settings=settings, city=city,
                            session=session)


def route_from_check(conn: Connection, check: Mapping[str, Any], *, x: float, y: float,
                     crs: str = "wgs84", at: datetime, category_type: str = "event",
                     category_code: str | None = None, component_code: str | None = None,
                     settings: RoutingSettings, city: CitySettings | None = None,
                     session: Session | None = None) -> RouteResult:
    """route_point_indexed's answer once its check row (version, rule) has been read."""
    city = city or CitySettings()
    index = point_index(conn, database=check["db"], version=int(check["version"]), city=city)
    return route_on_index(index, check, x=x, y=y, crs=crs, at=at, category_type=category_type,
                          category_code=category_code, component_code=component_code,
                          settings=settings, city=city, session=session)


def route_on_index(index: PointIndex, check: Mapping[str, Any], *, x: float, y: float,
                   crs: str = "wgs84", at: datetime, category_type: str = "event",
                   category_code: str | None = None, component_code: str | None = None,
                   settings: RoutingSettings, city: CitySettings | None = None,
                   session: Session | None = None) -> RouteResult:
    """The answer from `index` (current for `check`'s version) and `check`'s rule.

    A component is linked in PostGIS through `session`; without one (POST /route's single
    round trip) the caller must send component requests through route_point_indexed.
    """
    city = city or CitySettings()
    tag, lon, lat = checked_point(x, y, crs, category_type, category_code, component_code)
    local = local_time(at, settings)
    xs, ys = np.array([lon]), np.array([lat])
    grid_no, dist, snapped = int(index.locate(xs, ys)[0]), 0.0, False
    if grid_no < 0:
        near, metres = index.snap(xs, ys)
        grid_no, dist, snapped = int(near[0]), float(metres[0]), True
    if grid_no < 0 or (snapped and dist > settings.max_snap_m):
        distance = "" if grid_no < 0 else f"{dist:.0f} m from the nearest grid, "
        raise OutsideCityError(
            f"point ({x}, {y}) {tag} = WGS84 ({lon:.6f}, {lat:.6f}) is outside {city.name}: "
            f"{distance}more than the {settings.max_snap_m:g} m a point may be snapped")
    owner = _owner(index, grid_no, local.date())
    component = None
    if component_code is not None or category_type == "component":
        if session is None:
            raise ValueError("linking a component needs a session: use route_point_indexed")
        component = link_component(session, lon=lon, lat=lat, category_type=category_type,
                                   category_code=category_code, component_code=component_code,
                                   link_m=settings.component_link_m)
    if component is not None and session is not None:  # linked through the session
        # A linked component decides the category: its class is what the rules are keyed on.
        rule = find_rule(session, category_type="component",
                         category_code=component.component_class)
    else:
        rule = None if check["rule_kind"] is None else Rule(
            code_prefix=check["code_prefix"], rule_kind=check["rule_kind"],
            responsible_unit=check["responsible_unit"], notes=check["notes"],
            class_owner=check["class_owner"])
    unit, why, why_zh = responsible_unit(rule, owner=owner, component=component)
    station = None
    nearest = _nearest_station(index, lon, lat)
    if nearest is not None:
        st = index.station_rows[nearest[0]]
        station = StationInfo(code=st.code, name=st.name, phone=st.phone,
                              distance_m=round(nearest[1], 2))
    other = _nearest_other(index, lon, lat, grid_no, inside=not snapped)
    other_m = None if other is None else round(other[1], 2)
    cell = index.cell_rows[grid_no]
    return RouteResult(
        raw_x=x, raw_y=y, raw_crs=tag, lon=lon, lat=lat, at=at,
        grid_code=index.codes[grid_no], community_code=cell.community_code,
        community_name=cell.community_name, snapped=snapped,
        snap_distance_m=round(dist, 2), owner=owner, station=station,
        category_type=category_type,  # type: ignore[arg-type]
        category_code=category_code, responsible_unit=unit, responsibility_rule=why,
        responsibility_rule_zh=why_zh, component=component,
        nearest_other_grid=None if other is None else str(index.codes[other[0]]),
        other_grid_distance_m=other_m,
        near_boundary=other_m is not None and other_m <= settings.boundary_m,
        stall_zone=_open_zone(index, lon, lat, local),
    )


def route_single(session: Session, *, x: float, y: float, crs: str = "wgs84", at: datetime,
                 category_type: str = "event", category_code: str | None = None,
                 component_code: str | None = None, settings: RoutingSettings,
                 city: CitySettings | None = None) -> RouteResult:
    """Route one complaint by the engine `settings.single_engine` names (index or sql)."""
    route = route_point_indexed if settings.single_engine == "index" else route_point
    return route(session, x=x, y=y, crs=crs, at=at, category_type=category_type,
                 category_code=category_code, component_code=component_code,
                 settings=settings, city=city)
