"""/ogc tiles kept per layer data version (api/ogc_tile_cache.py): same bytes, ETag and 304,
a change to the layer's table seen by the next request, uncached layers and errors untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import mapbox_vector_tile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError

from api.ogc_tile_cache import OgcTileCacheMiddleware, TileCache
from gis.platform.db import make_engine, role_url
from gis.platform.settings import Settings


@pytest.fixture(scope="module")
def client(demo_client: TestClient) -> TestClient:
    return demo_client


@pytest.fixture
def cache(demo_app: FastAPI, client: TestClient) -> Iterator[TileCache]:
    """The app's tile cache (its middleware instance), emptied before the test."""
    layer = demo_app.middleware_stack
    while layer is not None and not isinstance(layer, OgcTileCacheMiddleware):
        layer = getattr(layer, "app", None)
    assert layer is not None, "OgcTileCacheMiddleware is not in the app's stack"
    layer.cache = TileCache()
    yield layer.cache


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return (int((lon + 180.0) / 360.0 * n),
            int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n))


def _light(engine: Engine) -> tuple[str, str]:
    with engine.connect() as conn:
        code, lon, lat = conn.execute(text(
            "SELECT code, ST_X(geom), ST_Y(geom) FROM streetlights ORDER BY code LIMIT 1")).one()
    x, y = _tile_of(lon, lat, 14)
    return code, f"/ogc/collections/streetlights/tiles/WebMercatorQuad/14/{x}/{y}"


def _states(body: bytes) -> dict[str, str]:
    features = mapbox_vector_tile.decode(body)["streetlights"]["features"]
    return {f["properties"]["code"]: f["properties"]["state"] for f in features}


def test_a_tile_is_made_once_per_version_with_etag_and_304(
        client: TestClient, cache: TileCache, demo_engine: Engine) -> None:
    code, path = _light(demo_engine)
    first = client.get(path)
    assert first.status_code == 200 and cache.misses == 1 and cache.hits == 0
    etag = first.headers["etag"]
    second = client.get(path)
    assert second.status_code == 200 and cache.hits == 1 and cache.misses == 1
    assert second.content == first.content and second.headers["etag"] == etag
    assert second.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    # The outer middlewares run on a cached answer too: CORS and security headers.
    assert second.headers["access-control-allow-origin"] == "*"
    assert second.headers["x-content-type-options"] == "nosniff"
    assert code in _states(second.content)
    # Another query string is another tile.
    other = client.get(path, params={"properties": "code"})
    assert other.status_code == 200 and cache.misses == 2
    assert set(mapbox_vector_tile.decode(other.content)["streetlights"]["features"][0]
               ["properties"]) <= {"code"}

    unchanged = client.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag


def test_an_edit_of_the_layer_is_seen_by_the_next_request(
        client: TestClient, cache: TileCache, demo_engine: Engine) -> None:
    code, path = _light(demo_engine)
    before = client.get(path)
    assert client.get(path).content == before.content and cache.hits == 1
    old = _states(before.content)[code]
    new = "damaged" if old != "damaged" else "intact"
    with demo_engine.begin() as conn:
        conn.execute(text("UPDATE streetlights SET state = :s WHERE code = :c"),
                     {"s": new, "c": code})
    try:
        after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and cache.misses == 2
        assert _states(after.content)[code] == new
        assert after.headers["etag"] != before.headers["etag"]
    finally:
        with demo_engine.begin() as conn:
            conn.execute(text("UPDATE streetlights SET state = :s WHERE code = :c"),
                         {"s": old, "c": code})
    assert _states(client.get(path).content)[code] == old


def test_layers_without_a_version_and_errors_pass_through(
        client: TestClient, cache: TileCache, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM pub.stall_zones LIMIT 1")).one()
    x, y = _tile_of(lon, lat, 15)
    for _ in range(2):
        r = client.get(f"/ogc/collections/stall_zones/tiles/WebMercatorQuad/15/{x}/{y}")
        assert r.status_code == 200 and "etag" not in r.headers
    missing = "/ogc/collections/streetlights/tiles/WebMercatorQuad/99/0/0"
    for _ in range(2):
        r = client.get(missing)
        assert r.status_code == 404 and "zoom 99" in r.json()["description"]
    assert cache.hits == 0 and not cache.entries


def test_the_public_role_reads_the_nine_versions_and_not_the_table(
        demo_settings: Settings) -> None:
    from api.ogc_tile_cache import LAYER_TABLES

    public = make_engine(role_url(demo_settings, "public"))
    try:
        with public.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "citygrid_public"
            rows = conn.execute(text("SELECT table_name, version FROM pub.layer_versions()"))
            assert {r.table_name for r in rows} == set(LAYER_TABLES.values())
        with public.connect() as conn, pytest.raises(ProgrammingError, match="permission"):
            conn.execute(text("SELECT * FROM data_versions"))
    finally:
        public.dispose()


def test_gzip_and_identity_are_two_variants_of_the_same_bytes(
        client: TestClient, cache: TileCache, demo_engine: Engine) -> None:
    _, path = _light(demo_engine)
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert len(plain.content) >= 2048  # big enough for the app's gzip middleware
    gz = client.get(path, headers={"Accept-Encoding": "gzip"})
    again = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert cache.misses == 1 and cache.hits == 2
    for r in (gz, again):  # httpx decodes the gzip stream: the same tile bytes
        assert r.headers["content-encoding"] == "gzip" and r.content == plain.content
        assert "Accept-Encoding" in r.headers["vary"]
    assert gz.headers["etag"] == again.headers["etag"] != plain.headers["etag"]
    assert client.get(path, headers={"Accept-Encoding": "gzip",
                                     "If-None-Match": gz.headers["etag"]}).status_code == 304
    assert client.get(path, headers={"Accept-Encoding": "identity",
                                     "If-None-Match": gz.headers["etag"]}).status_code == 200
