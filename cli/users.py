"""`citygrid user ...`: staff accounts and their API tokens."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from gis.access import auth
from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import CityGridError
from gis.platform.settings import Settings

user_app = typer.Typer(help="Staff accounts (admin, planner, dispatcher, grid_owner, analyst)",
                       no_args_is_help=True)
console = Console()
COLUMNS = ("username", "role", "display_name", "owner_name", "active")


@contextmanager
def _session(what: str) -> Iterator[Session]:
    """One committed transaction, tagged for the audit log; domain errors exit with code 2."""
    engine = make_engine(database_url(Settings()))
    try:
        with transaction(engine) as session:
            auth.tag_transaction(session, actor=f"cli:{getpass.getuser()}", role="admin",
                                 request=f"citygrid user {what}")
            yield session
    except CityGridError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()


@user_app.command("add")
def add(
    username: str,
    role: str = typer.Option(..., "--role", help=", ".join(auth.ROLES)),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 confirmation_prompt=True, help="at least 8 characters"),
    display_name: str = typer.Option("", "--name", help="display name, e.g. 张三"),
    owner_name: str = typer.Option(None, "--owner-name",
                                   help="for grid_owner: their name as in grid_owners"),
    district: str = typer.Option(None, "--district",
                                 help="6-digit district code of a district sub-centre's "
                                      "staff (they see only that district's cases); "
                                      "omit for the city centre"),
) -> None:
    """Create a staff account."""
    with _session("add") as session:
        user = auth.create_user(session, username=username, password=password, role=role,
                                display_name=display_name, owner_name=owner_name,
                                district_code=district)
    console.print(f"user {user.username!r} created with role {user.role}")


@user_app.command("list")
def list_() -> None:
    """List staff accounts."""
    with _session("list") as session:
        rows = auth.list_users(session)
    table = Table(title="citygrid users")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] is not None else "" for c in COLUMNS))
    console.print(table)


@user_app.command("disable")
def disable(username: str) -> None:
    """Disable an account and revoke its tokens."""
    with _session("disable") as session:
        auth.set_active(session, username=username, active=False)
    console.print(f"user {username!r} disabled, its tokens revoked")


@user_app.command("enable")
def enable(username: str) -> None:
    """Enable a disabled account again (old tokens stay revoked)."""
    with _session("enable") as session:
        auth.set_active(session, username=username, active=True)
    console.print(f"user {username!r} enabled")


@user_app.command("token")
def token(
    username: str,
    hours: float = typer.Option(auth.DEFAULT_TOKEN_HOURS, "--hours",
                                help="lifetime; e.g. 8760 for a system account's api_key"),
) -> None:
    """Print a new bearer token for an account (for scripts and Open311 api_key)."""
    with _session("token") as session:
        issued = auth.issue_token(session, user=auth.get_user(session, username), hours=hours)
    print(issued)  # only once committed: a printed token always works
