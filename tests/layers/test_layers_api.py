"""The generic layer routes against the real PostGIS test database, lifespan included.

Rows are committed (the app uses its own sessions), so this module uses its own codes
(district 379903...) and deletes them at the end; assertions never assume an empty layer.
"""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Polygon
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from api.routes.layers import Feature, FeatureCollection, LayerDetail, LayerList
from gis.platform.settings import Settings
from layers.registry import LAYERS
from tests.support.accounts import headers_for

DISTRICT, SUBDISTRICT, COMMUNITY = "379903", "379903903", "379903903903"
LON, LAT = 117.0421, 36.6713
SIZE = 0.0004
GRIDS = [f"{COMMUNITY}{i:02d}" for i in range(1, 4)]
BBOX = f"{LON - 0.001},{LAT - 0.001},{LON + 0.003},{LAT + 0.001}"


def square(i: int) -> Polygon:
    x = LON + SIZE * i
    return Polygon([(x, LAT), (x + SIZE, LAT), (x + SIZE, LAT + SIZE), (x, LAT + SIZE)])


@pytest.fixture(scope="module")
def area(engine: Engine):
    """Three grid cells with owners: grid 1 changed owner last month, grid 2's owner left."""
    outline = shapely.MultiPolygon([Polygon.from_bounds(LON - 0.01, LAT - 0.01, LON + 0.01,
                                                        LAT + 0.01)]).wkt
    today = dt.date.today()
    with engine.begin() as conn:
        params = {"d": DISTRICT, "s": SUBDISTRICT, "c": COMMUNITY, "g": outline}
        conn.execute(text("INSERT INTO districts (code, name, source, geom) "
                          "VALUES (:d, 'API测试区', 'test', ST_GeomFromText(:g, 4326))"), params)
        conn.execute(text("INSERT INTO subdistricts (code, name, district_code, geom) "
                          "VALUES (:s, 'API测试街道', :d, ST_GeomFromText(:g, 4326))"), params)
        conn.execute(text("INSERT INTO communities (code, name, subdistrict_code, geom) "
                          "VALUES (:c, 'API测试社区', :s, ST_GeomFromText(:g, 4326))"), params)
        for i, code in enumerate(GRIDS):
            conn.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                              "VALUES (:code, :c, ST_GeomFromText(:g, 4326))"),
                         {"code": code, "c": COMMUNITY, "g": square(i).wkt})
        owners = [
            (GRIDS[0], "李四", "grid_worker", "13800000001", today - dt.timedelta(days=400),
             today - dt.timedelta(days=30)),
            (GRIDS[0], "王五", "squad", "0531-86001111", today - dt.timedelta(days=30), None),
            (GRIDS[1], "赵六", "grid_worker", "13800000002", today - dt.timedelta(days=400),
             today - dt.timedelta(days=1)),
        ]
        for grid, name, kind, phone, start, end in owners:
            conn.execute(text(
                "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from, "
                "valid_to) VALUES (:g, :n, :k, :p, :f, :t)"),
                {"g": grid, "n": name, "k": kind, "p": phone, "f": start, "t": end})
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM grid_cells WHERE community_code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM communities WHERE code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM subdistricts WHERE code = :s"), {"s": SUBDISTRICT})
        conn.execute(text("DELETE FROM districts WHERE code = :d"), {"d": DISTRICT})


@pytest.fixture(scope="module")
def client(test_settings: Settings, area: Engine):
    with TestClient(create_app(test_settings), headers=headers_for(area, "admin")) as c:
        yield c


