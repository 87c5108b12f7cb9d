"""Hotspots: the study area is the district, uniform noise stays quiet, a planted cluster is
found, one-complaint cells are not labelled, repeats weigh more (Gi*, permutations, FDR)."""

from __future__ import annotations

import datetime as dt
import doctest

import h3
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import gi_star, hotspots, study_area
from gis.analysis.gi_star import classify_hotspots, min_detectable_cells
from gis.analysis.hotspots import (
    find_hotspots,
    hex_counts,
    hotspots_from_points,
    study_area_cells,
)
from gis.analysis.study_area import area_cells
from gis.demo.outline import read_outline
from gis.demo.partition import random_points_in
from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.settings import CitySettings
from tests.analysis.test_dark_streets import DISTRICT, insert_areas, lonlat

SIDE = 2000.0  # metres: the square [0, SIDE]^2 east/north of ORIGIN
CLUSTER = (1500.0, 1500.0)
RESOLUTION = 10  # ~0.015 km² cells: about 260 cells in the square
NOISE_RUNS = 20
# The documented rate (gis.analysis.hotspots): at most 1 run in 10 shows any hot cell when
# complaints are uniform over the district.
DOCUMENTED_RATE = 0.10
_TO_METRIC = Transformer.from_crs(4326, 4548, always_xy=True)
_TO_LONLAT = Transformer.from_crs(4548, 4326, always_xy=True)


@pytest.fixture(scope="module")
def district() -> tuple[object, list[str]]:
    """The real outline of 历下区 and its res-9 cells (about 1,300)."""
    outline = read_outline()
    return outline, area_cells(outline, resolution=9)


def _bbox() -> tuple[float, float, float, float]:
    (x1, y1), (x2, y2) = lonlat(0, 0), lonlat(SIDE, SIDE)
    return (x1, y1, x2, y2)


def _frame(lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"lon": lon, "lat": lat, "repeat": False, "supervised": False})


def _uniform_in(outline: object, seed: int, n: int = 2881) -> pd.DataFrame:
    xy = random_points_in(outline, n, np.random.default_rng(seed))  # type: ignore[arg-type]
    return _frame(xy[:, 0], xy[:, 1])


