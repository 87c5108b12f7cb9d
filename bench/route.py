"""Benchmark (not a test): batch routing vs geopandas.sjoin vs shapely STRtree, API latency.

    python bench/route.py                         # ~90,000 cells, 1,000,000 points
    python bench/route.py --cells 9000 --points 100000
    python bench/route.py --requests 0            # batch only: index, sjoin, STRtree best of 3
    python bench/route.py --growth                # full routing vs sjoin as points and cells grow

Builds a throwaway database (citygrid_bench_<pid>) with a square grid of ~100 m cells near
Jinan (owners, stations), routes random points through citygrid's batch path (full routing,
with the time of each stage) by the SQL path and by the in-process routing index (and checks
that both give the same row for every point), times citygrid's grid-code-only paths
(locate_grids in PostGIS, index.locate in process: the work of a spatial join),
geopandas.sjoin and STRtree on the same points in the same run, then measures POST /route
latency (signed in as a dispatcher) on a uvicorn server on 127.0.0.1 with 1 and 2 concurrent
clients (skipped with --requests 0). The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import io
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import shapely
import typer
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.access import auth
from gis.dispatch.batch_postgis import locate_grids
from gis.dispatch.engine.batch import index_for
from gis.dispatch.routing_batch import route_frame
from gis.dispatch.routing_settings import RoutingSettings
from gis.platform.db import database_url, drop_database, ensure_database, make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.settings import CitySettings, Settings

ORIGIN = (116.95, 36.55)
DX, DY = 0.00112, 0.0009  # ~100 m x 100 m at 36.6°N: a 万米单元网格
BLOCK = 30  # a community is a 30 x 30 block of cells (3-digit sequence, 15-digit codes)

app = typer.Typer(add_completion=False)


def _copy(conn, table: str, columns: str, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)", buffer)


def build_grid(engine, cells: int) -> tuple[CitySettings, gpd.GeoDataFrame]:  # type: ignore[no-untyped-def]
    """Square cells in communities of BLOCK x BLOCK; returns city settings and the cells."""
    side = math.ceil(math.sqrt(cells))
    blocks = math.ceil(side / BLOCK)
    x0, y0 = ORIGIN
    bbox = (x0, y0, x0 + side * DX, y0 + side * DY)
    env = (f"SRID=4326;MULTIPOLYGON((({bbox[0]} {bbox[1]}, {bbox[2]} {bbox[1]}, "
           f"{bbox[2]} {bbox[3]}, {bbox[0]} {bbox[3]}, {bbox[0]} {bbox[1]})))")
    i, j = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")  # i: column, j: row
    i, j = i.ravel()[:cells], j.ravel()[:cells]
    bi, bj = i // BLOCK, j // BLOCK
    # Community code = county 370102 + 3-digit street (a row of blocks) + 3-digit community.
    community = 370102_000_000 + bj * 1000 + bi + 1
    seq = (j % BLOCK) * BLOCK + (i % BLOCK) + 1
    codes = [f"{c}{s:03d}" for c, s in zip(community, seq, strict=True)]
    xs, ys = x0 + i * DX, y0 + j * DY
    polys = shapely.box(xs, ys, np.round(xs + DX, 8), np.round(ys + DY, 8))
    cells_gdf = gpd.GeoDataFrame({"code": codes}, geometry=polys, crs=4326)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO districts (code, name, source, geom) VALUES "
                          "('370102', '历下区', 'bench', ST_GeomFromEWKT(:g))"), {"g": env})
        for s in range(blocks):
            conn.execute(text("INSERT INTO subdistricts (code, name, district_code, geom) "
                              "VALUES (:c, :n, '370102', ST_GeomFromEWKT(:g))"),
                         {"c": f"370102{s:03d}", "n": f"街道{s}", "g": env})
        comm = sorted(set(int(c) for c in community))
        _copy(conn, "communities", "code, name, subdistrict_code, geom", pd.DataFrame({
            "code": [str(c) for c in comm], "name": [f"社区{c % 1000}" for c in comm],
            "sub": [str(c)[:9] for c in comm], "geom": env}))
        wkt = shapely.to_wkt(polys, rounding_precision=8)
        _copy(conn, "grid_cells", "code, community_code, geom", pd.DataFrame({
            "code": codes, "community": [c[:12] for c in codes],
            "geom": ["SRID=4326;" + w for w in wkt]}))
        # Every cell owned since 2024; every 10th changes owner on 1 July 2025.
        owners = pd.DataFrame({"g": codes, "n": [f"网格员{k}" for k in range(len(codes))],
                               "k": "grid_worker", "p": "13800000000", "f": "2024-01-01",
                               "t": ""})
        changed = owners.iloc[::10].copy()
        owners.loc[owners.index[::10], "t"] = "2025-07-01"
        changed["f"], changed["t"], changed["n"] = "2025-07-01", "", changed["n"] + "新"
        _copy(conn, "grid_owners", "grid_code, owner_name, owner_kind, phone, valid_from, "
              "valid_to", pd.concat([owners, changed]).replace("", None))
        # One station per community, at the block centre.
        st = pd.DataFrame({"code": [f"S{c}" for c in comm], "name": [f"工作站{c}" for c in comm],
                           "address": "-", "phone": "0531-86000000", "staff": 3,
                           "hours": "08:00-18:00", "community": [str(c) for c in comm]})
        bx = np.array([(c % 1000 - 1) for c in comm])
        by = np.array([(c // 1000) % 1000 for c in comm])
        st["geom"] = [f"SRID=4326;POINT({x0 + (a + 0.5) * BLOCK * DX} "
                      f"{y0 + (b + 0.5) * BLOCK * DY})" for a, b in zip(bx, by, strict=True)]
        _copy(conn, "stations", "code, name, address, phone, staff, opening_hours, "
              "community_code, geom", st)
    with engine.connect() as conn:
        conn.execute(text("COMMIT"))
        conn.execute(text("VACUUM ANALYZE"))
    return CitySettings(name="bench city", bbox=bbox), cells_gdf


def random_points(n: int, bbox: tuple[float, float, float, float],
                  seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points over the bbox (a few land just outside and are snapped or refused)."""
    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = bbox
    return rng.uniform(x1 - 0.0003, x2 + 0.0003, n), rng.uniform(y1 - 0.0003, y2 + 0.0003, n)


