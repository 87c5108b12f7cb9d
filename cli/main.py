"""The `citygrid` command: private database, migrations, demo city, import/export, server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cli.analyse import analyse_app
from cli.demo import demo_app
from cli.dispatch import dispatch_app, route_file
from cli.history import history_app
from cli.partitions import partitions_app
from cli.replicas import replica_app
from cli.transfer import export_layer, import_layer
from cli.users import user_app
from cli.zones import zones_app
from gis.platform.backup import dump_database, restore_database
from gis.platform.cluster import PrivateCluster
from gis.platform.db import database_url, ensure_database, make_engine, transaction
from gis.platform.errors import CityGridError
from gis.platform.migrate import set_role_passwords, upgrade
from gis.platform.partitions import PartitionSettings, ensure_partitions
from gis.platform.replicas import ReplicaManager
from gis.platform.settings import Settings

app = typer.Typer(help="citygrid: 数字化城管 GIS platform", no_args_is_help=True)
db_app = typer.Typer(help="The database: private cluster and schema", no_args_is_help=True)
app.add_typer(db_app, name="db")
db_app.add_typer(replica_app, name="replica")
db_app.add_typer(partitions_app, name="partitions")
app.add_typer(demo_app, name="demo")
app.add_typer(dispatch_app, name="dispatch")
app.add_typer(zones_app, name="zones")
app.add_typer(analyse_app, name="analyse")
app.add_typer(history_app, name="history")
app.add_typer(user_app, name="user")
app.command("import")(import_layer)
app.command("export")(export_layer)
app.command("route")(route_file)
console = Console()


def fail(error: Exception) -> typer.Exit:
    """Print a domain error in red and return the exit to raise."""
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(code=2)


@db_app.command("up")
def db_up() -> None:
    """Start the private PostgreSQL+PostGIS cluster (created on first use)."""
    settings = Settings()
    if settings.db.url:
        console.print("CITYGRID_DATABASE_URL is set: using the external database, no cluster")
        return
    try:
        status = PrivateCluster(settings.cluster).up()
        # Standbys made by `citygrid db replica add` follow their primary (after a reboot).
        standbys = ReplicaManager(settings).start_all()
    except CityGridError as exc:
        raise fail(exc) from exc
    console.print(f"cluster running in {status.data_dir} on 127.0.0.1:{status.port}")
    if standbys:
        console.print(f"replicas started: {', '.join(standbys)}")


@db_app.command("down")
def db_down() -> None:
    """Stop the private cluster; its data stays."""
    status = PrivateCluster(Settings().cluster).down()
    console.print(f"cluster stopped ({status.data_dir})")


@db_app.command("status")
def db_status() -> None:
    """Show where the database is and whether it runs."""
    settings = Settings()
    if settings.db.url:
        console.print(f"external database: {database_url(settings).render_as_string()}")
        return
    status = PrivateCluster(settings.cluster).status()
    state = "running" if status.running else ("stopped" if status.initialised else "not created")
    console.print(f"private cluster {state}: {status.data_dir} port {status.port}")


@db_app.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database (starts the private cluster if needed)."""
    print(database_url(Settings()).render_as_string(hide_password=False))


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if missing and bring its schema up to date."""
    settings = Settings()
    try:
        url = database_url(settings)
        if ensure_database(url):
            console.print(f"created database {url.database}")
        engine = make_engine(url)
        revision = upgrade(engine)
        for role in set_role_passwords(engine, settings):
            console.print(f"password of role {role} set from the environment")
        # Every deploy keeps the monthly history partitions ahead of the clock.
        with transaction(engine) as session:
            created = ensure_partitions(session,
                                        months_ahead=PartitionSettings().months_ahead)
        if created:
            console.print(f"partitions created: {', '.join(created)}")
        engine.dispose()
    except CityGridError as exc:
        raise fail(exc) from exc
    console.print(f"schema at revision {revision}")


def _backup_progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=console, transient=True)


@db_app.command("dump")
def db_dump(
    file: Path = typer.Argument(..., help="archive to write (pg_dump custom format, -Fc)"),
    db: str = typer.Option(None, "--db", help="database name (default: CITYGRID_DB_NAME / URL)"),
) -> None:
    """Back the database up into FILE with pg_dump (custom format)."""
    try:
        url = database_url(Settings(), dbname=db)
        with _backup_progress() as progress:
            task = progress.add_task(f"dumping {url.database}", total=None)
            dump_database(url, file, progress=lambda line: progress.update(
                task, description=f"dumping {url.database}: {line}"[:100]))
    except CityGridError as exc:
        raise fail(exc) from exc
    size_mb = file.stat().st_size / 1e6
    console.print(f"dumped database {url.database} to {file} ({size_mb:.1f} MB)")


@db_app.command("restore")
def db_restore(
    file: Path = typer.Argument(..., help="archive written by `citygrid db dump`"),
    force: bool = typer.Option(False, "--force", help="replace a database that holds data"),
    db: str = typer.Option(None, "--db", help="database name (default: CITYGRID_DB_NAME / URL)"),
) -> None:
    """Restore FILE into a fresh database and swap it in; --force replaces existing data.

    Sessions on the database are ended for the swap; a failed restore changes nothing.
    """
    try:
        url = database_url(Settings(), dbname=db)
        with _backup_progress() as progress:
            task = progress.add_task(f"restoring {url.database}", total=None)
            name = restore_database(url, file, replace=force, progress=lambda line: progress.update(
                task, description=f"restoring {url.database}: {line}"[:100]))
    except CityGridError as exc:
        raise fail(exc) from exc
    console.print(f"restored {file} into database {name}")


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="bind address (default from CITYGRID_API_HOST)"),
    port: int = typer.Option(None, help="port (default from CITYGRID_API_PORT)"),
    workers: int = typer.Option(1, min=1, max=64, help="app processes (uvicorn workers)"),
    access_log: bool = typer.Option(True, help="one log line per request (uvicorn's access "
                                    "log); --no-access-log saves its CPU under heavy load"),
) -> None:
    """Serve the web app and API, in one process or `--workers` processes."""
    import uvicorn

    from api.main import create_app

    settings = Settings()
    host, port = host or settings.api.host, port or settings.api.port
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                    access_log=access_log)
        return
    # Each worker builds its own app from the same environment. What they share lives in
    # PostgreSQL: sign-ins (tokens), the version counters that invalidate the routing,
    # geocoding and analysis caches, and LISTEN/NOTIFY for the live case events.
    # uvicorn's own command becomes this process: its workers then re-import only uvicorn as
    # their main module, not this CLI, and answer the supervisor's health pings in time.
    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", "api.main:create_app",
                              "--factory", "--host", host, "--port", str(port),
                              "--workers", str(workers), "--log-level", "info",
                              *([] if access_log else ["--no-access-log"])])


if __name__ == "__main__":
    app()
