"""Doorplate files through the usual layer import (`POST /layers/doorplates/import`): checked,
all rows or none, and seen by the geocoder at once (no restart)."""

from __future__ import annotations

import io

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from tests.support.accounts import headers_for

SOURCE = "测试门牌导入"


@pytest.fixture(scope="module")
def admin(demo_settings, demo_engine):
    with TestClient(create_app(demo_settings), headers=headers_for(demo_engine, "admin")) as c:
        yield c
    with demo_engine.begin() as conn:
        conn.execute(text("DELETE FROM doorplates WHERE source = :s"), {"s": SOURCE})


@pytest.fixture
def plate(demo_engine: Engine):
    """A known plate of a road, and numbers on its side far past the road's last plate."""
    with demo_engine.connect() as conn:
        p = conn.execute(text("""
            SELECT d.road_name, d.number, ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat,
                   (SELECT max(number) FROM doorplates m WHERE m.road_name = d.road_name) AS top
            FROM doorplates d WHERE d.road_name IS NOT NULL AND d.suffix = ''
            ORDER BY d.id LIMIT 1 OFFSET 2000""")).one()
    return p


def _csv(rows: list[dict]) -> dict:
    body = pd.DataFrame(rows).to_csv(index=False).encode("utf-8")
    return {"file": ("门牌.csv", io.BytesIO(body), "text/csv")}


def _plates(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM doorplates WHERE source = :s"),
                            {"s": SOURCE}).scalar_one()


def test_csv_plates_are_geocoded_at_once(admin: TestClient, demo_engine: Engine, plate):
    new = plate.top + 1000 + (plate.number % 2)  # same side, far past the known plates
    q = f"{plate.road_name}{new}号"
    before = admin.get("/geocode", params={"q": q, "route": "false"}).json()["candidates"]
    assert not before or before[0]["level"] != "doorplate"
    lon, lat = plate.lon + 0.0002, plate.lat + 0.0001
    answer = admin.post("/layers/doorplates/import", files=_csv([
        {"road_name": plate.road_name, "number": new, "suffix": "", "source": SOURCE,
         "lon": lon, "lat": lat},
        {"road_name": plate.road_name, "number": new, "suffix": "甲", "source": SOURCE,
         "lon": lon + 0.0001, "lat": lat}]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 2
    best = admin.get("/geocode", params={"q": q, "route": "false"}).json()["candidates"][0]
    assert best["level"] == "doorplate"
    assert (best["lon"], best["lat"]) == (pytest.approx(lon, abs=1e-7),
                                          pytest.approx(lat, abs=1e-7))
    suggested = admin.get("/geocode/suggest", params={"q": f"{plate.road_name}{new}甲号"}).json()
    assert suggested["suggestions"][0]["level"] == "doorplate"
    assert suggested["suggestions"][0]["lon"] == pytest.approx(lon + 0.0001, abs=1e-7)
    public = admin.get("/public/geocode", params={"q": q}).json()["suggestions"][0]
    assert public["level"] == "doorplate" and public["lon"] == pytest.approx(lon, abs=1e-7)


def test_csv_x_y_in_a_metric_crs_and_a_geopackage(admin: TestClient, demo_engine: Engine,
                                                  plate, tmp_path):
    to_metric = Transformer.from_crs(4326, 4548, always_xy=True)
    x, y = to_metric.transform(plate.lon, plate.lat)
    new = plate.top + 2000 + (plate.number % 2)
    answer = admin.post("/layers/doorplates/import", data={"crs": "EPSG:4548"}, files=_csv([
        {"road_name": plate.road_name, "number": new, "source": SOURCE, "x": x + 10,
         "y": y}]))
    assert answer.status_code == 200, answer.text
    with demo_engine.connect() as conn:
        moved = conn.execute(text("""
            SELECT ST_Distance(ST_Transform(geom, 4548),
                               ST_SetSRID(ST_MakePoint(:x, :y), 4548)) FROM doorplates
            WHERE road_name = :r AND number = :n"""),
            {"x": x + 10, "y": y, "r": plate.road_name, "n": new}).scalar_one()
    assert moved < 0.01
    gpkg = tmp_path / "门牌.gpkg"
    gpd.GeoDataFrame(
        {"road_name": [plate.road_name] * 2, "number": [new + 2, new + 4],
         "source": [SOURCE] * 2},
        geometry=[shapely.Point(x + 20, y), shapely.Point(x + 30, y)], crs=4548,
    ).to_file(gpkg, layer="doorplates", driver="GPKG")
    answer = admin.post("/layers/doorplates/import",
                        files={"file": ("门牌.gpkg", gpkg.read_bytes(),
                                        "application/geopackage+sqlite3")})
    assert answer.status_code == 200, answer.text
    best = admin.get("/geocode", params={"q": f"{plate.road_name}{new + 4}号",
                                         "route": "false"}).json()["candidates"][0]
    assert best["level"] == "doorplate"
    assert best["lon"] == pytest.approx(Transformer.from_crs(4548, 4326, always_xy=True)
                                        .transform(x + 30, y)[0], abs=1e-6)


@pytest.mark.parametrize("change, status, named", [
    ({"road_name": "火星大道"}, 422, "'火星大道' is not a road of the city"),
    ({"number": "18a"}, 422, "row 2: number"),
    ({"number": 0}, 422, "row 2: number"),
    ({"suffix": "戊"}, 422, "row 2: suffix"),
    ({"road_name": ""}, 422, "row 2: "),
    ({"lon": 121.47, "lat": 31.23}, 422, "outside"),
])
def test_bad_rows_refuse_the_whole_file(admin: TestClient, demo_engine: Engine, plate,
                                        change, status, named):
    good = {"road_name": plate.road_name, "number": plate.top + 3001, "source": SOURCE,
            "lon": plate.lon, "lat": plate.lat}
    before = _plates(demo_engine)
    answer = admin.post("/layers/doorplates/import", files=_csv([good, {**good, **change,
                                                                       "number": change.get(
                                                                           "number",
                                                                           plate.top + 3003)}]))
    assert answer.status_code == status, answer.text
    assert named in answer.json()["detail"], answer.json()["detail"]
    assert _plates(demo_engine) == before  # the good first row was not written either


def test_alias_is_refused_with_the_road_it_stands_for(admin: TestClient, demo_engine: Engine,
                                                      plate):
    with demo_engine.connect() as conn:
        alias = conn.execute(text("SELECT alias FROM road_aliases WHERE road_name = :r "
                                  "ORDER BY alias LIMIT 1"), {"r": plate.road_name}).scalar()
    if alias is None:
        pytest.skip("this road has no alias")
    answer = admin.post("/layers/doorplates/import", files=_csv([
        {"road_name": alias, "number": plate.top + 4001, "source": SOURCE,
         "lon": plate.lon, "lat": plate.lat}]))
    assert answer.status_code == 422
    assert f"file it under '{plate.road_name}'" in answer.json()["detail"]


def test_import_is_for_admins(demo_settings, demo_engine: Engine):
    with TestClient(create_app(demo_settings),
                    headers=headers_for(demo_engine, "dispatcher")) as dispatcher:
        answer = dispatcher.post("/layers/doorplates/import", files=_csv([{"x": 1}]))
    assert answer.status_code == 403
