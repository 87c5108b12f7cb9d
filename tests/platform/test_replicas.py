"""Read replicas on two real local clusters: a throwaway primary and its streaming standby.

The module fixture makes a private cluster in a temp folder, migrates it, adds standby `r1`
with `ReplicaManager` (pg_basebackup -R, a slot) and points an app at both. The tests run in
file order: replication, routing, the standby killed, then the primary stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.read_routing import PublicReadSessionDep, ReadSessionDep
from gis.platform.cluster import DEBIAN_PG_BIN, PrivateCluster
from gis.platform.db import ensure_database, make_engine
from gis.platform.migrate import upgrade
from gis.platform.replicas import ReplicaManager, lsn_to_int
from gis.platform.settings import ClusterSettings, Settings

MAX_LAG_S = 5.0


class Clusters:
    """The primary, its standby and the app settings pointing at both."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.settings = Settings()
        self.settings.cluster = ClusterSettings(data_dir=root / "pg")
        self.settings.db.url = None
        self.settings.replicas.urls = None
        self.primary = PrivateCluster(self.settings.cluster)
        self.manager = ReplicaManager(self.settings)

    def owner_engine(self, standby: bool = False) -> Engine:
        status = (self.manager._cluster("r1") if standby else self.primary).status()
        return make_engine(status.url(self.settings.cluster.user, self.settings.db.name),
                           pool_size=1)

    def app_settings(self) -> Settings:
        copy = self.settings.model_copy(deep=True)
        primary = self.primary.status().url(self.settings.cluster.user, self.settings.db.name)
        copy.db.url = primary  # as an external database: replicas come from the URL setting
        copy.replicas.urls = self.manager._cluster("r1").status().url(
            self.settings.cluster.user, self.settings.db.name)
        copy.replicas.max_lag_s, copy.replicas.check_s, copy.replicas.down_s = MAX_LAG_S, 0.1, 2
        return copy


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    if not (DEBIAN_PG_BIN / "pg_basebackup").exists():
        pytest.fail("PostgreSQL 15 binaries missing (Debian postgresql-15): run ./manage.sh setup")
    root = Path(tempfile.mkdtemp(prefix="citygrid-replicas-"))
    os.chmod(root, 0o755)  # as root the clusters run as `postgres`, which must reach them
    found = Clusters(root)
    try:
        found.primary.up()
        engine = found.owner_engine()
        ensure_database(engine.url)
        upgrade(engine)
        engine.dispose()
        info = found.manager.add("r1")
        assert info.running and info.port != found.primary.status().port
        yield found
    finally:
        for name in found.manager.names():
            found.manager._cluster(name).down()
        found.primary.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def client(clusters: Clusters) -> Iterator[TestClient]:
    from api.main import create_app

    app: FastAPI = create_app(clusters.app_settings())

    # Test-only probes: which server the read dependencies really hand out.
    @app.get("/test/public-read")
    def public_read(session: PublicReadSessionDep) -> dict[str, object]:
        return {"in_recovery": session.execute(text("SELECT pg_is_in_recovery()")).scalar_one(),
                "user": session.execute(text("SELECT current_user")).scalar_one()}

    @app.get("/test/staff-read")
    def staff_read(session: ReadSessionDep) -> dict[str, object]:
        return {"in_recovery": session.execute(text("SELECT pg_is_in_recovery()")).scalar_one(),
                "user": session.execute(text("SELECT current_user")).scalar_one()}

    with TestClient(app) as test_client:
        yield test_client


def _add_facility(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO facilities (name, kind, address, opening_hours, geom) VALUES "
            "(:n, 'public_toilet', '测试路1号', '24小时', "
            "ST_SetSRID(ST_MakePoint(117.03, 36.66), 4326))"), {"n": name})


def _names(client: TestClient) -> set[str]:
    response = client.get("/public/facilities")
    assert response.status_code == 200, response.text
    return {f["properties"]["name"] for f in response.json()["features"]}


