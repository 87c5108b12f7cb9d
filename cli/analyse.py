"""`citygrid analyse ...`: dead zones, coverage, hotspots, indicators, reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ, BBox, period_containing
from gis.platform.db import database_url, make_engine, session_factory
from gis.platform.errors import CityGridError, InvalidInputError
from gis.platform.exports_safety import write_csv
from gis.platform.settings import Settings

analyse_app = typer.Typer(help="Analysis: dead zones, hotspots, indicators, reports",
                          no_args_is_help=True)
console = Console()

BBOX_HELP = "lon_min,lat_min,lon_max,lat_max (EPSG:4326)"


def _bbox(value: str | None) -> BBox | None:
    if value is None:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in value.split(","))
    except ValueError:
        raise InvalidInputError(f"bbox {value!r} must be four comma-separated numbers") from None
    return (x1, y1, x2, y2)


def _day(value: str | None) -> dt.date:
    """The day given on the command line (default: today in China)."""
    if value is None:
        return dt.datetime.now(CHINA_TZ).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"day {value!r} is not a date YYYY-MM-DD") from None


def _moment(value: str | None) -> dt.datetime:
    """The moment given on the command line, China time when no zone is given (default: now)."""
    if value is None:
        return dt.datetime.now(CHINA_TZ)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"end {value!r} is not an ISO date or datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


def _fail(exc: CityGridError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    settings = Settings()
    engine = make_engine(database_url(settings))
    try:
        with session_factory(engine)() as session:
            yield session, settings
    finally:
        engine.dispose()


Report = Callable[[int, int], None]  # (done, total) of a stage that can tell
Stage = Callable[[Report], Any]


def _run(stages: list[tuple[str, Stage]]) -> list[Any]:
    """Run `stages` one after another under a progress display; errors end the command.

    Each stage is called with a `report(done, total)` callback: a stage that can count its
    work (dark streets on the kdtree path: chunks of roads) gets a real bar, the others a
    pulsing one until they finish.
    """
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        for description, stage in stages:
            task = progress.add_task(description, total=None)

            def report(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                results.append(stage(report))
            except CityGridError as exc:
                progress.stop()
                raise _fail(exc) from exc
            total = progress.tasks[-1].total or 1
            progress.update(task, total=total, completed=total)
    return results


def _show(frame: pd.DataFrame, title: str, limit: int = 20) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*("" if pd.isna(v) else f"{v:.2f}" if isinstance(v, float) else str(v)
                        for v in row))
    console.print(table)


def _write_geojson(gdf: Any, out: Path | None) -> None:
    if out is None:
        return
    frame = gdf.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].astype(str)
    out.write_text(frame.to_crs(4326).to_json(na="null", drop_id=True), encoding="utf-8")
    console.print(f"wrote {len(frame)} features to {out}")


@analyse_app.command("dark-streets")
def dark_streets(
    threshold: float = typer.Option(30.0, help="largest acceptable distance to a light (m)"),
    step: float = typer.Option(5.0, help="sampling step along roads (m)"),
    method: str = typer.Option("kdtree", help="kdtree (scipy, fast) or postgis (KNN in SQL)"),
    bbox: str = typer.Option(None, help=BBOX_HELP),
    by: str = typer.Option("district", help="summary level: grid, street, district"),
    out: Path = typer.Option(None, help="write the gaps as GeoJSON here"),
) -> None:
    """Road stretches farther than THRESHOLD metres from every working streetlight."""
    from gis.analysis.dark_street_summary import (
        dark_by_street_class,
        road_length_by_class,
        summarise_dark_streets,
    )
    from gis.analysis.dark_streets import find_dark_streets, find_dark_streets_kdtree

    finder = {"postgis": find_dark_streets, "kdtree": find_dark_streets_kdtree}.get(method)
    if finder is None:
        raise typer.BadParameter(f"method {method!r}: expected postgis or kdtree")
    with _session() as (session, settings):
        def find(report: Report) -> Any:
            options: dict[str, Any] = {"progress": report} if method == "kdtree" else {}
            return finder(session, threshold_m=threshold, step_m=step, bbox=_bbox(bbox),
                          metric_epsg=settings.city.metric_epsg, **options)

        label = "roads" if method == "kdtree" else "one SQL query"
        [gaps] = _run([(f"dark streets ({method}, > {threshold:g} m): {label}", find)])
        by_class = dark_by_street_class(gaps, road_length_by_class(
            session, bbox=_bbox(bbox), metric_epsg=settings.city.metric_epsg))
    _show(by_class, "亮灯死角 by street class")
    _show(summarise_dark_streets(gaps, by=by), f"亮灯死角 by {by}: {len(gaps)} gaps")  # type: ignore[arg-type]
    _write_geojson(gaps, out)


@analyse_app.command("coverage")
def coverage(
    threshold: float = typer.Option(1000.0, help="service radius (m)"),
    method: str = typer.Option("auto", help="auto, network or straight"),
    bbox: str = typer.Option(None, help=BBOX_HELP),
    by: str = typer.Option("district", help="summary level: city, street, district"),
    out: Path = typer.Option(None, help="write the grids as GeoJSON here"),
) -> None:
    """Unit grids beyond THRESHOLD metres of every community station."""
    from gis.analysis.station_coverage import find_coverage_gaps, summarise_coverage

    with _session() as (session, settings):
        [cells] = _run([(f"station coverage ({method}, {threshold:g} m)",
                         lambda _: find_coverage_gaps(
                             session, threshold_m=threshold, method=method,  # type: ignore[arg-type]
                             bbox=_bbox(bbox), metric_epsg=settings.city.metric_epsg))])
    _show(summarise_coverage(cells, by=by), f"工作站覆盖 by {by}")  # type: ignore[arg-type]
    _write_geojson(cells, out)


@analyse_app.command("hotspots")
def hotspots(
    days: int = typer.Option(30, help="window length in days"),
    end: str = typer.Option(None, help="window end, ISO date or datetime (default now)"),
    category: list[str] = typer.Option(None, help="category code (repeatable)"),
    resolution: int = typer.Option(9, help="H3 resolution"),
    repeat_weight: float = typer.Option(0.5, help="extra weight of a repeat complaint"),
    area: str = typer.Option(None, help="study area: district (6 digits), street (9) or "
                             "community (12) code (default: every district)"),
    bbox: str = typer.Option(None, help=BBOX_HELP + " clipping the study area"),
    permutations: int = typer.Option(9999, help="permutations of the pseudo p-values"),
    seed: int = typer.Option(12345, help="permutation seed"),
    min_cases: int = typer.Option(3, help="complaints a cell needs to be labelled hot"),
    out: Path = typer.Option(None, help="write the cells as GeoJSON here"),
) -> None:
    """Complaint hotspot neighbourhoods on H3 cells: Gi*, permutations, FDR."""
    from gis.analysis.hotspots import find_hotspots

    stop = _moment(end)
    with _session() as (session, _settings):
        [run] = _run([(f"hotspots, {days} days to {stop:%Y-%m-%d %H:%M}",
                       lambda _: find_hotspots(
                           session, start=stop - dt.timedelta(days=days), end=stop,
                           area_code=area, bbox=_bbox(bbox), categories=category,
                           resolution=resolution, repeat_weight=repeat_weight,
                           permutations=permutations, seed=seed, min_cases=min_cases))])
    spots = run.cells
    hot = spots[spots["hotspot"]]
    _show(pd.DataFrame(hot[["cell", "cases", "repeats", "weight", "z", "p_sim", "p_fdr",
                            "label"]]),
          f"投诉热点区域: {len(hot)} hot cells of {len(spots)} shown")
    console.print(f"研究区: {run.about.study_area}")
    console.print(f"方法: {run.about.method}")
    for note in run.about.notes:
        console.print(note)
    _write_geojson(spots, out)


@analyse_app.command("indicators")
def indicators(
    period: str = typer.Option("weekly", help="daily, weekly or monthly"),
    day: str = typer.Option(None, help="a day in the period, YYYY-MM-DD (default today)"),
    by: str = typer.Option("district", help="city, district, street, grid, owner, category"),
    scope: str = typer.Option(None, help="grid-code prefix (district, street, ...)"),
    csv: Path = typer.Option(None, help="write the table as CSV (UTF-8 with BOM for Excel)"),
) -> None:
    """立案率, 派遣率, 结案率, 按期结案率 ... per group for a period, with open overdue cases."""
    from gis.analysis.indicators import count_indicators, indicator_table, rank_groups

    try:
        chosen = period_containing(period, _day(day))
    except CityGridError as exc:
        raise _fail(exc) from exc
    with _session() as (session, _):
        [rows] = _run([(f"indicators {chosen.label_zh} by {by}", lambda _: count_indicators(
            session, start=chosen.start, end=chosen.end, by=by,  # type: ignore[arg-type]
            as_of=min(chosen.end, dt.datetime.now(CHINA_TZ)), scope=scope))])
    table = rank_groups(indicator_table(rows))
    _show(pd.DataFrame(table[["rank", "key", "name", "accepted", "due", "closed",
                              "closure_rate", "on_time_rate", "open_overdue",
                              "satisfaction_rate"]]), f"考核指标 {chosen.label_zh}", limit=50)
    if csv is not None:
        write_csv(table, csv, encoding="utf-8-sig")
        console.print(f"wrote {len(table)} rows to {csv}")


@analyse_app.command("report")
def report(
    period: str = typer.Option("weekly", help="daily, weekly or monthly"),
    day: str = typer.Option(None, help="a day in the period, YYYY-MM-DD (default today)"),
    scope: str = typer.Option(None, help="grid-code prefix (district, street, ...)"),
    out: Path = typer.Option(Path("report.html"), help="HTML file to write"),
) -> None:
    """The daily / weekly / monthly HTML report with district and street rankings."""
    from gis.analysis.reports import build_report
    from maps.analysis import render_report

    when = _day(day)
    with _session() as (session, settings):
        def build(_: Report) -> Any:
            return build_report(session, kind=period, day=when, city=settings.city.name,
                                scope=scope)

        [data] = _run([(f"{period} report data for {when}", build)])
        [html] = _run([("charts and HTML", lambda _: render_report(data))])
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({len(html) / 1e3:.0f} kB)")
