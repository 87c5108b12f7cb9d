"""Coordinate conversion against published reference pairs (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from gis.geo.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    to_wgs84_many,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from gis.platform.errors import CrsMismatchError, InvalidInputError

# (WGS84 lon, lat) -> (GCJ-02 lon, lat): googollee/eviltransform's Beijing, Shanghai, Shenzhen
# test pairs, and wandergis/coordTransform's README example.
WGS_TO_GCJ = [
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]
# GCJ-02 -> BD-09, coordTransform's README example (the forward formula is exact).
GCJ_TO_BD = [((116.404, 39.915), (116.41036949371029, 39.92133699351022))]
JINAN = (117.0315, 36.6605)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_TO_GCJ)
def test_wgs84_to_gcj02_matches_reference(wgs, gcj) -> None:
    assert wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_TO_GCJ)
def test_gcj02_to_wgs84_inverts_reference(wgs, gcj) -> None:
    assert gcj02_to_wgs84(*gcj) == pytest.approx(wgs, abs=1e-8)


def test_gcj02_to_bd09_matches_reference() -> None:
    (gcj, bd), = GCJ_TO_BD
    assert gcj02_to_bd09(*gcj) == pytest.approx(bd, abs=1e-9)
    assert bd09_to_gcj02(*bd) == pytest.approx(gcj, abs=1e-8)


def test_offset_near_jinan_is_hundreds_of_metres() -> None:
    gx, gy = wgs84_to_gcj02(*JINAN)
    # The GCJ-02 shift in Shandong is roughly +0.006° lon, +0.001° lat (~500-600 m).
    assert 0.004 < gx - JINAN[0] < 0.008 and 0.0 < gy - JINAN[1] < 0.003


def test_round_trips_are_below_1e6_degrees() -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(74, 134, 10_000)
    lat = rng.uniform(18, 53, 10_000)
    assert np.abs(np.subtract(gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), (lon, lat))).max() < 1e-6
    assert np.abs(np.subtract(bd09_to_wgs84(*wgs84_to_bd09(lon, lat)), (lon, lat))).max() < 1e-6


def test_outside_china_gcj02_is_unchanged() -> None:
    assert wgs84_to_gcj02(2.3522, 48.8566) == (2.3522, 48.8566)
    assert gcj02_to_wgs84(2.3522, 48.8566) == (2.3522, 48.8566)


def test_cgcs2000_is_taken_as_wgs84() -> None:
    assert to_wgs84(*JINAN, "cgcs2000") == JINAN


def test_to_wgs84_accepts_spellings_and_refuses_unknown_crs() -> None:
    gcj = wgs84_to_gcj02(*JINAN)
    assert to_wgs84(*gcj, "GCJ-02") == pytest.approx(JINAN, abs=1e-8)
    with pytest.raises(CrsMismatchError, match="'epsg:3857'"):
        to_wgs84(*JINAN, "epsg:3857")


@pytest.mark.parametrize(("x", "y", "named"), [
    (float("nan"), 36.66, "nan"), (117.0, float("inf"), "inf"), (200.0, 36.66, "200.0"),
    (117.0, -91.0, "-91.0"), ("abc", 36.66, "'abc'")])
def test_bad_values_are_refused_naming_the_value(x, y, named) -> None:
    with pytest.raises(InvalidInputError, match=named):
        to_wgs84(x, y, "wgs84")


def test_many_marks_invalid_points_as_nan() -> None:
    lon, lat = to_wgs84_many([117.03, np.nan, 500.0], [36.66, 36.66, 36.66], "gcj02")
    assert np.isfinite(lon[0]) and np.isnan(lon[1:]).all() and np.isnan(lat[1:]).all()
