"""Benchmark (not a test): POST /route at a fixed rate from a native load generator (hey).

    .venv/bin/python bench/route_load.py                  # 4 clients x 125/s for 30 s
    .venv/bin/python bench/route_load.py --rate 300 --seconds 10 --engines cache,statement,sql

Needs Debian's `hey` (manage.sh installs it with the test packages). Runs against the private
cluster's database (`citygrid db url`, the demo city must be loaded: `citygrid demo load`) or
`--db-url`. Engines (`--engines`): `cache` (the index with the per-process sign-in cache,
gis/dispatch/engine/route_cache.py: no statement per request), `statement` (the index with
one sign-in statement per request, the cache off: the previous engine and the named
baseline) and `sql` (the per-point SQL of gis/dispatch/routing.py, also without the cache).
For each it starts `citygrid serve --workers 2` on a free loopback port with
CITYGRID_ROUTING_SINGLE_ENGINE and CITYGRID_ROUTE_CACHE_ENABLED set, warms every worker
(each compiles its own index and, with the cache, starts listening), then runs `--clients`
hey processes at `--rate / --clients` requests/s each for `--seconds`, each client with its
own point inside a demo grid cell (category 0505). Prints per engine p50 / p99 / max in ms,
the achieved rate, errors (anything but 200, and requests the target rate asked for but never
sent) and GET /health at the same rate as the HTTP floor, then each engine's ratios to the
`statement` baseline, and the load average. A bench dispatcher is created for the run and
its token revoked at the end. Clients, server and PostGIS share the machine's cores.

Besides latency it prints what each request cost in CPU, which a loaded machine distorts far
less than latency: `srv ms` = CPU seconds of the server's processes (supervisor and workers,
from /proc) over the run / requests answered, `hey ms` = the same for the hey clients.
`--serve-args "--no-access-log"` passes options to `citygrid serve` (see `citygrid serve
--help`), `--workers` sets its processes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import resource
import shlex
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


ENGINES = {  # name: (CITYGRID_ROUTING_SINGLE_ENGINE, CITYGRID_ROUTE_CACHE_ENABLED)
    "cache": ("index", "true"), "statement": ("index", "false"), "sql": ("sql", "false")}
BASELINE = "statement"


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found += _process_tree(int(child))
    except OSError:
        pass
    return found


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _serve(db_url: str, engine_name: str, workers: int,
           serve_args: str = "") -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    single, cache = ENGINES[engine_name]
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url,
           "CITYGRID_ROUTING_SINGLE_ENGINE": single, "CITYGRID_ROUTE_CACHE_ENABLED": cache}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/citygrid"), "serve", "--workers", str(workers), "--host",
         "127.0.0.1", "--port", str(port), *shlex.split(serve_args)], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for_health(server, url, "citygrid serve")
    return server, url


def _hey(url: str, token: str, points: list[tuple[float, float]], *, rate: float,
         seconds: float, health: bool = False,
         keepalive: bool = True) -> list[tuple[float, int]]:
    """(seconds, status) of every request of all clients; one hey process per client."""
    procs = []
    for x, y in points:
        body = json.dumps({"x": x, "y": y, "category_code": "0505"})
        what = (["-m", "GET", f"{url}/health"] if health else
                ["-m", "POST", "-T", "application/json", "-H", f"Authorization: Bearer {token}",
                 "-d", body, f"{url}/route"])
        procs.append(subprocess.Popen(
            ["hey", "-c", "1", "-q", f"{rate / len(points):g}", "-z", f"{seconds:g}s",
             "-o", "csv", *([] if keepalive else ["-disable-keepalive"]), *what],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
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
    engines: str = typer.Option("cache,statement", help=f"comma list of {', '.join(ENGINES)}"),
    serve_args: str = typer.Option("", help="more options for citygrid serve, e.g. "
                                   "\"--no-access-log\""),
) -> None:
    """Run the engines at the same target rate and print the figures and their ratios."""
    print("load average at start (1, 5, 15 min): "
          + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    names = [name.strip() for name in engines.split(",") if name.strip()]
    if not names or any(name not in ENGINES for name in names):
        raise typer.BadParameter(f"--engines: choose from {', '.join(ENGINES)}")
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
        for name in names:
            server, base = _serve(url, name, workers, serve_args)
            try:
                # Every worker compiles its index on its first request; warm them all: a new
                # connection per request, so the requests spread over every worker (a kept-alive
                # connection stays with the worker that accepted it).
                _hey(base, token, points, rate=min(rate, 200), seconds=4, keepalive=False)
                if name == names[0] and floor_seconds > 0:
                    # GET /health (no sign-in, one SELECT): what the HTTP stack alone costs.
                    pids = _process_tree(server.pid)
                    srv0, hey0 = _cpu_s(pids), _children_cpu_s()
                    floor = [t * 1000 for t, status in _hey(
                        base, token, points, rate=rate, seconds=floor_seconds, health=True)
                        if status == 200]
                    srv1, hey1 = _cpu_s(pids), _children_cpu_s()
                    if floor:
                        figures["health (floor)"] = {
                            "requests": len(floor), "ok": len(floor),
                            "rate": round(len(floor) / floor_seconds, 1),
                            "p50_ms": round(pct(floor, 0.5), 2),
                            "p99_ms": round(pct(floor, 0.99), 2),
                            "max_ms": round(max(floor), 2), "errors": 0,
                            "unsent": max(int(rate * floor_seconds) - len(floor), 0),
                            "srv_cpu_ms": round((srv1 - srv0) * 1000 / len(floor), 3),
                            "hey_cpu_ms": round((hey1 - hey0) * 1000 / len(floor), 3)}
                pids = _process_tree(server.pid)
                srv0, hey0 = _cpu_s(pids), _children_cpu_s()
                results = _hey(base, token, points, rate=rate, seconds=seconds)
                srv1, hey1 = _cpu_s(pids), _children_cpu_s()
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
                "errors": len(results) - len(ok), "unsent": max(asked - len(results), 0),
                "srv_cpu_ms": round((srv1 - srv0) * 1000 / max(len(results), 1), 3),
                "hey_cpu_ms": round((hey1 - hey0) * 1000 / max(len(results), 1), 3)}
    finally:
        if own_token:
            with transaction(engine) as session:
                auth.revoke_token(session, token)
        engine.dispose()
    print(f"POST /route, {clients} clients x {rate / clients:g}/s = {rate:g}/s target, "
          f"{seconds:g} s, citygrid serve --workers {workers} {serve_args}, "
          f"{os.cpu_count()} cores")
    print(f"{'engine':<22}{'sent':>7}{'ok':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'errors':>8}{'unsent':>8}{'srv ms':>8}{'hey ms':>8}")
    for name, f in figures.items():
        label = f"{name} (baseline)" if name == BASELINE else name
        print(f"{label:<22}{f['requests']:>7}{f['ok']:>7}{f['rate']:>8}{f['p50_ms']:>9}"
              f"{f['p99_ms']:>9}{f['max_ms']:>9}{f['errors']:>8}{f['unsent']:>8}"
              f"{f['srv_cpu_ms']:>8}{f['hey_cpu_ms']:>8}")
    base = figures.get(BASELINE)
    for name in names:
        f = figures[name]
        if base is not None and name != BASELINE and f["ok"]:
            print(f"{name} vs {BASELINE} baseline: p50 {base['p50_ms'] / f['p50_ms']:.2f}x "
                  f"faster, p99 {base['p99_ms'] / f['p99_ms']:.2f}x faster, "
                  f"rate {f['rate'] / base['rate']:.2f}x")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(json.dumps(figures))


if __name__ == "__main__":
    typer.run(main)
