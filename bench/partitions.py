"""Benchmark (not a test): a one-month period query on partitioned vs unpartitioned history.

    .venv/bin/python bench/partitions.py                   # 2,000,000 transitions over 24 months
    .venv/bin/python bench/partitions.py --rows 500000 --runs 7

Builds a throwaway database (citygrid_bench_partitions_<pid>_<hex>) migrated to head, makes the
monthly partitions with `ensure_partitions` and fills `case_transitions` (partitioned by month,
migration 0027) with --rows generated transitions spread evenly over --months months before
this one. Baseline **unpartitioned**: `case_transitions_plain`, a plain table holding the same
rows with the same indexes (primary key, (case_id, at, id), (at)), as the table was before
0027. Both are VACUUM ANALYZEd; each query runs --runs times on each table after one warm-up,
and the median is printed with the ratio unpartitioned / partitioned and the partitions the
plan touches. Then the oldest month is archived (`archive_month`: GeoParquet written to a temp
folder, row count read back, DETACH and DROP) and its time printed. The database is dropped at
the end.

Queries (one month of the middle of the range):
  month-count    count of that month's transitions per action (a monthly report)
  month-dispatch that month's dispatch transitions of one group of cases, newest first
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import typer
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.platform.db import database_url, drop_database, ensure_database, make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.partitions import (
    add_months,
    archive_month,
    city_month,
    ensure_partitions,
    month_bounds,
)
from gis.platform.settings import Settings

QUERIES = {
    "month-count": "SELECT action, count(*) FROM {t} WHERE at >= :lo AND at < :hi "
                   "GROUP BY action",
    "month-dispatch": "SELECT id, case_id, at FROM {t} WHERE at >= :lo AND at < :hi "
                      "AND action = 'dispatch' AND case_id < 200 ORDER BY at DESC",
}


def fill(engine: Engine, *, rows: int, months: int) -> tuple[dt.datetime, dt.datetime]:
    """Generate the history and its unpartitioned copy; returns the span of the rows."""
    first = add_months(city_month(), -months)
    start, _ = month_bounds(first)
    end, _ = month_bounds(city_month())
    with transaction(engine) as session:
        ensure_partitions(session, months_ahead=months, today=first)
        session.execute(text("""
            INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
                               raw_crs, reported_at, geom)
            SELECT 'BENCH' || g, 'event', '0101', 'patrol', 117.05, 36.66, 'wgs84', :start,
                   ST_SetSRID(ST_MakePoint(117.05, 36.66), 4326)
            FROM generate_series(1, 2000) g"""), {"start": start})
        low = session.execute(text("SELECT min(id) FROM cases WHERE case_no LIKE 'BENCH%'")
                              ).scalar_one()
        session.execute(text("""
            INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at)
            SELECT :low + g % 2000,
                   (ARRAY['file', 'dispatch', 'handle', 'report', 'close'])[1 + g % 5],
                   'filed', 'dispatched', 'bench',
                   :start + (:end - :start) * (g::float8 / :rows)
            FROM generate_series(0, :rows - 1) g"""),
            {"low": low, "start": start, "end": end, "rows": rows})
        session.execute(text("""
            CREATE TABLE case_transitions_plain (LIKE case_transitions INCLUDING DEFAULTS);
            INSERT INTO case_transitions_plain SELECT * FROM case_transitions;
            ALTER TABLE case_transitions_plain ADD PRIMARY KEY (id);
            CREATE INDEX ON case_transitions_plain (case_id, at, id);
            CREATE INDEX ON case_transitions_plain (at)"""))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE case_transitions"))
        conn.execute(text("VACUUM ANALYZE case_transitions_plain"))
    return start, end


def timed(engine: Engine, sql: str, params: dict, runs: int) -> float:
    """Median seconds of `runs` executions after one warm-up."""
    times = []
    with engine.connect() as conn:
        conn.execute(text(sql), params).all()
        for _ in range(runs):
            began = time.perf_counter()
            conn.execute(text(sql), params).all()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(rows: int = typer.Option(2_000_000, help="generated transitions"),
         months: int = typer.Option(24, help="months the rows span"),
         runs: int = typer.Option(11, help="timed runs per query and table"),
         keep_db: bool = typer.Option(False, help="keep the throwaway database")) -> None:
    """Print median times of one-month queries, partitioned vs unpartitioned."""
    settings = Settings()
    url = database_url(settings, dbname=f"citygrid_bench_partitions_{os.getpid()}_"
                                        f"{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        began = time.perf_counter()
        fill(engine, rows=rows, months=months)
        print(f"generated {rows:,} transitions over {months} months "
              f"in {time.perf_counter() - began:.0f} s")
        month = add_months(city_month(), -(months // 2))
        lo, hi = month_bounds(month)
        params = {"lo": lo, "hi": hi}
        with engine.connect() as conn:
            in_month = conn.execute(text("SELECT count(*) FROM case_transitions "
                                         "WHERE at >= :lo AND at < :hi"), params).scalar_one()
        print(f"period: {month:%Y-%m} (city time), {in_month:,} rows in it")
        print(f"{'query':16} {'unpartitioned ms':>17} {'partitioned ms':>15} {'ratio':>6}  "
              "partitions in the plan")
        for name, sql in QUERIES.items():
            plain = timed(engine, sql.format(t="case_transitions_plain"), params, runs)
            parted = timed(engine, sql.format(t="case_transitions"), params, runs)
            with engine.connect() as conn:
                plan = " ".join(conn.execute(text("EXPLAIN " + sql.format(t="case_transitions")),
                                             params).scalars())
            touched = sorted({w.strip("(),") for w in plan.split()
                              if w.startswith("case_transitions_")})
            print(f"{name:16} {plain * 1e3:17.1f} {parted * 1e3:15.1f} "
                  f"{plain / parted:6.2f}  {', '.join(touched)}")
        # Archive the oldest month: GeoParquet written, read back, detached and dropped.
        with tempfile.TemporaryDirectory() as folder, transaction(engine) as session:
            began = time.perf_counter()
            done = archive_month(session, table="case_transitions",
                                 month=add_months(city_month(), -months), directory=Path(folder))
            spent = time.perf_counter() - began
            size = done.path.stat().st_size
        print(f"archive {done.partition}: {done.rows:,} rows, {size / 1e6:.1f} MB parquet in "
              f"{spent:.1f} s ({done.rows / spent:,.0f} rows/s)")
    finally:
        engine.dispose()
        if not keep_db:
            drop_database(url)


if __name__ == "__main__":
    typer.run(main)
