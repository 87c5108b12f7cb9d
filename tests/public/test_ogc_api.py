"""OGC API Features and Tiles over the demo city, read by real clients: GDAL and an MVT decoder.

GDAL's OAPIF driver follows the landing page, collections and `next` links exactly as QGIS
does, so a layer it lists with the right count and reads with the right attributes is one a
GIS officer can open.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess

import mapbox_vector_tile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

OGRINFO = shutil.which("ogrinfo") or "/usr/bin/ogrinfo"
PUBLIC_LAYERS = {"districts", "subdistricts", "communities", "grid_cells", "roads", "stations",
                 "facilities", "stall_zones", "streetlights", "manhole_covers"}
# Columns of the underlying tables that must never reach the public.
INTERNAL_COLUMNS = {"owner", "maintainer", "staff", "status", "version", "in_use",
                    "recorded_at", "updated_at", "grid_code", "owner_phone"}


@pytest.fixture(scope="module")
def app(demo_app: FastAPI) -> FastAPI:
    return demo_app


@pytest.fixture(scope="module")
def client(demo_client: TestClient) -> TestClient:
    return demo_client


def ogrinfo(*args: str) -> str:
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
           "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF"}
    done = subprocess.run([OGRINFO, "-ro", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def layer_summaries(output: str) -> dict[str, dict]:
    """Layer name -> {'count': int, 'fields': set} from `ogrinfo -so -al`."""
    layers: dict[str, dict] = {}
    current: dict | None = None
    for line in output.splitlines():
        if m := re.match(r"^Layer name: (\S+)", line):
            current = layers.setdefault(m.group(1), {"count": None, "fields": set()})
        elif current is not None and (m := re.match(r"^Feature Count: (\d+)", line)):
            current["count"] = int(m.group(1))
        elif current is not None and (m := re.match(r"^(\w+): \w+", line)):
            if m.group(1) not in {"Geometry", "Extent", "FID", "Layer", "Data", "Ellipsoid"}:
                current["fields"].add(m.group(1))
    return layers


def view_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(text(f"SELECT count(*) FROM pub.{name}")).scalar_one()
                for name in PUBLIC_LAYERS}


def view_columns(engine: Engine, name: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_schema = 'pub' AND table_name = :n"), {"n": name})
        return {r[0] for r in rows} - {"geom"}


def test_pub_schema_holds_exactly_the_public_layers(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        views = set(conn.execute(text(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'pub'"
        )).scalars())
    # The Open311 views (0013), the published case photos (0018) and the public address
    # search (0019) have no geometry column, so the OGC API lists only the layers.
    non_spatial = {"service_requests", "services", "case_photos", "geocode_names",
                   "geocode_doorplates", "geocode_version"}
    assert views == PUBLIC_LAYERS | non_spatial


def test_ogrinfo_lists_every_public_layer(ogc_url: str) -> None:
    out = ogrinfo("-so", f"OAPIF:{ogc_url}")
    listed = set(re.findall(r"^\d+: (\w+) ", out, flags=re.MULTILINE))
    assert listed == PUBLIC_LAYERS


def test_ogrinfo_counts_and_fields_match_the_views(ogc_url: str, demo_engine: Engine) -> None:
    layers = layer_summaries(ogrinfo("-so", "-al", f"OAPIF:{ogc_url}"))
    assert set(layers) == PUBLIC_LAYERS
    counts = view_counts(demo_engine)
    assert all(counts[name] > 0 for name in PUBLIC_LAYERS), counts
    assert {name: layers[name]["count"] for name in PUBLIC_LAYERS} == counts
    for name in PUBLIC_LAYERS:
        assert layers[name]["fields"] == view_columns(demo_engine, name), name
        assert not layers[name]["fields"] & INTERNAL_COLUMNS, name


def test_ogrinfo_pages_through_a_whole_layer(ogc_url: str, demo_engine: Engine) -> None:
    # 300 facilities at GDAL's page size means dozens of `next` links followed to the end.
    out = ogrinfo("-al", "-q", f"OAPIF:{ogc_url}", "facilities")
    ids = re.findall(r"^OGRFeature\(facilities\):(\d+)$", out, flags=re.MULTILINE)
    assert len(ids) == len(set(ids)) == view_counts(demo_engine)["facilities"]


def test_ogrinfo_reads_a_feature_with_its_attributes(ogc_url: str, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT id, code, name, phone, opening_hours, ST_X(geom) AS x, ST_Y(geom) AS y "
            "FROM pub.stations ORDER BY id LIMIT 1 OFFSET 3")).mappings().one()
    out = ogrinfo("-al", f"OAPIF:{ogc_url}", "stations", "-where", f"id = {row['id']}")
    assert f"OGRFeature(stations):{row['id']}" in out
    assert f"name (String) = {row['name']}" in out
    assert f"code (String) = {row['code']}" in out
    assert f"phone (String) = {row['phone']}" in out
    x, y = map(float, re.search(r"POINT \(([\d.]+) ([\d.]+)\)", out).groups())  # type: ignore[union-attr]
    assert (x, y) == pytest.approx((row["x"], row["y"]), abs=1e-7)
    assert "staff" not in out


def test_landing_conformance_and_collections(client: TestClient, demo_engine: Engine) -> None:
    landing = client.get("/ogc/")
    assert landing.status_code == 200
    rels = {link["rel"] for link in landing.json()["links"]}
    assert {"self", "conformance", "data", "service-desc"} <= rels
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    for cls in ("http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
                "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt"):
        assert cls in conformance
    collections = client.get("/ogc/collections").json()["collections"]
    assert {c["id"] for c in collections} == PUBLIC_LAYERS
    service_desc = next(link["href"] for link in landing.json()["links"]
                        if link["rel"] == "service-desc")
    assert client.get(service_desc).status_code == 200
    one = client.get("/ogc/collections/streetlights").json()
    assert one["id"] == "streetlights"
    # The extent is the layer's own: the westernmost light of the whole demo city.
    with demo_engine.connect() as conn:
        west = conn.execute(text("SELECT ST_XMin(ST_Extent(geom)) FROM streetlights")).scalar()
    assert one["extent"]["spatial"]["bbox"][0][0] == pytest.approx(west, abs=0.02)


def test_items_are_geojson_with_paging_links(client: TestClient, demo_engine: Engine) -> None:
    r = client.get("/ogc/collections/roads/items", params={"limit": 5, "offset": 10})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == 5
    assert body["numberMatched"] == view_counts(demo_engine)["roads"]
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert "offset=15" in links["next"] and "offset=5" in links["prev"]
    assert "/ogc/collections/roads/items" in links["self"]
    with demo_engine.connect() as conn:
        expected = list(conn.execute(text("SELECT id FROM pub.roads ORDER BY id LIMIT 5 OFFSET 10"))
                        .scalars())
    assert [f["id"] for f in body["features"]] == expected


def test_bbox_filter_matches_postgis(client: TestClient, demo_engine: Engine) -> None:
    bbox = (117.02, 36.64, 117.05, 36.67)
    r = client.get("/ogc/collections/streetlights/items",
                   params={"bbox": ",".join(map(str, bbox)), "limit": 1})
    with demo_engine.connect() as conn:
        inside = conn.execute(text(
            "SELECT count(*) FROM pub.streetlights "
            "WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", bbox, strict=True))).scalar_one()
    assert 0 < inside < view_counts(demo_engine)["streetlights"]
    assert r.json()["numberMatched"] == inside


def test_single_item_and_not_public(client: TestClient, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        approved = conn.execute(text("SELECT min(id) FROM pub.stall_zones")).scalar_one()
        draft = conn.execute(text(
            "SELECT min(id) FROM stall_zones WHERE status <> 'approved'")).scalar_one()
    r = client.get(f"/ogc/collections/stall_zones/items/{approved}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.json()["id"] == approved
    assert "status" not in r.json()["properties"]
    assert draft is not None
    assert client.get(f"/ogc/collections/stall_zones/items/{draft}").status_code == 404
    for name in ("cases", "public.cases", "pub.streetlights", "public.streetlights"):
        r = client.get(f"/ogc/collections/{name}/items")
        assert r.status_code == 404, name
        assert r.json()["code"] == "NotFound" and name in r.json()["description"]


def test_bad_parameters_are_4xx(client: TestClient) -> None:
    # OGC API: an invalid parameter is 400 with {code, description}; a tile outside the
    # matrix set and an unknown matrix set name no resource (404). See test_ogc_conformance.
    r = client.get("/ogc/collections/streetlights/items", params={"bbox": "1,2"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"
    r = client.get("/ogc/collections/streetlights/tiles/WebMercatorQuad/99/0/0")
    assert r.status_code == 404 and "zoom 99" in r.json()["description"]
    r = client.get("/ogc/collections/streetlights/tiles/WebMercatorQuad/2/4/0")
    assert r.status_code == 404 and "2/4/0" in r.json()["description"]
    r = client.get("/ogc/collections/streetlights/tiles/NoSuchTMS/2/0/0")
    assert r.status_code == 404
    r = client.get("/ogc/collections/streetlights/items", params={"datetime": "not-a-time"})
    assert r.status_code == 400
    # Streetlights have no time; a datetime filter on them is refused, not a 500.
    r = client.get("/ogc/collections/streetlights/items",
                   params={"datetime": "2026-01-01T00:00:00Z/.."})
    assert r.status_code == 400 and "datetime" in r.json()["description"]


def test_html_pages_load_nothing_from_outside(client: TestClient) -> None:
    for path in ("/ogc/", "/ogc/collections", "/ogc/collections/facilities",
                 "/ogc/collections/facilities/items"):
        r = client.get(path, headers={"accept": "text/html"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "/static/vendor/bootstrap/css/bootstrap.min.css" in r.text, path
        # What the browser loads by itself: scripts, images, stylesheets (not plain links).
        external = re.findall(r"""(?:src=|<link[^>]*href=)["'](https?://[^"']+)""", r.text)
        assert all(u.startswith("http://testserver/") for u in external), (path, external)
        assert "tile.openstreetmap.org" not in r.text and "OpenStreetMap" not in r.text


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def test_mvt_tile_holds_the_streetlights_of_that_tile(client: TestClient,
                                                      demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        code, lon, lat = conn.execute(text(
            "SELECT code, ST_X(geom), ST_Y(geom) FROM pub.streetlights ORDER BY code LIMIT 1"
        )).one()
        x, y = lonlat_to_tile(lon, lat, 14)
        expected = set(conn.execute(text(
            "SELECT code FROM pub.streetlights "
            "WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(14, :x, :y), 4326))"),
            {"x": x, "y": y}).scalars())
    r = client.get(f"/ogc/collections/streetlights/tiles/WebMercatorQuad/14/{x}/{y}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    tile = mapbox_vector_tile.decode(r.content)
    assert set(tile) == {"streetlights"}
    features = tile["streetlights"]["features"]
    codes = {f["properties"]["code"] for f in features}
    assert code in codes
    assert codes == expected
    assert all(set(f["properties"]) <= {"id", "code", "state", "lit"} for f in features)
    extent = tile["streetlights"]["extent"]
    assert all(0 <= f["geometry"]["coordinates"][0] <= extent for f in features)


@pytest.mark.parametrize(("layer", "key", "allowed"), [
    ("stall_zones", "name", {"id", "name", "zone_type", "district_code", "time_slots",
                             "seasons", "capacity", "operator", "valid_from", "valid_to"}),
    ("grid_cells", "code", {"id", "code", "community_code", "area_m2"}),
])
def test_mvt_tile_holds_the_polygons_of_that_tile(client: TestClient, demo_engine: Engine,
                                                  layer: str, key: str,
                                                  allowed: set[str]) -> None:
    with demo_engine.connect() as conn:
        value, lon, lat = conn.execute(text(
            f"SELECT {key}, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            f"FROM pub.{layer} ORDER BY id LIMIT 1")).one()
        x, y = lonlat_to_tile(lon, lat, 15)
        expected = set(conn.execute(text(
            f"SELECT {key} FROM pub.{layer} "
            "WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(15, :x, :y), 4326))"),
            {"x": x, "y": y}).scalars())
        # Pieces of polygons crossing the tile edge are clipped to the tile (plus buffer).
        whole = set(conn.execute(text(
            f"SELECT {key} FROM pub.{layer} WHERE ST_Within(geom, "
            "ST_Transform(ST_TileEnvelope(15, :x, :y), 4326))"), {"x": x, "y": y}).scalars())
    r = client.get(f"/ogc/collections/{layer}/tiles/WebMercatorQuad/15/{x}/{y}")
    assert r.status_code == 200
    tile = mapbox_vector_tile.decode(r.content)
    assert set(tile) == {layer}
    features = tile[layer]["features"]
    assert value in {f["properties"][key] for f in features}
    assert {f["properties"][key] for f in features} == expected
    assert {f["geometry"]["type"] for f in features} <= {"Polygon", "MultiPolygon"}
    assert all(set(f["properties"]) <= allowed for f in features)
    extent = tile[layer]["extent"]

    def rings(geometry: dict) -> list[list[list[float]]]:
        polygons = (geometry["coordinates"] if geometry["type"] == "MultiPolygon"
                    else [geometry["coordinates"]])
        return [ring for polygon in polygons for ring in polygon]

    for f in features:
        ring = rings(f["geometry"])[0]
        assert len(ring) >= 4 and ring[0] == ring[-1], (f["properties"][key], ring)
        if f["properties"][key] in whole:  # wholly inside: every vertex on the tile
            assert all(0 <= px <= extent and 0 <= py <= extent for px, py in ring)


def test_mvt_tile_outside_the_city_is_empty(client: TestClient) -> None:
    x, y = lonlat_to_tile(0.0, 0.0, 14)
    r = client.get(f"/ogc/collections/streetlights/tiles/WebMercatorQuad/14/{x}/{y}")
    assert r.status_code in (200, 204)
    assert mapbox_vector_tile.decode(r.content) == {}


def test_tilejson_points_at_the_tiles(client: TestClient) -> None:
    r = client.get("/ogc/collections/manhole_covers/tiles/WebMercatorQuad/tilejson.json")
    assert r.status_code == 200
    body = r.json()
    assert body["tiles"][0].startswith(
        "http://testserver/ogc/collections/manhole_covers/tiles/WebMercatorQuad/{z}/{x}/{y}")
    assert [layer["id"] for layer in body["vector_layers"]] == ["manhole_covers"]
    fields = set(body["vector_layers"][0]["fields"])
    assert fields and not fields & INTERNAL_COLUMNS


def test_tile_pool_runs_without_jit_or_parallel_workers(client: TestClient) -> None:
    # Both settings halve dense-tile latency (bench/tiles.py); a regression would be silent.
    async def show() -> tuple[str, str]:
        async with client.app.state.pool.acquire() as conn:  # type: ignore[attr-defined]
            return (await conn.fetchval("SHOW jit"),
                    await conn.fetchval("SHOW max_parallel_workers_per_gather"))

    assert client.portal.call(show) == ("off", "0")  # type: ignore[union-attr]


def test_any_origin_may_read_ogc_but_not_internal_routes(client: TestClient) -> None:
    origin = {"origin": "https://maps.example.org"}
    r = client.get("/ogc/collections/streetlights/tiles/WebMercatorQuad/0/0/0", headers=origin)
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == "*"
    assert client.get("/ogc/collections", headers=origin).headers[
        "access-control-allow-origin"] == "*"
    r = client.get("/health", headers=origin)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in client.get("/ogcx", headers=origin).headers


def test_every_served_tipg_template_is_free_of_cdn_urls() -> None:
    # Pages not rendered above (item, tileset, tilematrixset...) are checked as sources, so a
    # tipg upgrade that changes a CDN URL fails here, naming the template and the URL.
    import jinja2

    from api.ogc import _LocalAssetsLoader

    env = jinja2.Environment(loader=_LocalAssetsLoader("tipg", "templates"))
    served = [t for t in env.list_templates() if t not in {"map.html", "viewer.html"}]
    assert "items.html" in served and "tileset.html" in served
    for name in served:
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        loaded = re.findall(r"""(?:src=|<link[^>]*href=|[tT]ileLayer\(\s*)["'](https?://[^"']+)""",
                            source)
        assert not loaded, (name, loaded)
