"""Hotspot routes: /analysis/hotspots (GeoJSON) and /analysis/map/hotspots (page).

The study area is a district, street or community polygon (`area`, default every district),
clipped by the optional bbox; each answer carries the method, parameters, study area and
as-of time (`about`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.analysis_cache import cached
from api.auth import staff_only
from api.deps import BBoxDep, SettingsDep
from api.params import SaneDatetime
from api.read_routing import ReadSessionDep
from api.routes.analysis import (
    AnalysisFeatures,
    GeoJSONResponse,
    _cached_page,
    _collection,
    cached_json,
)
from gis.analysis.common import CHINA_TZ
from gis.analysis.gi_star import DEFAULT_MIN_CASES, DEFAULT_PERMUTATIONS, DEFAULT_SEED
from gis.analysis.hotspots import HotspotResult, find_hotspots
from gis.analysis.result_cache import CachedResult
from gis.platform.errors import InvalidInputError
from maps.analysis_tiles import hotspot_layers, tile_url, tiled_analysis_map
from maps.assets import render_html
from maps.basemaps import staff_base_for

router = APIRouter(tags=["analysis"], dependencies=[staff_only])


@dataclass
class HotspotParams:
    """Hotspot options; the window ends at `end` (default now) and lasts `days`."""

    end: Annotated[SaneDatetime | None, Query(description="window end (default now)")] = None
    days: Annotated[int, Query(ge=1, le=366, description="window length in days")] = 30
    area: Annotated[str | None, Query(
        pattern=r"^(\d{6}|\d{9}|\d{12})$",
        description="study area: district (6 digits), street (9) or community (12) code; "
                    "default every district")] = None
    category: Annotated[list[str] | None, Query(description="category codes, e.g. 0504")] = None
    resolution: Annotated[int, Query(ge=5, le=12, description="H3 resolution")] = 9
    k: Annotated[int, Query(ge=1, le=5, description="Gi* neighbourhood in rings")] = 1
    repeat_weight: Annotated[float, Query(ge=0, le=10, description="extra weight of a "
                                          "repeat complaint")] = 0.5
    permutations: Annotated[int, Query(ge=99, le=99_999, description="permutations of the "
                                       "pseudo p-values")] = DEFAULT_PERMUTATIONS
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="permutation seed")
                    ] = DEFAULT_SEED
    min_cases: Annotated[int, Query(ge=1, le=1000, description="complaints a cell needs of "
                                    "its own to be labelled hot")] = DEFAULT_MIN_CASES
    inference: Annotated[Literal["total", "conditional"], Query(
        description="total: random whole neighbourhoods; conditional: esda's draws holding "
                    "the cell fixed")] = "total"

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of the window, timezone-aware."""
        end = self.end or dt.datetime.now(CHINA_TZ)
        try:
            # In city time: PostgreSQL refuses offsets past ±15:59 that Python accepts.
            end = end.replace(tzinfo=CHINA_TZ) if end.tzinfo is None else end.astimezone(CHINA_TZ)
            return end - dt.timedelta(days=self.days), end
        except OverflowError:
            raise InvalidInputError(f"end={self.end} minus days={self.days} is outside the "
                                    f"calendar (years 1 to 9999)") from None


HotspotDep = Annotated[HotspotParams, Depends()]


def _run(request: Request, session: Session, params: HotspotParams,
         bbox: BBoxDep) -> CachedResult[HotspotResult]:
    # A window ending "now" moves with the clock: reused for analysis_cache_seconds at most.
    return cached(request, session, "hotspots", (_key(params), bbox.bbox),
                  lambda: _find(session, params, bbox), clock=params.end is None,
                  refresh=lambda fresh: _find(fresh, params, bbox))


def _key(params: HotspotParams) -> tuple[object, ...]:
    """The parameters as a hashable key (lists become tuples)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v)
                 for k, v in sorted(params.__dict__.items()))


def _find(session: Session, params: HotspotParams, bbox: BBoxDep) -> HotspotResult:
    start, end = params.window()
    return find_hotspots(session, start=start, end=end, area_code=params.area,
                         bbox=bbox.bounds(), categories=params.category,
                         resolution=params.resolution, k=params.k,
                         repeat_weight=params.repeat_weight, permutations=params.permutations,
                         seed=params.seed, min_cases=params.min_cases,
                         inference=params.inference)


@router.get("/analysis/hotspots", response_model=AnalysisFeatures,
            response_class=GeoJSONResponse, summary="投诉热点区域 (Gi* on H3 cells)")
def hotspots(request: Request, session: ReadSessionDep, params: HotspotDep,
             bbox: BBoxDep) -> Response:
    """H3 cells of the study area with complaints or a significant class; `about` says how."""
    def build() -> GeoJSONResponse:
        run = _run(request, session, params, bbox).value
        spots = run.cells
        summary = spots[spots["hotspot"]][["cell", "cases", "repeats", "weight", "z", "p_sim",
                                           "p_fdr", "label"]]
        return _collection(spots, summary, {**run.about.parameters, "bbox": bbox.bbox},
                           about=run.about)

    return cached_json(request, session, "hotspots", (_key(params), bbox.bbox), build,
                       clock=params.end is None)


@router.get("/analysis/map/hotspots", response_class=HTMLResponse,
            summary="投诉热点区域地图 (page)")
def hotspots_page(request: Request, session: ReadSessionDep, settings: SettingsDep,
                  params: HotspotDep, bbox: BBoxDep) -> HTMLResponse:
    """Hotspot neighbourhoods and a heat map of the complaints on an offline map page."""
    def render() -> str:
        run = _run(request, session, params, bbox).value
        title = f"{settings.city.name} 投诉热点区域（近 {params.days} 天）"
        # Cells and the complaint heat come from /tiles/analysis/hotspots (same cached run).
        query: dict[str, object] = {
            k: (v.isoformat() if isinstance(v, dt.datetime) else v)
            for k, v in params.__dict__.items()}
        query["bbox"] = bbox.bbox
        urls = {part: tile_url("hotspots", part, query) for part in ("cells", "heat")}
        cases = int(run.cells["cases"].sum()) if len(run.cells) else 0
        m = tiled_analysis_map(
            base=staff_base_for(settings.staff_map, center=settings.city.center),
            center=settings.city.center, title=title, about=run.about, bounds=run.cells,
            layers=hotspot_layers(run.cells, urls=urls, cases=cases))
        return render_html(m, title=title)

    return _cached_page(request, session, "hotspots", (_key(params), bbox.bbox), render,
                        clock=params.end is None)