def _noise(seed: int, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(20, SIDE - 20, size=(n, 2))


def _cluster(seed: int, n: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle, radius = rng.uniform(0, 2 * np.pi, n), 50 * np.sqrt(rng.uniform(0, 1, n))
    return np.c_[CLUSTER[0] + radius * np.cos(angle), CLUSTER[1] + radius * np.sin(angle)]


def _points(xy: np.ndarray, repeat: np.ndarray | None = None) -> pd.DataFrame:
    lon, lat = zip(*(lonlat(x, y) for x, y in xy), strict=True)
    repeat = np.zeros(len(xy), bool) if repeat is None else repeat
    return pd.DataFrame({"lon": lon, "lat": lat, "repeat": repeat, "supervised": False})


def test_uniform_noise_in_the_district_stays_within_the_documented_rate(district) -> None:
    outline, cells = district
    runs_with_hotspots = []
    for seed in range(NOISE_RUNS):
        result = hotspots_from_points(_uniform_in(outline, seed), cells, resolution=9,
                                      seed=seed)
        assert set(result["cell"]) <= set(cells)  # nothing outside the study area
        assert result["z"].max() > 2  # dense cells exist by chance: density is not enough
        runs_with_hotspots.append(int(result["hotspot"].any()))
    assert sum(runs_with_hotspots) <= DOCUMENTED_RATE * NOISE_RUNS, runs_with_hotspots


def test_the_bounding_box_as_study_area_invents_hotspots(district) -> None:
    """The old default: the city's rectangle, 80 % of it outside the district, all empty."""
    outline, cells = district
    rectangle = study_area_cells(CitySettings().bbox, resolution=9)
    assert len(rectangle) > 4 * len(cells)
    points = _uniform_in(outline, 0)
    clipped = hotspots_from_points(points, cells, resolution=9)
    boxed = hotspots_from_points(points, rectangle, resolution=9)
    assert not clipped["hotspot"].any()
    assert boxed["hotspot"].sum() > 50  # every busy corner of the district "stands out"


@pytest.mark.parametrize("seed", range(4))
def test_planted_cluster_in_the_district_is_found(district, seed: int) -> None:
    outline, cells = district
    rng = np.random.default_rng(100 + seed)
    centre = outline.representative_point()
    cx, cy = _TO_METRIC.transform(centre.x, centre.y)
    x, y = rng.normal((cx, cy), 120, size=(100, 2)).T
    lon, lat = _TO_LONLAT.transform(x, y)
    noise = _uniform_in(outline, 100 + seed)
    points = pd.concat([noise, _frame(lon, lat)], ignore_index=True)
    result = hotspots_from_points(points, cells, resolution=9, seed=seed).set_index("cell")
    centre_cell = h3.latlng_to_cell(centre.y, centre.x, 9)
    hot = set(result.index[result["hotspot"]])
    assert centre_cell in hot
    assert result.loc[centre_cell, "label"].startswith("热点区域")
    # Nothing lights up away from the cluster.
    assert hot <= set(h3.grid_disk(centre_cell, 2))


def test_one_complaint_cells_are_not_labelled_and_only_real_classes_occur() -> None:
    area = study_area_cells(_bbox(), resolution=RESOLUTION)
    points = _points(np.r_[_noise(3, 300), _cluster(3)])  # sparse cells around a cluster
    result = hotspots_from_points(points, area, resolution=RESOLUTION)
    in_hot_area = result[result["gi_bin"] > 0]
    assert (in_hot_area["cases"] < 3).any()  # the neighbourhood reaches sparse cells ...
    assert not result[result["hotspot"]]["cases"].lt(3).any()  # ... which are not labelled
    assert set(result.loc[result["cases"] < 3, "label"]) <= {"不显著"} | {
        lbl for lbl in result["label"] if lbl.startswith("冷点")}
    assert (result["hot_class"] < 0).sum() == 0  # sparse counts: no cold spot here either
    assert not (~result["hotspot"] & result["label"].str.startswith("热点")).any()


def test_esda_conditional_inference_is_available_and_tests_the_surroundings() -> None:
    centre = h3.latlng_to_cell(36.66, 117.0, 9)
    cells = sorted(h3.grid_disk(centre, 10))
    values = pd.Series(np.random.default_rng(0).poisson(2.0, len(cells)).astype(float),
                       index=cells)
    values[centre] = 52.0
    total = classify_hotspots(values, permutations=999)
    conditional = classify_hotspots(values, permutations=999, inference="conditional")
    ring = [c for c in h3.grid_disk(centre, 1) if c != centre]
    # Conditional draws keep the 52 fixed: its neighbours look more extreme than it does.
    assert conditional.loc[ring, "p_sim"].min() < conditional.loc[centre, "p_sim"]
    # Whole random neighbourhoods test the cell with its ring.
    assert total.loc[centre, "p_sim"] < conditional.loc[centre, "p_sim"]


def test_minimum_detectable_cells_follow_the_permutation_count() -> None:
    assert min_detectable_cells(1320, permutations=999) == 14
    assert min_detectable_cells(1320, permutations=9999) == 2


def test_repeat_complaints_weigh_more() -> None:
    area = study_area_cells(_bbox(), resolution=RESOLUTION)
    xy = np.array([[500.0, 500.0]] * 4 + [[1500.0, 500.0]] * 4)
    repeat = np.array([False] * 4 + [False, True, True, True])
    result = hotspots_from_points(_points(xy, repeat), area, resolution=RESOLUTION,
                                  repeat_weight=0.5).set_index("cell")
    one_off, repeated = (h3.latlng_to_cell(*reversed(lonlat(x, 500.0)), RESOLUTION)
                         for x in (500.0, 1500.0))
    assert result.loc[one_off, ["cases", "repeats", "weight"]].tolist() == [4, 0, 4.0]
    assert result.loc[repeated, ["cases", "repeats", "weight"]].tolist() == [4, 3, 5.5]
    assert result.loc[repeated, "z"] > result.loc[one_off, "z"]


def test_pure_helpers() -> None:
    assert hex_counts(["x", "y", "x"], weights=[1.0, 2.0, 0.5]).to_dict() == {"y": 2.0,
                                                                             "x": 1.5}
    with pytest.raises(InvalidInputError, match="resolution must be 5 to 12"):
        study_area_cells(_bbox(), resolution=15)
    for module in (hotspots, gi_star, study_area):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_find_hotspots_from_cases_in_the_database(session: Session) -> None:
    xy = np.r_[_noise(7, 600), _cluster(7, 60)]
    rows = []
    for i, (x, y) in enumerate(xy):
        lon, lat = lonlat(x, y)
        rows.append({"no": f"H{i}", "x": lon, "y": lat,
                     "at": dt.datetime(2024, 5, 7, 9, tzinfo=dt.UTC),
                     "code": "0504" if i % 2 else "0102"})
    session.execute(text("""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
            raw_crs, reported_at, geom)
        VALUES (:no, 'event', :code, 'wechat', :x, :y, 'wgs84', :at,
            ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""), rows)
    window = {"start": dt.datetime(2024, 5, 6, tzinfo=dt.UTC),
              "end": dt.datetime(2024, 5, 13, tzinfo=dt.UTC)}
    insert_areas(session, {})  # district 379901 covers [-3000, 3000]^2 around ORIGIN
    run = find_hotspots(session, **window, area_code=DISTRICT, bbox=_bbox(),
                        resolution=RESOLUTION)
    spots = run.cells
    # Points in edge cells whose centre lies outside the square are left out, and said so.
    outside = 660 - spots["cases"].sum()
    assert 0 <= outside < 40
    if outside:
        assert any(f"{outside} 件投诉" in note for note in run.about.notes)
    lon, lat = lonlat(*CLUSTER)
    centre = h3.latlng_to_cell(lat, lon, RESOLUTION)
    assert centre in set(spots[spots.hotspot]["cell"])
    assert spots.crs.to_epsg() == 4326 and spots.geometry.iloc[0].geom_type == "Polygon"
    assert run.about.study_area == "测试区（范围框内部分） (379901)，面积 4.0 平方公里"
    assert run.about.parameters["permutations"] == 9999
    assert "Gi*" in run.about.method and "FDR" in run.about.method
    assert run.about.as_of == window["end"]
    street_trading = find_hotspots(session, **window, area_code=DISTRICT, bbox=_bbox(),
                                   resolution=RESOLUTION, categories=["0504"]).cells
    assert 300 <= street_trading["cases"].sum() <= 330
    later = find_hotspots(session, start=window["end"], end=window["end"] + dt.timedelta(7),
                          area_code=DISTRICT, bbox=_bbox(), resolution=RESOLUTION).cells
    assert later.empty  # no cases: nothing counted, nothing significant
    with pytest.raises(NotFoundError, match="no subdistrict with code '379901999'"):
        find_hotspots(session, **window, area_code="379901999")
    with pytest.raises(InvalidInputError, match="6 \\(district\\), 9"):
        find_hotspots(session, **window, area_code="37")