def test_standby_streams_and_is_listed(clusters: Clusters) -> None:
    standby = clusters.owner_engine(standby=True)
    try:
        with standby.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
            # Physical replication copies the roles: the same least-privilege ones exist.
            roles = set(conn.execute(text(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'citygrid_%'")).scalars())
        assert {"citygrid_app", "citygrid_public", "citygrid_grid_owner"} <= roles
    finally:
        standby.dispose()
    [info] = clusters.manager.list_all()
    assert info.name == "r1" and info.running and info.slot == "citygrid_r1"


def test_write_on_primary_visible_on_standby_within_bound(clusters: Clusters) -> None:
    primary, standby = clusters.owner_engine(), clusters.owner_engine(standby=True)
    try:
        started = time.monotonic()
        _add_facility(primary, "复制测试")
        seen = None
        while time.monotonic() - started < MAX_LAG_S:
            with standby.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM facilities WHERE name = '复制测试'"))\
                        .scalar_one():
                    seen = time.monotonic() - started
                    break
            time.sleep(0.01)
        assert seen is not None and seen < MAX_LAG_S
    finally:
        primary.dispose()
        standby.dispose()


def test_reads_go_to_the_standby(client: TestClient) -> None:
    public = client.get("/test/public-read").json()
    assert public == {"in_recovery": True, "user": "citygrid_public"}
    assert "复制测试" in _names(client)
    # Open311 GET answers from the standby too (both of its sessions).
    assert client.get("/open311/v2/services.json").status_code == 200
    requests = client.get("/open311/v2/requests.json")
    assert requests.status_code == 200, requests.text


def test_staff_reads_go_to_the_standby_as_the_app_role(client: TestClient) -> None:
    body = client.get("/test/staff-read").json()
    assert body == {"in_recovery": True, "user": "citygrid_app"}


def test_grid_owner_reads_on_the_standby_stay_under_row_level_security(
        client: TestClient, clusters: Clusters) -> None:
    from tests.support.accounts import headers_for

    engine = clusters.owner_engine()
    try:
        owner = headers_for(engine, "grid_owner", owner_name="测试网格员")
        analyst = headers_for(engine, "analyst")
    finally:
        engine.dispose()
    # Signed in on the primary; the read session on the standby switches role like SessionDep.
    assert client.get("/test/staff-read", headers=owner).json() == {
        "in_recovery": True, "user": "citygrid_grid_owner"}
    assert client.get("/test/staff-read", headers=analyst).json() == {
        "in_recovery": True, "user": "citygrid_app"}
    # A real staff read route served with the standby session.
    assert client.get("/tiles/basemap/14/13518/6396.pbf", headers=analyst).status_code in (200,
                                                                                          204)


def test_read_your_own_write_goes_to_the_primary(client: TestClient, clusters: Clusters) -> None:
    engine = clusters.owner_engine()
    try:
        with engine.connect() as conn:
            now = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
    finally:
        engine.dispose()
    ahead = lsn_to_int(now)
    assert ahead is not None
    # A position the standby cannot have replayed yet: the read must come from the primary.
    future = f"{(ahead + 2**30) >> 32:X}/{(ahead + 2**30) & 0xFFFFFFFF:X}"
    body = client.get("/test/public-read", headers={"X-Citygrid-Min-Lsn": future}).json()
    assert body["in_recovery"] is False
    # One the standby has replayed: back to the standby.
    time.sleep(0.3)
    body = client.get("/test/public-read", headers={"X-Citygrid-Min-Lsn": now}).json()
    assert body["in_recovery"] is True
    # A real write hands the client its position: a cookie the next reads carry.
    from gis.access import auth
    from gis.platform.db import transaction

    engine = clusters.owner_engine()
    try:
        with transaction(engine) as session:
            auth.create_user(session, username="ryow-user", password="test-password",
                             role="analyst")
    finally:
        engine.dispose()
    signed_in = client.post("/auth/token",
                            data={"username": "ryow-user", "password": "test-password"})
    assert signed_in.status_code == 200, signed_in.text
    written = lsn_to_int(signed_in.headers["x-citygrid-lsn"])
    assert written is not None and written >= ahead
    assert client.cookies.get("citygrid_lsn") == signed_in.headers["x-citygrid-lsn"]
    client.cookies.clear()
    # Garbage is ignored, not an error.
    assert client.get("/test/public-read", headers={"X-Citygrid-Min-Lsn": "x'; --"})\
        .status_code == 200


def test_standby_killed_reads_fall_back_to_primary(client: TestClient,
                                                   clusters: Clusters) -> None:
    replica = clusters.manager._cluster("r1")
    primary = clusters.owner_engine()
    try:
        _add_facility(primary, "备库停机前")
        time.sleep(0.3)
        replica._run([replica.program("pg_ctl"), "-D", str(replica.pgdata), "-m", "immediate",
                      "-w", "stop"])
        _add_facility(primary, "备库停机后")
        assert client.get("/test/public-read").json()["in_recovery"] is False
        assert {"备库停机前", "备库停机后", "复制测试"} <= _names(client)
        assert client.get("/test/staff-read").json()["in_recovery"] is False
    finally:
        primary.dispose()
    # Back up: it catches up from its slot (nothing written meanwhile is missing) and serves.
    replica.up()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if client.get("/test/public-read").json()["in_recovery"]:
            break
    assert client.get("/test/public-read").json()["in_recovery"] is True
    assert {"备库停机前", "备库停机后", "复制测试"} <= _names(client)


def test_primary_stopped_reads_answer_writes_503(client: TestClient, clusters: Clusters) -> None:
    engine = clusters.owner_engine()
    try:
        for i in range(20):
            _add_facility(engine, f"主库停机前{i}")
        acknowledged = {f"主库停机前{i}" for i in range(20)}
    finally:
        engine.dispose()
    clusters.primary.down()
    try:
        # Every acknowledged write is on the standby, and anonymous reads still answer.
        assert acknowledged <= _names(client)
        assert client.get("/test/public-read").json()["in_recovery"] is True
        assert client.get("/public").status_code == 200
        assert client.get("/open311/v2/services.json").status_code == 200
        refused = client.post("/auth/token", data={"username": "x", "password": "y"})
        assert refused.status_code == 503
        body = refused.json()
        assert body["read_only"] is True
        assert "read-only" in body["detail"] and "只读" in body["message_zh"]
    finally:
        clusters.primary.up()


def test_cli_lists_and_removes_the_standby(clusters: Clusters) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    env = {"CITYGRID_CLUSTER_DATA_DIR": str(clusters.root / "pg"), "CITYGRID_DATABASE_URL": "",
           "DATABASE_URL": "", "COLUMNS": "200"}
    runner = CliRunner()
    listed = runner.invoke(app, ["db", "replica", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "r1" in listed.output and "yes" in listed.output
    # A stopped standby follows its primary on `citygrid db up` (as after a reboot).
    clusters.manager._cluster("r1").down()
    up = runner.invoke(app, ["db", "up"], env=env)
    assert up.exit_code == 0 and "replicas started: r1" in up.output, up.output
    assert clusters.manager.info("r1").running
    bad = runner.invoke(app, ["db", "replica", "add", "--name", "R1; rm"], env=env)
    assert bad.exit_code == 2 and "must match" in bad.output
    removed = runner.invoke(app, ["db", "replica", "remove", "r1"], env=env)
    assert removed.exit_code == 0, removed.output
    assert not (clusters.root / "replicas" / "r1").exists()
    engine = clusters.owner_engine()
    try:
        with engine.connect() as conn:
            slots = conn.execute(text("SELECT count(*) FROM pg_replication_slots")).scalar_one()
    finally:
        engine.dispose()
    assert slots == 0
