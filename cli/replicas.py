"""`citygrid db replica add|list|start|remove`: hot standbys of the private cluster."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from gis.platform.errors import CityGridError
from gis.platform.replicas import ReplicaManager
from gis.platform.settings import Settings

replica_app = typer.Typer(help="Read replicas: streaming hot standbys of the private cluster",
                          no_args_is_help=True)
console = Console()


def _manager() -> ReplicaManager:
    settings = Settings()
    if settings.db.url:
        console.print("CITYGRID_DATABASE_URL is set: replicas of an external database are "
                      "listed in CITYGRID_DB_REPLICA_URLS, not made here")
        raise typer.Exit(code=2)
    return ReplicaManager(settings)


@replica_app.command("add")
def replica_add(name: str = typer.Option("r1", "--name", help="replica name ([a-z][a-z0-9_]*)"),
                ) -> None:
    """Start a streaming hot standby of the private cluster in .citygrid/replicas/NAME."""
    try:
        info = _manager().add(name)
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(f"replica {info.name} streaming on 127.0.0.1:{info.port} ({info.data_dir}); "
                  "restart the app to read from it")


@replica_app.command("list")
def replica_list() -> None:
    """Show the standbys, whether they run and how far behind the primary they are."""
    table = Table("name", "running", "port", "replay lag s", "behind bytes", "folder")
    for info in _manager().list_all():
        lag = "" if info.replay_lag_s is None else f"{info.replay_lag_s:.3f}"
        table.add_row(info.name, "yes" if info.running else "no", str(info.port or ""), lag,
                      "" if info.behind_bytes is None else str(info.behind_bytes),
                      str(info.data_dir))
    console.print(table)


@replica_app.command("start")
def replica_start() -> None:
    """Start every stopped standby (`citygrid db up` does it too)."""
    try:
        started = _manager().start_all()
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(f"replicas started: {', '.join(started)}" if started
                  else "every replica was running")


@replica_app.command("remove")
def replica_remove(name: str = typer.Argument(..., help="replica name")) -> None:
    """Stop a standby, drop its replication slot on the primary and delete its files."""
    try:
        _manager().remove(name)
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(f"replica {name} removed")
