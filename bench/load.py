"""Benchmark (not a test): sustained load on POST /route and POST /cases, GET /health as floor.

    .venv/bin/python bench/load.py                        # 60 s of load, 2 clients
    .venv/bin/python bench/load.py --seconds 20 --clients 4

Builds a throwaway database (citygrid_bench_load_<pid>_<hex>) with the demo city (历下区),
starts a real uvicorn server process on a free 127.0.0.1 port and drives it with `--clients`
httpx clients in threads:

1. `baseline`: GET /health (one SELECT, no auth) for `--baseline-seconds`: the floor of what
   the HTTP stack, the pool and a round trip to PostGIS cost on this machine.
2. `load`: for `--seconds`, every client alternates POST /route (a random point inside a random
   unit grid of the demo city, category 0505) and POST /cases (a dispatcher's complaint at
   another such point), as a dispatch centre does at a busy hour.

Prints per route: requests, req/s, p50 / p99 / max in ms, errors (anything but 200 / 201 or a
dropped connection) and p50 as a multiple of the /health p50; then checks that every case
acknowledged with 201 is in the database ("acknowledged N, found N, lost 0") and prints one
JSON line of figures. The exit status is 1 when there were errors or lost cases. The database
is dropped unless --keep-db. Clients and server share the machine's CPUs, so on a small
machine the figures are a floor for throughput, not a capacity estimate.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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

console = Console(width=max(Console().width, 120))
CHANNELS = ("hotline_12345", "hotline_12319", "wechat", "patrol")
POINTS = 5_000


@dataclass
class Stats:
    """Latencies and failures of one route in one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # requests without any HTTP answer (counted in errors too)
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        """Count a failed request, keeping the first few messages."""
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(what)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_points(engine: Any, n: int, seed: int) -> list[tuple[float, float]]:
    """`n` random points, each inside a random unit grid cell of the demo city."""
    with engine.connect() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        rows = conn.execute(text("""
            SELECT ST_X(p), ST_Y(p) FROM (
                SELECT (ST_Dump(ST_GeneratePoints(geom, 1, (:seed + k)::int))).geom AS p
                FROM (SELECT geom, row_number() OVER () AS k FROM grid_cells
                      ORDER BY random() LIMIT :n) cells) pts"""),
            {"n": n, "seed": seed}).all()
    points = [(round(float(x), 6), round(float(y), 6)) for x, y in rows]
    if not points:
        raise typer.BadParameter("the demo city has no unit grid cells")
    while len(points) < n:  # fewer cells than wanted points: reuse them
        points += points[: n - len(points)]
    return points


def dispatcher_token(engine: Any) -> str:
    """A fresh dispatcher account of the throwaway database and its bearer token."""
    with transaction(engine) as session:
        user = auth.create_user(session, username=f"bench-load-{uuid.uuid4().hex[:8]}",
                                password=uuid.uuid4().hex, role="dispatcher")
        return auth.issue_token(session, user=user)


def start_server(db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn in its own process on a free loopback port; (process, base url)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "CITYGRID_DATABASE_URL": db_url}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_for_health(server, url, "uvicorn")
    return server, url


def wait_for_health(server: subprocess.Popen[bytes], url: str, what: str,
                    seconds: float = 240) -> None:
    """Wait until `url`/health answers 200; stop `server` and raise if it never does."""
    deadline = time.monotonic() + seconds  # a loaded 2-core machine imports slowly
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{what} exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"{what} did not answer /health within {seconds:g} s")


