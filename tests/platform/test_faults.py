"""Faults: the server killed mid-import and mid-case-creation, PostgreSQL restarted under the app.

The app runs as a separate process (uvicorn, or the `citygrid import` CLI) against a throwaway
database and is killed with SIGKILL at a moment chosen from the database's side
(pg_stat_activity shows the import's transaction writing). Killing only the app is safe on the
shared private cluster; restarting PostgreSQL is not (other test runs use it), so that test
starts a second, small private cluster of its own. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from api.main import create_app
from gis.platform.cluster import DEBIAN_PG_BIN, PrivateCluster
from gis.platform.db import ensure_database, make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.settings import PROJECT_ROOT, ClusterSettings, Settings
from tests.dispatch.test_workflow import insert_grids
from tests.support.accounts import headers_for
from tests.support.browser import serve
from tests.support.databases import seeded_database

LIGHTS = 30_000  # ~2 s of writing: a wide window to kill the server in
API_SERIALS = 1  # streetlight serials of the API import: 000001..
CLI_SERIALS = 100_001  # and of the CLI import: 100001..
START_TIMEOUT = 60


# ---------------------------------------------------------------------------------------------
# Helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(db_url: URL) -> dict[str, str]:
    return {**os.environ, "CITYGRID_DATABASE_URL": db_url.render_as_string(hide_password=False),
            "PYTHONPATH": str(PROJECT_ROOT)}


class AppProcess:
    """`python -m uvicorn api.main:create_app` on a loopback port, killable with SIGKILL."""

    def __init__(self, db_url: URL) -> None:
        self.db_url = db_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until /health answers 200."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "--no-access-log"],
            env=_env(self.db_url), cwd=PROJECT_ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the app server exited with {self.proc.returncode} on start")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the app server did not answer /health within {START_TIMEOUT} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no lifespan, open connections just drop."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def app_process(fault_db: URL) -> Iterator[AppProcess]:
    server = AppProcess(fault_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_db(settings: Settings) -> Iterator[URL]:
    """A throwaway database of this module's own: migrated, two constructed unit grids."""
    yield from seeded_database(settings, "faults", insert_grids)


@pytest.fixture
def fault_engine(fault_db: URL) -> Iterator[Engine]:
    engine = make_engine(fault_db)
    yield engine
    engine.dispose()


def write_lights(path: Path, *, first: int, n: int = LIGHTS) -> Path:
    """A CSV of `n` valid streetlights in 历下区 with serials first..first+n-1."""
    rng = np.random.default_rng(first)
    lon = rng.uniform(117.00, 117.10, n)
    lat = rng.uniform(36.62, 36.70, n)
    lines = ["code,state,lit,owner,maintainer,lon,lat"]
    lines += [f"3701020118{first + i:06d},intact,true,路灯管理处,模拟养护,{x:.6f},{y:.6f}"
              for i, (x, y) in enumerate(zip(lon, lat, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lights_in(engine: Engine, first: int, n: int = LIGHTS) -> tuple[int, int]:
    """(streetlights, their audit rows) with serials first..first+n-1."""
    low, high = f"3701020118{first:06d}", f"3701020118{first + n - 1:06d}"
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM streetlights WHERE code BETWEEN :a AND :b"),
                            {"a": low, "b": high}).scalar_one()
        audit = conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE table_name = 'streetlights' "
            "AND action = 'INSERT' AND row_key BETWEEN :a AND :b"), {"a": low, "b": high}
        ).scalar_one()
    return int(rows), int(audit)


def wait_for_writer(engine: Engine, table: str, *, alive: subprocess.Popen[bytes],
                    timeout: float = 60) -> int:
    """Backend pid of a transaction that has begun writing `table` (an INSERT with an xid)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(text("""
                SELECT pid FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND backend_xid IS NOT NULL AND state = 'active'
                  AND query ILIKE :q
                LIMIT 1"""), {"q": f"INSERT INTO {table}%"}).scalar()
            conn.rollback()  # a fresh snapshot of pg_stat_activity each time
            if pid is not None:
                return int(pid)
            if alive.poll() is not None:
                pytest.fail(f"the process exited ({alive.returncode}) before writing {table}")
            time.sleep(0.01)
    pytest.fail(f"no transaction writing {table} within {timeout} s")


def wait_backend_gone(engine: Engine, pid: int, timeout: float = 30) -> None:
    """Wait until PostgreSQL has noticed the dead client and ended (rolled back) its backend."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                            {"p": pid}).scalar_one() == 0:
                return
            conn.rollback()
            time.sleep(0.05)
    pytest.fail(f"backend {pid} of the killed client still runs after {timeout} s")


# ---------------------------------------------------------------------------------------------
# (a) Killed during a batch import: all rows or none


