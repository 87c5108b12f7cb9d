"""Analysis results as vector tiles: what the analysis map pages draw instead of GeoJSON.

`/tiles/analysis/{coverage-gaps|dark-streets|hotspots|cover-risk}/{part}/{z}/{x}/{y}.pbf`
take the same query parameters as the analysis's JSON route and page. The tiles are cut from
the very result the JSON answers with (api.analysis_cache: same data versions, same clock
rule, same row-level-security scope, as the request's own session), so a grid owner's tiles
hold what their JSON holds and an edit to an input shows in the next tile. Staff sign-in is
required, as for the JSON. Each cached result gets one tile index (gis.geo.frame_tiles);
encoded tiles are kept per process like the staff tiles (api.routes.tiles).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.analysis_cache import cached
from api.auth import StaffDep, staff_only
from api.deps import BBoxDep, SettingsDep
from api.read_routing import ReadSessionDep
from api.routes.analysis import (
    CoverageDep,
    DarkStreetDep,
    _cover_risks,
    _coverage,
    _dark_streets,
)
from api.routes.hotspots import HotspotDep, HotspotParams, _key, _run
from api.routes.tiles import (
    DATA_CACHE,
    MVT_MEDIA_TYPE,
    Column,
    Row,
    Zoom,
    _cached,
    _scope,
    _tile_response,
)
from gis.geo.frame_tiles import FrameLayer, PointBins, encode_tile
from gis.geo.tiles import TileKey
from layers.query import read_layer
from layers.registry import LAYERS
from maps.analysis_tiles import TILE_PREFIX

router = APIRouter(tags=["tiles"], dependencies=[staff_only])
TileLayers = Mapping[str, FrameLayer | PointBins]

COVERAGE_COLUMNS = ("grid_code", "distance_m", "network_m", "straight_m", "snap_m",
                    "station_name", "method", "covered", "review", "review_reason")
# Below this tile zoom grids are merged by their flags (the page says to zoom in for one).
COVERAGE_BRIEF = ("covered", "review")
COVERAGE_DETAIL_ZOOM = 14
DARK_COLUMNS = ("road_name", "street_class", "dark_m", "max_distance_m", "gap_m", "grid_code")
HOTSPOT_COLUMNS = ("cell", "cases", "repeats", "weight", "z", "p_sim", "p_fdr", "label",
                   "hot_class")
RISK_COLUMNS = ("code", "class_name", "state", "owner", "hours", "open_case_no", "risk")

RESULT_TILE_TTL_S = 3600.0
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "unchanged"},
    404: {"description": "no such tile"}}


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    # Two decimals are what the popups show; fewer digits make smaller tiles.
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    return frame.assign(**{c: frame[c].round(2) for c in floats}) if floats else frame


_LOCKS_GUARD = threading.Lock()
_BUILD_LOCKS: dict[Hashable, threading.Lock] = {}


def _build_lock(key: Hashable) -> threading.Lock:
    with _LOCKS_GUARD:
        if len(_BUILD_LOCKS) > 1024:  # parameters vary freely: forget old ones
            _BUILD_LOCKS.clear()
        return _BUILD_LOCKS.setdefault(key, threading.Lock())


def _serve(request: Request, session: Session, user: StaffDep, *, analysis: str,
           key: Hashable, tile: TileKey, clock: bool,
           build: Callable[[], TileLayers]) -> Response:
    scope = _scope(user)
    # The index is cached like the result it is cut from (same versions, scope, clock). One
    # build per result: a page's first tiles arrive together, and each would build it again.
    with _build_lock((analysis, key, scope)):
        index = cached(request, session, analysis, ("tiles", key), build, clock=clock)
    # The key names the result (computed_at): a tile stays right as long as its result does.
    body = _cached(request, (scope, "analysis", analysis, key, index.computed_at,
                             tile.z, tile.x, tile.y), RESULT_TILE_TTL_S,
                   lambda: encode_tile(tile, index.value))
    return _tile_response(request, body, scope=f"{scope}:{index.computed_at.isoformat()}",
                          cache=DATA_CACHE)


@router.get(TILE_PREFIX + "/coverage-gaps/{part}/{z}/{x}/{y}.pbf", response_class=Response,
            summary="工作站服务盲区瓦片 (coverage gaps MVT)", responses=_RESPONSES)
def coverage_tile(request: Request, part: Annotated[Literal["gaps", "covered"], Path()],
                  z: Zoom, x: Column, y: Row, session: ReadSessionDep, settings: SettingsDep,
                  params: CoverageDep, bbox: BBoxDep, user: StaffDep) -> Response:
    """Uncovered (`gaps`) or covered grids of /analysis/coverage-gaps, one MVT layer."""
    tile = TileKey(z, x, y)

    def build() -> TileLayers:
        cells = _coverage(request, session, settings, params, bbox.bounds()).value.cells
        part_cells = cells[cells["covered"] == (part == "covered")]
        return {part: FrameLayer.of(_rounded(part_cells), COVERAGE_COLUMNS,
                                    brief=COVERAGE_BRIEF, detail_zoom=COVERAGE_DETAIL_ZOOM,
                                    dissolve=True)}

    return _serve(request, session, user, analysis="coverage", tile=tile, clock=False,
                  key=(part, params.threshold_m, params.method, bbox.bbox), build=build)


@router.get(TILE_PREFIX + "/dark-streets/{part}/{z}/{x}/{y}.pbf", response_class=Response,
            summary="亮灯死角瓦片 (dark street gaps MVT)", responses=_RESPONSES)
def dark_streets_tile(request: Request, part: Annotated[Literal["stretches"], Path()],
                      z: Zoom, x: Column, y: Row, session: ReadSessionDep,
                      settings: SettingsDep, params: DarkStreetDep, bbox: BBoxDep,
                      user: StaffDep) -> Response:
    """The dark stretches of /analysis/dark-streets, one MVT layer."""
    tile = TileKey(z, x, y)

    def build() -> TileLayers:
        run = _dark_streets(request, session, settings, params, bbox.bounds()).value
        return {part: FrameLayer.of(_rounded(run.stretches), DARK_COLUMNS)}

    return _serve(request, session, user, analysis="dark_streets", tile=tile, clock=False,
                  key=(part, params.method, params.threshold_m, params.step_m, bbox.bbox),
                  build=build)


def hotspot_cases(session: Session, params: HotspotParams, bbox: BBoxDep
                  ) -> list[tuple[float, float]]:
    """(lon, lat) of the complaints in the hotspot window (the session's scope applies)."""
    start, end = params.window()
    cases = read_layer(session, LAYERS["cases"], bbox=bbox.bounds())
    if cases.empty:
        return []
    reported = pd.to_datetime(cases["reported_at"], utc=True)
    cases = cases[(reported >= start) & (reported < end)]
    return list(zip(cases.geometry.x, cases.geometry.y, strict=True))


@router.get(TILE_PREFIX + "/hotspots/{part}/{z}/{x}/{y}.pbf", response_class=Response,
            summary="投诉热点瓦片 (hotspot cells / complaint heat MVT)", responses=_RESPONSES)
def hotspots_tile(request: Request, part: Annotated[Literal["cells", "heat"], Path()],
                  z: Zoom, x: Column, y: Row, session: ReadSessionDep, params: HotspotDep,
                  bbox: BBoxDep, user: StaffDep) -> Response:
    """Gi* cells (`cells`) or the window's complaints per 32 px bin (`heat`), one MVT layer."""
    tile = TileKey(z, x, y)

    def build() -> TileLayers:
        if part == "heat":
            return {part: PointBins.of(hotspot_cases(session, params, bbox))}
        cells = _run(request, session, params, bbox).value.cells
        return {part: FrameLayer.of(_rounded(cells), HOTSPOT_COLUMNS)}

    return _serve(request, session, user, analysis="hotspots", tile=tile,
                  clock=params.end is None, key=(part, _key(params), bbox.bbox), build=build)


@router.get(TILE_PREFIX + "/cover-risk/{part}/{z}/{x}/{y}.pbf", response_class=Response,
            summary="井盖隐患瓦片 (cover risk MVT)", responses=_RESPONSES)
def cover_risk_tile(request: Request, part: Annotated[Literal["covers"], Path()],
                    z: Zoom, x: Column, y: Row, session: ReadSessionDep, bbox: BBoxDep,
                    user: StaffDep) -> Response:
    """Damaged and missing covers of /analysis/cover-risk with their risk, one MVT layer."""
    tile = TileKey(z, x, y)

    def build() -> TileLayers:
        risks, _about = _cover_risks(request, session, bbox).value
        return {part: FrameLayer.of(_rounded(risks), RISK_COLUMNS)}

    return _serve(request, session, user, analysis="cover_risk", tile=tile, clock=True,
                  key=(part, bbox.bbox), build=build)
