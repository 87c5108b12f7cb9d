"""Benchmark: MVT tile latency of the OGC API at city scale, against GeoJSON items of that tile.

Not a timed test. Builds a throwaway database, loads the demo city (历下区), adds simulated
streetlights along its real road geometry until there are `--lights` in all, finds the densest
zoom-14 tile, then serves the app with uvicorn on a loopback port and times, in the same run:

* `mvt`      GET /ogc/collections/streetlights/tiles/WebMercatorQuad/14/{x}/{y}  (the figure:
             the same tile again, answered by the per-process tile cache, api/ogc_tile_cache.py,
             while the layer's data version holds)
* `mvt_cold` the same request with the tile cache emptied before each one: tipg makes the
             tile in PostGIS (the first request after a change; the figure before the cache)
* `geojson`  GET /ogc/collections/streetlights/items?bbox=<that tile>&limit=10000  (baseline:
             what a web map without vector tiles would fetch for the same view)
* `sql_jit_on` / `sql_jit_off`  tipg's ST_AsMVT query alone over psycopg2, with PostgreSQL's
             default JIT and with JIT off as the app's pool runs it: what JIT costs and what
             the HTTP layer adds.

Prints p50/p99 of each and the ratios; the database is dropped unless --keep-db. Tiles hold at
most 10,000 features (tipg's cap); the table shows how many lights the tile really covers.

    .venv/bin/python bench/tiles.py --lights 500000 --requests 200
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import mapbox_vector_tile
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from api.main import create_app
from api.ogc_tile_cache import OgcTileCacheMiddleware
from gis.demo.load import load_demo
from gis.platform.db import database_url, drop_database, ensure_database, make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings

console = Console()
ZOOM = 14
HALF_WORLD = 20037508.342789244  # EPSG:3857 half circumference (m)


def add_lights(engine: Any, total: int, seed: int) -> int:
    """Add simulated lights along the demo roads (both sides) until `total`; returns added."""
    with engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM streetlights")).scalar_one()
        missing = max(0, total - have)
        if not missing:
            return 0
        start = conn.execute(text("SELECT coalesce(max(substr(code, 11)::int), 0) "
                                  "FROM streetlights")).scalar_one()
        if start + missing > 999_999:
            raise typer.BadParameter(f"{total} lights do not fit the 6-digit serial of codes")
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        # Spread the extra lights over roads in proportion to their length, at random
        # positions along each, 6 m either side of the centre line.
        conn.execute(text("""
            WITH r AS (
                SELECT geom, ST_Length(geom::geography) AS len FROM roads
                WHERE ST_GeometryType(geom) = 'ST_LineString'),
            per AS (
                SELECT geom, ceil(:missing * len / sum(len) OVER ())::int AS n FROM r),
            pts AS (
                SELECT ST_LineInterpolatePoint(geom, random()) AS p, random() AS u
                FROM per, generate_series(1, n)
                LIMIT :missing),
            numbered AS (
                SELECT p, u, row_number() OVER () AS k FROM pts)
            INSERT INTO streetlights (code, state, lit, in_use, owner, maintainer, simulated,
                                      geom)
            SELECT '3701020118' || lpad((:start + k)::text, 6, '0'),
                   CASE WHEN u < 0.02 THEN 'damaged' ELSE 'intact' END, u >= 0.04, true,
                   '路灯管理处', '模拟养护', true,
                   ST_Translate(p, (random() - 0.5) * 0.00014, (random() - 0.5) * 0.00011)
            FROM numbered
        """), {"missing": missing, "start": start})
        conn.execute(text("ANALYZE streetlights"))
        return missing


def densest_tile(engine: Any, zoom: int) -> tuple[int, int, int]:
    """(x, y, lights) of the zoom-`zoom` tile holding the most streetlights."""
    size = 2 * HALF_WORLD / 2**zoom
    with engine.connect() as conn:
        x, y, n = conn.execute(text("""
            SELECT floor((ST_X(m) + :h) / :size)::int AS x,
                   floor((:h - ST_Y(m)) / :size)::int AS y, count(*) AS n
            FROM (SELECT ST_Transform(geom, 3857) AS m FROM pub.streetlights) s
            GROUP BY 1, 2 ORDER BY n DESC LIMIT 1
        """), {"h": HALF_WORLD, "size": size}).one()
    return int(x), int(y), int(n)


def tile_bbox(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    """WGS84 bounds of a WebMercatorQuad tile."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def timings(fn: Callable[[], Any], requests: int, warmup: int) -> list[float]:
    """Milliseconds of `requests` calls to `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    """uvicorn on a free loopback port in a thread; (base url, stop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


def tile_cache(app: Any) -> Any:
    """The /ogc tile cache of a running app (its OgcTileCacheMiddleware's)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, OgcTileCacheMiddleware):
        layer = getattr(layer, "app", None)
    if layer is None:
        raise RuntimeError("the app has no OgcTileCacheMiddleware")
    return layer.cache


def main(
    lights: int = typer.Option(500_000, help="streetlights in the scaled demo city"),
    requests: int = typer.Option(100, help="timed requests per variant"),
    warmup: int = typer.Option(5, help="untimed requests first"),
    keep_db: bool = typer.Option(False, help="keep the throwaway database"),
    reuse_db: str = typer.Option("", help="time a database kept by an earlier --keep-db run"),
    seed: int = typer.Option(7, help="random seed"),
) -> None:
    """Run the benchmark and print a table plus one JSON line of figures."""
    settings = Settings()
    name = reuse_db or f"citygrid_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database_url(settings, dbname=name)
    figures: dict[str, Any] = {"lights": lights, "zoom": ZOOM, "requests": requests,
                               "cpus": os.cpu_count()}
    ensure_database(url)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        if not reuse_db:
            upgrade(engine)
            load_demo(engine, progress=False)
        figures["added_lights"] = add_lights(engine, lights, seed)
        figures["setup_s"] = round(time.perf_counter() - started, 1)
        x, y, figures["lights_in_tile"] = densest_tile(engine, ZOOM)
        figures["tile"] = f"{ZOOM}/{x}/{y}"
        bbox = ",".join(f"{v:.7f}" for v in tile_bbox(x, y, ZOOM))
        path = f"/ogc/collections/streetlights/tiles/WebMercatorQuad/{ZOOM}/{x}/{y}"

        app_settings = settings.model_copy(deep=True)
        app_settings.db.url = url.render_as_string(hide_password=False)
        app = create_app(app_settings)
        base, stop = serve(app)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                tile = client.get(path)
                tile.raise_for_status()
                decoded = mapbox_vector_tile.decode(tile.content)
                figures["mvt_features"] = len(decoded["streetlights"]["features"])
                figures["mvt_bytes"] = len(tile.content)
                items = client.get("/ogc/collections/streetlights/items",
                                   params={"bbox": bbox, "limit": 10_000})
                items.raise_for_status()
                figures["geojson_features"] = items.json()["numberReturned"]
                figures["geojson_bytes"] = len(items.content)
                cache = tile_cache(app)

                def cold() -> None:
                    cache.entries.clear()
                    client.get(path).raise_for_status()

                runs = {
                    "mvt": timings(lambda: client.get(path).raise_for_status(),
                                   requests, warmup),
                    "mvt_cold": timings(cold, requests, warmup),
                    "geojson": timings(lambda: client.get(
                        "/ogc/collections/streetlights/items",
                        params={"bbox": bbox, "limit": 10_000}).raise_for_status(),
                        max(10, requests // 5), 2),
                }
        finally:
            stop()
        # The query tipg sends (same shape: ORDER BY id, LIMIT 10000), straight to PostGIS,
        # once with the server's default JIT and once with JIT off as the app's pool has it.
        sql = text("""
            WITH t AS (
                SELECT code, id, lit, state, ST_AsMVTGeom(ST_Transform(geom, 3857),
                       ST_TileEnvelope(:z, :x, :y), 4096, 256, true) AS geom
                FROM pub.streetlights
                WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326))
                ORDER BY id LIMIT 10000)
            SELECT ST_AsMVT(t.*, 'streetlights') FROM t""")
        params = {"z": ZOOM, "x": x, "y": y}
        for jit in ("on", "off"):
            with engine.connect() as conn:
                # As the app's OGC pool runs it (TILE_SERVER_SETTINGS), but for `jit`.
                conn.execute(text("SET max_parallel_workers_per_gather = 0"))
                conn.execute(text(f"SET jit = {jit}"))
                runs[f"sql_jit_{jit}"] = timings(
                    lambda c=conn: c.execute(sql, params).scalar_one(),
                    max(10, requests // 5), 2)
        for name, values in runs.items():
            figures[f"{name}_p50_ms"] = round(statistics.median(values), 1)
            figures[f"{name}_p99_ms"] = round(pct(values, 0.99), 1)
        figures["ratio_geojson_over_mvt_p50"] = round(
            figures["geojson_p50_ms"] / figures["mvt_p50_ms"], 1)
        figures["ratio_sql_jit_on_over_off_p50"] = round(
            figures["sql_jit_on_p50_ms"] / figures["sql_jit_off_p50_ms"], 1)
        figures["ratio_cold_over_cached_p50"] = round(
            figures["mvt_cold_p50_ms"] / figures["mvt_p50_ms"], 1)
        figures["goal_p50_under_20ms"] = figures["mvt_p50_ms"] < 20
        figures["goal_cold_p50_under_20ms"] = figures["mvt_cold_p50_ms"] < 20
    finally:
        engine.dispose()
        if not (keep_db or reuse_db):
            drop_database(url)

    table = Table(title="MVT tile benchmark (densest zoom-14 tile)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console.print(table)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    typer.run(main)