def count(engine: Engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_list_layers(client: TestClient) -> None:
    response = client.get("/layers")
    assert response.status_code == 200
    body = LayerList.model_validate(response.json())
    by_id = {layer.id: layer for layer in body.layers}
    assert set(by_id) == set(LAYERS)
    assert by_id["grid_cells"].count >= 3
    assert by_id["grid_cells"].title_zh == "单元网格"
    assert {link.rel for link in by_id["grid_cells"].links} == {"self", "items"}


def test_layer_detail(client: TestClient) -> None:
    response = client.get("/layers/stall_zones")
    assert response.status_code == 200
    body = LayerDetail.model_validate(response.json())
    assert body.geometry_type == "Polygon"
    assert "time_slots" in body.properties_schema["properties"]
    assert client.get("/layers/grid_cells").json()["generated"] == ["area_m2"]


def test_items_with_bbox_and_paging(client: TestClient, area: Engine) -> None:
    x1, y1, x2, y2 = map(float, BBOX.split(","))
    matched = count(area, "SELECT count(*) FROM grid_cells "
                          "WHERE geom && ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326)",
                    x1=x1, y1=y1, x2=x2, y2=y2)
    assert matched >= 3
    response = client.get("/layers/grid_cells/items", params={"bbox": BBOX, "limit": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    page = FeatureCollection.model_validate(response.json())
    assert page.numberMatched == matched
    assert page.numberReturned == len(page.features) == 2
    seen = [f.id for f in page.features]
    links = {link.rel: link.href for link in page.links}
    assert "offset=2" in links["next"] and "bbox=" in links["next"]
    while "next" in links:
        page = FeatureCollection.model_validate(client.get(links["next"]).json())
        seen += [f.id for f in page.features]
        links = {link.rel: link.href for link in page.links}
    assert len(seen) == len(set(seen)) == matched
    assert set(GRIDS) <= set(seen)
    feature = page.features[-1]
    assert feature.geometry is not None and feature.geometry["type"] == "Polygon"
    assert {"code", "community_code", "area_m2", "owner_name"} <= set(feature.properties)


def test_grid_cell_carries_todays_owner(client: TestClient) -> None:
    current = Feature.model_validate(client.get(f"/layers/grid_cells/items/{GRIDS[0]}").json())
    assert current.id == GRIDS[0]
    assert current.properties["owner_name"] == "王五"
    assert current.properties["owner_kind"] == "squad"
    assert current.properties["phone"] == "0531-86001111"
    gone = client.get(f"/layers/grid_cells/items/{GRIDS[1]}").json()
    assert gone["properties"]["owner_name"] is None  # the last owner left yesterday
    assert 100 < gone["properties"]["area_m2"] < 2_000


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "117.1,36.6,117.0,36.7", "0,0,200,10"])
def test_bad_bbox_is_422_naming_it(client: TestClient, bbox: str) -> None:
    response = client.get("/layers/grid_cells/items", params={"bbox": bbox})
    assert response.status_code == 422
    assert bbox in response.json()["detail"]


def test_unknown_layer_and_feature_are_404(client: TestClient) -> None:
    response = client.get("/layers/nope/items")
    assert response.status_code == 404
    assert "'nope'" in response.json()["detail"] and "grid_cells" in response.json()["detail"]
    assert client.get("/layers/nope").status_code == 404
    response = client.get("/layers/grid_cells/items/99999999999999")
    assert response.status_code == 404 and "99999999999999" in response.json()["detail"]
    assert client.get("/layers/stations/items/abc").status_code == 404


def upload_frame(codes: list[str], *, bowtie_row: int | None = None) -> bytes:
    geoms = []
    for i in range(len(codes)):
        x = LON + SIZE * (5 + i)
        if i + 1 == bowtie_row:
            geoms.append(Polygon([(x, LAT), (x + SIZE, LAT + SIZE), (x + SIZE, LAT),
                                  (x, LAT + SIZE)]))
        else:
            geoms.append(Polygon.from_bounds(x, LAT, x + SIZE, LAT + SIZE))
    frame = gpd.GeoDataFrame({"code": codes, "community_code": COMMUNITY}, geometry=geoms,
                             crs=4326)
    return frame.to_json().encode()


def test_upload_bad_file_is_422_and_changes_nothing(client: TestClient, area: Engine) -> None:
    before = count(area, "SELECT count(*) FROM grid_cells")
    data = upload_frame([f"{COMMUNITY}21", f"{COMMUNITY}22"], bowtie_row=2)
    response = client.post("/layers/grid_cells/import",
                           files={"file": ("cells.geojson", data, "application/geo+json")})
    assert response.status_code == 422
    assert "row 2" in response.json()["detail"]
    assert "Self-intersection" in response.json()["detail"]
    assert count(area, "SELECT count(*) FROM grid_cells") == before


def test_upload_with_an_unknown_crs_is_422(client: TestClient) -> None:
    csv = f"code,community_code,wkt\n{COMMUNITY}31,{COMMUNITY},\"POINT(1 2)\"\n".encode()
    response = client.post("/layers/grid_cells/import",
                           files={"file": ("cells.csv", csv, "text/csv")},
                           data={"crs": "EPSG:99999"})
    assert response.status_code == 422 and "EPSG:99999" in response.json()["detail"]


def test_upload_good_file_imports_every_row(client: TestClient, area: Engine) -> None:
    codes = [f"{COMMUNITY}11", f"{COMMUNITY}12"]
    try:
        response = client.post("/layers/grid_cells/import",
                               files={"file": ("cells.geojson", upload_frame(codes))})
        assert response.status_code == 200, response.text
        assert response.json() == {"layer": "grid_cells", "imported": 2}
        assert count(area, "SELECT count(*) FROM grid_cells WHERE code = ANY(:c)",
                     c=codes) == 2
        # The same file again breaks the primary key: 422 naming it, nothing added.
        response = client.post("/layers/grid_cells/import",
                               files={"file": ("cells.geojson", upload_frame(codes))})
        assert response.status_code == 422 and "grid_cells_pkey" in response.json()["detail"]
    finally:
        with area.begin() as conn:
            conn.execute(text("DELETE FROM grid_cells WHERE code = ANY(:c)"), {"c": codes})


def test_upload_over_the_limit_is_413(test_settings: Settings, area: Engine) -> None:
    settings = test_settings.model_copy(deep=True)
    settings.api.max_upload_mb = 0
    data = json.dumps({"type": "FeatureCollection", "features": []}).encode()
    with TestClient(create_app(settings), headers=headers_for(area, "admin")) as small:
        response = small.post("/layers/grid_cells/import", files={"file": ("x.geojson", data)})
    assert response.status_code == 413
