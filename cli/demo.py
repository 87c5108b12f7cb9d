"""`citygrid demo ...`: the demo city (Jinan 历下区)."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from gis.db import database_url, make_engine
from gis.demo import DEFAULT_SEED
from gis.demo.load import load_demo
from gis.errors import CityGridError
from gis.settings import Settings

demo_app = typer.Typer(help="The demo city: Jinan 历下区", no_args_is_help=True)
console = Console()


@demo_app.command("load")
def load(
    force: bool = typer.Option(False, "--force", help="replace the demo rows already loaded"),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="random seed of the simulated data"),
) -> None:
    """Load the demo city (skipped when already loaded)."""
    settings = Settings()
    try:
        engine = make_engine(database_url(settings))
        started = time.perf_counter()
        try:
            counts = load_demo(engine, seed=seed, progress=True, force=force)
        finally:
            engine.dispose()
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    table = Table(title="demo city 济南市历下区",
                  caption=f"{time.perf_counter() - started:.1f} s")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
