"""Benchmark (not a test): replay lag of a streaming standby while the primary takes writes.

    python bench/replica_lag.py                       # 100 rows/s, then as fast as one writer can
    python bench/replica_lag.py --rates 50,500,2000 --seconds 20

Makes a throwaway private cluster and one standby (`ReplicaManager.add`, pg_basebackup -R with
a slot, the same code as `citygrid db replica add`) in a temp folder. A writer commits one row
at a time at the target rate (autocommit, a new row id each); a reader polls `max(id)` every
millisecond on the standby and notes when each id becomes visible. The lag of a row is that
moment minus the moment its INSERT was acknowledged. Prints p50/p99/max of that lag per rate
and the primary's own `pg_stat_replication.replay_lag` at the end of each rate.

Baseline `primary-self`: the same reader polling the primary itself (visibility delay of a
committed row there: the poll interval and the reader's round trip), printed first. The
clusters and folder are removed at the end.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import typer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from gis.platform.cluster import PrivateCluster
from gis.platform.replicas import ReplicaManager
from gis.platform.settings import ClusterSettings, Settings


def _engine(cluster: PrivateCluster, settings: Settings, db: str = "postgres") -> Engine:
    url = cluster.status().url(settings.cluster.user, db)
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2)


def measure(writer: Engine, reader: Engine, rate: float, seconds: float) -> list[float]:
    """Lags (s) of rows written at `rate` per second for `seconds`, as seen through `reader`."""
    # Ids go on from the last run: rows of an earlier run still on the standby are never
    # taken for this run's.
    with writer.connect() as conn:
        first = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM lagprobe")).scalar_one())
    acked: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()

    def read() -> None:
        last = first
        with reader.connect() as conn:
            while not done.is_set() or last < max(acked, default=first):
                top = conn.execute(text("SELECT coalesce(max(id), 0) FROM lagprobe")).scalar_one()
                now = time.perf_counter()
                for i in range(last + 1, int(top) + 1):
                    seen[i] = now
                last = max(last, int(top))
                time.sleep(0.001)

    thread = threading.Thread(target=read)
    thread.start()
    interval = 1.0 / rate
    start = time.perf_counter()
    with writer.connect() as conn:
        i = first
        while time.perf_counter() - start < seconds:
            i += 1
            conn.execute(text("INSERT INTO lagprobe (id, payload) VALUES (:i, repeat('x', 200))"),
                         {"i": i})
            acked[i] = time.perf_counter()
            pause = start + (i - first) * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    done.set()
    thread.join(timeout=60)
    return [seen[i] - acked[i] for i in acked if i in seen]


def _figures(name: str, lags: list[float], seconds: float, extra: str = "") -> None:
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000  # noqa: E731
    print(f"{name:>14}: {len(lags) / seconds:7.0f} rows/s  lag p50 {p(0.5):7.1f} ms  "
          f"p99 {p(0.99):7.1f} ms  max {lags[-1] * 1000:7.1f} ms  "
          f"mean {statistics.mean(lags) * 1000:6.1f} ms{extra}")


def main(rates: str = typer.Option("100,100000", help="rows per second, comma list (one writer: "
                                                 "a rate above what it reaches means flat out)"),
         seconds: float = typer.Option(10, help="seconds per rate")) -> None:
    """Measure replay lag of a standby at several write rates."""
    root = Path(tempfile.mkdtemp(prefix="citygrid-bench-replica-"))
    os.chmod(root, 0o755)  # as root the clusters run as `postgres`
    settings = Settings()
    settings.cluster = ClusterSettings(data_dir=root / "pg")
    settings.db.url = None
    primary = PrivateCluster(settings.cluster)
    manager = ReplicaManager(settings)
    try:
        primary.up()
        with _engine(primary, settings).connect() as conn:
            conn.execute(text("CREATE TABLE lagprobe (id bigint PRIMARY KEY, payload text)"))
        manager.add("bench")
        replica = manager._cluster("bench")
        writer, on_primary = _engine(primary, settings), _engine(primary, settings)
        on_replica = _engine(replica, settings)
        print(f"primary 127.0.0.1:{primary.status().port}, standby 127.0.0.1:"
              f"{replica.status().port}, {seconds:.0f} s per rate, reader polls every 1 ms")
        base = measure(writer, on_primary, 100, seconds)
        _figures("primary-self", base, seconds, "  (baseline: the reader on the primary)")
        for rate in [float(r) for r in rates.split(",")]:
            lags = measure(writer, on_replica, rate, seconds)
            with on_primary.connect() as conn:
                replay = conn.execute(text(
                    "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication")).scalar()
            note = f"  pg_stat_replication.replay_lag {float(replay or 0) * 1000:.1f} ms"
            _figures(f"standby@{rate:.0f}/s", lags, seconds, note)
        for engine in (writer, on_primary, on_replica):
            engine.dispose()
    finally:
        for name in manager.names():
            manager._cluster(name).down()
        primary.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
