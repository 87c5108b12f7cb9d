"""Analysis routes: GeoJSON per analysis, offline map pages, indicator tables, reports.

Data: /analysis/dark-streets, /analysis/coverage-gaps, /analysis/hotspots (api.routes.hotspots),
/analysis/cover-risk (GeoJSON FeatureCollections with a `summary` member) and
/analysis/indicators (JSON). Pages: /analysis/map/{dark-streets|coverage-gaps|hotspots|
cover-risk} and /reports/{daily|weekly|monthly} (with /reports/{period}/trend.png).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import geopandas as gpd
import pandas as pd
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.analysis_cache import cached, stamp
from api.auth import staff_only
from api.deps import BBoxDep, SettingsDep
from api.params import SaneDate, SaneDatetime
from api.read_routing import ReadSessionDep
from gis.analysis.about import AnalysisAbout, now_in_china
from gis.analysis.common import CHINA_TZ, BBox, period_containing
from gis.analysis.cover_risk import cover_risk_about, find_cover_risks, summarise_cover_risks
from gis.analysis.dark_street_summary import (
    DarkStreetRun,
    run_dark_streets,
    summarise_dark_streets,
)
from gis.analysis.indicators import count_indicators, indicator_table
from gis.analysis.labels import COUNT_LABELS, PERIOD_LABELS, RATES, ReportData
from gis.analysis.reports import build_report
from gis.analysis.result_cache import CachedResult
from gis.analysis.station_coverage import CoverageRun, run_coverage, summarise_coverage
from gis.platform.errors import InvalidInputError
from gis.platform.settings import Settings
from layers.query import count_features, read_layer
from layers.registry import LAYERS
from maps.analysis import render_report
from maps.analysis_tiles import (
    cover_risk_layers,
    coverage_layers,
    dark_streets_layers,
    station_markers,
    tile_url,
    tiled_analysis_map,
)
from maps.assets import render_html
from maps.basemaps import staff_base_for
from maps.charts import trend_chart
from maps.report_controls import ReportControls
from maps.report_files import report_pdf, report_xlsx
from maps.shell import Shell, inject_shell

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
router = APIRouter(tags=["analysis"], dependencies=[staff_only])
CONTEXT_MAX = 20_000  # context layers (grids, roads) larger than this are left off the pages


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


class AnalysisFeatures(BaseModel):
    """An analysis result: GeoJSON features (EPSG:4326), a summary table and the parameters."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]
    numberReturned: int  # OGC API Features spells it so
    summary: list[dict[str, Any]] = Field(description="per-area summary rows")
    parameters: dict[str, Any]
    about: dict[str, Any] | None = Field(
        default=None, description="method, parameters, study area and as-of time")
    network: dict[str, Any] | None = Field(
        default=None, description="coverage only: network islands, merged vertices, station "
                                  "snap distances")


class IndicatorRow(BaseModel):
    """Counts and rates (percent, None when the denominator is 0) of one group."""

    key: str | None
    name: str | None
    accepted: int
    filed: int
    dispatched: int
    due: int
    closed: int
    closed_on_time: int
    reworked: int
    extended: int
    replied: int
    completed: int
    surveyed: int
    satisfied: int
    open_overdue: int
    filing_rate: float | None
    dispatch_rate: float | None
    closure_rate: float | None
    on_time_rate: float | None
    rework_rate: float | None
    extension_rate: float | None
    reply_rate: float | None
    completion_rate: float | None
    satisfaction_rate: float | None


class IndicatorsOut(BaseModel):
    """Indicator table of a period."""

    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    by: str
    definitions: dict[str, str] = Field(description="rate -> numerator / denominator")
    rows: list[IndicatorRow]


