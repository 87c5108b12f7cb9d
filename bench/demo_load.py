"""Demo load benchmark: wall time of `load_demo` into a fresh migrated database.

CI loads the demo city several times (the demo fixture, `citygrid demo load`, benches), so the
whole city (历下区 at full density plus its lighter neighbours) must stay cheap to load. Prints
the median of N loads, each into its own throwaway database (migrations not timed), and rows
per district, against the named baseline **历下区 only**: the same load with
`districts=("370102",)`, which is what the demo loaded before the neighbours came.

Run: `.venv/bin/python bench/demo_load.py [--n 3]`.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

from gis.demo.load import load_demo
from gis.platform.db import make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.databases import throwaway_database


def _one_load(settings: Settings, **kwargs: object) -> tuple[float, dict[str, int]]:
    for url in throwaway_database(settings, "bench_demo"):
        engine = make_engine(url)
        try:
            upgrade(engine)
            start = time.perf_counter()
            load_demo(engine, progress=False, **kwargs)  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
            with engine.connect() as conn:
                per = dict(conn.execute(text(
                    "SELECT left(code, 6), count(*) FROM grid_cells GROUP BY 1 ORDER BY 1")).all())
        finally:
            engine.dispose()
    return seconds, per


def main() -> None:
    """Print median load times of the whole demo city and of the 历下区-only baseline."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    runs = {"whole city (default)": {}}
    if "districts" in inspect.signature(load_demo).parameters:
        runs["历下区 only (baseline)"] = {"districts": ("370102",)}
    for label, kwargs in runs.items():
        times = []
        for _ in range(args.n):
            seconds, per = _one_load(settings, **kwargs)
            times.append(seconds)
        print(f"{label:24s} median {statistics.median(times):6.1f} s "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)}); grid cells {per}")


if __name__ == "__main__":
    main()
