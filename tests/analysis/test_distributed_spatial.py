"""Dark streets and coverage gaps on dask give exactly the single-process answers (demo city).

Dark streets: roads in spatial tiles with the lights of each tile's reach box, against
find_dark_streets_kdtree on the whole city; small tiles put many roads on tile borders, and a
tiny buffer forces the second round (a tile recomputed with every light). Coverage: grid parts
with stations and the walk network broadcast, against run_coverage, by network and straight.
"""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from typer.testing import CliRunner

from cli.main import app
from gis.analysis.dark_streets import dark_gaps_in_chunks, find_dark_streets_kdtree
from gis.analysis.distributed import dark_street_runs
from gis.analysis.distributed.cluster import DaskSettings, dask_client
from gis.analysis.distributed.coverage_runs import distributed_coverage
from gis.analysis.distributed.dark_street_runs import (
    distributed_dark_gaps,
    distributed_dark_streets,
)
from gis.analysis.station_coverage import run_coverage
from gis.platform.db import transaction


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes: every task's input and answer is pickled as on a real cluster."""
    with dask_client(DaskSettings(scheduler=None), workers=2, processes=True) as c:
        yield c


@pytest.fixture(scope="module")
def dark_reference(demo_engine: Engine) -> pd.DataFrame:
    with transaction(demo_engine) as session:
        return find_dark_streets_kdtree(session, threshold_m=30, step_m=5)


def test_the_demo_city_has_dark_streets_to_compare(dark_reference: pd.DataFrame) -> None:
    # Equality of two empty tables would prove nothing.
    assert len(dark_reference) > 20
    assert dark_reference["road_id"].nunique() > 10


@pytest.mark.parametrize("tile_m", [2000.0, 400.0])
def test_dark_streets_on_dask_equal_the_single_process(demo_engine: Engine, client: Any,
                                                       dark_reference: pd.DataFrame,
                                                       tile_m: float) -> None:
    stats: dict[str, Any] = {}
    with transaction(demo_engine) as session:
        got = distributed_dark_streets(session, client=client, threshold_m=30, step_m=5,
                                       tile_m=tile_m, stats=stats)
    assert stats["tiles"] > (1 if tile_m > 1000 else 20)
    # Each tile holds only the lights near it, not the city's.
    with transaction(demo_engine) as session:
        working = session.execute(text(
            "SELECT count(*) FROM streetlights WHERE state = 'intact' AND lit AND in_use"
        )).scalar_one()
    assert max(stats["lights_per_tile"]) < working
    assert_geodataframe_equal(got, dark_reference, check_less_precise=False)


def test_a_tile_whose_dark_run_reaches_past_its_buffer_is_computed_again(
        demo_engine: Engine, dark_reference: pd.DataFrame) -> None:
    stats: dict[str, Any] = {}
    with transaction(demo_engine) as session:
        # buffer_m below the threshold is raised to it: dark samples are farther than that.
        got = distributed_dark_streets(session, client=None, threshold_m=30, step_m=5,
                                       tile_m=400, buffer_m=0, stats=stats)
    assert_geodataframe_equal(got, dark_reference, check_less_precise=False)
    assert stats["second_round"] > 0


def test_a_light_in_the_next_tile_counts_and_gaps_come_back_in_road_order() -> None:
    # Road 0 lies in the tile at x < 1000; its only light stands 6 m away in the next tile.
    roads = np.array([shapely.LineString([(900, 5), (999, 5)]),
                      shapely.LineString([(1001, 500), (1200, 500)])])
    lights = np.array([[1005.0, 5.0], [1100.0, 500.0]])
    expected = dark_gaps_in_chunks(roads, lights, threshold_m=30, step_m=5)
    stats: dict[str, Any] = {}
    got = distributed_dark_gaps(roads, lights, client=None, threshold_m=30, step_m=5,
                                tile_m=1000, buffer_m=200, stats=stats)
    assert stats["tiles"] == 2 and stats["second_round"] == 0
    assert stats["lights_per_tile"] == [1, 1]
    assert expected["road_index"].tolist() == got["road_index"].tolist() == [0, 1, 1]
    for key in ("start_m", "end_m", "gap_m", "dark_m", "max_distance_m", "samples"):
        np.testing.assert_array_equal(got[key], expected[key])
    assert [g.equals_exact(e, 0) for g, e in zip(got["geometry"], expected["geometry"],
                                                 strict=True)] == [True] * 3


@pytest.mark.parametrize("method", ["network", "straight"])
def test_coverage_on_dask_equals_the_single_process(demo_engine: Engine, client: Any,
                                                    method: str) -> None:
    with transaction(demo_engine) as session:
        expected = run_coverage(session, threshold_m=500, method=method)  # type: ignore[arg-type]
        got = distributed_coverage(session, client=client, threshold_m=500,
                                   method=method, part_size=97)  # type: ignore[arg-type]
    assert len(expected.cells) > 300  # several parts, and some grids uncovered
    assert 0 < int((~expected.cells["covered"]).sum()) < len(expected.cells)
    assert_geodataframe_equal(got.cells, expected.cells, check_less_precise=False)
    assert got.network == expected.network
    assert got.about.notes == expected.about.notes
    assert got.about.parameters == expected.about.parameters


def test_history_commands_write_the_same_answers(demo_engine: Engine, demo_db_url: URL,
                                                 dark_reference: pd.DataFrame, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYGRID_DATABASE_URL",
                       demo_db_url.render_as_string(hide_password=False))
    out = tmp_path / "dark.parquet"
    result = CliRunner().invoke(app, ["history", "dark-streets", "--workers", "1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(dark_reference)} dark stretches" in result.output
    # The Parquet round trip reads text columns back as pandas strings, not objects.
    assert_geodataframe_equal(gpd.read_parquet(out), dark_reference, check_dtype=False)
    with transaction(demo_engine) as session:
        expected = run_coverage(session, threshold_m=500, method="straight").cells
    out = tmp_path / "coverage.parquet"
    result = CliRunner().invoke(app, ["history", "coverage", "--threshold", "500", "--method",
                                      "straight", "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (f"{int((~expected['covered']).sum())} of {len(expected)} grids uncovered "
            "(straight)") in result.output
    assert_geodataframe_equal(gpd.read_parquet(out), expected, check_dtype=False)


def test_doctests() -> None:
    assert doctest.testmod(dark_street_runs).failed == 0