@dataclass
class DarkStreetParams:
    """Dark-street options."""

    threshold_m: Annotated[float, Query(gt=0, le=500, description="最远允许距灯距离 (米)")] = 30
    step_m: Annotated[float, Query(ge=0.5, le=100, description="沿路采样间距 (米)")] = 5
    method: Annotated[Literal["postgis", "kdtree"], Query(
        description="kdtree: scipy in memory (fast); postgis: KNN in the database")] = "kdtree"
    by: Annotated[Literal["grid", "street", "district", "street_class"], Query(
        description="summary level; street_class: dark length per 示范街/规范街/商业街")
    ] = "district"


@dataclass
class CoverageParams:
    """Station coverage options."""

    threshold_m: Annotated[float, Query(gt=0, le=20_000, description="服务半径 (米)")] = 1000
    method: Annotated[Literal["auto", "network", "straight"], Query(
        description="network distance along roads, straight line, or auto")] = "auto"
    gaps_only: Annotated[bool, Query(description="only uncovered grids")] = False
    by: Annotated[Literal["city", "street", "district"], Query(
        description="summary level")] = "district"


DarkStreetDep = Annotated[DarkStreetParams, Depends()]
CoverageDep = Annotated[CoverageParams, Depends()]
PeriodName = Literal["daily", "weekly", "monthly"]


