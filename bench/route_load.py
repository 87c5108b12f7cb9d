"""Benchmark (not a test): POST /route at a fixed rate from a native load generator (hey).

    .venv/bin/python bench/route_load.py                  # 4 clients x 125/s for 30 s, both engines
    .venv/bin/python bench/route_load.py --rate 300 --seconds 10

Needs Debian's `hey` (manage.sh installs it with the test packages). Runs against the private
cluster's database (`citygrid db url`, the demo city must be loaded: `citygrid demo load`) or
`--db-url`. For each engine it starts `citygrid serve --workers 2` on a free loopback port
with CITYGRID_ROUTING_SINGLE_ENGINE set, warms every worker (each compiles its own index),
then runs `--clients` hey processes at `--rate / --clients` requests/s each for `--seconds`,
each client with its own point inside a demo grid cell (category 0505). Prints per engine
p50 / p99 / max in ms, the achieved rate, errors (anything but 200, and requests the target
rate asked for but never sent) and GET /health at the same rate as the HTTP floor, then the
ratio index : sql (`sql` is the named baseline: the per-point SQL of
gis/dispatch/routing.py). A bench dispatcher is created for the run and its
token revoked at the end. Clients, server and PostGIS share the machine's cores.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import wait_for_health  # noqa: E402

from gis.access import auth  # noqa: E402
from gis.platform.db import database_url, make_engine, transaction  # noqa: E402
from gis.platform.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _points(engine: Any, n: int) -> list[tuple[float, float]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM grid_cells ORDER BY md5(code) LIMIT :n"), {"n": n}).all()
    if not rows:
        raise typer.BadParameter("no grid cells: load the demo city (citygrid demo load)")
    return [(round(float(x), 6), round(float(y), 6)) for x, y in rows]


def _serve(db_url: str, engine_name: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url,
           "CITYGRID_ROUTING_SINGLE_ENGINE": engine_name}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/citygrid"), "serve", "--workers", str(workers), "--host",
         "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for_health(server, url, "citygrid serve")
    return server, url


def _hey(url: str, token: str, points: list[tuple[float, float]], *, rate: float,
         seconds: float, health: bool = False) -> list[tuple[float, int]]:
    """(seconds, status) of every request of all clients; one hey process per client."""
    procs = []
    for x, y in points:
        body = json.dumps({"x": x, "y": y, "category_code": "0505"})
        what = (["-m", "GET", f"{url}/health"] if health else
                ["-m", "POST", "-T", "application/json", "-H", f"Authorization: Bearer {token}",
                 "-d", body, f"{url}/route"])
        procs.append(subprocess.Popen(
            ["hey", "-c", "1", "-q", f"{rate / len(points):g}", "-z", f"{seconds:g}s",
             "-o", "csv", *what], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    out: list[tuple[float, int]] = []
    for proc in procs:
        data, _ = proc.communicate()
        for row in csv.DictReader(io.StringIO(data.decode())):
            out.append((float(row["response-time"]), int(row["status-code"])))
    return out


def main(
    rate: float = typer.Option(500, help="target requests/s over all clients"),
    clients: int = typer.Option(4, min=1, help="hey processes, one connection each"),
    seconds: float = typer.Option(30, help="seconds of load per engine"),
    workers: int = typer.Option(2, min=1, help="app processes (citygrid serve --workers)"),
    db_url: str = typer.Option(None, help="database (default: the private cluster's)"),
    floor_seconds: float = typer.Option(10, help="GET /health first, same rate (0: skip)"),
    token: str = typer.Option(None, help="a staff token to use (default: a new bench "
                              "dispatcher's, revoked at the end)"),
) -> None:
    """Run both engines at the same target rate and print the figures and their ratio."""
    if shutil.which("hey") is None:
        raise typer.BadParameter("hey not found: apt-get install hey (manage.sh test does)")
    url = db_url or database_url(Settings()).render_as_string(hide_password=False)
    engine = make_engine(url)
    points = _points(engine, clients)
    own_token = token is None
    if own_token:
        with transaction(engine) as session:
            user = auth.create_user(session, username=f"bench-route-{uuid.uuid4().hex[:8]}",
                                    password=uuid.uuid4().hex, role="dispatcher")
            token = auth.issue_token(session, user=user)
    figures: dict[str, dict[str, float]] = {}
    try:
        for name in ("index", "sql"):
            server, base = _serve(url, name, workers)
            try:
                # Every worker compiles its index on its first request; warm them all.
                _hey(base, token, points, rate=min(rate, 200), seconds=3)
                if name == "index" and floor_seconds > 0:
                    # GET /health (no sign-in, one SELECT): what the HTTP stack alone costs.
                    floor = [t * 1000 for t, status in _hey(
                        base, token, points, rate=rate, seconds=floor_seconds, health=True)
                        if status == 200]
                    if floor:
                        figures["health (floor)"] = {
                            "requests": len(floor), "ok": len(floor),
                            "rate": round(len(floor) / floor_seconds, 1),
                            "p50_ms": round(pct(floor, 0.5), 2),
                            "p99_ms": round(pct(floor, 0.99), 2),
                            "max_ms": round(max(floor), 2), "errors": 0,
                            "unsent": max(int(rate * floor_seconds) - len(floor), 0)}
                results = _hey(base, token, points, rate=rate, seconds=seconds)
            finally:
                server.terminate()
                server.wait(timeout=30)
            ok = [t * 1000 for t, status in results if status == 200]
            asked = int(rate * seconds)
            figures[name] = {
                "requests": len(results), "ok": len(ok),
                "rate": round(len(ok) / seconds, 1),
                "p50_ms": round(pct(ok, 0.5), 2) if ok else math.nan,
                "p99_ms": round(pct(ok, 0.99), 2) if ok else math.nan,
                "max_ms": round(max(ok), 2) if ok else math.nan,
                "errors": len(results) - len(ok), "unsent": max(asked - len(results), 0)}
    finally:
        if own_token:
            with transaction(engine) as session:
                auth.revoke_token(session, token)
        engine.dispose()
    print(f"POST /route, {clients} clients x {rate / clients:g}/s = {rate:g}/s target, "
          f"{seconds:g} s, citygrid serve --workers {workers}, {os.cpu_count()} cores")
    print(f"{'engine':<14}{'sent':>7}{'ok':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'errors':>8}{'unsent':>8}")
    for name, f in figures.items():
        label = "sql (baseline)" if name == "sql" else name
        print(f"{label:<14}{f['requests']:>7}{f['ok']:>7}{f['rate']:>8}{f['p50_ms']:>9}"
              f"{f['p99_ms']:>9}{f['max_ms']:>9}{f['errors']:>8}{f['unsent']:>8}")
    i, s = figures["index"], figures["sql"]
    print(f"index vs sql baseline: p50 {s['p50_ms'] / i['p50_ms']:.2f}x faster, "
          f"p99 {s['p99_ms'] / i['p99_ms']:.2f}x faster, rate {i['rate'] / s['rate']:.2f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    typer.run(main)
