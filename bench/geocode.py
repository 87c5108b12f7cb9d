"""Geocoding benchmark: accuracy and speed on generated hotline addresses with known points.

Builds a throwaway database (citygrid_bench_geo_<pid>) with the demo city, writes N address
strings from its doorplates, compounds and landmarks with the noise operators type (missing
district, full-width digits, 號, spaces, 路/街 swapped, typos in the road name, intersections,
landmark sides, numbers missing from the doorplate table), and prints for citygrid's geocoder:

* share within 30 m of the true point, share refused (no confident answer), share wrong
  (a confident answer > 100 m away);
* p50 / p99 latency of one address through `gis.geocoding.service.geocode` (no routing);
* batch throughput (addresses/s) of `geocode_addresses` over the whole set;
* p50 / p99 / max of the search box's suggestions (`gis.geocoding.suggest.suggest`, what
  `GET /geocode/suggest` runs) over every keystroke of typed addresses, grid-code prefixes,
  case numbers and coordinates, against the named baseline **plain geocode**: one
  `geocode()` call (no routing, what `GET /geocode?route=false` runs) on the same strings;

and the same figures for a named baseline: **plain pg_trgm**, one `ORDER BY name <-> q` query
per address against the gazetteer (the nearest name wins; it knows no doorplate numbers).

Run: `.venv/bin/python bench/geocode.py [--n 5000] [--keep]`.
"""

from __future__ import annotations

import os
import random
import statistics
import time

import numpy as np
import pandas as pd
import typer
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.demo.load import load_demo
from gis.dispatch.routing_batch import ALIASES
from gis.geocoding.batch import geocode_addresses
from gis.geocoding.service import geocode
from gis.geocoding.suggest import suggest
from gis.platform.db import database_url, drop_database, ensure_database, make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import CitySettings, Settings

CITY = CitySettings()
TO_METRIC = Transformer.from_crs(4326, CITY.metric_epsg, always_xy=True)
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _noisy_road(name: str, rng: random.Random) -> str:
    """The road as typed: without 模拟 mostly, sometimes 路/街 swapped or a character off."""
    r = rng.random()
    if r < 0.6:
        name = name.removeprefix("模拟")
    if rng.random() < 0.1:
        name = name.replace("大街", "路") if "大街" in name else name.replace("路", "街")
    return name


def _prefix(rng: random.Random) -> str:
    return rng.choice(["", "", "历下区", "济南市历下区", "山东省济南市历下区", "济南历下"])


def make_addresses(session: Session, n: int, seed: int = 7) -> pd.DataFrame:
    """(address, lon, lat, form) rows with the true WGS84 point of each address."""
    rng = random.Random(seed)
    plates = session.execute(text("""
        SELECT road_name, number, suffix, ST_X(geom) AS lon, ST_Y(geom) AS lat
        FROM doorplates WHERE road_name IS NOT NULL ORDER BY id""")).all()
    buildings = session.execute(text("""
        SELECT c.name, d.building, ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat
        FROM doorplates d JOIN compounds c ON c.id = d.compound_id ORDER BY d.id""")).all()
    places = session.execute(text("""
        SELECT name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM facilities ORDER BY id""")).all()
    crossings = session.execute(text("""
        SELECT a, b, ST_X(p) AS lon, ST_Y(p) AS lat FROM (
            SELECT DISTINCT ON (a.name, b.name) a.name AS a, b.name AS b,
                   ST_GeometryN(ST_Intersection(a.geom, b.geom), 1) AS p
            FROM roads a JOIN roads b ON a.name < b.name AND ST_Intersects(a.geom, b.geom)
            ORDER BY a.name, b.name) s
        WHERE GeometryType(p) = 'POINT' ORDER BY a, b""")).all()
    rows = []
    for _ in range(n):
        form = rng.random()
        if form < 0.70:
            p = rng.choice(plates)
            number = str(p.number)
            if rng.random() < 0.2:
                number = number.translate(FULL_WIDTH)
            sep = " " if rng.random() < 0.1 else ""
            mark = "號" if rng.random() < 0.05 else "号"
            q = f"{_prefix(rng)}{_noisy_road(p.road_name, rng)}{sep}{number}{p.suffix}{mark}"
            rows.append((q, p.lon, p.lat, "doorplate"))
        elif form < 0.82:
            b = rng.choice(buildings)
            unit = f"{rng.randint(1, 4)}单元" if rng.random() < 0.5 else ""
            rows.append((f"{_prefix(rng)}{b.name}{b.building}号楼{unit}", b.lon, b.lat,
                         "building"))
        elif form < 0.92:
            c = rng.choice(crossings)
            word = rng.choice(["与{}交叉口", "和{}交汇处", "/{}路口"])
            q = _noisy_road(c.a, rng) + word.format(_noisy_road(c.b, rng))
            rows.append((q, c.lon, c.lat, "intersection"))
        else:
            f = rng.choice(places)
            rows.append((f"{_prefix(rng)}{f.name}", f.lon, f.lat, "landmark"))
    return pd.DataFrame(rows, columns=["address", "lon", "lat", "form"])


def _metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
            ) -> np.ndarray:
    x1, y1 = TO_METRIC.transform(lon1, lat1)
    x2, y2 = TO_METRIC.transform(lon2, lat2)
    return np.hypot(np.asarray(x1) - x2, np.asarray(y1) - y2)


