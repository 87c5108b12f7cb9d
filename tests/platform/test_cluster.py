"""The private cluster: created once, reused with its port and data, stopped cleanly."""

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from gis.platform.cluster import DEBIAN_PG_BIN, PrivateCluster
from gis.platform.settings import PROJECT_ROOT, ClusterSettings

pytestmark = pytest.mark.skipif(
    not (DEBIAN_PG_BIN / "initdb").exists() and not os.environ.get("CI"),
    reason="PostgreSQL 15 server not installed (./manage.sh setup installs it)",
)


@pytest.fixture
def cluster():
    # Inside the project, not /tmp/pytest-of-root: the postgres account must reach the folder.
    folder = PROJECT_ROOT / ".citygrid" / f"test-cluster-{uuid.uuid4().hex[:8]}"
    c = PrivateCluster(ClusterSettings(data_dir=folder))
    yield c
    c.down()
    shutil.rmtree(folder, ignore_errors=True)


def _query(status, sql):
    eng = create_engine(status.url("citygrid", "postgres"), poolclass=NullPool)
    try:
        with eng.begin() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        eng.dispose()


def test_cluster_lifecycle_keeps_port_and_data(cluster):
    assert not cluster.status().initialised
    first = cluster.up()
    assert first.running and first.port
    assert _query(first, "SHOW listen_addresses") == "127.0.0.1"
    _query(first, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42); SELECT 1")

    assert cluster.up() == first  # already running: nothing changes

    stopped = cluster.down()
    assert stopped.initialised and not stopped.running

    again = cluster.up()
    assert again.port == first.port  # the port is remembered
    assert _query(again, "SELECT x FROM kept") == 42  # and the data kept
    assert _query(again, "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'") == 1
