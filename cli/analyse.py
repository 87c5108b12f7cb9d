"""`citygrid analyse ...`: dead zones, hotspots, indicators, reports."""

import typer

analyse_app = typer.Typer(help="Analysis: dead zones, hotspots, indicators, reports",
                          no_args_is_help=True)
