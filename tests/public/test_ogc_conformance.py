"""/ogc against the letter of OGC API Features Part 1/3 and Tiles Part 1, with real clients.

Each test is named after the requirement (or the client behaviour) it proves; the server-side
parts are api/ogc_standard.py. GDAL runs against a live server (tests/browser.serve), and
its debug log shows which requests it made, so "filters on the server" is counted, not assumed.
"""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.public.test_ogc_api import OGRINFO, PUBLIC_LAYERS, lonlat_to_tile

REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
MVT = "application/vnd.mapbox-vector-tile"
CQL2_CLASSES = {
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
}


@pytest.fixture(scope="module")
def client(demo_client: TestClient) -> TestClient:
    return demo_client


def ogrinfo_logged(*args: str) -> tuple[str, list[str]]:
    """ogrinfo's output and the URLs it fetched (from GDAL's debug log)."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
           "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "ON"}
    done = subprocess.run([OGRINFO, "-ro", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    fetched = re.findall(r"HTTP: Fetch\((\S+)\)", done.stdout + done.stderr)
    return done.stdout + done.stderr, fetched


def links(doc: dict, rel: str) -> list[dict]:
    return [link for link in doc["links"] if link["rel"] == rel]


# --- OGC API - Tiles ------------------------------------------------------------------------


def test_req_geodata_tilesets_desc_links_collection_links_vector_tilesets(
        client: TestClient) -> None:
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets" in conformance
    for layer in PUBLIC_LAYERS:
        (link,) = links(client.get(f"/ogc/collections/{layer}").json(), REL_TILESETS_VECTOR)
        assert link["type"] == "application/json"
        tilesets = client.get(link["href"])
        assert tilesets.status_code == 200 and tilesets.json()["tilesets"], layer


def test_req_tileset_tile_link_is_rel_item_templated_with_ogc_variables(
        client: TestClient, demo_engine: Engine) -> None:
    (tileset,) = client.get("/ogc/collections/streetlights/tiles").json()["tilesets"]
    assert tileset["dataType"] == "vector"
    assert tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    self_href = links(tileset, "self")[0]["href"]
    detail = client.get(self_href).json()
    for doc in (tileset, detail):
        (item,) = links(doc, "item")
        assert item["type"] == MVT and item["templated"] is True
        assert {"{tileMatrix}", "{tileRow}", "{tileCol}"} <= set(
            re.findall(r"\{\w+\}", item["href"]))
        assert not links(doc, "tile")
    with demo_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(geom), ST_Y(geom) FROM pub.streetlights ORDER BY code LIMIT 1")).one()
    col, row = lonlat_to_tile(lon, lat, 14)
    href = (links(detail, "item")[0]["href"].replace("{tileMatrix}", "14")
            .replace("{tileRow}", str(row)).replace("{tileCol}", str(col)))
    tile = client.get(href)
    assert tile.status_code == 200 and tile.headers["content-type"] == MVT
    assert mapbox_vector_tile.decode(tile.content)["streetlights"]["features"]


def test_only_web_mercator_quad_is_offered(client: TestClient) -> None:
    sets = client.get("/ogc/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    assert len(client.get("/ogc/collections/roads/tiles").json()["tilesets"]) == 1
    tms = client.get("/ogc/tileMatrixSets/WebMercatorQuad").json()
    # TMS 2.0 keys for current clients, 1.0 keys for GDAL < 3.7 (Debian 12).
    assert len(tms["tileMatrices"]) == len(tms["tileMatrix"]) == 25
    assert tms["tileMatrix"][3]["topLeftCorner"] == tms["tileMatrices"][3]["pointOfOrigin"]
    assert client.get("/ogc/tileMatrixSets/NZTM2000").status_code == 404
    assert client.get("/ogc/collections/roads/tiles/WorldCRS84Quad").status_code == 404


@pytest.mark.parametrize("tile", ["25/0/0", "2/4/0", "2/0/4", "-1/0/0"])
def test_req_core_tc_error_tile_outside_the_matrix_set_is_404(client: TestClient,
                                                               tile: str) -> None:
    r = client.get(f"/ogc/collections/roads/tiles/WebMercatorQuad/{tile}")
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "NotFound"


def test_tilejson_has_attribution_and_only_fields_the_tiles_carry(
        client: TestClient, demo_engine: Engine) -> None:
    body = client.get("/ogc/collections/stall_zones/tiles/WebMercatorQuad/tilejson.json").json()
    assert "citygrid" in body["attribution"]
    fields = set(body["vector_layers"][0]["fields"])
    assert {"name", "zone_type", "capacity"} <= fields
    assert not fields & {"time_slots", "seasons", "geom"}  # jsonb: ST_AsMVT drops them
    with demo_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM pub.stall_zones ORDER BY id LIMIT 1")).one()
    x, y = lonlat_to_tile(lon, lat, 15)
    tile = client.get(f"/ogc/collections/stall_zones/tiles/WebMercatorQuad/15/{x}/{y}")
    features = mapbox_vector_tile.decode(tile.content)["stall_zones"]["features"]
    carried = set().union(*(f["properties"] for f in features))
    assert carried <= fields | {"id"}


def test_gdal_ogcapi_discovers_the_vector_tileset(ogc_url: str) -> None:
    # GDAL's OGCAPI driver follows collection -> tilesets-vector -> tileset (rel=item) ->
    # tiling-scheme; before issue 17 it stopped at "Missing links". GDAL 3.6 then still
    # declines to open vector tiles (its own limitation, see README), so the test checks the
    # discovery chain and that no step is refused.
    output, fetched = ogrinfo_logged("-so", f"OGCAPI:{ogc_url}/collections/streetlights",
                                     "-oo", "API=TILES")
    paths = [urlsplit(u).path for u in fetched]
    assert paths[:4] == ["/ogc/collections/streetlights", "/ogc/collections/streetlights/tiles",
                         "/ogc/collections/streetlights/tiles/WebMercatorQuad",
                         "/ogc/tileMatrixSets/WebMercatorQuad"], fetched
    for refusal in ("Missing links", "Cannot find", "Invalid tiling matrix set",
                    "missing in tile URL", "buffer too small"):
        assert refusal not in output


# --- OGC API - Features ---------------------------------------------------------------------


@pytest.mark.parametrize(("params", "headers"), [
    ({"f": "json"}, {}), ({}, {"accept": "application/json"}), ({}, {}),
    ({"f": "geojson"}, {"accept": "text/html"}),
])
def test_req_geojson_json_answers_are_geojson(client: TestClient, params: dict,
                                              headers: dict) -> None:
    r = client.get("/ogc/collections/facilities/items", params={"limit": 2, **params},
                   headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.json()["type"] == "FeatureCollection" and len(r.json()["features"]) == 2
    one = r.json()["features"][0]["id"]
    item = client.get(f"/ogc/collections/facilities/items/{one}", params=params,
                      headers=headers)
    assert item.json()["type"] == "Feature"


@pytest.mark.parametrize("path", ["/ogc/", "/ogc/collections", "/ogc/collections/facilities",
                                  "/ogc/collections/facilities/items?limit=2",
                                  "/ogc/collections/facilities/items/{first}"])
def test_req_html_every_json_resource_links_its_html_alternate(client: TestClient,
                                                               path: str) -> None:
    first = client.get("/ogc/collections/facilities/items?limit=1").json()["features"][0]["id"]
    doc = client.get(path.format(first=first)).json()
    (alternate,) = [link for link in links(doc, "alternate") if link["type"] == "text/html"]
    page = client.get(alternate["href"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("params", "named"), [
    ({"stat": "damaged"}, "stat"), ({"limt": "5"}, "limt"), ({"bbox_crs": "x"}, "bbox_crs"),
])
def test_req_core_query_param_unknown_is_400(client: TestClient, params: dict,
                                             named: str) -> None:
    r = client.get("/ogc/collections/streetlights/items", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue" and named in r.json()["description"]
    # A layer's own columns are parameters (Part 1 /req/core/fc-filters), not unknown.
    assert client.get("/ogc/collections/streetlights/items",
                      params={"state": "damaged", "limit": 1}).status_code == 200
    assert client.get("/ogc/collections", params=params).status_code == 400


@pytest.mark.parametrize("params", [
    {"bbox": "1,2"}, {"limit": "ten"}, {"offset": "-1"}, {"f": "xml"},
    {"filter": "nosuchcolumn = 1"}, {"datetime": "yesterday"}, {"simplify": "nan"},
])
def test_req_core_query_param_invalid_is_400_with_ogc_exception(client: TestClient,
                                                               params: dict) -> None:
    r = client.get("/ogc/collections/streetlights/items", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "description"} and body["description"]


def test_req_core_fc_limit_response_out_of_range_limit_is_capped(client: TestClient) -> None:
    for asked, used in (("0", "1"), ("-5", "1"), ("10001", "10000"), ("99999999", "10000")):
        r = client.get("/ogc/collections/facilities/items", params={"limit": asked})
        assert r.status_code == 200, (asked, r.text)
        self_link = links(r.json(), "self")[0]["href"]
        assert parse_qs(urlsplit(self_link).query)["limit"] == [used], asked
    assert client.get("/ogc/collections/facilities/items",
                      params={"limit": 0}).json()["numberReturned"] == 1


def test_req_oas30_ogc_has_its_own_openapi_30_document(client: TestClient) -> None:
    landing = client.get("/ogc/").json()
    (desc,) = links(landing, "service-desc")
    assert desc["type"] == "application/vnd.oai.openapi+json;version=3.0"
    r = client.get(desc["href"])
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)  # openapi-spec-validator: raises on any 3.1-only construct
    assert doc["servers"] == [{"url": "/ogc", "description": "公共图层 OGC API"}]
    assert "/collections/{collectionId}/items" in doc["paths"]
    assert not [p for p in doc["paths"] if p.startswith(("/cases", "/zones", "/open311",
                                                         "/ogc", "/analysis"))]
    # Per-layer items paths declare the layer's columns (GDAL filters by them server-side).
    names = {p["name"] for p in doc["paths"]["/collections/streetlights/items"]["get"]
             ["parameters"]}
    assert {"state", "code", "limit", "bbox", "filter"} <= names


def test_landing_service_doc_is_the_swagger_ui_of_ogc_api(client: TestClient) -> None:
    landing = client.get("/ogc/").json()
    (doc,) = links(landing, "service-doc")
    (desc,) = links(landing, "service-desc")
    assert urlsplit(doc["href"]).path == "/ogc/api.html" and doc["type"] == "text/html"
    assert urlsplit(desc["href"]).path == "/ogc/api"
    page = client.get(doc["href"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The page documents /ogc/api (not the whole app's /openapi.json), from local assets.
    assert "'/ogc/api'" in page.text and "/openapi.json" not in page.text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()


def test_req_filter_cql2_conformance_classes_declared(client: TestClient) -> None:
    assert CQL2_CLASSES <= set(client.get("/ogc/conformance").json()["conformsTo"])
    # What is declared works: text, JSON, a spatial function.
    for params in ({"filter": "state = 'damaged' AND lit = false"},
                   {"filter": '{"op":"=","args":[{"property":"state"},"damaged"]}',
                    "filter-lang": "cql2-json"},
                   {"filter": "S_INTERSECTS(geom, BBOX(117.02, 36.64, 117.05, 36.67))"}):
        r = client.get("/ogc/collections/streetlights/items", params={**params, "limit": 1})
        assert r.status_code == 200, (params, r.text)


def test_gdal_filters_attributes_and_bbox_on_the_server(ogc_url: str,
                                                        demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        damaged = conn.execute(text(
            "SELECT count(*) FROM pub.streetlights WHERE state = 'damaged'")).scalar_one()
        total = conn.execute(text("SELECT count(*) FROM pub.streetlights")).scalar_one()
    assert 0 < damaged < total / 10
    output, fetched = ogrinfo_logged("-q", "-al", f"OAPIF:{ogc_url}", "streetlights",
                                     "-where", "state = 'damaged'")
    assert len(re.findall(r"^OGRFeature\(streetlights\)", output, flags=re.M)) == damaged
    items = [u for u in fetched if "/items" in u]
    assert all("state=damaged" in u for u in items[1:]), items[:3]
    # GDAL pages by 10: one request per 10 matches (+ the schema probe), not per 10 rows.
    assert len(items) <= damaged / 10 + 3, len(items)
    output, fetched = ogrinfo_logged("-q", "-al", f"OAPIF:{ogc_url}", "streetlights",
                                     "-spat", "117.02", "36.64", "117.03", "36.65")
    assert any("bbox=" in u for u in fetched if "/items" in u)


def test_collections_have_chinese_titles_and_descriptions(client: TestClient) -> None:
    collections = client.get("/ogc/collections").json()["collections"]
    assert {c["id"] for c in collections} == PUBLIC_LAYERS
    for c in collections:
        assert re.search(r"[\u4e00-\u9fff]", c["title"]), c
        assert re.search(r"[\u4e00-\u9fff]", c["description"]), c
    assert client.get("/ogc/collections/streetlights").json()["title"] == "路灯"


def test_datetime_on_a_layer_without_time_is_400(client: TestClient) -> None:
    # Only stall zones have time (their validity, tests/public/test_ogc_time.py).
    for layer in PUBLIC_LAYERS - {"stall_zones"}:
        assert "temporal" not in client.get(f"/ogc/collections/{layer}").json()["extent"]
    r = client.get("/ogc/collections/streetlights/items",
                   params={"datetime": "2026-01-01T00:00:00Z"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"
    assert "has no time" in r.json()["description"]
