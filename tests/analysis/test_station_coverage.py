"""Station coverage on constructed grids whose coverage boundary is known (real PostGIS)."""

from __future__ import annotations

import doctest

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis import station_coverage
from gis.analysis.station_coverage import find_coverage_gaps, summarise_coverage
from gis.platform.errors import InvalidInputError, NotFoundError
from tests.analysis.test_dark_streets import (
    BBOX,
    COMMUNITY,
    DISTRICT,
    METRIC,
    insert_areas,
    insert_road,
    lonlat,
    square,
)

# Row 1: ten 100 m grids along y 0..100; row 2: ten more along y 200..300; one far grid.
ROW1 = {f"{i + 1:02d}": square(100 * i, 0, 100) for i in range(10)}
ROW2 = {f"{i + 11:02d}": square(100 * i, 200, 100) for i in range(10)}
FAR = {"21": square(0, 2000, 100)}
STATION = (0.0, 50.0)  # on the west edge of row 1


def insert_station(session: Session, x: float, y: float, code: str = "ST-T1") -> None:
    lon, lat = lonlat(x, y)
    session.execute(text("""
        INSERT INTO stations (code, name, address, phone, staff, opening_hours, geom)
        VALUES (:c, '测试工作站', '测试路1号', '0531-86081234', 5, '08:00-18:00',
                ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""), {"c": code, "x": lon, "y": lat})


@pytest.fixture
def town(session: Session) -> None:
    """Road A runs east through row 1 from the station; road B turns north at 1000 m and back
    west through row 2, so row 2 is near in a straight line but far along the street."""
    insert_areas(session, {**ROW1, **ROW2, **FAR})
    insert_station(session, *STATION)
    insert_road(session, [(0, 50), (1000, 50)], "甲路")
    insert_road(session, [(1000, 50), (1000, 250), (0, 250)], "乙路")


def _by_code(cells) -> dict:
    return {code[-2:]: row for code, row in zip(cells.grid_code, cells.itertuples(), strict=True)}


def test_straight_line_boundary(session: Session, town) -> None:
    cells = _by_code(find_coverage_gaps(session, threshold_m=500, method="straight", bbox=BBOX,
                                        metric_epsg=METRIC))
    # Row 1 centres are 50, 150, ... 950 m from the station: the first five are within 500 m.
    assert [cells[f"{i:02d}"].covered for i in range(1, 11)] == [True] * 5 + [False] * 5
    assert cells["05"].distance_m == pytest.approx(450, abs=0.05)
    assert cells["06"].distance_m == pytest.approx(550, abs=0.05)
    # Row 2 centres are sqrt(x² + 200²) away: x = 450 gives 492 m, x = 550 gives 585 m.
    assert [cells[f"{i:02d}"].covered for i in range(11, 21)] == [True] * 5 + [False] * 5
    assert {row.method for row in cells.values()} == {"straight"}
    assert cells["01"].station_code == "ST-T1"


def test_network_boundary(session: Session, town) -> None:
    cells = _by_code(find_coverage_gaps(session, threshold_m=500, method="network", bbox=BBOX,
                                        metric_epsg=METRIC))
    assert [cells[f"{i:02d}"].covered for i in range(1, 11)] == [True] * 5 + [False] * 5
    assert cells["05"].distance_m == pytest.approx(450, abs=0.05)
    # Along the street row 2 is 1000 + 200 + (1000 - x) metres away: every grid uncovered.
    assert not any(cells[f"{i:02d}"].covered for i in range(11, 21))
    assert cells["11"].distance_m == pytest.approx(2150, abs=0.05)  # x = 50
    assert cells["20"].distance_m == pytest.approx(1250, abs=0.05)  # x = 950
    assert cells["11"].method == "network"
    # 2150 m along the street, 206 m in a straight line: flagged for review.
    assert cells["11"].straight_m == pytest.approx((50**2 + 200**2) ** 0.5, abs=0.05)
    assert cells["11"].review and cells["11"].review_reason == "路网距离超过直线距离 3 倍"
    assert not cells["05"].review and cells["05"].snap_m == 0
    # The far grid is 1.8 km from any road: no network distance, and the straight line is
    # reported beside it, never in its place.
    far = cells["21"]
    assert far.method == "network" and far.distance_m is None and not far.covered
    assert far.network_m != far.network_m  # NaN
    assert far.straight_m == pytest.approx((50**2 + 2000**2) ** 0.5, abs=0.05)
    assert far.review_reason == "距路网超过 200 米，无法按路网计算"


def test_auto_uses_the_network_and_summary_counts_area(session: Session, town) -> None:
    cells = find_coverage_gaps(session, threshold_m=500, bbox=BBOX, metric_epsg=METRIC)
    assert (cells.method == "network").all() and cells.network_m.notna().sum() == 20
    [row] = summarise_coverage(cells, by="district").itertuples()
    assert (row.district_code, row.grids, row.uncovered) == (DISTRICT, 21, 16)
    assert row.uncovered_km2 == pytest.approx(16 * 0.01, rel=1e-3)  # 100 m x 100 m each
    assert summarise_coverage(cells, by="street").iloc[0].street_code == COMMUNITY[:9]
    assert doctest.testmod(station_coverage, optionflags=doctest.ELLIPSIS).failed == 0


def test_a_second_station_closes_the_gap(session: Session, town) -> None:
    insert_station(session, 1000, 250, code="ST-T2")
    cells = _by_code(find_coverage_gaps(session, threshold_m=500, bbox=BBOX,
                                        metric_epsg=METRIC))
    assert cells["20"].station_code == "ST-T2" and cells["20"].covered
    assert cells["20"].distance_m == pytest.approx(50, abs=0.05)


def test_errors(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="'bogus'"):
        find_coverage_gaps(session, method="bogus")  # type: ignore[arg-type]
    session.execute(text("DELETE FROM stations"))
    with pytest.raises(NotFoundError, match="no community stations"):
        find_coverage_gaps(session)
