"""Benchmark (not a test): cases partitioned by month (migration 0038) vs one plain table.

    .venv/bin/python bench/case_partitions.py                 # 1,000,000 cases over 24 months
    .venv/bin/python bench/case_partitions.py --cases 200000 --runs 101

Builds a throwaway database (citygrid_bench_cases_<pid>_<hex>) migrated to head, makes the
monthly partitions with `ensure_partitions` and inserts --cases generated cases spread evenly
over --months months before this one, through the partitioned `cases` (its triggers fill
case_keys; the insert rate is printed). Baseline **plain**: `cases_plain`, a plain table
holding the same rows with cases' indexes as they were before 0038 (primary key on id, unique
case numbers). Both are VACUUM ANALYZEd; each query runs --runs times per table after one
warm-up on one connection with the app's session settings (`constraint_exclusion = off`), and
the median is printed with the ratio plain / partitioned and the partitions in the plan. The
lookups by id and by number are also timed with PostgreSQL's default `constraint_exclusion`.

Queries (one month in the middle of the range; lookups of cases spread over every month):
  month-status   count of the month's cases per status (a monthly indicator)
  month-grid     the month's cases of one category per grid (a hotspot input)
  by-id          one case by id (the desk, the field page, Open311)
  by-number      one case by its case number (hotline callers quote it)
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time
import uuid

import typer
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.platform.db import (
    database_url,
    drop_database,
    ensure_database,
    make_engine,
    session_options,
    transaction,
)
from gis.platform.migrate import upgrade
from gis.platform.partitions import add_months, city_month, ensure_partitions, month_bounds
from gis.platform.settings import Settings

PERIOD_QUERIES = {
    "month-status": "SELECT status, count(*) FROM {t} WHERE reported_at >= :lo "
                    "AND reported_at < :hi GROUP BY status",
    "month-grid": "SELECT grid_code, count(*) FROM {t} WHERE reported_at >= :lo "
                  "AND reported_at < :hi AND category_code = '0102' GROUP BY grid_code",
}
LOOKUPS = {
    "by-id": ("SELECT * FROM {t} WHERE id = :key", "id"),
    "by-number": ("SELECT * FROM {t} WHERE case_no = :key", "case_no"),
}


def fill(engine: Engine, *, cases: int, months: int) -> float:
    """Generate the cases and their plain copy; returns the insert rate (cases/s)."""
    first = add_months(city_month(), -months)
    start, _ = month_bounds(first)
    end, _ = month_bounds(city_month())
    with transaction(engine) as session:
        ensure_partitions(session, months_ahead=months, today=first)
        # One generated history is not a row-by-row edit for the audit log.
        session.execute(text("SELECT set_config('citygrid.audit', 'off', true)"))
        began = time.perf_counter()
        session.execute(text("""
            INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
                               raw_crs, reported_at, geom, status)
            SELECT 'B' || to_char(t, 'YYYYMMDD') || lpad(g::text, 8, '0'), 'event',
                   (ARRAY['0101', '0102', '0103', '0201', '0301'])[1 + g % 5], 'patrol', x, y,
                   'wgs84', t, ST_SetSRID(ST_MakePoint(x, y), 4326),
                   (ARRAY['collected', 'dispatched', 'handled', 'reported'])[1 + g % 4]
            FROM generate_series(0, :cases - 1) g,
                 LATERAL (SELECT :start + (:end - :start) * (g::float8 / :cases) AS t,
                                 117.0 + (g % 997) / 10000.0 AS x,
                                 36.6 + (g % 991) / 10000.0 AS y) v"""),
            {"cases": cases, "start": start, "end": end})
        rate = cases / (time.perf_counter() - began)
        session.execute(text("""
            CREATE TABLE cases_plain (LIKE cases INCLUDING DEFAULTS);
            INSERT INTO cases_plain SELECT * FROM cases;
            ALTER TABLE cases_plain ADD PRIMARY KEY (id);
            ALTER TABLE cases_plain ADD UNIQUE (case_no);
            CREATE INDEX ON cases_plain (reported_at);
            CREATE INDEX ON cases_plain (category_code);
            CREATE INDEX ON cases_plain (grid_code);
            CREATE INDEX ON cases_plain (status, due_at);
            CREATE INDEX ON cases_plain USING gist (geom)"""))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE cases"))
        conn.execute(text("VACUUM ANALYZE cases_plain"))
    return rate


def timed(engine: Engine, sql: str, params: list[dict], runs: int,
          exclusion: str = "off") -> float:
    """Median seconds of `runs` executions (cycling through `params`) after one warm-up."""
    times = []
    with engine.connect() as conn:
        # The app's session settings (gis.platform.db.session_options), but the one compared.
        for name, value in {**session_options(Settings(), "app"),
                            "constraint_exclusion": exclusion}.items():
            conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value})
        conn.execute(text(sql), params[0]).all()
        for i in range(runs):
            began = time.perf_counter()
            conn.execute(text(sql), params[i % len(params)]).all()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def partitions_in(engine: Engine, sql: str, params: dict) -> str:
    with engine.connect() as conn:
        plan = " ".join(conn.execute(text("EXPLAIN " + sql), params).scalars())
    # Partition names, not the plan's aliases (cases_1, cases_2, ...).
    touched = sorted({w.strip("(),") for w in plan.split()
                      if re.fullmatch(r"cases_(\d{6}|default)", w.strip("(),"))})
    return (f"{touched[0]}" if len(touched) == 1 else f"{len(touched)} partitions")


def main(cases: int = typer.Option(1_000_000, help="generated cases"),
         months: int = typer.Option(24, help="months the cases span"),
         runs: int = typer.Option(51, help="timed runs per query and table"),
         keep_db: bool = typer.Option(False, help="keep the throwaway database")) -> None:
    """Print median times of period queries and lookups, partitioned vs plain."""
    settings = Settings()
    url = database_url(settings, dbname=f"citygrid_bench_cases_{os.getpid()}_"
                                        f"{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    engine = make_engine(url)  # the owner's, without the app's statement timeout, to fill
    try:
        upgrade(engine)
        began = time.perf_counter()
        rate = fill(engine, cases=cases, months=months)
        print(f"generated {cases:,} cases over {months} months in "
              f"{time.perf_counter() - began:.0f} s; the partitioned insert took "
              f"{rate:,.0f} cases/s (case_keys filled by its trigger)")
        month = add_months(city_month(), -(months // 2))
        lo, hi = month_bounds(month)
        params = {"lo": lo, "hi": hi}
        with engine.connect() as conn:
            in_month = conn.execute(text("SELECT count(*) FROM cases WHERE reported_at >= :lo "
                                         "AND reported_at < :hi"), params).scalar_one()
            parts = conn.execute(text("SELECT count(*) FROM pg_inherits "
                                      "WHERE inhparent = 'cases'::regclass")).scalar_one()
            sample = list(conn.execute(text("SELECT id, case_no FROM cases TABLESAMPLE SYSTEM (1) "
                                       "LIMIT 500")).all())
        random.Random(7).shuffle(sample)
        print(f"period: {month:%Y-%m} (city time), {in_month:,} cases in it; "
              f"{parts} partitions (DEFAULT included)")
        print(f"{'query':28} {'plain ms':>9} {'partitioned ms':>15} {'ratio':>6}  "
              "partitions in the plan")
        for name, sql in PERIOD_QUERIES.items():
            plain = timed(engine, sql.format(t="cases_plain"), [params], runs)
            parted = timed(engine, sql.format(t="cases"), [params], runs)
            print(f"{name:28} {plain * 1e3:9.2f} {parted * 1e3:15.2f} {plain / parted:6.2f}  "
                  f"{partitions_in(engine, sql.format(t='cases'), params)}")
        for name, (sql, column) in LOOKUPS.items():
            keys = [{"key": getattr(row, column)} for row in sample]
            for exclusion in ("off", "partition"):
                plain = timed(engine, sql.format(t="cases_plain"), keys, runs, exclusion)
                parted = timed(engine, sql.format(t="cases"), keys, runs, exclusion)
                label = f"{name} (exclusion {exclusion})"
                print(f"{label:28} {plain * 1e3:9.2f} {parted * 1e3:15.2f} "
                      f"{plain / parted:6.2f}  "
                      f"{partitions_in(engine, sql.format(t='cases'), keys[0])}")
    finally:
        engine.dispose()
        if not keep_db:
            drop_database(url)


if __name__ == "__main__":
    typer.run(main)
