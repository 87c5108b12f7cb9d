"""`citygrid route FILE` and case commands (dispatcher)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.exc import DBAPIError

from gis.dispatch.routing_batch import route_file as route_file_core
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.db import database_url, make_engine
from gis.platform.errors import CityGridError
from gis.platform.settings import Settings

dispatch_app = typer.Typer(help="Dispatch: routing and cases", no_args_is_help=True)
console = Console()


@dispatch_app.command("route")
def route_file(
    file: Path = typer.Argument(..., help="hotline export: .csv or .xlsx with x/lon, y/lat "
                                "(and optionally crs, at, category_type, category_code, "
                                "component_code)"),
    out: Path = typer.Option(None, "-o", "--out", help="result CSV (default FILE.routed.csv)"),
    crs: str = typer.Option("wgs84", help="CRS of rows without a crs column: wgs84, gcj02, "
                            "bd09, cgcs2000"),
) -> None:
    """Route every row of a hotline export; one result row per input row, with reasons."""
    settings = Settings()
    try:
        engine = make_engine(database_url(settings))
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            target = route_file_core(engine, file, settings=RoutingSettings(),
                                     city=settings.city, out=out, default_crs=crs,
                                     progress=progress)
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    except DBAPIError as exc:
        console.print(f"[red]database error:[/red] {str(exc.orig).strip().splitlines()[0]}; "
                      "is the schema migrated (`citygrid db migrate`)?")
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    import pandas as pd

    reasons = pd.read_csv(target, usecols=["reason"], dtype=str,
                          keep_default_na=False)["reason"]
    failed = int((reasons != "").sum())
    console.print(f"routed {len(reasons) - failed} of {len(reasons)} rows -> {target}")
    if failed:
        console.print(f"[yellow]{failed} row(s) not routed; see the reason column[/yellow]")