def _json_safe(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _json_safe(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _collection(gdf: gpd.GeoDataFrame, summary: pd.DataFrame,
                parameters: dict[str, Any], *, about: AnalysisAbout | None = None,
                network: dict[str, Any] | None = None) -> GeoJSONResponse:
    geometry = gdf.geometry.name
    properties = _records(pd.DataFrame(gdf.drop(columns=geometry)))
    shapes = gdf.geometry.to_crs(4326) if len(gdf) else gdf.geometry
    # One GeoJSON encoding of the whole column (a GeoSeries per feature took minutes for the
    # city's 11,000 grids, with the request's transaction idle all the while).
    encoded = shapely.to_geojson(shapes.to_numpy())
    geometries = json.loads("[" + ",".join(g if g is not None else "null" for g in encoded) + "]")
    features = [{"type": "Feature", "properties": props, "geometry": shape}
                for props, shape in zip(properties, geometries, strict=True)]
    # Built as AnalysisFeatures documents it, without validating 11,000 features one by one.
    body = AnalysisFeatures.model_construct(
        features=features, numberReturned=len(features), summary=_records(summary),
        parameters={k: _json_safe(v) for k, v in parameters.items()},
        about=about.as_dict() if about else None, network=network)
    return GeoJSONResponse({name: getattr(body, name) for name in AnalysisFeatures.model_fields})


def _dark_streets(request: Request, session: Session, settings: Settings,
                  params: DarkStreetParams, bbox: BBox | None) -> CachedResult[DarkStreetRun]:
    def run(on: Session) -> DarkStreetRun:
        return run_dark_streets(on, method=params.method, threshold_m=params.threshold_m,
                                step_m=params.step_m, bbox=bbox,
                                metric_epsg=settings.city.metric_epsg)

    return cached(request, session, "dark_streets",
                  (params.method, params.threshold_m, params.step_m, bbox),
                  lambda: run(session), refresh=run)


def _coverage(request: Request, session: Session, settings: Settings, params: CoverageParams,
              bbox: BBox | None) -> CachedResult[CoverageRun]:
    def run(on: Session) -> CoverageRun:
        return run_coverage(on, threshold_m=params.threshold_m, method=params.method,
                            bbox=bbox, metric_epsg=settings.city.metric_epsg)

    return cached(request, session, "coverage", (params.threshold_m, params.method, bbox),
                  lambda: run(session), refresh=run)


def _context(session: Session, bbox: BBox | None, layer_ids: tuple[str, ...]
             ) -> dict[str, gpd.GeoDataFrame]:
    out = {}
    for layer_id in layer_ids:
        spec = LAYERS[layer_id]
        if count_features(session, spec, bbox=bbox) <= CONTEXT_MAX:
            out[layer_id] = read_layer(session, spec, bbox=bbox)
    return out


@router.get("/analysis/dark-streets", response_model=AnalysisFeatures,
            response_class=GeoJSONResponse, summary="亮灯死角 (dark street gaps)")
def dark_streets(request: Request, session: ReadSessionDep, settings: SettingsDep,
                 params: DarkStreetDep, bbox: BBoxDep) -> Response:
    """The dark stretches themselves (beyond `threshold_m` from every working light)."""
    def build() -> GeoJSONResponse:
        run = _dark_streets(request, session, settings, params, bbox.bounds()).value
        summary = (run.by_class if params.by == "street_class"
                   else summarise_dark_streets(run.stretches, by=params.by))
        return _collection(run.stretches, summary, {**params.__dict__, "bbox": bbox.bbox},
                           about=run.about)

    return cached_json(request, session, "dark_streets",
                       (*sorted(params.__dict__.items()), bbox.bbox), build)


@router.get("/analysis/coverage-gaps", response_model=AnalysisFeatures,
            response_class=GeoJSONResponse, summary="工作站服务盲区 (station coverage gaps)")
def coverage_gaps(request: Request, session: ReadSessionDep, settings: SettingsDep,
                  params: CoverageDep, bbox: BBoxDep) -> Response:
    """Unit grids with network and straight distance to the nearest station, review flags."""
    def build() -> GeoJSONResponse:
        run = _coverage(request, session, settings, params, bbox.bounds()).value
        cells = run.cells
        summary = summarise_coverage(cells, by=params.by)
        if params.gaps_only:
            cells = cells[~cells["covered"]]
        return _collection(cells, summary, {**params.__dict__, "bbox": bbox.bbox},
                           about=run.about, network=run.network)

    return cached_json(request, session, "coverage",
                       (*sorted(params.__dict__.items()), bbox.bbox), build)


@router.get("/analysis/cover-risk", response_model=AnalysisFeatures,
            response_class=GeoJSONResponse, summary="井盖隐患 (damaged / missing covers)")
def cover_risk(
    request: Request, session: ReadSessionDep, bbox: BBoxDep,
    by: Annotated[Literal["cover_class", "owner", "district_code"], Query(
        description="summary grouping")] = "cover_class",
    damaged_high_after_h: Annotated[float, Query(ge=0, le=8784, description="hours after "
                                                 "which a damaged cover is high risk (at most "
                                                 "a year)")] = 24,
    damaged_medium_after_h: Annotated[float, Query(ge=0, le=8784, description="hours after "
                                                   "which a damaged cover is medium risk (low "
                                                   "before)")] = 4,
) -> Response:
    """Covers in use that are damaged or missing, riskiest first, and a summary."""
    def build() -> GeoJSONResponse:
        risks, about = _cover_risks(request, session, bbox, damaged_high_after_h,
                                    damaged_medium_after_h).value
        summary = summarise_cover_risks(risks, by=by) if not risks.empty else pd.DataFrame()
        return _collection(risks, summary, {"by": by, **about.parameters}, about=about)

    return cached_json(request, session, "cover_risk",
                       (by, damaged_high_after_h, damaged_medium_after_h, bbox.bbox), build,
                       clock=True)


def _cover_risks(request: Request, session: Session, bbox: Any, high_h: float = 24,
                 medium_h: float = 4
                 ) -> CachedResult[tuple[gpd.GeoDataFrame, AnalysisAbout]]:
    # Hours waited grow with the clock: reused for analysis_cache_seconds at most.
    return cached(request, session, "cover_risk", (bbox.bbox, high_h, medium_h),
                  lambda: _find_cover_risks(session, bbox, high_h, medium_h), clock=True,
                  refresh=lambda fresh: _find_cover_risks(fresh, bbox, high_h, medium_h))


def _find_cover_risks(session: Session, bbox: Any, high_h: float, medium_h: float
                      ) -> tuple[gpd.GeoDataFrame, AnalysisAbout]:
    as_of = now_in_china()
    risks = find_cover_risks(session, as_of=as_of, bbox=bbox.bounds(),
                             damaged_high_after_h=high_h, damaged_medium_after_h=medium_h)
    area = (f"范围框 {','.join(f'{v:g}' for v in bbox.bounds())} 内的在用井盖"
            if bbox.bounds() else "全部在用井盖")
    parameters = {"damaged_high_after_h": high_h, "damaged_medium_after_h": medium_h,
                  "case_radius_m": 30.0, "bbox": bbox.bbox}
    return risks, cover_risk_about(risks, parameters, study_area=area, as_of=as_of)


@router.get("/analysis/indicators", response_model=IndicatorsOut,
            summary="考核指标 (indicators with exact denominators)")
def indicators(
    request: Request, response: Response, session: ReadSessionDep,
    period: Annotated[PeriodName, Query(description="daily, weekly (Mon-Sun), monthly")
                      ] = "weekly",
    day: Annotated[SaneDate | None, Query(description="a day in the period (default today)")
                   ] = None,
    start: Annotated[SaneDatetime | None, Query(description="custom period start")] = None,
    end: Annotated[SaneDatetime | None, Query(description="custom period end (exclusive)")
                   ] = None,
    by: Annotated[Literal["city", "district", "street", "grid", "owner", "category"], Query(
        description="grouping")] = "district",
    scope: Annotated[str | None, Query(description="grid-code prefix: district, street...")
                     ] = None,
    category: Annotated[list[str] | None, Query(description="category codes")] = None,
    channel: Annotated[list[str] | None, Query(description="intake channels")] = None,
    as_of: Annotated[SaneDatetime | None, Query(description="judge the state at (default: "
                                               "period end or now)")] = None,
) -> IndicatorsOut:
    """立案率, 派遣率, 结案率, 按期结案率, 返工率, 延期率, 回复率, 办结率, 满意率 per group."""
    if (start is None) != (end is None):
        raise InvalidInputError("give both start and end, or neither (then period and day)")
    if start is None or end is None:
        chosen = period_containing(period, day or dt.datetime.now(CHINA_TZ).date())
        start, end = chosen.start, chosen.end
    start, end = (t if t.tzinfo else t.replace(tzinfo=CHINA_TZ) for t in (start, end))
    def compute(on: Session) -> tuple[dt.datetime, pd.DataFrame]:
        judged = as_of or min(end, dt.datetime.now(CHINA_TZ))
        if judged.tzinfo is None:
            judged = judged.replace(tzinfo=CHINA_TZ)
        return judged, indicator_table(count_indicators(
            on, start=start, end=end, by=by, as_of=judged, scope=scope,
            categories=category, channels=channel))

    # Judged "now" (no as_of, period running): the figures move with the clock.
    running = as_of is None and end > dt.datetime.now(CHINA_TZ)
    key = (start, end, by, as_of, scope, tuple(category or ()), tuple(channel or ()))
    result = cached(request, session, "indicators", key, lambda: compute(session),
                    clock=running, refresh=compute)
    judged, table = result.value
    definitions = {label: f"{COUNT_LABELS[num]} / {COUNT_LABELS[den]}"
                   for label, num, den in RATES.values()}
    stamp(response, result)
    return IndicatorsOut(start=start, end=end, as_of=judged, by=by, definitions=definitions,
                         rows=[IndicatorRow(**r) for r in _records(table)])


def cached_json(request: Request, session: Session, analysis: str, key: tuple[Any, ...],
                build: Callable[[], GeoJSONResponse], *, clock: bool = False) -> Response:
    """The encoded GeoJSON answer, reused like the result it encodes (encoding 11,000
    features costs seconds; a warm answer is the stored bytes)."""
    result = cached(request, session, analysis, ("json", *key), lambda: bytes(build().body),
                    clock=clock)
    return stamp(Response(result.value, media_type=GeoJSONResponse.media_type), result)


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/analysis/map/dark-streets", response_class=HTMLResponse,
            summary="亮灯死角地图 (page)")
def dark_streets_page(request: Request, session: ReadSessionDep, settings: SettingsDep,
                      params: DarkStreetDep, bbox: BBoxDep) -> HTMLResponse:
    """Dark stretches on an offline map page, with the method box and dark length per class."""
    def render() -> str:
        run = _dark_streets(request, session, settings, params, bbox.bounds()).value
        title = f"{settings.city.name} 路灯亮灯死角"
        # Drawn from /tiles/analysis/dark-streets (the same cached run), not embedded.
        url = tile_url("dark-streets", "stretches", {
            "threshold_m": params.threshold_m, "step_m": params.step_m,
            "method": params.method, "bbox": bbox.bbox})
        m = tiled_analysis_map(
            base=staff_base_for(settings.staff_map, center=settings.city.center),
            center=settings.city.center, title=title, about=run.about, bounds=run.stretches,
            layers=dark_streets_layers(run.stretches, url=url, threshold_m=params.threshold_m))
        return render_html(m, title=title)

    return _cached_page(request, session, "dark_streets",
                        (params.method, params.threshold_m, params.step_m, bbox.bbox), render)


@router.get("/analysis/map/coverage-gaps", response_class=HTMLResponse,
            summary="工作站服务盲区地图 (page)")
def coverage_page(request: Request, session: ReadSessionDep, settings: SettingsDep,
                  params: CoverageDep, bbox: BBoxDep) -> HTMLResponse:
    """Grids coloured by station coverage on an offline map page."""
    def render() -> str:
        run = _coverage(request, session, settings, params, bbox.bounds()).value
        title = f"{settings.city.name} 社区城管工作站覆盖"
        query = {"threshold_m": params.threshold_m, "method": params.method, "bbox": bbox.bbox}
        # 11,000 grids come from /tiles/analysis/coverage-gaps (it was 7 MB of GeoJSON).
        urls = {part: tile_url("coverage-gaps", part, query) for part in ("gaps", "covered")}
        m = tiled_analysis_map(
            base=staff_base_for(settings.staff_map, center=settings.city.center),
            center=settings.city.center, title=title, about=run.about, bounds=run.cells,
            layers=coverage_layers(run.cells, urls=urls, threshold_m=params.threshold_m),
            embedded=[("社区城管工作站",
                       station_markers(read_layer(session, LAYERS["stations"])))])
        return render_html(m, title=title)

    return _cached_page(request, session, "coverage",
                        (params.threshold_m, params.method, bbox.bbox), render)


@router.get("/analysis/map/cover-risk", response_class=HTMLResponse,
            summary="井盖隐患地图 (page)")
def cover_risk_page(request: Request, session: ReadSessionDep, settings: SettingsDep,
                    bbox: BBoxDep) -> HTMLResponse:
    """Damaged and missing covers by risk on an offline map page, with the method box."""
    def render() -> str:
        risks, about = _cover_risks(request, session, bbox).value
        title = f"{settings.city.name} 井盖隐患"
        url = tile_url("cover-risk", "covers", {"bbox": bbox.bbox})
        m = tiled_analysis_map(
            base=staff_base_for(settings.staff_map, center=settings.city.center),
            center=settings.city.center, title=title, about=about, bounds=risks,
            layers=cover_risk_layers(risks, url=url, params=about.parameters))
        return render_html(m, title=title)

    return _cached_page(request, session, "cover_risk", (bbox.bbox,), render, clock=True)


def _cached_page(request: Request, session: Session, analysis: str, params: tuple[Any, ...],
                 render: Callable[[], str], *, clock: bool = False) -> HTMLResponse:
    result = cached(request, session, analysis, ("page", *params), render, clock=clock)
    return stamp(_page(result.value), result)


@router.get("/reports/{period}", response_class=HTMLResponse,
            summary="日报 / 周报 / 月报 (report page)")
def report_page(
    request: Request, period: PeriodName, session: ReadSessionDep, settings: SettingsDep,
    day: Annotated[SaneDate | None, Query(description="a day in the period (default today)")
                   ] = None,
    scope: Annotated[str | None, Query(description="grid-code prefix")] = None,
) -> HTMLResponse:
    """The daily / weekly / monthly report with district and street rankings (HTML)."""
    day = day or dt.datetime.now(CHINA_TZ).date()

    def render() -> str:
        report = _report(request, session, settings, period, day, scope).value
        # The header is filled in the browser from /auth/me: the cached page fits every user.
        return inject_shell(render_report(report, ReportControls(kind=period, day=day,
                                                                 scope=scope)),
                            Shell(), full_height=False)

    return _cached_page(request, session, "report", (period, day, scope), render,
                        clock=_running(period, day))


def _report(request: Request, session: Session, settings: Settings, period: str,
            day: dt.date, scope: str | None) -> CachedResult[ReportData]:
    def build(on: Session) -> ReportData:
        return build_report(on, kind=period, day=day, city=settings.city.name, scope=scope)

    return cached(request, session, "report", (period, day, scope), lambda: build(session),
                  clock=_running(period, day), refresh=build)


def _running(period: str, day: dt.date) -> bool:
    # A finished period is judged as of its end (one as_of rule): only its data can change it.
    return period_containing(period, day).end > dt.datetime.now(CHINA_TZ)


@router.get("/reports/{period}/report.xlsx", summary="报表 Excel 下载 (XLSX)",
            responses={200: {"content": {XLSX: {}}}}, response_class=Response)
def report_workbook(
    request: Request, period: PeriodName, session: ReadSessionDep, settings: SettingsDep,
    day: Annotated[SaneDate | None, Query(description="a day in the period")] = None,
    scope: Annotated[str | None, Query(description="grid-code prefix")] = None,
) -> Response:
    """The same report as an Excel workbook, one sheet per table."""
    day = day or dt.datetime.now(CHINA_TZ).date()
    report = _report(request, session, settings, period, day, scope).value
    return Response(report_xlsx(report), media_type=XLSX,
                    headers=_download(f"report-{period}-{day.isoformat()}.xlsx"))


@router.get("/reports/{period}/report.pdf", summary="报表 PDF 下载 (printable)",
            responses={200: {"content": {"application/pdf": {}}}}, response_class=Response)
def report_document(
    request: Request, period: PeriodName, session: ReadSessionDep, settings: SettingsDep,
    day: Annotated[SaneDate | None, Query(description="a day in the period")] = None,
    scope: Annotated[str | None, Query(description="grid-code prefix")] = None,
) -> Response:
    """The same report as an A4 PDF (tables and trend chart)."""
    day = day or dt.datetime.now(CHINA_TZ).date()
    report = _report(request, session, settings, period, day, scope).value
    return Response(report_pdf(report), media_type="application/pdf",
                    headers=_download(f"report-{period}-{day.isoformat()}.pdf"))


def _download(filename: str) -> dict[str, str]:
    # ASCII file names only (period and ISO day): nothing user-typed reaches the header.
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.get("/reports/{period}/trend.png", summary="趋势图 (PNG)",
            responses={200: {"content": {"image/png": {}}}}, response_class=Response)
def report_trend(
    request: Request, period: PeriodName, session: ReadSessionDep, settings: SettingsDep,
    day: Annotated[SaneDate | None, Query(description="a day in the period")] = None,
    scope: Annotated[str | None, Query(description="grid-code prefix")] = None,
) -> Response:
    """The report's trend chart alone, as PNG."""
    report = _report(request, session, settings, period,
                     day or dt.datetime.now(CHINA_TZ).date(), scope).value
    png = trend_chart(report.trend, title=f"{settings.city.name} {PERIOD_LABELS[period]}趋势")
    return Response(png, media_type="image/png")
