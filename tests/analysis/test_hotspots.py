"""Hotspots: a planted cluster is found, uniform noise is not (Gi* with FDR), repeats weigh."""

from __future__ import annotations

import datetime as dt
import doctest

import h3
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import hotspots
from gis.analysis.hotspots import (
    find_hotspots,
    hex_counts,
    hotspots_from_points,
    study_area_cells,
)
from gis.platform.errors import InvalidInputError
from tests.analysis.test_dark_streets import lonlat

SIDE = 2000.0  # metres: the study area is the square [0, SIDE]^2 east/north of ORIGIN
CLUSTER = (1500.0, 1500.0)
RESOLUTION = 10  # ~0.015 km² cells: about 260 cells in the square


def _bbox() -> tuple[float, float, float, float]:
    (x1, y1), (x2, y2) = lonlat(0, 0), lonlat(SIDE, SIDE)
    return (x1, y1, x2, y2)


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


@pytest.mark.parametrize("seed", range(5))
def test_uniform_noise_has_no_hotspot(seed: int) -> None:
    area = study_area_cells(_bbox(), resolution=RESOLUTION)
    result = hotspots_from_points(_points(_noise(seed)), area, resolution=RESOLUTION)
    assert result["cases"].sum() == 1500
    assert not result["hotspot"].any(), result[result.hotspot][["cell", "cases", "z", "p_fdr"]]
    assert result["z"].max() > 2  # dense cells exist by chance: raw density is not enough


@pytest.mark.parametrize("seed", range(5))
def test_planted_cluster_is_a_hotspot(seed: int) -> None:
    area = study_area_cells(_bbox(), resolution=RESOLUTION)
    points = _points(np.r_[_noise(seed), _cluster(seed)])
    result = hotspots_from_points(points, area, resolution=RESOLUTION).set_index("cell")
    lon, lat = lonlat(*CLUSTER)
    centre = h3.latlng_to_cell(lat, lon, RESOLUTION)
    assert result.loc[centre, "gi_bin"] == 3 and result.loc[centre, "label"] == "热点 99%"
    hot = result[result.hotspot].index
    # Every hot cell lies within 2 rings of the planted centre: nothing elsewhere lights up.
    assert set(hot) <= set(h3.grid_disk(centre, 2))


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
    assert doctest.testmod(hotspots, optionflags=doctest.ELLIPSIS).failed == 0


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
    spots = find_hotspots(session, **window, bbox=_bbox(), resolution=RESOLUTION)
    assert spots["cases"].sum() == 660
    lon, lat = lonlat(*CLUSTER)
    centre = h3.latlng_to_cell(lat, lon, RESOLUTION)
    assert centre in set(spots[spots.hotspot]["cell"])
    assert spots.crs.to_epsg() == 4326 and spots.geometry.iloc[0].geom_type == "Polygon"
    street_trading = find_hotspots(session, **window, bbox=_bbox(), resolution=RESOLUTION,
                                   categories=["0504"])
    assert street_trading["cases"].sum() == 330
    later = find_hotspots(session, start=window["end"], end=window["end"] + dt.timedelta(7),
                          bbox=_bbox(), resolution=RESOLUTION)
    assert later.empty  # no cases: nothing counted, nothing significant
