"""Batch routing of a hotline export: bad rows get reasons, good rows match single routing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.batch_postgis import locate_grids
from gis.dispatch.routing_batch import route_file, route_frame
from gis.geo.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.platform.errors import InvalidInputError
from tests.dispatch.test_routing import (
    CITY,
    GAS_COVER,
    GAS_OWNER,
    NEW_OWNER,
    NIGHT_MARKET_OPERATOR,
    OLD_OWNER,
    SETTINGS,
    SEWER_OWNER,
    A,
    build_city,
    route,
)
from tests.support.accounts import headers_for

GCJ = wgs84_to_gcj02(117.0315, 36.6615)
BD = wgs84_to_bd09(117.0315, 36.6615)
ROWS = [
    # id, x, y, crs, at, category_type, category_code, component_code -> expected grid / reason
    ("r1", "117.0315", "36.6605", "", "2025-03-15 10:00", "", "", ""),
    ("r2", "117.0315", "36.6605", "", "2025-09-15 10:00", "", "0505", ""),
    ("r3", "", "36.6605", "", "2025-09-15 10:00", "", "", ""),
    ("r4", "117.0315", "abc", "", "2025-09-15 10:00", "", "", ""),
    ("r5", "2.3522", "48.8566", "", "2025-09-15 10:00", "", "", ""),
    ("r6", f"{GCJ[0]!r}", f"{GCJ[1]!r}", "gcj02", "2025-09-13 01:00", "", "", ""),
    ("r7", f"{BD[0]!r}", f"{BD[1]!r}", "BD-09", "2025-09-15 10:00", "", "", ""),
    ("r8", "117.031", "36.6605", "", "2025-09-15 10:00", "", "", ""),
    ("r9", "117.0305", f"{36.660 - 20 / 111_000!r}", "", "2025-09-15 10:00", "", "", ""),
    ("r10", "117.0305", "36.650", "", "2025-09-15 10:00", "", "", ""),
    ("r11", "117.0315", "36.6605", "mars", "2025-09-15 10:00", "", "", ""),
    ("r12", "117.0315", "36.6605", "", "yesterday-ish", "", "", ""),
    ("r13", "117.0315", "36.6605", "", "2025-09-15 10:00", "component", "0102", ""),
    ("r14", "117.0315", "36.6605", "", "2025-09-15 10:00", "component", "", GAS_COVER),
    ("r15", "117.0305", "36.6605", "", "2025-09-15 10:00", "", "", ""),
]
COLUMNS = ["id", "lon", "lat", "crs", "reported_at", "category_type", "category_code",
           "component_code"]


@pytest.fixture
def city(session: Session) -> Session:
    build_city(session)
    return session


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "热线导出.csv"
    pd.DataFrame(ROWS, columns=COLUMNS).to_csv(path, index=False)
    return path


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("id")


def test_batch_reports_every_bad_row_and_routes_the_good_ones(city: Session,
                                                              export: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    target = route_file(city.connection(), export, settings=SETTINGS, city=CITY,
                        progress=lambda *a: calls.append(a))
    out = _read(target)
    assert list(out.index) == [r[0] for r in ROWS]  # one row per input row, input order
    reason = out["reason"]
    assert reason["r3"] == "missing coordinates"
    assert "'abc'" in reason["r4"] and "not a number" in reason["r4"]
    assert "outside China" in reason["r5"] and "2.352200" in reason["r5"]
    assert "测试城" in reason["r10"]
    assert "'mars'" in reason["r11"]
    assert "'yesterday-ish'" in reason["r12"]
    bad = {"r3", "r4", "r5", "r10", "r11", "r12"}
    assert set(reason[reason != ""].index) == bad
    assert (out.loc[list(bad), "grid_code"] == "").all()
    grid = out["grid_code"]
    assert grid["r1"] == grid["r2"] == f"{A}04"
    assert grid["r6"] == grid["r7"] == f"{A}02"
    assert grid["r8"] == f"{A}03" and out.at["r8", "near_boundary"] == "True"
    assert grid["r9"] == f"{A}03" and out.at["r9", "snapped"] == "True"
    assert out.at["r1", "owner_name"] == OLD_OWNER and out.at["r2", "owner_name"] == NEW_OWNER
    assert out.at["r2", "responsible_unit"] == "城管执法中队"
    assert out.at["r6", "stall_operator"] == NIGHT_MARKET_OPERATOR
    assert out.at["r7", "stall_operator"] == ""
    assert out.at["r13", "responsible_unit"] == SEWER_OWNER
    assert out.at["r14", "component_code_linked"] == GAS_COVER
    assert out.at["r14", "responsible_unit"] == GAS_OWNER
    assert out.at["r15", "owner_name"] == "测试街道办事处"
    assert out.at["r15", "owner_fallback"] == "True"
    # r10 lies inside the city's bbox, so it reaches the database and is refused there.
    assert calls and calls[-1][1] == calls[-1][2] == len(ROWS) - len(bad) + 1


def test_batch_agrees_with_single_point_routing(city: Session) -> None:
    points = [(117.0315, 36.6605), (117.031, 36.661), (117.0325, 36.6615), (117.0312, 36.6601)]
    frame = pd.DataFrame({"lon": [str(p[0]) for p in points], "lat": [str(p[1]) for p in points],
                          "at": "2025-09-15 10:00"})
    out = route_frame(city.connection(), frame, settings=SETTINGS, city=CITY)
    for (x, y), (_, row) in zip(points, out.iterrows(), strict=True):
        single = route(city, x, y, at=datetime(2025, 9, 15, 10, 0))
        assert row["grid_code"] == single.grid_code
        assert row["owner_name"] == single.owner.name
        assert row["station_code"] == single.station.code
        assert row["station_distance_m"] == pytest.approx(single.station.distance_m, abs=0.01)
        assert bool(row["near_boundary"]) == single.near_boundary


def test_grid_code_only_path_matches_full_routing(city: Session) -> None:
    # Centre, shared edge (smallest code wins), shared vertex, just outside (no snapping here).
    lon = [117.0315, 117.031, 117.031, 117.0305, 117.0315]
    lat = [36.6605, 36.6605, 36.661, 36.660 - 20 / 111_000, 36.6615]
    codes = locate_grids(city.connection(), np.array(lon), np.array(lat))
    assert list(codes) == [f"{A}04", f"{A}03", f"{A}01", None, f"{A}02"]
    frame = pd.DataFrame({"lon": lon, "lat": lat, "at": "2025-09-15 10:00"})
    routed = route_frame(city.connection(), frame, settings=SETTINGS, city=CITY)
    inside = [c is not None for c in codes]
    assert list(routed.loc[inside, "grid_code"]) == [c for c in codes if c is not None]
    assert city.execute(text("SELECT to_regclass('pg_temp.route_points')")).scalar() is None


def test_single_station_is_found_without_a_voronoi_diagram(city: Session) -> None:
    # One station: no diagram to join, the nearest-station KNN fills every point.
    city.execute(text("DELETE FROM stations WHERE code <> 'S-NEAR'"))
    frame = pd.DataFrame({"lon": [117.0315, 117.0325], "lat": [36.6605, 36.6615]})
    out = route_frame(city.connection(), frame, settings=SETTINGS, city=CITY)
    assert list(out["station_code"]) == ["S-NEAR", "S-NEAR"]
    single = route(city, 117.0315, 36.6605, at=datetime(2025, 9, 15, 10, 0))
    assert out.at[0, "station_distance_m"] == pytest.approx(single.station.distance_m, abs=0.01)


def test_batch_writes_nothing_to_the_database(city: Session, export: Path) -> None:
    def counts() -> tuple[int, ...]:
        return tuple(city.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in
                     ("cases", "grid_cells", "grid_owners", "stations"))

    before = counts()
    route_file(city.connection(), export, settings=SETTINGS, city=CITY)
    assert counts() == before
    assert city.execute(text("SELECT to_regclass('pg_temp.route_points')")).scalar() is None


def test_xlsx_export_is_read(city: Session, tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    pd.DataFrame(ROWS[:3], columns=COLUMNS).to_excel(path, index=False)
    out = _read(route_file(city.connection(), path, settings=SETTINGS, city=CITY))
    assert list(out["grid_code"]) == [f"{A}04", f"{A}04", ""]


def test_file_without_coordinate_columns_is_refused(city: Session, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("描述,类别\n垃圾,0505\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"no x / y column.*描述"):
        route_file(city.connection(), path, settings=SETTINGS, city=CITY)


def test_file_with_only_addresses_is_geocoded_row_by_row(city: Session, tmp_path: Path) -> None:
    # An address column stands in for coordinates (gis.geocoding.batch); an address that
    # matches nothing says so in its row instead of failing the file.
    path = tmp_path / "addresses.csv"
    path.write_text("地址,类别\n火星路1号,0505\n", encoding="utf-8")
    out = pd.read_csv(route_file(city.connection(), path, settings=SETTINGS, city=CITY),
                      dtype=str, keep_default_na=False)
    assert out["reason"][0].startswith("address not geocoded")


def test_api_routes_one_point_and_refuses_bad_input(test_settings, engine) -> None:  # type: ignore[no-untyped-def]
    from api.main import create_app

    settings = test_settings.model_copy(deep=True)
    settings.city.name = "测试城"
    with TestClient(create_app(settings), headers=headers_for(engine, "dispatcher")) as client:
        # The shared test database has no grids of ours committed: an empty city refuses.
        response = client.post("/route", json={"x": 117.0315, "y": 36.6605})
        assert response.status_code == 422 and "测试城" in response.json()["detail"]
        response = client.post("/route", json={"x": 117.0315, "y": 36.6605, "crs": "mars"})
        assert response.status_code == 422 and "'mars'" in response.json()["detail"]
        response = client.post("/route", json={"x": "abc", "y": 36.6605})
        assert response.status_code == 422 and "x" in str(response.json()["detail"])
        response = client.post("/route", json={"x": 117.03, "y": 36.66,
                                               "category_code": "05x"})
        assert response.status_code == 422 and "category_code" in str(response.json())
        upload = client.post("/route/batch", files={
            "file": ("导出.csv", b"lon,lat\n117.0315,36.6605\n,\n", "text/csv")})
        assert upload.status_code == 200
        assert upload.headers["content-type"].startswith("text/csv")
        lines = upload.content.decode("utf-8-sig").strip().splitlines()
        assert len(lines) == 3 and "missing coordinates" in lines[2]


def test_file_with_only_bad_rows_still_gets_one_row_each(city: Session, tmp_path: Path) -> None:
    path = tmp_path / "all_bad.csv"
    path.write_text("lon,lat\n,\nabc,36.66\n2.35,48.85\n", encoding="utf-8")
    out = pd.read_csv(route_file(city.connection(), path, settings=SETTINGS, city=CITY),
                      dtype=str, keep_default_na=False)
    assert len(out) == 3 and (out["reason"] != "").all() and (out["grid_code"] == "").all()


def test_mixed_aware_and_naive_times_are_each_read() -> None:
    """A hotline export mixing `...+00:00` and plain local times is not refused as a whole."""
    import pandas as pd

    from gis.dispatch.batch_input import prepare
    from gis.dispatch.routing_settings import RoutingSettings
    from gis.platform.settings import CitySettings

    frame = pd.DataFrame({"x": ["117.03"] * 3, "y": ["36.66"] * 3,
                          "at": ["2025-09-12T15:30:00+00:00", "2025-09-15 10:00", "garbage"]})
    out = prepare(frame, default_crs="wgs84", settings=RoutingSettings(), city=CitySettings(),
                  now=None)
    assert [str(t) for t in out["local"][:2]] == ["2025-09-12 23:30:00", "2025-09-15 10:00:00"]
    assert list(out["reason"][:2]) == ["", ""] and "garbage" in out["reason"][2]
