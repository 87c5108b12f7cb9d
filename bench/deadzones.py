"""Benchmark: dark streets at city scale (PostGIS KNN vs scipy cKDTree) and H3 hex-binning.

Not a timed test. Builds a throwaway database in the private cluster (or the external server),
fills it with a simulated street grid and `--lights` streetlights along it, runs both
dark-street paths on the same data in the same run, checks they agree, then bins `--points`
simulated complaints on H3 cells and runs Gi* over the study area. The database is dropped
at the end unless --keep-db.

    .venv/bin/python bench/deadzones.py --lights 500000 --points 1000000
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import typer
from pyproj import Transformer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis.analysis.dark_streets import find_dark_streets, find_dark_streets_kdtree
from gis.analysis.hotspots import classify_hotspots, hex_cells, hex_counts, study_area_cells
from gis.platform.db import (
    database_url,
    drop_database,
    ensure_database,
    make_engine,
    session_factory,
)
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings

console = Console()
T = TypeVar("T")
CENTER = (117.05, 36.66)  # Jinan, on the central meridian of EPSG:4548
BLOCK_M = 200.0  # street grid spacing


def timed(progress: Progress, label: str, fn: Callable[[], T]) -> tuple[T, float]:
    task = progress.add_task(label, total=1)
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    progress.update(task, completed=1, description=f"{label} [green]{elapsed:.2f}s")
    return result, elapsed


def make_city(n_lights: int, spacing_m: float, broken_share: float, seed: int,
              metric_epsg: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A square street grid long enough for `n_lights` at `spacing_m`, and its lights.

    Each road is one block edge; lights stand 6 m off the centre line every `spacing_m`
    (jittered); `broken_share` of them are damaged, unlit or retired, and 1 % of blocks have
    no lights at all, so real gaps exist.
    """
    rng = np.random.default_rng(seed)
    total_m = n_lights * spacing_m
    k = int(np.ceil(np.sqrt(total_m / (2 * BLOCK_M)))) + 1  # k x k intersections
    to_metric = Transformer.from_crs(4326, metric_epsg, always_xy=True)
    to_lonlat = Transformer.from_crs(metric_epsg, 4326, always_xy=True)
    cx, cy = to_metric.transform(*CENTER)
    x0, y0 = cx - k * BLOCK_M / 2, cy - k * BLOCK_M / 2
    i, j = np.meshgrid(np.arange(k), np.arange(k - 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    # Vertical and horizontal block edges.
    ax = np.r_[x0 + i * BLOCK_M, x0 + j * BLOCK_M]
    ay = np.r_[y0 + j * BLOCK_M, y0 + i * BLOCK_M]
    bx = np.r_[ax[: len(i)], ax[len(i):] + BLOCK_M]
    by = np.r_[ay[: len(i)] + BLOCK_M, ay[len(i):]]
    vertical = np.r_[np.ones(len(i), bool), np.zeros(len(i), bool)]
    n_roads = len(ax)
    per_road = max(1, int(np.ceil(n_lights / n_roads)))
    road_of = np.repeat(np.arange(n_roads), per_road)[:n_lights]
    along = (np.tile(np.arange(per_road), n_roads)[:n_lights] + 0.5) * (BLOCK_M / per_road)
    along = np.clip(along + rng.normal(0, 2, n_lights), 0, BLOCK_M)
    side = np.where(rng.random(n_lights) < 0.5, -6.0, 6.0)
    lx = np.where(vertical[road_of], ax[road_of] + side, ax[road_of] + along)
    ly = np.where(vertical[road_of], ay[road_of] + along, ay[road_of] + side)
    dark_blocks = rng.random(n_roads) < 0.01
    keep = ~dark_blocks[road_of]
    lon, lat = to_lonlat.transform(lx[keep], ly[keep])
    u = rng.random(keep.sum())
    lights = pd.DataFrame({
        "code": [f"3701020118{s:06d}" for s in range(keep.sum())],
        "state": np.where(u < broken_share / 3, "damaged", "intact"),
        "lit": u >= broken_share * 2 / 3,
        "in_use": ~((u >= broken_share / 3) & (u < broken_share * 2 / 3)),
        "lon": lon, "lat": lat})
    alon, alat = to_lonlat.transform(ax, ay)
    blon, blat = to_lonlat.transform(bx, by)
    roads = pd.DataFrame({"name": [f"模拟路{n}" for n in range(n_roads)],
                          "wkt": [f"SRID=4326;LINESTRING({a} {b}, {c} {d})"
                                  for a, b, c, d in zip(alon, alat, blon, blat, strict=True)]})
    return roads, lights


def load(engine: Any, roads: pd.DataFrame, lights: pd.DataFrame) -> None:
    """COPY roads and lights into the database, then ANALYZE."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            buf = io.StringIO()
            for name, wkt in zip(roads["name"], roads["wkt"], strict=True):
                buf.write(f"{name}\tmanaged\t12\ttrue\t{wkt}\n")
            buf.seek(0)
            cur.copy_expert("COPY roads (name, street_class, width_m, simulated, geom) "
                            "FROM STDIN", buf)
            buf = io.StringIO()
            for row in lights.itertuples(index=False):
                buf.write(f"{row.code}\t{row.state}\t{'t' if row.lit else 'f'}\t"
                          f"{'t' if row.in_use else 'f'}\t路灯管理处\t模拟养护\ttrue\t"
                          f"SRID=4326;POINT({row.lon} {row.lat})\n")
            buf.seek(0)
            cur.copy_expert("COPY streetlights (code, state, lit, in_use, owner, maintainer, "
                            "simulated, geom) FROM STDIN", buf)
            cur.execute("ANALYZE roads; ANALYZE streetlights;")
        raw.commit()
    finally:
        raw.close()


def main(
    lights: int = typer.Option(500_000, help="streetlights to generate"),
    points: int = typer.Option(1_000_000, help="complaints to hex-bin"),
    spacing: float = typer.Option(25.0, help="mean light spacing along roads (m)"),
    threshold: float = typer.Option(30.0, help="dark-street threshold (m)"),
    step: float = typer.Option(5.0, help="sampling step along roads (m)"),
    broken: float = typer.Option(0.06, help="share of lights not working"),
    resolution: int = typer.Option(9, help="H3 resolution of the hex-binning"),
    skip_postgis: bool = typer.Option(False, help="only the cKDTree path"),
    keep_db: bool = typer.Option(False, help="keep the throwaway database"),
    seed: int = typer.Option(7, help="random seed"),
) -> None:
    """Run the benchmark and print a table plus one JSON line of figures."""
    settings = Settings()
    epsg = settings.city.metric_epsg
    url = database_url(settings, dbname=f"citygrid_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    figures: dict[str, Any] = {"lights": lights, "points": points, "step_m": step,
                               "threshold_m": threshold, "cpus": os.cpu_count()}
    ensure_database(url)
    engine = make_engine(url)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console) as progress:
            timed(progress, "migrate throwaway database", lambda: upgrade(engine))
            (roads, lamp), figures["generate_s"] = timed(
                progress, f"generate {lights:,} lights and their streets",
                lambda: make_city(lights, spacing, broken, seed, epsg))
            figures["roads"] = len(roads)
            figures["road_km"] = round(len(roads) * BLOCK_M / 1000, 1)
            _, figures["load_s"] = timed(progress, "COPY into PostGIS",
                                         lambda: load(engine, roads, lamp))
            with session_factory(engine)() as session:
                kd, figures["kdtree_s"] = timed(
                    progress, "dark streets: scipy cKDTree path",
                    lambda: find_dark_streets_kdtree(session, threshold_m=threshold,
                                                     step_m=step, metric_epsg=epsg))
                figures["gaps"] = len(kd)
                figures["gap_km"] = round(float(kd["gap_m"].sum()) / 1000, 2)
                if not skip_postgis:
                    pg, figures["postgis_s"] = timed(
                        progress, "dark streets: PostGIS KNN path",
                        lambda: find_dark_streets(session, threshold_m=threshold,
                                                  step_m=step, metric_epsg=epsg))
                    figures["postgis_gaps"] = len(pg)
                    figures["ratio_postgis_over_kdtree"] = round(
                        figures["postgis_s"] / figures["kdtree_s"], 2)
                    merged = pg.merge(kd, on=["road_id", "start_m"], how="outer",
                                      indicator=True)
                    figures["paths_agree"] = bool((merged["_merge"] == "both").all())
                session.rollback()

            rng = np.random.default_rng(seed + 1)
            to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
            to_metric = Transformer.from_crs(4326, epsg, always_xy=True)
            cx, cy = to_metric.transform(*CENTER)
            half = np.sqrt(figures["road_km"] * 1000 * BLOCK_M / 2) / 2
            centres = rng.uniform(-half, half, size=(40, 2))
            which = rng.integers(0, 40, points)
            clustered = rng.random(points) < 0.3
            xy = np.where(clustered[:, None], centres[which] + rng.normal(0, 150, (points, 2)),
                          rng.uniform(-half, half, size=(points, 2)))
            lon, lat = to_lonlat.transform(cx + xy[:, 0], cy + xy[:, 1])
            cells, figures["hexbin_s"] = timed(
                progress, f"H3 res {resolution}: bin {points:,} complaints",
                lambda: hex_cells(lon, lat, resolution=resolution))
            counts, figures["hexcount_s"] = timed(progress, "count per cell",
                                                  lambda: hex_counts(cells))
            box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
            area, figures["study_area_s"] = timed(
                progress, "study area cells", lambda: study_area_cells(box,
                                                                      resolution=resolution))
            values = counts.reindex(sorted(set(area) | set(counts.index)), fill_value=0.0)
            gi, figures["gi_star_s"] = timed(progress, f"Gi* over {len(values):,} cells",
                                             lambda: classify_hotspots(values))
            figures["cells"] = len(values)
            figures["hot_cells"] = int((gi["gi_bin"] > 0).sum())
    finally:
        engine.dispose()
        if not keep_db:
            drop_database(url)

    table = Table(title="dead zones benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    typer.run(main)
