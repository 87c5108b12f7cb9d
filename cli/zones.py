"""`citygrid zones ...`: stall zone planning."""

import typer

zones_app = typer.Typer(help="Stall zones: check, approve, export", no_args_is_help=True)
