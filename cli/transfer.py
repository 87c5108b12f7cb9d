"""`citygrid import` / `citygrid export`: move a layer between files and the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import OperationalError

from gis.platform.db import database_url, make_engine, session_factory
from gis.platform.errors import CityGridError, DatabaseUnavailableError, InvalidInputError
from gis.platform.settings import Settings
from layers import transfer
from layers.registry import get_layer

console = Console()
err_console = Console(stderr=True)

STAGES = ("reading", "validating", "writing")
# Domain errors exit with 2 (like a usage error): the input was wrong, not the program.
DOMAIN_ERROR_EXIT = 2


def _fail(error: CityGridError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {error}", highlight=False)
    return typer.Exit(code=DOMAIN_ERROR_EXIT)


def import_layer(
    layer: Annotated[str, typer.Argument(help="layer id, e.g. grid_cells or streetlights")],
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp, .zip (shapefile) or .csv")],
    crs: Annotated[str | None, typer.Option(
        "--crs", help="CRS of a file that declares none, e.g. EPSG:4548 (CSV default EPSG:4326)"
    )] = None,
    source_layer: Annotated[str | None, typer.Option(
        "--source-layer", help="layer inside a GeoPackage holding several")] = None,
) -> None:
    """Import FILE into LAYER (GeoJSON, GeoPackage, Shapefile, CSV with lon/lat)."""
    settings = Settings()
    try:
        spec = get_layer(layer)
        engine = make_engine(database_url(settings), pool_size=1)
    except CityGridError as exc:
        raise _fail(exc) from None
    try:
        with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            tasks = {stage: bar.add_task(stage, total=None) for stage in STAGES}

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(tasks[stage], completed=done, total=total or None)

            count = transfer.import_file(engine, spec, file, city=settings.city, crs=crs,
                                         source_layer=source_layer, progress=progress)
    except CityGridError as exc:
        raise _fail(exc) from None
    except OperationalError as exc:
        raise _fail(DatabaseUnavailableError(f"cannot reach the database: {exc.orig}")) from None
    finally:
        engine.dispose()
    console.print(f"[green]imported {count} {spec.id} feature(s)[/green] from {file}")


def export_layer(
    layer: Annotated[str, typer.Argument(help="layer id, e.g. grid_cells or streetlights")],
    file: Annotated[Path, typer.Argument(help="output: .geojson, .gpkg, .shp or .csv")],
    bbox: Annotated[str | None, typer.Option(
        "--bbox", help="only features in lon_min,lat_min,lon_max,lat_max (EPSG:4326)")] = None,
) -> None:
    """Export LAYER to FILE; the format follows the extension."""
    settings = Settings()
    try:
        spec = get_layer(layer)
        bounds = _parse_bbox(bbox) if bbox else None
        engine = make_engine(database_url(settings), pool_size=1)
    except CityGridError as exc:
        raise _fail(exc) from None
    try:
        with session_factory(engine)() as session:
            count = transfer.export_layer(session, spec, file, bbox=bounds)
    except CityGridError as exc:
        raise _fail(exc) from None
    except OperationalError as exc:
        raise _fail(DatabaseUnavailableError(f"cannot reach the database: {exc.orig}")) from None
    finally:
        engine.dispose()
    console.print(f"[green]exported {count} {spec.id} feature(s)[/green] to {file}")


def _parse_bbox(value: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(part) for part in value.split(","))
    except ValueError:
        raise InvalidInputError(f"--bbox {value!r} must be four numbers separated by commas"
                                ) from None
    if x1 >= x2 or y1 >= y2:
        raise InvalidInputError(f"--bbox {value!r} needs min < max")
    return x1, y1, x2, y2
