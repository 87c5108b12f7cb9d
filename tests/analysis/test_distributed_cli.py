"""`citygrid history ...`: export months to the archive, indicators and hotspots on dask.

Runs on the committed case history of tests/analysis/test_distributed.py (hand-worked week
of May 2024 plus random June-July cases) in its own throwaway database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from cli.main import app
from gis.analysis.distributed.indicator_runs import report_periods
from gis.platform.settings import Settings
from tests.analysis.test_dark_streets import DISTRICT
from tests.analysis.test_distributed import MONTHS, WEEK_COUNTS, seed_history, sql_counts
from tests.support.databases import seeded_database

runner = CliRunner()


@pytest.fixture(scope="module")
def history_db(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "history_cli", seed_history)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, history_db: URL) -> CliRunner:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", history_db.render_as_string(hide_password=False))
    return runner


def test_export_then_indicators_from_archive_and_db(cli: CliRunner, history_db: URL,
                                                     tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    result = cli.invoke(app, ["history", "export", "--first", "2024-04", "--last", "2024-07",
                              "--archive", str(archive)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in archive.iterdir()) == [
        "cases_2024-04.parquet", "cases_2024-05.parquet", "cases_2024-06.parquet",
        "cases_2024-07.parquet"]
    expected = sql_counts(history_db, report_periods(MONTHS, "month"))
    tables = []
    for source in ("archive", "db"):
        out = tmp_path / f"{source}.csv"
        result = cli.invoke(app, ["history", "indicators", "--first", "2024-04", "--last",
                                  "2024-07", "--source", source, "--archive", str(archive),
                                  "--workers", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        table = pd.read_csv(out, dtype={"key": str}, encoding="utf-8-sig")
        tables.append(table)
        assert len(table) == len(expected)
        may = table[(table["period"] == "2024-05") & (table["key"] == DISTRICT)].iloc[0]
        assert int(may["accepted"]) == expected[("2024-05", DISTRICT)].accepted == 6
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert WEEK_COUNTS.accepted == 6


def test_hotspots_command_writes_hot_cells(cli: CliRunner, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    assert cli.invoke(app, ["history", "export", "--first", "2024-06", "--last", "2024-07",
                            "--archive", str(archive)]).exit_code == 0
    out = tmp_path / "hot.parquet"
    result = cli.invoke(app, ["history", "hotspots", "--first", "2024-06", "--last", "2024-07",
                              "--area-code", DISTRICT, "--period", "quarter",
                              "--permutations", "99", "--archive", str(archive),
                              "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    # 120 random cases a month inside two 100 m grid squares: June is Q2, July Q3.
    assert "2024Q2 *: 0 hot cells of 1, 120 cases" in result.output
    assert "2024Q3 *: 0 hot cells of 1, 120 cases" in result.output
    assert len(gpd.read_parquet(out)) == 0  # one cell is no neighbourhood: nothing is tested


def test_bad_month_is_refused(cli: CliRunner) -> None:
    result = cli.invoke(app, ["history", "indicators", "--first", "2024-13", "--last",
                              "2024-12"])
    assert result.exit_code == 2
    assert "must look like 2024-05" in result.output