def test_server_killed_during_api_import_leaves_all_or_nothing(
        app_process: AppProcess, fault_engine: Engine, tmp_path: Path) -> None:
    admin = headers_for(fault_engine, "admin")
    data = write_lights(tmp_path / "lights.csv", first=API_SERIALS).read_bytes()
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            response = httpx.post(f"{app_process.url}/layers/streetlights/import",
                                  files={"file": ("lights.csv", data, "text/csv")},
                                  headers=admin, timeout=120)
            outcome["status"] = response.status_code
        except httpx.TransportError as exc:
            outcome["error"] = exc

    app_process.start()
    assert app_process.proc is not None
    uploader = threading.Thread(target=upload)
    uploader.start()
    writer = wait_for_writer(fault_engine, "streetlights", alive=app_process.proc)
    app_process.kill()
    uploader.join(timeout=30)
    wait_backend_gone(fault_engine, writer)

    rows, audit = lights_in(fault_engine, API_SERIALS)
    acknowledged = outcome.get("status") == 200
    assert rows in (0, LIGHTS), f"partial import: {rows} of {LIGHTS} rows after the kill"
    assert audit == rows, "the audit log must hold exactly the rows that were written"
    assert rows == (LIGHTS if acknowledged else 0)
    # The kill came while the transaction was writing: nothing was acknowledged, nothing kept.
    assert not acknowledged and rows == 0, outcome
    print(f"\nAPI import killed mid-write: {rows} of {LIGHTS} rows kept, audit {audit}")

    app_process.start()  # restart: the same file now goes in whole
    again = httpx.post(f"{app_process.url}/layers/streetlights/import",
                       files={"file": ("lights.csv", data, "text/csv")}, headers=admin,
                       timeout=120)
    assert again.status_code == 200, again.text
    assert again.json()["imported"] == LIGHTS
    assert lights_in(fault_engine, API_SERIALS) == (LIGHTS, LIGHTS)


