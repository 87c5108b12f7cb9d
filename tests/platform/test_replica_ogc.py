"""/ogc on a read replica: tipg's catalog functions come by replication (migration 0032), so its
anonymous reads run on a fresh standby, with the same bound, own-write position and failover as
/public. Two real local clusters (the fixture of test_replicas.py, a pair of this module's own).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.ogc_pools import APPLICATION_NAME, OgcPools
from gis.platform.ogc_catalog import SCHEMA, catalog_digest
from gis.platform.replicas import int_to_lsn
from tests.platform.test_replicas import Clusters, _add_facility, clusters  # noqa: F401

ITEMS = "/ogc/collections/facilities/items"


@pytest.fixture(scope="module")
def client(clusters: Clusters) -> Iterator[TestClient]:  # noqa: F811
    from api.main import create_app

    app: FastAPI = create_app(clusters.app_settings())
    with TestClient(app) as test_client:
        yield test_client


def _ogc_names(client: TestClient, **headers: str) -> set[str]:
    r = client.get(ITEMS, params={"limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    return {f["properties"]["name"] for f in r.json()["features"]}


def _last_ogc_query(engine: Engine) -> dt.datetime | None:
    """When the server's /ogc connections (citygrid_public, application_name) last ran one."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT max(query_start) FROM pg_stat_activity "
            "WHERE application_name = :a AND usename = 'citygrid_public'"),
            {"a": APPLICATION_NAME}).scalar()


def _now(engine: Engine) -> dt.datetime:
    with engine.connect() as conn:
        found: dt.datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return found


def _wait_on_standby(clusters: Clusters, name: str) -> None:  # noqa: F811
    standby = clusters.owner_engine(standby=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with standby.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM facilities WHERE name = :n"),
                                {"n": name}).scalar_one():
                    return
            time.sleep(0.1)
        pytest.fail(f"{name} never reached the standby")
    finally:
        standby.dispose()


def test_catalog_functions_reach_the_standby(clusters: Clusters,  # noqa: F811
                                             client: TestClient) -> None:
    standby = clusters.owner_engine(standby=True)
    try:
        with standby.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
            comment = conn.execute(text(
                "SELECT obj_description(CAST(:s AS regnamespace), 'pg_namespace')"),
                {"s": SCHEMA}).scalar_one()
            # citygrid_public may call them, and nothing else may create there.
            rights = conn.execute(text(
                "SELECT has_schema_privilege('citygrid_public', :s, 'USAGE'), "
                "has_schema_privilege('citygrid_public', :s, 'CREATE'), "
                "has_function_privilege('citygrid_app', "
                "'ogc_catalog.tipg_get_schemas(text[], text[])', 'EXECUTE')"),
                {"s": SCHEMA}).one()
    finally:
        standby.dispose()
    assert comment == catalog_digest()
    assert tuple(rights) == (True, False, False)
    assert isinstance(client.app.state.pool, OgcPools)  # type: ignore[attr-defined]
    assert len(client.app.state.pool.standbys) == 1  # type: ignore[attr-defined]


def test_ogc_reads_go_to_the_standby(clusters: Clusters, client: TestClient) -> None:  # noqa: F811
    primary, standby = clusters.owner_engine(), clusters.owner_engine(standby=True)
    try:
        _add_facility(primary, "OGC备库读")
        _wait_on_standby(clusters, "OGC备库读")
        before, started = _last_ogc_query(primary), _now(standby)
        assert "OGC备库读" in _ogc_names(client)
        assert client.get("/ogc/collections/facilities").status_code == 200
        # The standby's /ogc connections ran the queries, the primary's ran nothing.
        last = _last_ogc_query(standby)
        assert last is not None and last > started
        assert _last_ogc_query(primary) == before
    finally:
        primary.dispose()
        standby.dispose()


def test_own_write_position_not_replayed_reads_the_primary(clusters: Clusters,  # noqa: F811
                                                          client: TestClient) -> None:
    primary = clusters.owner_engine()
    try:
        with primary.connect() as conn:
            now = conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
        before = _last_ogc_query(primary)
        # A position the standby has not replayed (far ahead): only the primary may answer.
        ahead = int_to_lsn(int(now) + 10**12)
        assert client.get(ITEMS, headers={"X-Citygrid-Min-Lsn": ahead}).status_code == 200
        after = _last_ogc_query(primary)
        assert after is not None and (before is None or after > before)
    finally:
        primary.dispose()


def test_standby_killed_ogc_reads_the_primary_then_the_standby_again(
        clusters: Clusters, client: TestClient) -> None:  # noqa: F811
    replica = clusters.manager._cluster("r1")
    primary = clusters.owner_engine()
    try:
        _add_facility(primary, "OGC停备库前")
        _wait_on_standby(clusters, "OGC停备库前")
        assert "OGC停备库前" in _ogc_names(client)  # a pooled connection to the standby now
        replica._run([replica.program("pg_ctl"), "-D", str(replica.pgdata), "-m", "immediate",
                      "-w", "stop"])
        _add_facility(primary, "OGC停备库后")
        # The dead pooled connection fails its ping once: the read goes to the primary.
        assert {"OGC停备库前", "OGC停备库后"} <= _ogc_names(client)
        assert {"OGC停备库前", "OGC停备库后"} <= _ogc_names(client)
    finally:
        primary.dispose()
    replica.up()
    _wait_on_standby(clusters, "OGC停备库后")
    standby = clusters.owner_engine(standby=True)
    try:
        started = _now(standby)
        deadline = time.monotonic() + 30  # down_s is 2 s in these settings
        served = None
        while time.monotonic() < deadline and not served:
            time.sleep(0.3)
            assert "OGC停备库后" in _ogc_names(client)
            last = _last_ogc_query(standby)
            served = last is not None and last > started
        assert served, "the standby never served /ogc again"
    finally:
        standby.dispose()


def test_primary_stopped_ogc_still_answers(clusters: Clusters,  # noqa: F811
                                          client: TestClient) -> None:
    engine = clusters.owner_engine()
    try:
        for i in range(5):
            _add_facility(engine, f"OGC主库停前{i}")
    finally:
        engine.dispose()
    _wait_on_standby(clusters, "OGC主库停前4")
    clusters.primary.down()
    try:
        assert {f"OGC主库停前{i}" for i in range(5)} <= _ogc_names(client)
        r = client.get("/ogc/collections/facilities/tiles/WebMercatorQuad/15/27000/12560")
        assert r.status_code in (200, 204), r.text
    finally:
        clusters.primary.up()
