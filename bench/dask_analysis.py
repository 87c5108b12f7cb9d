"""Benchmark (not a test): city-wide analyses on dask vs the single-process path.

    python bench/dask_analysis.py --archive /tmp/cases --generate 5000000
    python bench/dask_analysis.py --archive /tmp/cases --workers 1,2 --skip-hotspots

Writes (with --generate) a synthetic case history as monthly GeoParquet
(gis.analysis.distributed.synthetic; default 60 months 2021-01..2025-12), then times each
analysis three ways on the whole archive:

- baseline **single-process**: all months in one frame through the unpartitioned functions
  (indicators: cohorts.frame_counts per period; hotspots: gis.analysis.hotspots.
  hotspots_from_points per period and category),
- the dask path's partitioned steps run in this process (no cluster: shows what the
  partitioning itself changes),
- the dask path on a LocalCluster of N worker processes (one thread each) for each N of
  --workers, timed after the cluster is up and the workers have imported citygrid.

Every run's answers are compared with the baseline's: all (period, district) counts for
indicators, every (period, category) cell table for hotspots; a difference exits non-zero.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.analysis.distributed.cluster import DaskSettings, dask_client
from gis.analysis.distributed.cohorts import COLUMNS
from gis.analysis.distributed.hotspot_runs import distributed_hotspots, hotspots_single_process
from gis.analysis.distributed.indicator_runs import (
    distributed_indicators,
    indicators_single_process,
    rates_table,
    report_periods,
)
from gis.analysis.distributed.sources import ArchiveSource
from gis.analysis.distributed.synthetic import DEFAULT_BBOX, generate_history
from gis.analysis.hotspots import study_area_cells

app = typer.Typer(add_completion=False)


def timed(label: str, run: Callable[[], Any], baseline: float | None) -> tuple[Any, float]:
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    ratio = "" if baseline is None else f"  {baseline / seconds:5.2f}x baseline"
    # The machine is shared: the 1-minute load average says how contended the run was.
    print(f"  {label:<34} {seconds:8.1f} s{ratio}   (load {os.getloadavg()[0]:.1f})",
          flush=True)
    return result, seconds


def same_hotspots(left: dict, right: dict) -> bool:
    if list(left) != list(right):
        return False
    for key, cells in left.items():
        try:
            pd.testing.assert_frame_equal(pd.DataFrame(cells), pd.DataFrame(right[key]))
        except AssertionError:
            return False
    return True


def _warm() -> None:
    import gis.analysis.distributed.hotspot_runs
    import gis.analysis.distributed.indicator_runs  # noqa: F401


@app.command()
def main(archive: Path = typer.Option(..., help="archive folder (created with --generate)"),
         generate: int = typer.Option(0, help="write this many synthetic cases first"),
         first: str = "2021-01", last: str = "2025-12",
         workers: str = "1,2",
         hotspot_period: str = "year", permutations: int = 9999, resolution: int = 9,
         skip_hotspots: bool = False, skip_indicators: bool = False,
         sample_periods: int = typer.Option(0, help="single-process indicators on only this "
                                            "many periods, spread over the history (0: all); "
                                            "each still counts on every case"),
         skip_serial: bool = typer.Option(False, help="skip the partitioned in-process run"),
         ) -> None:
    """Time the analyses single-process and on dask with 1, 2 ... local workers."""
    if generate:
        start = time.perf_counter()
        months = (tuple(int(p) for p in first.split("-")), tuple(int(p) for p in last.split("-")))
        paths = generate_history(archive, cases=generate, first=months[0],  # type: ignore[arg-type]
                                 last=months[1])  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        print(f"generated {generate:,} cases in {len(paths)} monthly files in {seconds:.0f} s "
              f"({generate / seconds:,.0f} cases/s)")
    source = ArchiveSource(archive)
    months = source.months()
    files = sorted(archive.glob("cases_*.parquet"))
    size = sum(f.stat().st_size for f in files)
    rows = sum(len(pd.read_parquet(f, columns=["id"])) for f in files)
    print(f"archive {archive}: {rows:,} cases, {len(months)} months "
          f"{months[0][0]}-{months[0][1]:02d}..{months[-1][0]}-{months[-1][1]:02d}, "
          f"{size / 1e6:,.0f} MB ({size / rows:.1f} bytes/case, GeoParquet zstd)")
    counts = [int(n) for n in workers.split(",")]
    failed = False

    if not skip_indicators:
        print("\nindicators per month and district (办结率, 按期结案率, 满意率 ...):")
        periods = report_periods(months, "month")
        sample = periods
        if 0 < sample_periods < len(periods):
            # The baseline scans every case once per period: at tens of millions of cases
            # all periods take an hour, so it counts a spread sample of them (still on every
            # case) and the dask answers are compared on those; its time per period is shown.
            picks = np.linspace(0, len(periods) - 1, sample_periods).round().astype(int)
            sample = [periods[i] for i in sorted(set(picks.tolist()))]
        expected, base = timed(f"single-process (baseline), {len(sample)} of {len(periods)} "
                               "periods", lambda: indicators_single_process(
                                   source, months, periods=sample), None)
        if len(sample) < len(periods):
            # Reading every case is paid once; counting once per period.
            _, read = timed("  of which reading all months", lambda: pd.concat(
                [source.read(m, COLUMNS) for m in months], ignore_index=True), None)
            per_period = max(base - read, 0.0) / len(sample)
            base = read + per_period * len(periods)
            print(f"    {per_period:.1f} s per period: {base:.0f} s for all {len(periods)} "
                  f"(extrapolated; ratios below use it)")
        labels = {p.label for p in sample}

        def on_sample(counts: dict) -> dict:
            return {key: value for key, value in counts.items() if key[0] in labels}

        if not skip_serial:
            serial, _ = timed("partitioned, in this process",
                              lambda: distributed_indicators(source, months, client=None), base)
            failed |= on_sample(serial) != expected
        for n in counts:
            with dask_client(DaskSettings(scheduler=None), workers=n) as client:
                client.run(_warm)
                got, _ = timed(f"dask, {n} local worker(s)",
                               lambda c=client: distributed_indicators(source, months,
                                                                       client=c), base)
            failed |= on_sample(got) != expected
            print(f"    {len(got)} (month, district) rows; equal to baseline on its "
                  f"{len(expected)}: {on_sample(got) == expected}")
        table = rates_table(expected)
        shown = table.iloc[[0, len(table) // 2, len(table) - 1]]
        print(shown[["period", "key", "accepted", "due", "closed_on_time", "completion_rate",
                      "on_time_rate", "satisfaction_rate"]].to_string(index=False))

    if not skip_hotspots:
        area = study_area_cells(DEFAULT_BBOX, resolution=resolution)
        options = {"period": hotspot_period, "by_category": True, "resolution": resolution,
                   "permutations": permutations}
        print(f"\nhotspots per {hotspot_period} and category (H3 res {resolution}, "
              f"{len(area):,} cells, Gi* {permutations} permutations):")
        expected_h, base = timed("single-process (baseline)",
                                 lambda: hotspots_single_process(source, months, area,
                                                                 **options), None)
        for n in counts:
            with dask_client(DaskSettings(scheduler=None), workers=n) as client:
                client.run(_warm)
                got_h, _ = timed(f"dask, {n} local worker(s)",
                                 lambda c=client: distributed_hotspots(source, months, area,
                                                                       client=c, **options),
                                 base)
            equal = same_hotspots(got_h, expected_h)
            failed |= not equal
            print(f"    equal to baseline on all {len(expected_h)} (period, category) cell "
                  f"tables: {equal}")
        hot = {key: int(cells["hotspot"].sum()) for key, cells in expected_h.items()}
        print(f"  hot cells per run: min {min(hot.values())}, max {max(hot.values())}; "
              f"cases counted {sum(int(c['cases'].sum()) for c in expected_h.values()):,}")
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
