"""`citygrid import` / `citygrid export`: move a layer between files and the database."""

from pathlib import Path

import typer


def import_layer(layer: str, file: Path) -> None:
    """Import FILE into LAYER (GeoJSON, GeoPackage, Shapefile, CSV with lon/lat)."""
    raise typer.Exit(code=1)


def export_layer(layer: str, file: Path) -> None:
    """Export LAYER to FILE; the format follows the extension."""
    raise typer.Exit(code=1)
