"""Dark stretches drawn exactly: the drawn length is the reported dark length (real PostGIS).

A bent road with lights beside it (not on it): both methods must draw the same lines, each line
as long as its `dark_m`, and the total must match a brute-force check (points every 5 cm,
nearest light by scipy cKDTree).
"""

from __future__ import annotations

import doctest

import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree
from shapely import LineString
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import dark_street_summary, dark_stretches
from gis.analysis.dark_street_summary import run_dark_streets
from gis.analysis.dark_streets import (
    dark_gaps_from_arrays,
    find_dark_streets,
    find_dark_streets_kdtree,
)
from gis.analysis.dark_stretches import dark_intervals
from tests.analysis.test_dark_streets import (
    BBOX,
    METRIC,
    insert_areas,
    insert_light,
    insert_road,
    square,
)

BENT = [(0, 0), (150, 0), (260, 110), (260, 300)]
LIGHTS = [(0, 8), (25, -8), (50, 8), (75, -8), (100, 8), (170, 30), (240, 110),
          (275, 230), (252, 290), (200, 40)]


@pytest.fixture
def bent_street(session: Session) -> int:
    insert_areas(session, {"01": square(-50, -50, 400)})
    road = insert_road(session, BENT, "弯路")
    session.execute(text("UPDATE roads SET street_class = 'demonstration' WHERE id = :r"),
                    {"r": road})
    insert_road(session, [(0, 600), (100, 600)], "无灯巷")  # managed, no light at all
    for serial, (x, y) in enumerate(LIGHTS, start=1):
        insert_light(session, serial, x, y)
    return road


def brute_force_dark_m(threshold: float) -> float:
    line = LineString(BENT)
    along = np.arange(0, line.length, 0.05)
    points = shapely.get_coordinates(shapely.line_interpolate_point(line, along))
    dist, _ = cKDTree(np.array(LIGHTS, dtype=float)).query(points)
    return float((dist > threshold).sum() * 0.05)


def metric_length(geom) -> float:
    return float(gpd.GeoSeries([geom], crs=4326).to_crs(METRIC).length.iloc[0])


@pytest.mark.parametrize("threshold", [30.0, 45.0])
def test_drawn_length_is_the_reported_dark_length(session: Session, bent_street: int,
                                                 threshold: float) -> None:
    runs = {}
    for name, finder in (("postgis", find_dark_streets), ("kdtree", find_dark_streets_kdtree)):
        gaps = finder(session, threshold_m=threshold, step_m=3, bbox=BBOX, metric_epsg=METRIC)
        bent = gaps[gaps.road_id == bent_street]
        drawn = [metric_length(g) for g in bent.geom]
        np.testing.assert_allclose(drawn, bent.dark_m, atol=0.01)
        # The stretches lie beyond the threshold: never longer than the gaps around them.
        assert (bent.dark_m <= bent.gap_m + 1e-6).all()
        runs[name] = bent
    # Exact against a 5 cm brute force with the peer library (cKDTree).
    assert runs["kdtree"].dark_m.sum() == pytest.approx(brute_force_dark_m(threshold), abs=0.2)
    # Both methods draw the same lines.
    for a, b in zip(runs["postgis"].geom, runs["kdtree"].geom, strict=True):
        assert a.hausdorff_distance(b) < 1e-7
    np.testing.assert_allclose(runs["postgis"].dark_m, runs["kdtree"].dark_m, atol=1e-3)


def test_a_light_lighting_less_than_a_step_splits_the_stretch() -> None:
    # Lights at both ends of a 300 m road and one 29.5 m beside it at 151 m, which lights
    # 145.55..156.45 m only: the samples at 140 m and 160 m are both dark, so one run, cut
    # into two pieces whose lengths add up to dark_m.
    road = np.array([LineString([(0, 0), (300, 0)])])
    lights = np.array([[0.0, 0.0], [300.0, 0.0], [151.0, 29.5]])
    gaps = dark_gaps_from_arrays(road, lights, threshold_m=30, step_m=20)
    [geom] = gaps["geometry"]
    assert geom.geom_type == "MultiLineString" and len(geom.geoms) == 2
    lit = 2 * (30**2 - 29.5**2) ** 0.5
    assert gaps["dark_m"][0] == pytest.approx(240 - lit, abs=1e-6)
    assert geom.length == pytest.approx(gaps["dark_m"][0], abs=1e-6)
    assert gaps["gap_m"][0] == pytest.approx(300)


def test_dark_length_per_street_class(session: Session, bent_street: int) -> None:
    run = run_dark_streets(session, method="postgis", threshold_m=30, step_m=3, bbox=BBOX,
                           metric_epsg=METRIC)
    table = run.by_class.set_index("street_class")
    assert table.index.tolist() == ["demonstration", "managed"]  # 示范街 first
    assert table.loc["demonstration", "street_class_zh"] == "示范街"
    bent = run.stretches[run.stretches.road_id == bent_street]
    assert table.loc["demonstration", "dark_m"] == pytest.approx(bent.dark_m.sum(), abs=0.01)
    assert table.loc["managed", "dark_m"] == pytest.approx(100, abs=0.01)  # the unlit lane
    assert table.loc["managed", "dark_share"] == pytest.approx(1.0, abs=1e-3)
    road_m = LineString(BENT).length
    assert table.loc["demonstration", "road_m"] == pytest.approx(road_m, abs=0.01)
    about = run.about
    assert about.parameters["method"] == "postgis" and about.parameters["threshold_m"] == 30
    assert "范围框" in about.study_area and "公里" in about.study_area
    assert any(note.startswith("示范街：死角") for note in about.notes)
    assert "超距路段本身" in about.method


def test_pure_intervals() -> None:
    # A light 18 m beside a straight road lights t0 ± sqrt(30² - 18²) = ±24 m around it.
    road = LineString([(0, 0), (100, 0)])
    assert dark_intervals(road, np.array([[50.0, 18.0]]), radius=30) == [(0.0, 26.0),
                                                                          (74.0, 100.0)]
    assert dark_intervals(road, np.empty((0, 2)), radius=30, lo=10, hi=20) == [(10.0, 20.0)]
    assert dark_intervals(road, np.array([[50.0, 0.0]]), radius=60) == []
    assert doctest.testmod(dark_stretches).failed == 0
    assert doctest.testmod(dark_street_summary).failed == 0
