"""Dark streets on constructed roads and lights with known answers (real PostGIS).

The fixtures live far south of the demo city (around 117.0E 36.30N) so a database holding the
demo city too cannot change the answers; every analysis here is limited to that bbox.
Helpers here are reused by the other analysis tests.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from pyproj import Transformer
from shapely import LineString, Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import dark_streets
from gis.analysis.dark_street_summary import summarise_dark_streets
from gis.analysis.dark_streets import (
    dark_gaps_from_arrays,
    find_dark_streets,
    find_dark_streets_kdtree,
)
from gis.platform.errors import InvalidInputError

METRIC = 4548
ORIGIN = (117.0, 36.30)  # on the CM of EPSG:4548: metres here are true metres
BBOX = (116.98, 36.28, 117.03, 36.33)
DISTRICT, STREET, COMMUNITY = "379901", "379901001", "379901001001"
_TO_METRIC = Transformer.from_crs(4326, METRIC, always_xy=True)
_TO_LONLAT = Transformer.from_crs(METRIC, 4326, always_xy=True)
X0, Y0 = _TO_METRIC.transform(*ORIGIN)


def lonlat(x: float, y: float) -> tuple[float, float]:
    """Lon/lat of the point x metres east and y metres north of ORIGIN (EPSG:4548 axes)."""
    return _TO_LONLAT.transform(X0 + x, Y0 + y)


def wkt_line(coords: list[tuple[float, float]]) -> str:
    return LineString([lonlat(x, y) for x, y in coords]).wkt


def wkt_polygon(coords: list[tuple[float, float]]) -> str:
    return Polygon([lonlat(x, y) for x, y in coords]).wkt


def square(x: float, y: float, size: float) -> str:
    return wkt_polygon([(x, y), (x + size, y), (x + size, y + size), (x, y + size)])


def insert_road(session: Session, coords: list[tuple[float, float]], name: str = "测试路") -> int:
    return session.execute(text(
        "INSERT INTO roads (name, street_class, width_m, geom) "
        "VALUES (:n, 'managed', 12, ST_GeomFromText(:g, 4326)) RETURNING id"),
        {"n": name, "g": wkt_line(coords)}).scalar_one()


def insert_light(session: Session, serial: int, x: float, y: float, *, state: str = "intact",
                 lit: bool = True, in_use: bool = True) -> str:
    code = f"{DISTRICT}0118{serial:06d}"
    lon, lat = lonlat(x, y)
    session.execute(text(
        "INSERT INTO streetlights (code, state, lit, in_use, owner, maintainer, geom) "
        "VALUES (:c, :s, :lit, :u, '路灯管理处', '某养护公司', "
        "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
        {"c": code, "s": state, "lit": lit, "u": in_use, "x": lon, "y": lat})
    return code


def insert_areas(session: Session, cells: dict[str, str], *, extent: float = 3000) -> None:
    """District, street and community covering [-extent, extent]^2, plus the given grid cells
    (grid code suffix -> polygon WKT)."""
    outline = f"ST_Multi(ST_GeomFromText('{square(-extent, -extent, 2 * extent)}', 4326))"
    session.execute(text(
        f"INSERT INTO districts (code, name, source, simulated, geom) "
        f"VALUES ('{DISTRICT}', '测试区', 'test', true, {outline})"))
    session.execute(text(
        f"INSERT INTO subdistricts (code, name, district_code, geom) "
        f"VALUES ('{STREET}', '测试街道', '{DISTRICT}', {outline})"))
    session.execute(text(
        f"INSERT INTO communities (code, name, subdistrict_code, geom) "
        f"VALUES ('{COMMUNITY}', '测试社区', '{STREET}', {outline})"))
    for suffix, wkt in cells.items():
        session.execute(text(
            "INSERT INTO grid_cells (code, community_code, geom) "
            "VALUES (:c, :m, ST_GeomFromText(:g, 4326))"),
            {"c": COMMUNITY + suffix, "m": COMMUNITY, "g": wkt})


@pytest.fixture
def lit_street(session: Session) -> dict[str, int]:
    """A 200 m street lit every 20 m except between 100 m and 180 m, plus a 100 m dark lane.

    In the hole stand one damaged and one unlit light, and a retired one: none may count.
    """
    insert_areas(session, {"01": square(0, -60, 120), "02": square(120, -60, 120)})
    main = insert_road(session, [(0, 0), (200, 0)], "亮灯路")
    lane = insert_road(session, [(0, 1000), (0, 1100)], "黑巷")
    serial = 0
    for x in range(0, 201, 20):
        serial += 1
        if not 100 < x < 180:
            insert_light(session, serial, x, 0)
    insert_light(session, 90, 120, 0, state="damaged")
    insert_light(session, 91, 140, 0, lit=False)
    insert_light(session, 92, 160, 0, in_use=False)
    return {"main": main, "lane": lane}


@pytest.mark.parametrize("finder", [find_dark_streets, find_dark_streets_kdtree])
def test_one_80_m_gap_is_found_exactly(session: Session, lit_street, finder) -> None:
    gaps = finder(session, threshold_m=30, step_m=4, bbox=BBOX, metric_epsg=METRIC)
    main = gaps[gaps.road_id == lit_street["main"]]
    assert len(main) == 1
    gap = main.iloc[0]
    assert gap.road_name == "亮灯路"
    assert gap.start_m == pytest.approx(100, abs=0.01)
    assert gap.end_m == pytest.approx(180, abs=0.01)
    assert gap.gap_m == pytest.approx(80, abs=0.01)
    assert gap.dark_m == pytest.approx(20, abs=0.01)  # 130..150 m lies beyond 30 m
    assert gap.max_distance_m == pytest.approx(40, abs=0.01)  # at 140 m
    assert gap.samples == 5  # 132, 136, 140, 144, 148
    # The geometry is the dark stretch itself (130..150 m), not the light-to-light gap.
    assert gpd_length_m(gap.geom) == pytest.approx(20, abs=0.01)
    ends = [_TO_METRIC.transform(*xy) for xy in (gap.geom.coords[0], gap.geom.coords[-1])]
    assert [round(x - X0, 2) for x, _ in ends] == [130, 150]
    assert (gap.grid_code, gap.street_code, gap.district_code) == (
        COMMUNITY + "02", STREET, DISTRICT)  # midpoint 140 m is in the second cell

    lane = gaps[gaps.road_id == lit_street["lane"]].iloc[0]  # no light near it at all
    assert (lane.start_m, lane.end_m) == (0, pytest.approx(100, abs=0.01))
    assert lane.max_distance_m > 900
    assert lane.grid_code is None and lane.district_code == DISTRICT
    assert len(gaps) == 2


def gpd_length_m(geom) -> float:
    import geopandas as gpd

    return float(gpd.GeoSeries([geom], crs=4326).to_crs(METRIC).length.iloc[0])


def test_threshold_above_half_the_hole_finds_nothing(session: Session, lit_street) -> None:
    gaps = find_dark_streets(session, threshold_m=41, step_m=4, bbox=BBOX, metric_epsg=METRIC)
    assert gaps.road_id.tolist() == [lit_street["lane"]]


def test_repairing_the_damaged_light_closes_the_gap(session: Session, lit_street) -> None:
    # With the light at 120 m working, no point of the 120-180 m stretch is beyond 30 m.
    session.execute(text(f"UPDATE streetlights SET state = 'intact' "
                         f"WHERE code = '{DISTRICT}0118000090'"))
    gaps = find_dark_streets(session, threshold_m=30, step_m=4, bbox=BBOX, metric_epsg=METRIC)
    assert gaps.road_id.tolist() == [lit_street["lane"]]
    gaps = find_dark_streets(session, threshold_m=29, step_m=2, bbox=BBOX, metric_epsg=METRIC)
    gap = gaps[gaps.road_id == lit_street["main"]].iloc[0]
    assert (gap.start_m, gap.end_m) == (pytest.approx(120, abs=0.01), pytest.approx(180, abs=0.01))
    assert gap.dark_m == pytest.approx(2, abs=0.01)  # the single sample at 150 m (30 m)
    assert gap.max_distance_m == pytest.approx(30, abs=0.01)


def test_summary_per_grid_and_district(session: Session, lit_street) -> None:
    gaps = find_dark_streets(session, threshold_m=30, step_m=4, bbox=BBOX, metric_epsg=METRIC)
    by_district = summarise_dark_streets(gaps, by="district")
    row = by_district.iloc[0]
    assert row.district_code == DISTRICT and row.gaps == 2 and row.roads == 2
    assert row.gap_m == pytest.approx(180, abs=0.02)
    by_grid = summarise_dark_streets(gaps, by="grid").set_index("grid_code", drop=False)
    assert by_grid.loc[COMMUNITY + "02", "gap_m"] == pytest.approx(80, abs=0.01)
    assert by_grid["grid_code"].isna().sum() == 1  # the lane lies outside every grid


def test_pure_gap_merging_matches_the_docstring() -> None:
    road = np.array([LineString([(0, 0), (200, 0)]), LineString([(0, 10), (0, 25)])])
    lights = np.array([[x, 0.0] for x in range(0, 201, 20) if not 100 < x < 180])
    gaps = dark_gaps_from_arrays(road, lights, threshold_m=30, step_m=4)
    assert gaps["road_index"].tolist() == [0]  # the stub is within 25 m of (0, 0)
    assert gaps["gap_m"].tolist() == [80.0]
    assert doctest.testmod(dark_streets).failed == 0


def test_options_are_checked(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="step_m"):
        find_dark_streets(session, threshold_m=30, step_m=50)
    with pytest.raises(InvalidInputError, match="threshold_m"):
        find_dark_streets(session, threshold_m=0)


@pytest.mark.parametrize("step_m", [5, 3, 7])
def test_both_methods_agree_with_an_odd_integer_step(session: Session, lit_street,
                                                     step_m: int) -> None:
    # The step arrives as a Python int from the API's default: PostgreSQL divided it in
    # integer arithmetic (5 / 2 = 2), so the PostGIS path reported less dark length.
    columns = ["road_id", "start_m", "end_m", "gap_m", "dark_m", "max_distance_m", "samples"]
    postgis = find_dark_streets(session, threshold_m=30, step_m=step_m, bbox=BBOX,
                                metric_epsg=METRIC)[columns].sort_values(columns[:2])
    kdtree = find_dark_streets_kdtree(session, threshold_m=30, step_m=step_m, bbox=BBOX,
                                      metric_epsg=METRIC)[columns].sort_values(columns[:2])
    assert len(postgis) == len(kdtree) == 2
    np.testing.assert_allclose(postgis.to_numpy(float), kdtree.to_numpy(float), atol=0.01)
