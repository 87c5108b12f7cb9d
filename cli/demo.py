"""`citygrid demo ...`: the demo city (Jinan 历下区)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gis.demo import DEFAULT_SEED
from gis.demo.load import load_demo
from gis.demo.users import ensure_demo_users
from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import CityGridError
from gis.platform.settings import PROJECT_ROOT, Settings

demo_app = typer.Typer(help="The demo city: Jinan 历下区, 市中区 and 天桥区",
                       no_args_is_help=True)
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
    table = Table(title="demo city 济南市历下区、市中区、天桥区",
                  caption=f"{time.perf_counter() - started:.1f} s")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


@demo_app.command("users")
def users(
    credentials: Path = typer.Option(PROJECT_ROOT / ".citygrid" / "demo-users.txt",
                                     help="where the new accounts' passwords are kept"),
) -> None:
    """Create one demo account per role with a random password (kept in a private file)."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            made = ensure_demo_users(session)
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    if made:
        credentials.parent.mkdir(parents=True, exist_ok=True)
        with credentials.open("a", encoding="utf-8") as out:
            credentials.chmod(0o600)
            for username, role, password in made:
                out.write(f"{username}\t{role}\t{password}\n")
    if credentials.exists():
        table = Table(title=f"demo accounts (passwords in {credentials})")
        for column in ("username", "role", "password"):
            table.add_column(column)
        for line in credentials.read_text(encoding="utf-8").splitlines():
            table.add_row(*line.split("\t"))
        console.print(table)
        api = Settings().api
        console.print(f"sign in at http://{api.host}:{api.port}/login")
