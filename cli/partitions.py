"""`citygrid db partitions ensure|list|archive`: monthly partitions of the history tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import CityGridError
from gis.platform.partitions import (
    PartitionSettings,
    archive_expired,
    ensure_partitions,
    list_partitions,
)
from gis.platform.settings import Settings

partitions_app = typer.Typer(
    help="Monthly partitions of cases, case_transitions and audit_log "
         "(migrations 0027, 0038)",
    no_args_is_help=True)
console = Console()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


@partitions_app.command("ensure")
def partitions_ensure(
    months_ahead: int = typer.Option(None, "--months-ahead", min=1, max=24,
                                     help="months after this one to create "
                                          "(default CITYGRID_PARTITIONS_MONTHS_AHEAD, 3)"),
) -> None:
    """Create this month and the next ones; move rows waiting in DEFAULT to their month."""
    ahead = months_ahead or PartitionSettings().months_ahead
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            created = ensure_partitions(session, months_ahead=ahead)
    except CityGridError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    console.print(f"created: {', '.join(created)}" if created
                  else f"every month up to {ahead} ahead exists")


@partitions_app.command("list")
def partitions_list() -> None:
    """Show each partition with its month, rows and size."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            parts = list_partitions(session)
    finally:
        engine.dispose()
    table = Table("table", "partition", "month", "rows", "size MB")
    for part in parts:
        table.add_row(part.table, part.name,
                      "DEFAULT" if part.month is None else f"{part.month:%Y-%m}",
                      str(part.rows), f"{part.total_bytes / 1e6:.1f}")
    console.print(table)


@partitions_app.command("archive")
def partitions_archive(
    retention_months: int = typer.Option(None, "--retention-months", min=1,
                                         help="months kept before this one (default "
                                              "CITYGRID_PARTITIONS_RETENTION_MONTHS, 36)"),
    directory: Path = typer.Option(None, "--dir", help="archive folder (default "
                                   "CITYGRID_PARTITIONS_ARCHIVE_DIR)"),
) -> None:
    """Write months past the retention to GeoParquet, verify, then detach and drop them."""
    settings = PartitionSettings()
    engine = make_engine(database_url(Settings()))
    kept: list[tuple[str, int]] = []
    try:
        archived = archive_expired(engine,
                                   retention_months=retention_months or settings.retention_months,
                                   directory=directory or settings.archive_dir, kept=kept)
    except CityGridError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    for month in archived:
        console.print(f"{month.partition}: {month.rows} rows -> {month.path} (dropped)")
    for partition, still_open in kept:
        console.print(f"{partition}: kept, {still_open} case(s) still open")
    if not archived and not kept:
        console.print("no month is past the retention")
