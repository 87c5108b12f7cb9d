"""Batch routing's speed-ups keep every answer: threaded shares, station pixels, chord metres.

- Points split into shares on threads give the one-thread frame and the SQL path's.
- The station of a pixel whose whole extent has one nearest station is the KD-tree's answer
  for every point in it, also on and near the Voronoi edges (equidistant stations, stations at
  one spot) and beyond the stations' envelope.
- The chord estimate of geodesic metres rounds to PostGIS' centimetres on random lines and on
  lines built to end a hair from a rounding boundary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from pandas.testing import assert_frame_equal
from sqlalchemy.orm import Session

from gis.dispatch.engine import batch, geodesy, short_geodesic
from gis.dispatch.engine.grid import GridRaster
from gis.dispatch.engine.index import RoutingIndex
from gis.dispatch.engine.stations import StationRaster, nearest_stations
from gis.dispatch.routing_batch import route_frame
from tests.dispatch.test_routing import CITY, SETTINGS
from tests.dispatch.test_routing_engine import _extend_city, _points

LAT = 36.66


@pytest.fixture
def city(session: Session) -> Session:
    _extend_city(session)
    return session


def test_threaded_shares_give_the_one_thread_and_sql_frames(city: Session,
                                                           monkeypatch: Any) -> None:
    frame = _points(2500)
    conn = city.connection()
    by_sql = route_frame(conn, frame, settings=SETTINGS.model_copy(
        update={"batch_engine": "sql"}), city=CITY)
    one = SETTINGS.model_copy(update={"batch_engine": "index", "batch_threads": 1})
    by_one = route_frame(conn, frame, settings=one, city=CITY)
    monkeypatch.setattr(batch, "MIN_SHARE_ROWS", 500)  # 3,237 points: three shares
    shares: list[int] = []
    real = batch._route_points

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        shares.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "_route_points", counted)
    by_three = route_frame(conn, frame, settings=one.model_copy(update={"batch_threads": 3}),
                           city=CITY)
    assert len(shares) == 3 and sum(shares) == len(frame)
    assert_frame_equal(by_three, by_one)
    assert_frame_equal(by_three, by_sql)


class _Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def mappings(self) -> _Rows:
        return self

    def all(self) -> list[dict[str, Any]]:
        return self.rows


class _Stations:
    """Stands in for the connection: RoutingIndex._load_stations reads only the stations."""

    def __init__(self, stations: list[dict[str, Any]]) -> None:
        self.stations = stations

    def execute(self, _statement: Any) -> _Rows:
        return _Rows(self.stations)


def _station_index(stations: list[tuple[float, float]]) -> RoutingIndex:
    cells = [shapely.box(117.0 + i * 0.001, LAT + j * 0.001, 117.0 + (i + 1) * 0.001,
                         LAT + (j + 1) * 0.001) for i in range(40) for j in range(30)]
    index = RoutingIndex.__new__(RoutingIndex)
    index.grid = GridRaster(np.array(cells, dtype=object))
    rows = [{"code": f"S{k:03d}", "name": f"站{k}", "phone": "-", "lon": x, "lat": y}
            for k, (x, y) in enumerate(stations)]
    index._load_stations(_Stations(rows), 4548)  # type: ignore[arg-type]
    return index


def test_station_pixels_give_the_kd_answer_on_and_near_voronoi_edges() -> None:
    rng = np.random.default_rng(16)
    sites = [(117.0 + 0.008 * i + rng.uniform(-0.002, 0.002),
              LAT + 0.007 * j + rng.uniform(-0.002, 0.002)) for i in range(6) for j in range(5)]
    sites += [sites[7], (117.02, LAT + 0.01), (117.03, LAT + 0.01)]  # one spot; a true tie
    index = _station_index(sites)
    raster = StationRaster(index)
    assert 0.5 < (raster.station >= 0).mean() < 1.0
    lon = [rng.uniform(116.995, 117.045, 30_000)]
    lat = [rng.uniform(LAT - 0.005, LAT + 0.035, 30_000)]
    # Points on and a few cm off the lon/lat bisector of every pair of nearby stations.
    xy = np.array(sites)
    a, b = np.triu_indices(len(xy), 1)
    close = np.hypot(*(xy[a] - xy[b]).T) < 0.02
    a, b = a[close], b[close]
    for t in np.linspace(-0.5, 0.5, 41):
        for off in (0.0, 3e-7, -3e-7, 3e-6):
            mid = (xy[a] + xy[b]) / 2
            normal = np.c_[-(xy[b] - xy[a])[:, 1], (xy[b] - xy[a])[:, 0]]
            lon.append(mid[:, 0] + t * normal[:, 0] + off)
            lat.append(mid[:, 1] + t * normal[:, 1] + off)
    x, y = np.concatenate(lon), np.concatenate(lat)
    want_row, want_m = index.nearest_station(x, y)
    got_row, got_m = nearest_stations(index, x, y)
    np.testing.assert_array_equal(got_row, want_row)
    np.testing.assert_array_equal(np.round(got_m, 2), np.round(want_m, 2))
    sure = raster.rows(x, y) >= 0
    assert sure.sum() > 20_000 and (~sure).sum() > 2_000  # both ways were taken


def test_chord_metres_round_like_postgis() -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    lon1, lat1 = rng.uniform(73, 135, n), rng.uniform(18, 54, n)
    metres = rng.uniform(0, 12_000, n) * rng.uniform(0, 1, n) ** 3
    # Half of the lines end within a micrometre of a rounding boundary (x.xx5 m).
    metres[::2] = np.floor(metres[::2] * 100) / 100 + 0.005 + rng.uniform(-1e-6, 1e-6, n // 2)
    lon2, lat2, _ = geodesy.GEOD.fwd(lon1, lat1, rng.uniform(0, 360, n), metres)
    want = np.round(geodesy.point_point_m(lon1, lat1, lon2, lat2), 2)
    got = short_geodesic.centimetre_metres(lon1, lat1, lon2, lat2)
    np.testing.assert_array_equal(np.round(got, 2), want)
    estimate, chord = short_geodesic._chord_metres(*(geodesy.rad(v)
                                                     for v in (lon1, lat1, lon2, lat2)))
    exact = np.asarray(geodesy.GEOD.inv(lon1, lat1, lon2, lat2)[2])
    short = chord < short_geodesic.MAX_CHORD_M
    assert np.abs(estimate - exact)[short].max() < short_geodesic.ERROR_M / 20
    # Without the exact fallback near boundaries the rounding would differ somewhere.
    assert (np.round(estimate, 2) != want).any()


def test_batch_stations_in_the_frame_are_the_sql_paths(city: Session) -> None:
    frame = pd.DataFrame({"lon": np.linspace(117.0295, 117.0365, 400),
                          "lat": np.linspace(36.6595, 36.6635, 400), "at": "2025-09-15 10:00"})
    conn = city.connection()
    by_sql = route_frame(conn, frame, settings=SETTINGS.model_copy(
        update={"batch_engine": "sql"}), city=CITY)
    by_index = route_frame(conn, frame, settings=SETTINGS.model_copy(
        update={"batch_engine": "index"}), city=CITY)
    assert by_sql["station_code"].notna().sum() > 250
    assert_frame_equal(by_index[["station_code", "station_distance_m"]],
                       by_sql[["station_code", "station_distance_m"]])
    assert math.isfinite(by_index["station_distance_m"].max())
