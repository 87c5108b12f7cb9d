"""`citygrid user ...` and `citygrid demo users` against the throwaway database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from typer.testing import CliRunner

from cli.main import app
from gis.access import auth
from gis.platform.db import transaction
from gis.platform.errors import AuthenticationError

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, test_db_url: URL, engine: Engine) -> Engine:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", test_db_url.render_as_string(hide_password=False))
    return engine


def test_add_token_disable(cli_env: Engine) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = runner.invoke(app, ["user", "add", name, "--role", "dispatcher",
                                "--password", "long-enough-1", "--name", "调度员 甲"])
    assert added.exit_code == 0, added.output
    issued = runner.invoke(app, ["user", "token", name, "--hours", "1"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    with transaction(cli_env) as session:
        assert auth.user_for_token(session, token).role == "dispatcher"
        actor = session.execute(text(
            "SELECT actor FROM audit_log WHERE table_name = 'users' AND row_key = "
            "(SELECT id::text FROM users WHERE username = :u)"), {"u": name}).scalar_one()
    assert actor.startswith("cli:")
    listed = runner.invoke(app, ["user", "list"])
    assert name in listed.output and "dispatcher" in listed.output
    assert runner.invoke(app, ["user", "disable", name]).exit_code == 0
    with transaction(cli_env) as session, pytest.raises(AuthenticationError):
        auth.user_for_token(session, token)


def test_bad_input_exits_2_and_writes_nothing(cli_env: Engine) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    bad_role = runner.invoke(app, ["user", "add", name, "--role", "mayor",
                                   "--password", "long-enough-1"])
    assert bad_role.exit_code == 2 and "'mayor'" in bad_role.output
    short = runner.invoke(app, ["user", "add", name, "--role", "analyst", "--password", "abc"])
    assert short.exit_code == 2 and "shorter than 8" in short.output
    assert runner.invoke(app, ["user", "token", "nobody-here"]).exit_code == 2
    with cli_env.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users WHERE username = :u"),
                            {"u": name}).scalar_one() == 0


def test_demo_users_once_with_random_passwords(cli_env: Engine, tmp_path: Path) -> None:
    with cli_env.connect() as conn:  # only this test makes them in the throwaway database
        assert conn.execute(text("SELECT count(*) FROM users WHERE username IN "
                                 "('admin', 'planner', 'dispatcher', 'analyst', "
                                 "'supervisor')")).scalar() == 0
    credentials = tmp_path / "demo-users.txt"
    first = runner.invoke(app, ["demo", "users", "--credentials", str(credentials)])
    assert first.exit_code == 0, first.output
    rows = [line.split("\t") for line in credentials.read_text().splitlines()]
    assert {r[0] for r in rows} >= {"admin", "planner", "dispatcher", "analyst"}
    # bench/pages.py measures each role's pages as its first demo user
    assert ["supervisor", "supervisor"] in [r[:2] for r in rows]
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    with transaction(cli_env) as session:
        for username, _role, password in rows:
            assert auth.authenticate(session, username=username, password=password)
    assert len({r[2] for r in rows}) == len(rows)  # no shared password
    again = runner.invoke(app, ["demo", "users", "--credentials", str(tmp_path / "b.txt")])
    assert again.exit_code == 0 and not (tmp_path / "b.txt").exists()  # nothing new made
