"""Benchmark (not a test): every analysis and report, cold and warm, against the demo city.

    .venv/bin/python bench/analysis.py              # throwaway database with the demo city
    .venv/bin/python bench/analysis.py --warm 9

Builds a throwaway database (citygrid_bench_analysis_<pid>_<hex>) with the demo city, starts a
real uvicorn server on a free 127.0.0.1 port and, for every analysis endpoint and page, times
the first call (cold: computed, the baseline) and then `--warm` more calls (warm: reused from
the result cache while no input table changed). Prints cold, warm p50 / max, the ratio
cold / warm p50 and whether warm meets the 1 s budget; then edits one input (a streetlight
goes out) and times dark streets twice after it;
then edits a case and times each case-driven analysis after it: the answer in the request
(the previous figures, X-Refreshing) and how long the background refresh took.
The database is dropped unless --keep-db.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import start_server  # noqa: E402

from gis.access import auth  # noqa: E402
from gis.demo.load import load_demo  # noqa: E402
from gis.platform.db import (  # noqa: E402
    database_url,
    drop_database,
    ensure_database,
    make_engine,
    transaction,
)
from gis.platform.migrate import upgrade  # noqa: E402
from gis.platform.settings import Settings  # noqa: E402

BUDGET_S = 1.0
ENDPOINTS = [
    ("coverage gaps", "/analysis/coverage-gaps", {}),
    ("coverage page", "/analysis/map/coverage-gaps", {}),
    ("dark streets", "/analysis/dark-streets", {}),
    ("dark streets page", "/analysis/map/dark-streets", {}),
    ("hotspots (30 d)", "/analysis/hotspots", {"days": 30}),
    ("hotspots page", "/analysis/map/hotspots", {"days": 30}),
    ("cover risk", "/analysis/cover-risk", {}),
    ("cover risk page", "/analysis/map/cover-risk", {}),
    ("indicators (week)", "/analysis/indicators", {"period": "weekly"}),
    ("daily report", "/reports/daily", {}),
    ("weekly report", "/reports/weekly", {}),
    ("monthly report", "/reports/monthly", {}),
    ("monthly report XLSX", "/reports/monthly/report.xlsx", {}),
    ("monthly report PDF", "/reports/monthly/report.pdf", {}),
]
console = Console(width=max(Console().width, 120))


def analyst_token(engine: Any) -> str:
    """A fresh analyst account of the throwaway database and its bearer token."""
    with transaction(engine) as session:
        user = auth.create_user(session, username=f"bench-analysis-{uuid.uuid4().hex[:8]}",
                                password=uuid.uuid4().hex, role="analyst")
        return auth.issue_token(session, user=user)


def timed(client: httpx.Client, path: str, params: dict[str, Any]) -> float:
    """Seconds one GET takes; a non-200 answer stops the bench."""
    started = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
    return elapsed


def main(
    warm: int = typer.Option(5, min=1, help="warm calls per endpoint after the cold one"),
    keep_db: bool = typer.Option(False, help="keep the throwaway database"),
) -> None:
    """Time every analysis cold and warm; print the table and one JSON line of figures."""
    settings = Settings()
    url = database_url(settings, dbname=f"citygrid_bench_analysis_{os.getpid()}_"
                                        f"{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    engine = make_engine(url)
    rows: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        upgrade(engine)
        load_demo(engine, progress=False)
        token = analyst_token(engine)
        console.print(f"demo city loaded in {time.perf_counter() - started:.1f} s")
        server, base = start_server(url.render_as_string(hide_password=False))
        try:
            with httpx.Client(base_url=base, timeout=300,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                for name, path, params in track(ENDPOINTS, description="cold, then warm"):
                    cold = timed(client, path, params)
                    warms = [timed(client, path, params) for _ in range(warm)]
                    rows.append({"name": name, "cold_s": cold,
                                 "warm_p50_s": statistics.median(warms),
                                 "warm_max_s": max(warms)})
                with transaction(engine) as session:  # one light goes out: an input changes
                    session.execute(text("UPDATE streetlights SET lit = false WHERE code = "
                                         "(SELECT min(code) FROM streetlights WHERE lit)"))
                after = timed(client, "/analysis/dark-streets", {})
                again = timed(client, "/analysis/dark-streets", {})
                stale_rows = after_case_edit(client, engine)
        finally:
            server.terminate()
    finally:
        engine.dispose()
        if not keep_db:
            drop_database(url)
    table = Table(title="analyses: cold (computed) vs warm (reused while inputs unchanged)")
    for column in ("analysis", "cold s", "warm p50 s", "warm max s", "cold / warm",
                   f"warm <= {BUDGET_S:g} s"):
        table.add_column(column, justify="left" if column == "analysis" else "right")
    for row in rows:
        ratio = row["cold_s"] / row["warm_p50_s"] if row["warm_p50_s"] else float("inf")
        table.add_row(row["name"], f"{row['cold_s']:.3f}", f"{row['warm_p50_s']:.3f}",
                      f"{row['warm_max_s']:.3f}", f"{ratio:,.0f}x",
                      "yes" if row["warm_max_s"] <= BUDGET_S else "NO")
    console.print(table)
    console.print(f"after a streetlight went out: dark streets answered in {after:.3f} s "
                  f"(the previous result while the new one is computed behind it), "
                  f"then in {again:.3f} s")
    edits = Table(title="after a case edit: answered in the request vs refreshed behind it")
    for column in ("analysis", "answer s", "stale answer", "background refresh s"):
        edits.add_column(column, justify="left" if column == "analysis" else "right")
    for row in stale_rows:
        edits.add_row(row["name"], f"{row['answer_s']:.3f}", "yes" if row["stale"] else "no",
                      f"{row['refresh_s']:.2f}")
    console.print(edits)
    print(json.dumps({"cpus": os.cpu_count(), "rows": rows, "after_edit_s": after,
                      "after_edit_reused_s": again, "after_case_edit": stale_rows}))


CASE_DRIVEN = [e for e in ENDPOINTS if e[0].startswith(("hotspots", "cover risk", "indicators",
                                                        "daily", "weekly", "monthly report"))
               and "XLSX" not in e[0] and "PDF" not in e[0]]


def after_case_edit(client: httpx.Client, engine: Any) -> list[dict[str, Any]]:
    """Per case-driven analysis: a case is edited, then the call's time and its refresh's."""
    out = []
    for name, path, params in CASE_DRIVEN:
        with transaction(engine) as session:  # another desk touches a case: inputs move
            session.execute(text("UPDATE cases SET description = description "
                                 "WHERE id = (SELECT min(id) FROM cases)"))
        started = time.perf_counter()
        r = client.get(path, params=params)
        answer = time.perf_counter() - started
        stale = r.headers.get("X-Refreshing") == "true"
        while client.get(path, params=params).headers.get("X-Refreshing") == "true":
            time.sleep(0.05)
        out.append({"name": name, "answer_s": answer, "stale": stale,
                    "refresh_s": time.perf_counter() - started})
    return out


if __name__ == "__main__":
    typer.run(main)
