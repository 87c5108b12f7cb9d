"""`citygrid route FILE` and case commands (dispatcher)."""

import typer

dispatch_app = typer.Typer(help="Dispatch: routing and cases", no_args_is_help=True)