def test_cli_import_killed_leaves_all_or_nothing(fault_db: URL, fault_engine: Engine,
                                                 tmp_path: Path) -> None:
    path = write_lights(tmp_path / "lights.csv", first=CLI_SERIALS)
    command = [sys.executable, "-m", "cli.main", "import", "streetlights", str(path)]
    proc = subprocess.Popen(command, env=_env(fault_db), cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        writer = wait_for_writer(fault_engine, "streetlights", alive=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    wait_backend_gone(fault_engine, writer)
    rows, audit = lights_in(fault_engine, CLI_SERIALS)
    assert rows == 0 and audit == 0, f"partial CLI import: {rows} of {LIGHTS} rows"
    print(f"\nCLI import killed mid-write: {rows} of {LIGHTS} rows kept")

    done = subprocess.run(command, env=_env(fault_db), cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert lights_in(fault_engine, CLI_SERIALS) == (LIGHTS, LIGHTS)


# ---------------------------------------------------------------------------------------------
# (b) Killed during case creation: no acknowledged case lost, none half-written

CLIENTS = 2
KILL_AFTER_ACKS = 40


def _complaint(k: int, rng: np.random.Generator) -> dict[str, object]:
    # Spread over the two constructed grids (118.000-118.002 E, 37.0000-37.0008 N).
    return {"category_type": "event", "category_code": "0102", "channel": "hotline_12345",
            "x": round(float(rng.uniform(118.0001, 118.0019)), 6),
            "y": round(float(rng.uniform(37.0001, 37.0007)), 6),
            "description": f"故障测试 {k}"}


def test_server_killed_during_case_creation_loses_no_acknowledged_case(
        app_process: AppProcess, fault_engine: Engine) -> None:
    dispatcher = headers_for(fault_engine, "dispatcher")
    with fault_engine.connect() as conn:
        before = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM cases")).scalar_one())
    acknowledged: list[int] = []
    refused: list[str] = []  # HTTP answers other than 201 before the kill
    dropped = [0]  # requests whose connection died with the server
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=app_process.url, headers=dispatcher, timeout=30) as http:
            k = 0
            while not stop.is_set():
                k += 1
                try:
                    response = http.post("/cases", json=_complaint(k, rng))
                except httpx.TransportError:
                    with lock:
                        dropped[0] += 1
                    time.sleep(0.02)
                    continue
                with lock:
                    if response.status_code == 201:
                        acknowledged.append(int(response.json()["id"]))
                    else:
                        refused.append(f"{response.status_code} {response.text[:200]}")

    app_process.start()
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < KILL_AFTER_ACKS and time.monotonic() < deadline and not refused:
        time.sleep(0.01)
    app_process.kill()  # mid-stream: each client has a request in flight
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not refused, refused[:3]
    assert len(acknowledged) >= KILL_AFTER_ACKS
    assert dropped[0] >= 1, "the kill should have cut at least one request short"

    app_process.start()  # restart and look from both the database and the API
    with fault_engine.connect() as conn:
        found = set(conn.execute(text("SELECT id FROM cases WHERE id = ANY(:ids)"),
                                 {"ids": acknowledged}).scalars())
        stored = set(conn.execute(text("SELECT id FROM cases WHERE id > :b"),
                                  {"b": before}).scalars())
        without_collect = conn.execute(text("""
            SELECT c.id FROM cases c
            WHERE c.id > :b AND NOT EXISTS (
                SELECT 1 FROM case_transitions t
                WHERE t.case_id = c.id AND t.action = 'collect' AND t.to_status = 'collected')
            """), {"b": before}).scalars().all()
        without_audit = conn.execute(text("""
            SELECT c.id FROM cases c
            WHERE c.id > :b AND NOT EXISTS (
                SELECT 1 FROM audit_log a
                WHERE a.table_name = 'cases' AND a.action = 'INSERT'
                  AND a.row_key = c.id::text)"""), {"b": before}).scalars().all()
    lost = set(acknowledged) - found
    assert not lost, f"acknowledged cases lost after the kill: {sorted(lost)}"
    assert not without_collect, f"cases without their 'collect' transition: {without_collect}"
    assert not without_audit, f"cases without their audit row: {without_audit}"
    # At most the requests in flight at the kill were committed without an answer.
    assert len(stored - set(acknowledged)) <= CLIENTS
    print(f"\ncases: acknowledged {len(acknowledged)}, found {len(found)}, lost {len(lost)}; "
          f"requests without an answer {dropped[0]}, stored without an answer "
          f"{len(stored - set(acknowledged))}")
    with httpx.Client(base_url=app_process.url, headers=dispatcher, timeout=30) as http:
        for case_id in acknowledged:
            response = http.get(f"/cases/{case_id}")
            assert response.status_code == 200, response.text
            assert [t["action"] for t in response.json()["transitions"]] == ["collect"]
        after = http.post("/cases", json=_complaint(0, np.random.default_rng(99)))
        assert after.status_code == 201, after.text


# ---------------------------------------------------------------------------------------------
# (c) PostgreSQL restarted while the app runs: the app recovers on its own (pool pre-ping)


def _postgres_installed() -> bool:
    return (DEBIAN_PG_BIN / "initdb").exists() or shutil.which("initdb") is not None


@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    """A second private cluster for this test alone: restarting it disturbs no other test."""
    if not _postgres_installed():
        reason = ("PostgreSQL server programs (initdb, pg_ctl) not installed: the database "
                  "restart test needs a cluster of its own, which an external "
                  "CITYGRID_DATABASE_URL does not give")
        if os.environ.get("CI") or os.environ.get("CITYGRID_REQUIRE_BROWSER"):
            pytest.fail(reason)  # manage.sh installs them: never skipped there
        pytest.skip(reason)
    # Inside the project, not /tmp/pytest-of-root: as root the postgres account owns the
    # cluster and must reach its folder.
    folder = PROJECT_ROOT / ".citygrid" / f"fault-cluster-{uuid.uuid4().hex[:8]}"
    cluster = PrivateCluster(ClusterSettings(data_dir=folder, port=None))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(folder, ignore_errors=True)


def _answers(http: httpx.Client, dispatcher: dict[str, str]) -> dict[str, int]:
    """Status of /health, a DB-backed staff read, a case write and an OGC (asyncpg) read."""
    out = {"health": http.get("/health").status_code,
           "grid_cells": http.get("/layers/grid_cells/items", headers=dispatcher).status_code,
           "ogc": http.get("/ogc/collections/grid_cells/items").status_code}
    created = http.post("/cases", headers=dispatcher,
                        json=_complaint(1, np.random.default_rng(7)))
    out["create_case"] = created.status_code
    return out


HEALTHY = {"health": 200, "grid_cells": 200, "ogc": 200, "create_case": 201}


def test_app_recovers_from_database_restart_without_its_own_restart(
        own_cluster: PrivateCluster, settings: Settings) -> None:
    status = own_cluster.status()
    url = URL.create("postgresql+psycopg2", username=own_cluster.settings.user,
                     host="127.0.0.1", port=status.port, database="citygrid_restart")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with transaction(engine) as session:
            insert_grids(session)
        dispatcher = headers_for(engine, "dispatcher")
    finally:
        engine.dispose()
    app_settings = settings.model_copy(deep=True)
    app_settings.db.url = url.render_as_string(hide_password=False)

    with serve(create_app(app_settings)) as base, httpx.Client(base_url=base,
                                                                timeout=30) as http:
        assert _answers(http, dispatcher) == HEALTHY  # every pool holds live connections now
        own_cluster.down()
        down = http.get("/health", timeout=10)  # answers (an error), does not hang
        assert down.status_code == 503 and down.headers["retry-after"] == "5", down.text
        restarted = own_cluster.up()
        assert restarted.port == status.port  # the app's URL still points at it
        started = time.monotonic()
        # Pre-ping replaces the SQLAlchemy pool's dead connections on first use: the very
        # first requests after the restart already work, without retries by the client.
        first = _answers(http, dispatcher)
        assert {k: first[k] for k in ("health", "grid_cells", "create_case")} == {
            "health": 200, "grid_cells": 200, "create_case": 201}, first
        answers = first
        while answers != HEALTHY and time.monotonic() - started < 5:
            time.sleep(0.2)  # tipg's asyncpg pool reconnects on its own schedule
            answers = _answers(http, dispatcher)
        recovered_in = time.monotonic() - started
        assert answers == HEALTHY, f"not recovered {recovered_in:.1f} s after the restart"
        print(f"\nrecovered {recovered_in:.2f} s after the database restart, first answers "
              f"{first} (while down: /health {down.status_code})")
