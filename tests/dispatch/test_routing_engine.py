"""The in-process routing index answers batch routing exactly as the SQL path does, row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.engine.batch import index_for
from gis.dispatch.routing_batch import route_frame
from tests.dispatch.test_routing import CITY, GAS_COVER, SETTINGS, B, _square, build_city

SQL = SETTINGS.model_copy(update={"batch_engine": "sql"})
INDEX = SETTINGS.model_copy(update={"batch_engine": "index"})
# A grid with a hole and an island grid filling the hole; two triangles on a slanted edge.
HOLED = ("POLYGON((117.034 36.66, 117.036 36.66, 117.036 36.662, 117.034 36.662, 117.034 36.66),"
         "(117.0345 36.6605, 117.0355 36.6605, 117.0355 36.6615, 117.0345 36.6615, "
         "117.0345 36.6605))")
ISLAND = _square(117.0345, 36.6605, 0.001)
TRIANGLES = ("POLYGON((117.03 36.662, 117.032 36.662, 117.03 36.663, 117.03 36.662))",
             "POLYGON((117.032 36.662, 117.032 36.663, 117.03 36.663, 117.032 36.662))")
TIMES = ["2025-03-15 10:00", "2025-06-30 23:59", "2025-07-01 00:00", "2025-09-12 20:00",
         "2025-09-13 01:30", "2025-09-15 10:00"]


def _extend_city(session: Session) -> None:
    build_city(session)
    for n, geom in enumerate((HOLED, ISLAND, *TRIANGLES), start=3):
        session.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                             "VALUES (:c, :cc, ST_GeomFromText(:g, 4326))"),
                        {"c": f"{B}{n:02d}", "cc": B, "g": geom})
    session.execute(text("INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, "
                         "valid_from) VALUES (:g, '岛网格员', 'grid_worker', '13800000009', "
                         "'2025-07-01')"), {"g": f"{B}04"})
    session.flush()


def _points(n_random: int) -> pd.DataFrame:
    rng = np.random.default_rng(16)
    lon = list(rng.uniform(117.0295, 117.0365, n_random))
    lat = list(rng.uniform(36.6595, 36.6635, n_random))
    # Every vertex, edge midpoint and quarter point of the 0.0005° lattice: shared edges and
    # vertices, hole rings, zone edges (0.0012/0.0018 from 117.03) and the slanted edge.
    for x in np.round(np.arange(117.0295, 117.0366, 0.00025), 6):
        for y in np.round(np.arange(36.6595, 36.6636, 0.00025), 6):
            lon.append(float(x))
            lat.append(float(y))
    for t in np.linspace(0, 1, 41):  # on the triangles' shared (slanted) edge
        lon.append(117.032 - 0.002 * t)
        lat.append(36.662 + 0.001 * t)
    for x, y in ((117.0312, 36.6612), (117.0318, 36.6618), (117.0315, 36.6612)):  # zone ring
        lon.append(x)
        lat.append(y)
    times = [TIMES[i % len(TIMES)] for i in range(len(lon))]
    frame = pd.DataFrame({"lon": lon, "lat": lat, "at": times, "category_type": "",
                          "category_code": "", "component_code": ""})
    # Some rows for the rules and the component link (PostGIS links those in both paths).
    frame.loc[::97, "category_code"] = "0505"
    frame.loc[5::211, ["category_type", "category_code"]] = ["component", "0102"]
    frame.loc[7::401, ["category_type", "component_code"]] = ["component", GAS_COVER]
    return frame


@pytest.fixture
def city(session: Session) -> Session:
    _extend_city(session)
    return session


def test_index_and_sql_paths_agree_on_every_field_of_every_row(city: Session) -> None:
    frame = _points(2500)
    assert len(frame) > 3000
    by_sql = route_frame(city.connection(), frame, settings=SQL, city=CITY)
    by_index = route_frame(city.connection(), frame, settings=INDEX, city=CITY)
    assert_frame_equal(by_index, by_sql)
    # The edge cases are really there: shared edges, snapped points, refusals, zones, owners.
    assert by_sql["snapped"].eq(True).sum() > 200
    assert by_sql["reason"].str.contains("from the nearest grid").sum() > 200
    assert by_sql["near_boundary"].eq(True).sum() > 200
    assert by_sql["stall_zone"].notna().sum() > 10
    assert set(by_sql["grid_code"].dropna()) >= {f"{B}{n:02d}" for n in range(1, 7)}
    assert by_sql["owner_fallback"].eq(True).sum() > 500
    assert by_sql["component_code_linked"].notna().sum() > 0


def test_index_is_reused_until_an_edit_moves_the_version(city: Session) -> None:
    conn = city.connection()
    first = index_for(conn, CITY)
    assert index_for(conn, CITY) is first
    frame = pd.DataFrame({"lon": [117.0305], "lat": [36.6615], "at": "2025-09-15 10:00"})
    assert route_frame(conn, frame, settings=INDEX, city=CITY).at[0, "owner_name"] == "王网格员"
    city.execute(text("UPDATE grid_owners SET owner_name = '新王网格员' "
                      "WHERE owner_name = '王网格员'"))
    assert index_for(conn, CITY) is not first
    assert route_frame(conn, frame, settings=INDEX, city=CITY).at[0, "owner_name"] == "新王网格员"


def test_overlapping_grids_are_left_to_postgis(city: Session) -> None:
    # Overlaps are a data error the index refuses; routing still answers, by the SQL path.
    city.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                      "VALUES (:c, :cc, ST_GeomFromText(:g, 4326))"),
                 {"c": f"{B}09", "cc": B, "g": _square(117.0302, 36.6602, 0.0005)})
    frame = _points(300)
    by_sql = route_frame(city.connection(), frame, settings=SQL, city=CITY)
    by_index = route_frame(city.connection(), frame, settings=INDEX, city=CITY)
    assert_frame_equal(by_index, by_sql)
