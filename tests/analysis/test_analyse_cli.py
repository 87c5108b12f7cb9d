"""`citygrid analyse ...`: every subcommand on the constructed city, with known answers.

The CLI opens its own connection, so the constructed city of tests/analysis/test_analysis_api.py is
committed here, in a throwaway database of this module (never the shared test or demo one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from cli.main import app
from gis.analysis.dark_streets import dark_gaps_from_arrays, dark_gaps_in_chunks
from gis.platform.settings import Settings
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.analysis.test_dark_streets import DISTRICT
from tests.support.databases import seeded_database

runner = CliRunner()


def flat(output: str) -> str:
    """Output without whitespace: rich wraps long lines at the console width."""
    return "".join(output.split())


@pytest.fixture(scope="module")
def city_db(settings: Settings) -> Iterator[URL]:
    """A throwaway database holding the constructed city, committed."""
    yield from seeded_database(settings, "analyse", build_city)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, city_db: URL) -> CliRunner:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", city_db.render_as_string(hide_password=False))
    return runner


def features(path: Path) -> list[dict]:
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body["type"] == "FeatureCollection"
    return body["features"]


@pytest.mark.parametrize("method", ["kdtree", "postgis"])
def test_dark_streets(cli: CliRunner, tmp_path: Path, method: str) -> None:
    out = tmp_path / "gaps.geojson"
    result = cli.invoke(app, ["analyse", "dark-streets", "--bbox", BBOX_Q, "--step", "4",
                              "--method", method, "--out", str(out)])
    assert result.exit_code == 0, result.output
    gaps = features(out)
    # The lit street's one 80 m hole; the two roads by the station have no light near at all.
    found = sorted((f["properties"]["road_name"], round(f["properties"]["gap_m"], 2))
                   for f in gaps)
    assert found == [("乙路", 1200.0), ("亮灯路", 80.0), ("甲路", 1000.0)]
    [hole] = [f for f in gaps if f["properties"]["road_name"] == "亮灯路"]
    assert hole["properties"]["max_distance_m"] == pytest.approx(40, abs=0.01)
    assert hole["geometry"]["type"] == "LineString"
    assert {f["properties"]["district_code"] for f in gaps} == {DISTRICT}
    assert "亮灯死角bydistrict:3gaps" in flat(result.output)
    assert f"wrote 3 features to {out}" in " ".join(result.output.split())
    if method == "kdtree":  # a real bar over the roads, finished: 3 of 3
        assert re.search(r"dark streets \(kdtree, > 30 m\): roads.*3/3", result.output)


def test_chunked_dark_gaps_equal_one_pass_and_report_progress() -> None:
    rng = np.random.default_rng(5)
    starts = rng.uniform(0, 5000, (300, 2))
    ends = starts + rng.uniform(-400, 400, (300, 2))
    lines = shapely.linestrings(np.stack([starts, ends], axis=1))
    lights = rng.uniform(0, 5000, (3000, 2))
    whole = dark_gaps_from_arrays(lines, lights, threshold_m=30, step_m=5)
    seen: list[tuple[int, int]] = []
    chunked = dark_gaps_in_chunks(lines, lights, threshold_m=30, step_m=5, chunk_samples=2000,
                                  progress=lambda done, total: seen.append((done, total)))
    assert len(whole["road_index"]) > 100
    # Same gaps; positions agree to rounding (the vertices are laid end to end per chunk).
    np.testing.assert_array_equal(chunked["road_index"], whole["road_index"])
    np.testing.assert_array_equal(chunked["samples"], whole["samples"])
    for key in ("start_m", "end_m", "gap_m", "dark_m", "max_distance_m"):
        np.testing.assert_allclose(chunked[key], whole[key], rtol=0, atol=1e-6)
    assert shapely.equals_exact(chunked["geometry"], whole["geometry"], 1e-6).all()
    done = [d for d, _ in seen]
    assert len(seen) > 5 and {t for _, t in seen} == {300}
    assert done[0] == 0 and done[-1] == 300 and done == sorted(set(done))


def test_coverage(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "cells.geojson"
    result = cli.invoke(app, ["analyse", "coverage", "--threshold", "500", "--bbox", BBOX_Q,
                              "--out", str(out)])
    assert result.exit_code == 0, result.output
    cells = features(out)
    assert len(cells) == 20
    # Row 1 east of 500 m along the road, and all of row 2 (reached round by 乙路).
    assert sum(not c["properties"]["covered"] for c in cells) == 15
    assert {c["properties"]["method"] for c in cells} == {"network"}
    assert "工作站覆盖bydistrict" in flat(result.output)


def test_hotspots(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "hot.geojson"
    result = cli.invoke(app, ["analyse", "hotspots", "--end", "2024-05-13", "--days", "7",
                              "--resolution", "10", "--bbox", BBOX_Q, "--out", str(out)])
    assert result.exit_code == 0, result.output
    cells = features(out)
    assert sum(c["properties"]["cases"] for c in cells) == 3  # the week's three cases
    assert {c["geometry"]["type"] for c in cells} == {"Polygon"}
    assert "hotspots,7daysto2024-05-1300:00" in flat(result.output)
    assert f"hotcellsof{len(cells)}shown" in flat(result.output)
    assert "研究区:测试区（范围框内部分）(379901)" in flat(result.output)
    assert "Gi*" in result.output and "FDR" in result.output


def test_indicators_csv(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "indicators.csv"
    result = cli.invoke(app, ["analyse", "indicators", "--period", "weekly", "--day",
                              "2024-05-08", "--scope", DISTRICT, "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "考核指标2024-05-06至2024-05-12" in flat(result.output)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads UTF-8
    [row] = pd.read_csv(out, dtype={"key": str}, encoding="utf-8-sig").to_dict("records")
    assert (row["rank"], row["key"], row["name"]) == (1, DISTRICT, "测试区")
    assert (row["accepted"], row["due"], row["closed"], row["closed_on_time"]) == (3, 3, 2, 1)
    assert (row["closure_rate"], row["on_time_rate"], row["open_overdue"]) == (66.67, 33.33, 1)


@pytest.mark.parametrize(("period", "title"), [
    ("daily", "日报（2024-05-08）"),
    ("weekly", "周报（2024-05-06 至 2024-05-12）"),
    ("monthly", "月报（2024-05-01 至 2024-05-31）"),
])
def test_report_html(cli: CliRunner, tmp_path: Path, period: str, title: str) -> None:
    out = tmp_path / f"{period}.html"
    result = cli.invoke(app, ["analyse", "report", "--period", period, "--day", "2024-05-08",
                              "--scope", DISTRICT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in html and title in html
    assert "测试区" in html and "测试街道" in html
    assert html.count("data:image/png;base64,") >= 1
    assert "http://" not in html and "https://" not in html
    assert f"wrote {out}" in " ".join(result.output.split())


def test_bad_input_exits_2(cli: CliRunner) -> None:
    bbox = cli.invoke(app, ["analyse", "dark-streets", "--bbox", "1,2,3"])
    assert bbox.exit_code == 2 and "'1,2,3'" in bbox.output
    method = cli.invoke(app, ["analyse", "dark-streets", "--method", "magic"])
    assert method.exit_code == 2 and "postgisorkdtree" in flat(method.output)
    # Bad periods, days and moments end with exit 2 and the value named, not a traceback.
    for args in (["indicators", "--period", "yearly"], ["report", "--period", "yearly"]):
        period = cli.invoke(app, ["analyse", *args])
        assert period.exit_code == 2 and "'yearly'" in period.output, period.output
    for args in (["indicators", "--day", "2024-13-01"], ["report", "--day", "2024-13-01"],
                 ["hotspots", "--end", "next week"]):
        bad = cli.invoke(app, ["analyse", *args])
        assert bad.exit_code == 2 and not isinstance(bad.exception, ValueError), bad.output
        assert "2024-13-01" in bad.output or "next week" in bad.output, bad.output