def _report(name: str, truth: pd.DataFrame, lon: np.ndarray, lat: np.ndarray,
            confident: np.ndarray, latencies: list[float] | None) -> None:
    d = _metres(truth["lon"].to_numpy(), truth["lat"].to_numpy(), lon, lat)
    d = np.where(confident, d, np.inf)
    within = float(np.mean(d <= 30))
    refused = float(np.mean(~confident))
    wrong = float(np.mean(confident & (d > 100)))
    line = (f"{name:<28} within 30 m {within:6.1%}   refused {refused:6.1%}   "
            f"wrong (>100 m) {wrong:6.2%}")
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        line += f"   p50 {q[49] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms"
    print(line)
    for form in sorted(truth["form"].unique()):
        rows = (truth["form"] == form).to_numpy()
        print(f"    {form:<14} n={rows.sum():5d}  within 30 m {np.mean(d[rows] <= 30):6.1%}")


def keystrokes(session: Session, truth: pd.DataFrame, n: int, seed: int = 11) -> list[str]:
    """What a desk's search box sends: every prefix (from 2 characters) of typed addresses,
    grid-code prefixes, case numbers and "lat,lon" coordinates."""
    rng = random.Random(seed)
    out: list[str] = []
    for q in truth["address"].sample(n=min(n, len(truth)), random_state=seed):
        out.extend(q[:k] for k in range(2, len(q) + 1))
    grids = session.execute(text("SELECT code FROM grid_cells ORDER BY code")).scalars().all()
    cases = session.execute(text("SELECT case_no, ST_X(geom), ST_Y(geom) FROM cases "
                                 "ORDER BY id LIMIT 5000")).all()
    for _ in range(n // 4):
        code = rng.choice(grids)
        out.append(code[:rng.randint(6, len(code))])
        case = rng.choice(cases)
        out.append(case[0])
        out.append(f"{case[2]:.6f},{case[1]:.6f}")
    return out


def bench_suggest(session: Session, truth: pd.DataFrame, n: int) -> None:
    """Latency of suggestions per keystroke against the plain-geocode baseline."""
    queries = keystrokes(session, truth, n)
    suggest(session, "经十路1号", city=CITY)  # index, cpca and pyproj load once, not timed
    for name, call in (("suggest (GET /geocode/suggest)",
                        lambda q: suggest(session, q, city=CITY, limit=8)),
                       ("baseline: plain geocode", lambda q: geocode(session, q, city=CITY))):
        times = []
        for q in queries:
            t = time.perf_counter()
            call(q)
            times.append(time.perf_counter() - t)
        pct = statistics.quantiles(times, n=100)
        print(f"{name:<32} {len(queries)} keystrokes   p50 {pct[49] * 1000:6.1f} ms   "
              f"p99 {pct[98] * 1000:6.1f} ms   max {max(times) * 1000:6.1f} ms")


def main(n: int = typer.Option(5000, help="addresses"),
         baseline_n: int = typer.Option(1000, help="addresses for the pg_trgm baseline"),
         keep: bool = typer.Option(False, help="keep the database"),
         suggest_n: int = typer.Option(200, help="typed addresses for the suggestion timing"),
         ) -> None:
    """Build the demo city, generate addresses, print accuracy and speed with the baseline."""
    url = database_url(Settings(), dbname=f"citygrid_bench_geo_{os.getpid()}")
    ensure_database(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        started = time.perf_counter()
        load_demo(engine, progress=False)
        print(f"demo city loaded in {time.perf_counter() - started:.1f} s")
        with Session(engine) as session:
            truth = make_addresses(session, n)
            geocode(session, "预热", city=CITY)  # index and cpca load once, not timed
            lon, lat, ok, lat_s = [], [], [], []
            for q in truth["address"]:
                t = time.perf_counter()
                r = geocode(session, q, city=CITY, limit=1)
                lat_s.append(time.perf_counter() - t)
                best = r.candidates[0] if r.candidates else None
                lon.append(best.lon if best else np.nan)
                lat.append(best.lat if best else np.nan)
                ok.append(r.confident)
        print(f"{n} generated addresses; forms: {truth['form'].value_counts().to_dict()}")
        _report("citygrid geocode (single)", truth, np.array(lon), np.array(lat),
                np.array(ok), lat_s)
        with engine.connect() as conn:
            frame = pd.DataFrame({"地址": truth["address"]})
            t = time.perf_counter()
            out = geocode_addresses(conn, frame, city=CITY, aliases=ALIASES)
            elapsed = time.perf_counter() - t
        print(f"citygrid batch (geocode_addresses): {n / elapsed:,.0f} addresses/s "
              f"({elapsed:.2f} s for {n})")
        _ = out
        sub = truth.head(baseline_n)
        with engine.connect() as conn:
            conn.execute(text("SET pg_trgm.similarity_threshold = 0.2"))
            lon_b, lat_b, ok_b, lat_b_s = [], [], [], []
            for q in sub["address"]:
                t = time.perf_counter()
                row = conn.execute(text("""
                    SELECT ST_X(ST_PointOnSurface(geom)) AS lon,
                           ST_Y(ST_PointOnSurface(geom)) AS lat
                    FROM gazetteer WHERE name % :q ORDER BY name <-> :q LIMIT 1"""),
                    {"q": q}).first()
                lat_b_s.append(time.perf_counter() - t)
                lon_b.append(row.lon if row else np.nan)
                lat_b.append(row.lat if row else np.nan)
                ok_b.append(row is not None)
        _report("baseline: plain pg_trgm", sub, np.array(lon_b), np.array(lat_b),
                np.array(ok_b), lat_b_s)
        print(f"baseline: plain pg_trgm: {baseline_n / sum(lat_b_s):,.0f} addresses/s "
              "(one query each)")
        with Session(engine) as session:
            bench_suggest(session, truth, suggest_n)
    finally:
        engine.dispose()
        if not keep:
            drop_database(url)


if __name__ == "__main__":
    typer.run(main)