class Driver:
    """The requests a client sends, and where their outcomes go."""

    def __init__(self, token: str, points: list[tuple[float, float]]) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.points = points
        self.lock = threading.Lock()
        self.stats: dict[str, Stats] = {}
        self.acknowledged: list[int] = []

    def _stats(self, name: str) -> Stats:
        with self.lock:
            return self.stats.setdefault(name, Stats())

    def health(self, client: httpx.Client, k: int) -> None:
        """GET /health: the floor."""
        self._send("GET /health", 200, lambda: client.get("/health"))

    def route(self, client: httpx.Client, k: int) -> None:
        """POST /route for the k-th point."""
        x, y = self.points[k % len(self.points)]
        body = {"x": x, "y": y, "category_type": "event", "category_code": "0505"}
        self._send("POST /route", 200, lambda: client.post("/route", json=body))

    def case(self, client: httpx.Client, k: int) -> None:
        """POST /cases at another point; remembers the id of every 201."""
        x, y = self.points[(k * 7 + 3) % len(self.points)]
        body = {"category_type": "event", "category_code": "0102",
                "channel": CHANNELS[k % len(CHANNELS)], "x": x, "y": y,
                "description": f"压测投诉 {k}"}
        response = self._send("POST /cases", 201, lambda: client.post("/cases", json=body))
        if response is not None:
            with self.lock:
                self.acknowledged.append(int(response.json()["id"]))

    def _send(self, name: str, expected: int, call: Any) -> httpx.Response | None:
        stats = self._stats(name)
        started = time.perf_counter()
        try:
            response = call()
        except httpx.HTTPError as exc:
            with self.lock:
                stats.dropped += 1
                stats.error(f"{type(exc).__name__}: {exc}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            stats.latencies_ms.append(elapsed)
            if response.status_code != expected:
                stats.error(f"{response.status_code}: {response.text[:200]}")
                return None
        return response


def run_phase(url: str, driver: Driver, steps: list[Any], *, seconds: float,
              clients: int) -> float:
    """`clients` threads cycling through `steps` for `seconds`; returns the real duration."""
    stop = threading.Event()

    def client(c: int) -> None:
        with httpx.Client(base_url=url, headers=driver.headers, timeout=30) as http:
            i = 0  # each client cycles through all the steps; k spreads the points
            while not stop.is_set():
                steps[i % len(steps)](http, i * clients + c)
                i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return time.perf_counter() - started


def main(
    seconds: float = typer.Option(60, help="seconds of sustained route + case load"),
    clients: int = typer.Option(2, min=1, help="concurrent clients (threads)"),
    baseline_seconds: float = typer.Option(10, help="seconds of GET /health first"),
    keep_db: bool = typer.Option(False, help="keep the throwaway database"),
    seed: int = typer.Option(7, help="random seed for the points"),
) -> None:
    """Run the load, print the table and the loss check; exit 1 on errors or lost cases."""
    settings = Settings()
    url = database_url(settings, dbname=f"citygrid_bench_load_{os.getpid()}_"
                                        f"{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    engine = make_engine(url)
    figures: dict[str, Any] = {"seconds": seconds, "clients": clients, "cpus": os.cpu_count()}
    failed = False
    try:
        started = time.perf_counter()
        upgrade(engine)
        load_demo(engine, progress=False)
        token = dispatcher_token(engine)
        points = sample_points(engine, POINTS, seed)
        with engine.connect() as conn:
            cases_before = int(conn.execute(text("SELECT count(*) FROM cases")).scalar_one())
        figures["setup_s"] = round(time.perf_counter() - started, 1)
        console.print(f"demo city loaded in {figures['setup_s']} s; starting uvicorn")

        server, base = start_server(url.render_as_string(hide_password=False))
        try:
            warm = Driver(token, points)  # pool, plans and caches; not counted
            run_phase(base, warm, [warm.health, warm.route, warm.case], seconds=2,
                      clients=clients)
            driver = Driver(token, points)
            console.print(f"baseline: GET /health for {baseline_seconds:g} s, "
                          f"{clients} client(s)")
            floor_s = run_phase(base, driver, [driver.health], seconds=baseline_seconds,
                                clients=clients)
            console.print(f"load: POST /route + POST /cases for {seconds:g} s, "
                          f"{clients} client(s)")
            load_s = run_phase(base, driver, [driver.route, driver.case], seconds=seconds,
                               clients=clients)
        finally:
            server.terminate()
            server.wait(timeout=30)

        # After the server is gone: every acknowledged case must be in the database.
        ids = warm.acknowledged + driver.acknowledged
        with engine.connect() as conn:
            found = int(conn.execute(text("SELECT count(*) FROM cases WHERE id = ANY(:ids)"),
                                     {"ids": ids}).scalar_one())
            total = int(conn.execute(text("SELECT count(*) FROM cases")).scalar_one())
            without_collect = int(conn.execute(text("""
                SELECT count(*) FROM cases c WHERE c.id = ANY(:ids) AND NOT EXISTS (
                    SELECT 1 FROM case_transitions t
                    WHERE t.case_id = c.id AND t.action = 'collect')"""),
                {"ids": ids}).scalar_one())
        lost = len(set(ids)) - found
        figures.update(acknowledged=len(ids), found=found, lost=lost,
                       cases_without_collect=without_collect,
                       new_cases=total - cases_before)

        floor = driver.stats.get("GET /health", Stats())
        floor_p50 = statistics.median(floor.latencies_ms) if floor.latencies_ms else math.nan
        table = Table(title=f"sustained load, {clients} client(s), loopback uvicorn process "
                            f"({os.cpu_count()} CPUs shared with the clients)")
        for column in ("route", "phase s", "requests", "req/s", "p50 ms", "p99 ms", "max ms",
                       "errors", "p50 / health p50"):
            table.add_column(column, justify="left" if column == "route" else "right")
        for name, stats in driver.stats.items():
            duration = floor_s if name == "GET /health" else load_s
            ms = stats.latencies_ms
            n = len(ms) + stats.dropped
            p50 = statistics.median(ms) if ms else math.nan
            key = name.split()[1].strip("/")
            figures.update({f"{key}_requests": n, f"{key}_rps": round(n / duration, 1),
                            f"{key}_p50_ms": round(p50, 1),
                            f"{key}_p99_ms": round(pct(ms, 0.99), 1) if ms else None,
                            f"{key}_max_ms": round(max(ms), 1) if ms else None,
                            f"{key}_errors": stats.errors})
            table.add_row(name, f"{duration:.1f}", str(n), f"{n / duration:.1f}",
                          f"{p50:.1f}", f"{pct(ms, 0.99):.1f}" if ms else "-",
                          f"{max(ms):.1f}" if ms else "-", str(stats.errors),
                          "1.0 (floor)" if name == "GET /health" else f"{p50 / floor_p50:.1f}")
        console.print(table)
        for name, stats in driver.stats.items():
            for sample in stats.error_samples:
                console.print(f"[red]{name} error:[/red] {sample}", highlight=False)
        colour = "green" if lost == 0 and without_collect == 0 else "red"
        console.print(f"[{colour}]acknowledged {len(ids)}, found {found}, lost {lost}[/{colour}]"
                      f" (cases without their 'collect' transition: {without_collect}; "
                      f"stored without an answer: {total - cases_before - found})")
        errors = sum(s.errors for s in driver.stats.values())
        figures["errors"] = errors
        failed = bool(errors or lost or without_collect)
        print(json.dumps(figures, ensure_ascii=False))
    finally:
        engine.dispose()
        if not keep_db:
            drop_database(url)
    if failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    typer.run(main)
