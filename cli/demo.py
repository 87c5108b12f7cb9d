"""`citygrid demo ...`: the demo city (Jinan 历下区)."""

import typer

demo_app = typer.Typer(help="The demo city: Jinan 历下区", no_args_is_help=True)


@demo_app.command("load")
def load() -> None:
    """Load the demo city (skipped when already loaded)."""
    raise typer.Exit(code=0)
