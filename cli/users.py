"""`citygrid user ...`: staff accounts and their API tokens."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from gis import auth
from gis.db import database_url, make_engine, transaction
from gis.errors import CityGridError
from gis.settings import Settings

user_app = typer.Typer(help="Staff accounts (admin, planner, dispatcher, grid_owner, analyst)",
                       no_args_is_help=True)
console = Console()


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


@user_app.command("add")
def add(
    username: str,
    role: str = typer.Option(..., "--role", help=", ".join(auth.ROLES)),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 confirmation_prompt=True, help="at least 8 characters"),
    display_name: str = typer.Option("", "--name", help="display name, e.g. 张三"),
    owner_name: str = typer.Option(None, "--owner-name",
                                   help="for grid_owner: their name as in grid_owners"),
) -> None:
    """Create a staff account."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            auth.tag_transaction(session, actor="cli", role="admin", request="user add")
            user = auth.create_user(session, username=username, password=password, role=role,
                                    display_name=display_name, owner_name=owner_name)
    except CityGridError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    console.print(f"user {user.username!r} created with role {user.role}")


@user_app.command("list")
def list_() -> None:
    """List staff accounts."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            rows = auth.list_users(session)
    finally:
        engine.dispose()
    table = Table(title="citygrid users")
    for column in ("username", "role", "display_name", "owner_name", "active"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c] if row[c] is not None else "") for c in
                        ("username", "role", "display_name", "owner_name", "active")))
    console.print(table)


@user_app.command("disable")
def disable(username: str) -> None:
    """Disable an account and revoke its tokens."""
    _set_active(username, active=False)


@user_app.command("enable")
def enable(username: str) -> None:
    """Enable a disabled account again."""
    _set_active(username, active=True)


def _set_active(username: str, *, active: bool) -> None:
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            auth.tag_transaction(session, actor="cli", role="admin", request="user enable")
            auth.set_active(session, username=username, active=active)
    except CityGridError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    console.print(f"user {username!r} {'enabled' if active else 'disabled'}")


@user_app.command("token")
def token(
    username: str,
    hours: float = typer.Option(auth.DEFAULT_TOKEN_HOURS, "--hours",
                                help="lifetime; e.g. 8760 for a system account's api_key"),
) -> None:
    """Print a new bearer token for an account (for scripts and Open311 api_key)."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            user = auth.get_user(session, username)
            print(auth.issue_token(session, user=user, hours=hours))
    except CityGridError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
