"""`citygrid db status|migrate`, `demo load` and `serve`, on throwaway databases only.

`db migrate` gets a database of its own (created by the command, dropped here); `demo load`
runs on the session's demo database, where it must be a no-op; `serve` runs as a real
subprocess against the empty migrated test database.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from typer.testing import CliRunner

from cli.main import app
from gis.demo.load import demo_counts
from gis.platform.cluster import PrivateCluster
from gis.platform.db import database_url, drop_database, make_engine
from gis.platform.migrate import alembic_config, current_revision
from gis.platform.settings import Settings
from tests.support.accounts import headers_for

runner = CliRunner()


def flat(output: str) -> str:
    """Output without whitespace: rich wraps long lines at the console width."""
    return "".join(output.split())


def use_database(monkeypatch: pytest.MonkeyPatch, url: URL) -> None:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", url.render_as_string(hide_password=False))


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def test_db_status_names_the_external_database(monkeypatch: pytest.MonkeyPatch,
                                               test_db_url: URL) -> None:
    use_database(monkeypatch, test_db_url)
    result = runner.invoke(app, ["db", "status"])
    assert result.exit_code == 0, result.output
    assert flat(result.output).startswith("externaldatabase:")
    assert flat(test_db_url.render_as_string(hide_password=True)) in flat(result.output)
    if test_db_url.password:
        assert test_db_url.password not in result.output


def test_db_status_of_the_private_cluster(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                          test_db_url: URL) -> None:
    monkeypatch.delenv("CITYGRID_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = runner.invoke(app, ["db", "status"])
    assert result.exit_code == 0, result.output
    status = PrivateCluster(Settings().cluster).status()
    if settings.db.url is None:  # this run's databases live in the private cluster
        assert status.running and status.port == test_db_url.port
    state = "running" if status.running else ("stopped" if status.initialised else "not created")
    assert flat(result.output) == flat(
        f"private cluster {state}: {status.data_dir} port {status.port}")


def test_db_migrate_creates_then_keeps_data(monkeypatch: pytest.MonkeyPatch,
                                            settings: Settings) -> None:
    name = f"citygrid_cli_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database_url(settings, dbname=name)
    use_database(monkeypatch, url)
    engine = make_engine(url)
    try:
        first = runner.invoke(app, ["db", "migrate"])
        assert first.exit_code == 0, first.output
        head = head_revision(engine)
        assert f"created database {name}" in first.output
        assert f"schema at revision {head}" in first.output
        assert current_revision(engine) == head
        with engine.begin() as conn:
            conn.execute(text("""
                INSERT INTO facilities (name, kind, address, opening_hours, simulated, geom)
                VALUES ('用户新增公厕', 'public_toilet', '济南市历下区', '24小时', false,
                        ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326))"""))
        second = runner.invoke(app, ["db", "migrate"])
        assert second.exit_code == 0, second.output
        assert "created database" not in second.output
        assert f"schema at revision {head}" in second.output
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM facilities "
                                     "WHERE name = '用户新增公厕'")).scalar_one() == 1
    finally:
        engine.dispose()
        drop_database(url)


def test_demo_load_twice_is_a_fast_no_op(monkeypatch: pytest.MonkeyPatch, demo_db_url: URL,
                                         demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        before = demo_counts(conn)
        user_id = conn.execute(text("""
            INSERT INTO facilities (name, kind, address, opening_hours, simulated, geom)
            VALUES ('用户新增停车场', 'parking', '济南市历下区', '全天', false,
                    ST_SetSRID(ST_MakePoint(117.06, 36.67), 4326))
            RETURNING id""")).scalar_one()
    use_database(monkeypatch, demo_db_url)
    try:
        started = time.perf_counter()
        result = runner.invoke(app, ["demo", "load"])
        elapsed = time.perf_counter() - started
        assert result.exit_code == 0, result.output
        assert elapsed < 5.0
        printed = {name: int(rows.replace(",", "")) for name, rows in
                   re.findall(r"│\s*(\w+)\s*│\s*([\d,]+)\s*│", result.output)}
        assert printed == before  # every table of the demo, counted, none reloaded
        with demo_engine.connect() as conn:
            assert demo_counts(conn) == before
            assert conn.execute(text("SELECT name FROM facilities WHERE id = :i"),
                                {"i": user_id}).scalar_one() == "用户新增停车场"
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("DELETE FROM facilities WHERE id = :i"), {"i": user_id})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_health_and_stops(test_db_url: URL, engine: Engine,
                                        tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ,
           "CITYGRID_DATABASE_URL": test_db_url.render_as_string(hide_password=False)}
    log = tmp_path / "serve.log"
    command = Path(sys.executable).with_name("citygrid")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(command), "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            body = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                except httpx.TransportError:
                    time.sleep(0.3)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                break
            assert body is not None, log.read_text(errors="replace")
            assert body == {"status": "ok"}  # anonymous: up or down, nothing more
            details = httpx.get(f"http://127.0.0.1:{port}/health/details", timeout=5,
                                headers=headers_for(engine, "analyst")).json()
            assert details["postgis"].startswith("3.")
            assert details["schema_revision"] == current_revision(engine)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    output = log.read_text(errors="replace")
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert f"http://127.0.0.1:{port}" in output
    assert "Application shutdown complete" in output  # the lifespan ran to its end