REPEAT = 3  # the in-process contenders run this often; each gives its best time


def timed(label: str, fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    """(best seconds of `repeat` runs, the last run's value); prints every run's time.

    citygrid's index, geopandas.sjoin and STRtree get the same protocol (best of REPEAT,
    one after another in this process), so neither side's first-run costs (page faults of
    fresh arrays, lazily built structures) decide the ratio alone.
    """
    times = []
    value = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    runs = f"  (runs: {', '.join(f'{t:.2f}' for t in times)})" if repeat > 1 else ""
    print(f"  {label:<44} {min(times):8.2f} s{runs}")
    return min(times), value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_latency(url: str, bbox: tuple[float, float, float, float], requests: int,
                clients: int, headers: dict[str, str]) -> list[float]:
    """Latencies (ms) of `requests` POST /route calls spread over `clients` threads."""
    lon, lat = random_points(requests, bbox, seed=clients + 7)
    times: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=10, headers=headers) as client:
            local = []
            for n in range(k, requests, clients):
                body = {"x": float(lon[n]), "y": float(lat[n]), "at": "2025-09-15T10:00:00",
                        "category_code": "0505"}
                start = time.perf_counter()
                response = client.post("/route", json=body)
                local.append((time.perf_counter() - start) * 1000)
                assert response.status_code in (200, 422), response.text
            with lock:
                times.extend(local)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def dispatcher_headers(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A dispatcher account in the bench database and the Authorization header of its token."""
    with transaction(engine) as session:
        user = auth.create_user(session, username="bench-dispatcher",
                                password=f"bench-{os.getpid()}-password", role="dispatcher")
        token = auth.issue_token(session, user=user)
    return {"Authorization": f"Bearer {token}"}


def bench_api(db_url: str, bbox: tuple[float, float, float, float], requests: int,
              headers: dict[str, str]) -> None:
    """Start uvicorn on 127.0.0.1 and print p50 / p99 for 1 and 2 clients."""
    port = _free_port()
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        api_latency(url, bbox, 200, 1, headers)  # warm-up: pool, plans, caches
        for clients in (1, 2):
            ms = sorted(api_latency(url, bbox, requests, clients, headers))
            p50 = statistics.median(ms)
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(f"  POST /route, {clients} client(s), {len(ms)} requests: "
                  f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {ms[-1]:6.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def growth_row(settings: Settings, cells: int, points: int) -> tuple[float, float, float]:
    """(index build, full routing on the index, geopandas.sjoin) seconds in a fresh database."""
    url = database_url(settings, dbname=f"citygrid_bench_{os.getpid()}_{cells}_{points}")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        city, cells_gdf = build_grid(engine, cells)
        lon, lat = random_points(points, city.bbox)
        frame = pd.DataFrame({"lon": lon, "lat": lat, "at": "2025-09-15 10:00"})
        routing = RoutingSettings(batch_chunk_rows=max(points, 1000), batch_engine="index")
        start = time.perf_counter()
        with engine.connect() as conn:
            index_for(conn, city)
        t_build = time.perf_counter() - start
        start = time.perf_counter()
        with engine.connect() as conn, conn.begin():
            routed = route_frame(conn, frame, settings=routing, city=city)
        t_route = time.perf_counter() - start
        assert routed["grid_code"].notna().sum() > 0.99 * points
        del routed
        start = time.perf_counter()
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
        gpd.sjoin(pts, cells_gdf, how="left", predicate="intersects")
        t_sjoin = time.perf_counter() - start
        return t_build, t_route, t_sjoin
    finally:
        engine.dispose()
        drop_database(url)


def growth(settings: Settings, points: list[int], cells: list[int]) -> None:
    """Full routing (index) and sjoin as points grow at 90k cells and cells at 1M points."""
    rows = [(90_000, p) for p in points] + [(c, 1_000_000) for c in cells if c != 90_000]
    print(f"growth runs ({_load()}); full routing = every field, index already built")
    print(f"  {'cells':>8} {'points':>10} {'index build':>12} {'full routing':>13} "
          f"{'sjoin':>8} {'sjoin/full':>11} {'full s per 1M pts':>18}  load")
    for n_cells, n_points in rows:
        t_build, t_route, t_sjoin = growth_row(settings, n_cells, n_points)
        print(f"  {n_cells:>8,} {n_points:>10,} {t_build:>10.1f} s {t_route:>11.2f} s "
              f"{t_sjoin:>6.2f} s {t_sjoin / t_route:>11.2f} {t_route / n_points * 1e6:>16.2f} s"
              f"  {_load()}", flush=True)


@app.command()
def main(cells: int = typer.Option(90_000, help="number of unit grid cells"),
         points: int = typer.Option(1_000_000, help="number of complaint points"),
         requests: int = typer.Option(2_000, help="API requests per concurrency level"),
         keep: bool = typer.Option(False, help="keep the benchmark database"),
         growth_points: str = typer.Option("", help="growth run: point counts at 90k cells, "
                                           "e.g. 100000,1000000,4000000 (skips the rest)"),
         growth_cells: str = typer.Option("", help="growth run: cell counts at 1M points, "
                                          "e.g. 9000,90000,360000")) -> None:
    """Run the benchmark and print seconds and ratios."""
    settings = Settings()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"{_load()}")
    if growth_points or growth_cells:
        growth(settings, [int(p) for p in growth_points.split(",") if p],
               [int(c) for c in growth_cells.split(",") if c])
        return
    url = database_url(settings, dbname=f"citygrid_bench_{os.getpid()}")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        print(f"building {cells:,} cells ...")
        city, cells_gdf = build_grid(engine, cells)
        lon, lat = random_points(points, city.bbox)
        frame = pd.DataFrame({"lon": lon, "lat": lat, "at": "2025-09-15 10:00"})
        print(f"routing {points:,} points against {len(cells_gdf):,} cells")
        routing = RoutingSettings(batch_chunk_rows=max(points, 1000), batch_engine="sql")
        stages: dict[str, float] = {}

        def citygrid() -> pd.DataFrame:
            with engine.connect() as conn, conn.begin():
                return route_frame(conn, frame, settings=routing, city=city, timings=stages)

        t_city, routed = timed("citygrid batch, SQL path (full routing, in order)", citygrid)
        for stage, seconds in stages.items():
            print(f"    {stage:<42} {seconds:8.2f} s")
        indexed = routing.model_copy(update={"batch_engine": "index"})
        with engine.connect() as conn:
            _, index = timed("routing index: build from PostGIS (once per version)",
                                   lambda: index_for(conn, city))
        index_stages: dict[str, float] = {}

        def citygrid_index() -> pd.DataFrame:
            index_stages.clear()  # the stages of the last run
            with engine.connect() as conn, conn.begin():
                return route_frame(conn, frame, settings=indexed, city=city,
                                   timings=index_stages)

        t_index, routed_index = timed("citygrid batch, index (full routing, in order)",
                                      citygrid_index, REPEAT)
        for stage, seconds in index_stages.items():
            print(f"    {stage:<42} {seconds:8.2f} s")
        one = indexed.model_copy(update={"batch_threads": 1})
        one_stages: dict[str, float] = {}

        def citygrid_one_thread() -> pd.DataFrame:
            one_stages.clear()
            with engine.connect() as conn, conn.begin():
                return route_frame(conn, frame, settings=one, city=city, timings=one_stages)

        t_one, routed_one = timed("citygrid batch, index on 1 thread (full routing)",
                                  citygrid_one_thread, REPEAT)
        for stage, seconds in one_stages.items():
            print(f"    {stage:<42} {seconds:8.2f} s")
        same_one = (routed_one.astype(object).fillna("∅").astype(str)
                    == routed_index.astype(object).fillna("∅").astype(str)).all(axis=1)
        print(f"  index on {indexed.batch_threads} threads vs 1 thread: "
              f"{same_one.mean():.4%} of rows identical in every column")
        del routed_one
        t_index_codes, index_codes = timed("citygrid index.locate (grid code only)",
                                           lambda: index.locate(lon, lat), REPEAT)
        same_rows = (routed_index.astype(object).fillna("∅").astype(str)
                     == routed.astype(object).fillna("∅").astype(str)).all(axis=1)
        print(f"  index vs SQL path, full routing: {same_rows.mean():.4%} of rows identical in "
              f"every column ({(~same_rows).sum():,} differ)")

        def citygrid_codes() -> np.ndarray:
            with engine.connect() as conn, conn.begin():
                return locate_grids(conn, lon, lat)

        t_codes, codes = timed("citygrid locate_grids (grid code only)", citygrid_codes)

        def sjoin() -> gpd.GeoDataFrame:
            pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
            return gpd.sjoin(pts, cells_gdf, how="left", predicate="intersects")

        t_sjoin, joined = timed("geopandas.sjoin (grid code only)", sjoin, REPEAT)

        def strtree() -> np.ndarray:
            tree = shapely.STRtree(cells_gdf.geometry.values)
            return tree.query(shapely.points(lon, lat), predicate="intersects")

        t_tree, pairs = timed("shapely STRtree.query (grid code only)", strtree, REPEAT)
        # Same answers where the point lies in exactly one cell.
        first = joined[~joined.index.duplicated()]["code"]
        single = (pd.Series(pairs[0]).value_counts() == 1)
        ids = single[single].index.to_numpy()
        agree = (routed.loc[ids, "grid_code"].to_numpy() == first.loc[ids].to_numpy()).mean()
        agree_codes = (codes[ids] == first.loc[ids].to_numpy()).mean()
        index_grid = index.codes[np.maximum(index_codes, 0)]
        agree_index = (index_grid[ids] == first.loc[ids].to_numpy()).mean()
        print(f"  agreement with sjoin on points inside exactly one cell: full routing "
              f"{agree:.4%}, grid code only {agree_codes:.4%}, index grid code {agree_index:.4%}")
        print(f"  routed {routed['grid_code'].notna().sum():,}, "
              f"not routed {(routed['reason'] != '').sum():,}")
        print("  ratios against geopandas.sjoin (>1 means citygrid is faster):")
        print(f"    sjoin / citygrid grid code only = {t_sjoin / t_codes:.2f}, "
              f"STRtree / citygrid grid code only = {t_tree / t_codes:.2f}")
        print(f"    sjoin / citygrid full routing   = {t_sjoin / t_city:.2f}, "
              f"STRtree / citygrid full routing   = {t_tree / t_city:.2f}")
        core = sum(v for k, v in index_stages.items() if k.startswith("index:"))
        print(f"    sjoin / index grid code only    = {t_sjoin / t_index_codes:.2f}, "
              f"STRtree / index grid code only    = {t_tree / t_index_codes:.2f}")
        print(f"    sjoin / index routing stages    = {t_sjoin / core:.2f} "
              f"(grid, snapping, owner, station, near boundary, zones: {core:.2f} s)")
        print(f"    sjoin / index full routing      = {t_sjoin / t_index:.2f}, "
              f"STRtree / index full routing      = {t_tree / t_index:.2f}, "
              f"SQL path / index full routing = {t_city / t_index:.2f} "
              f"({indexed.batch_threads} threads)")
        print(f"    sjoin / index full routing, 1 thread = {t_sjoin / t_one:.2f}, "
              f"STRtree / index 1 thread = {t_tree / t_one:.2f}")
        print(f"  end: {_load()}")
        if requests > 0:
            print(f"API latency ({requests} requests per level)")
            bench_api(url.render_as_string(hide_password=False), city.bbox, requests,
                      dispatcher_headers(engine))
    finally:
        engine.dispose()
        if not keep:
            drop_database(url)


if __name__ == "__main__":
    app()
