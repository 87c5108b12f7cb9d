"""`citygrid history ...`: the monthly case archive and the analyses over years on dask."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console

from gis.analysis.distributed.archive import Month, export_month, months_between
from gis.analysis.distributed.cluster import DaskSettings, dask_client
from gis.analysis.distributed.hotspot_runs import distributed_hotspots
from gis.analysis.distributed.indicator_runs import distributed_indicators, rates_table
from gis.analysis.distributed.sources import ArchiveSource, DatabaseSource
from gis.analysis.study_area import area_cells, load_study_area
from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import CityGridError, InvalidInputError
from gis.platform.exports_safety import write_csv
from gis.platform.settings import Settings

history_app = typer.Typer(help="Case archive (monthly GeoParquet) and analyses over years on "
                               "dask", no_args_is_help=True)
console = Console()

SOURCE_HELP = "archive (monthly GeoParquet) or db (PostGIS, one query per month or period)"
WORKERS_HELP = "local worker processes when CITYGRID_DASK_SCHEDULER is unset"


def _month(value: str) -> Month:
    try:
        year, number = (int(part) for part in value.split("-"))
    except ValueError:
        raise InvalidInputError(f"month {value!r} must look like 2024-05") from None
    if not 1 <= number <= 12:
        raise InvalidInputError(f"month {value!r} must look like 2024-05")
    return year, number


def _months(first: str, last: str) -> list[Month]:
    months = months_between(_month(first), _month(last))
    if not months:
        raise InvalidInputError(f"{first} is after {last}")
    return months


def _source(kind: str, archive: Path | None) -> ArchiveSource | DatabaseSource:
    if kind == "archive":
        return ArchiveSource(archive or DaskSettings().archive)
    if kind == "db":
        url = database_url(Settings())
        return DatabaseSource(url.render_as_string(hide_password=False))
    raise InvalidInputError(f"unknown source {kind!r}; expected archive or db")


def _fail(exc: CityGridError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


@history_app.command("export")
def export(first: str = typer.Option(..., help="first month, e.g. 2024-01"),
           last: str = typer.Option(..., help="last month, e.g. 2024-12"),
           archive: Path | None = typer.Option(None, help="archive folder "
                                                          "(default CITYGRID_DASK_ARCHIVE)")
           ) -> None:
    """Write the cases of each month first..last to the archive (one GeoParquet per month)."""
    try:
        months = _months(first, last)
        root = archive or DaskSettings().archive
        engine = make_engine(database_url(Settings()), pool_size=1)
        try:
            with transaction(engine) as session:
                for month in months:
                    path = export_month(session, root, month)
                    console.print(f"{month[0]:04d}-{month[1]:02d}: {path}")
        finally:
            engine.dispose()
    except CityGridError as exc:
        raise _fail(exc) from exc


@history_app.command("indicators")
def indicators(first: str = typer.Option(...), last: str = typer.Option(...),
               period: str = typer.Option("month", help="month, quarter or year"),
               by: str = typer.Option("district", help="city, district, street or grid"),
               source: str = typer.Option("archive", help=SOURCE_HELP),
               archive: Path | None = None,
               workers: int | None = typer.Option(None, help=WORKERS_HELP),
               out: Path | None = typer.Option(None, help="CSV file of counts and rates")
               ) -> None:
    """Indicator counts and rates per period and group over the months, on dask."""
    try:
        months = _months(first, last)
        chosen = _source(source, archive)
        with dask_client(workers=workers) as client:
            counts = distributed_indicators(chosen, months, client=client, period=period,
                                            by=by)  # type: ignore[arg-type]
    except CityGridError as exc:
        raise _fail(exc) from exc
    table = rates_table(counts)
    if out:
        write_csv(table, out)
        console.print(f"{len(table)} rows written to {out}")
    else:
        columns = ["period", "key", "accepted", "due", "closed", "closure_rate",
                   "on_time_rate", "completion_rate", "satisfaction_rate", "open_overdue"]
        console.print(table.reindex(columns=columns).to_string(index=False))


@history_app.command("hotspots")
def hotspots(first: str = typer.Option(...), last: str = typer.Option(...),
             area_code: str | None = typer.Option(None, help="district, street or community "
                                                             "code (default all districts)"),
             period: str = typer.Option("month", help="month, quarter or year"),
             by_category: bool = typer.Option(False, help="one run per category"),
             resolution: int = 9, permutations: int = 9999,
             source: str = typer.Option("archive", help=SOURCE_HELP),
             archive: Path | None = None,
             workers: int | None = typer.Option(None, help=WORKERS_HELP),
             out: Path | None = typer.Option(None, help="GeoParquet file of the hot cells")
             ) -> None:
    """Gi* hotspot cells per period (and category) over the months, on dask."""
    try:
        months = _months(first, last)
        chosen = _source(source, archive)
        engine = make_engine(database_url(Settings()), pool_size=1)
        try:
            with transaction(engine) as session:
                area = load_study_area(session, code=area_code)
        finally:
            engine.dispose()
        cells = area_cells(area.geometry, resolution=resolution)
        with dask_client(workers=workers) as client:
            runs = distributed_hotspots(chosen, months, cells, client=client, period=period,
                                        by_category=by_category, resolution=resolution,
                                        permutations=permutations)
    except CityGridError as exc:
        raise _fail(exc) from exc
    for (label, category), cells_run in runs.items():
        console.print(f"{label} {category}: {int(cells_run['hotspot'].sum())} hot cells of "
                      f"{len(cells_run)}, {int(cells_run['cases'].sum())} cases")
    if out and runs:
        frames = [run.assign(period=label, category=category)
                  for (label, category), run in runs.items()]
        hot = pd.concat(frames, ignore_index=True)
        hot[hot["hotspot"]].to_parquet(out, index=False)
        console.print(f"{int(hot['hotspot'].sum())} hot cells written to {out}")


@history_app.command("dark-streets")
def dark_streets(threshold: float = typer.Option(30.0, help="metres from a working light"),
                 step: float = typer.Option(5.0, help="sampling step along roads, metres"),
                 tile_m: float = typer.Option(2000.0, help="side of a road tile (one task)"),
                 workers: int | None = typer.Option(None, help=WORKERS_HELP),
                 out: Path | None = typer.Option(None, help="GeoParquet file of the stretches")
                 ) -> None:
    """Dark streets (亮灯死角) of the whole city, road tiles on dask."""
    from gis.analysis.dark_street_summary import summarise_dark_streets
    from gis.analysis.distributed.dark_street_runs import distributed_dark_streets

    stats: dict[str, object] = {}
    try:
        engine = make_engine(database_url(Settings()), pool_size=1)
        try:
            with transaction(engine) as session, dask_client(workers=workers) as client:
                gaps = distributed_dark_streets(session, client=client, threshold_m=threshold,
                                                step_m=step, tile_m=tile_m, stats=stats)
        finally:
            engine.dispose()
    except CityGridError as exc:
        raise _fail(exc) from exc
    console.print(f"{len(gaps)} dark stretches, {gaps['dark_m'].sum():,.0f} m dark; "
                  f"{stats['tiles']} tiles, {stats['second_round']} computed again with every "
                  f"light")
    console.print(summarise_dark_streets(gaps, by="district").to_string(index=False))
    if out:
        gaps.to_parquet(out, index=False)
        console.print(f"{len(gaps)} stretches written to {out}")


@history_app.command("coverage")
def coverage(threshold: float = typer.Option(1000.0, help="metres to the nearest station"),
             method: str = typer.Option("auto", help="auto, network or straight"),
             part_size: int = typer.Option(2000, help="grids per task"),
             workers: int | None = typer.Option(None, help=WORKERS_HELP),
             out: Path | None = typer.Option(None, help="GeoParquet file of every grid")
             ) -> None:
    """Station coverage gaps (工作站服务盲区) of every grid, grid parts on dask."""
    from gis.analysis.distributed.coverage_runs import distributed_coverage
    from gis.analysis.station_coverage import summarise_coverage

    try:
        engine = make_engine(database_url(Settings()), pool_size=1)
        try:
            with transaction(engine) as session, dask_client(workers=workers) as client:
                run = distributed_coverage(session, client=client, threshold_m=threshold,
                                           method=method,  # type: ignore[arg-type]
                                           part_size=part_size)
        finally:
            engine.dispose()
    except CityGridError as exc:
        raise _fail(exc) from exc
    cells = run.cells
    console.print(f"{int((~cells['covered']).sum())} of {len(cells)} grids uncovered "
                  f"({cells['method'].iloc[0] if len(cells) else method})")
    console.print(summarise_coverage(cells, by="district").to_string(index=False))
    if out:
        cells.to_parquet(out, index=False)
        console.print(f"{len(cells)} grids written to {out}")
