"""Staff vector tiles over the demo city: addresses, auth, aggregation, RLS, caching, base map."""

from __future__ import annotations

import gzip
import math

import mapbox_vector_tile
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.geo.tile_layers import POINT_LAYERS
from tests.support.accounts import headers_for


def tiles_covering(engine: Engine, z: int, district: str = "") -> list[tuple[int, int]]:
    """Every XYZ tile at zoom `z` touching a demo district's grid cells ("" for all three)."""
    # Tests that pick tiles by position take 历下区's: it holds the dense layers (lights,
    # covers), where the lighter neighbours' tiles are mostly empty.
    with engine.connect() as conn:
        x1, y1, x2, y2 = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) AS e FROM grid_cells WHERE code LIKE :d) s"),
            {"d": district + "%"}).one()

    def col(lon: float) -> int:
        return int((lon + 180) / 360 * 2 ** z)

    def row(lat: float) -> int:
        return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)

    return [(x, y) for x in range(col(x1), col(x2) + 1) for y in range(row(y2), row(y1) + 1)]


@pytest.fixture(scope="module")
def analyst(demo_engine: Engine) -> dict[str, str]:
    return headers_for(demo_engine, "analyst")


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body) if body else {}


def layer_sum(client, headers, layer: str, z: int, tiles, prop: str = "n") -> int:
    total = 0
    for x, y in tiles:
        response = client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers=headers)
        assert response.status_code == 200, response.text
        for feature in decode(response.content).get(layer, {}).get("features", []):
            total += feature["properties"][prop]
    return total


def test_tiles_need_a_signed_in_staff_member(demo_client) -> None:
    assert demo_client.get("/tiles/cases/14/13518/6396.pbf").status_code == 401
    assert demo_client.get("/tiles/basemap/14/13518/6396.pbf").status_code == 401


@pytest.mark.parametrize("path", [
    "/tiles/cases/21/0/0.pbf", "/tiles/cases/-1/0/0.pbf", "/tiles/cases/3/8/0.pbf",
    "/tiles/cases/3/0/8.pbf", "/tiles/cases/3/-1/0.pbf", "/tiles/basemap/3/0/99.pbf",
    "/tiles/users/14/13518/6396.pbf", "/tiles/audit_log/3/0/0.pbf"])
def test_tiles_outside_the_range_or_unknown_layers_are_404(demo_client, analyst,
                                                           path: str) -> None:
    assert demo_client.get(path, headers=analyst).status_code == 404


@pytest.mark.parametrize("layer", list(POINT_LAYERS))
def test_low_zooms_count_every_point_once(demo_client, demo_engine, analyst, layer) -> None:
    z = 12  # below every detail zoom: bins, each counted in exactly one tile
    tiles = tiles_covering(demo_engine, z)
    with demo_engine.connect() as conn:
        expected = conn.execute(text(f"SELECT count(*) FROM {layer}")).scalar_one()
    assert expected > 10_000 or layer == "cases"
    assert layer_sum(demo_client, analyst, layer, z, tiles) == expected


def test_detail_zoom_has_features_with_properties(demo_client, demo_engine, analyst) -> None:
    z = POINT_LAYERS["cases"].detail_zoom
    for x, y in tiles_covering(demo_engine, z, "370102")[40:]:
        body = demo_client.get(f"/tiles/cases/{z}/{x}/{y}.pbf", headers=analyst).content
        features = decode(body).get("cases", {}).get("features", [])
        if features:
            props = features[0]["properties"]
            assert props["case_no"] and props["status"] and "n" not in props
            assert len(props["reported_at"]) == 16  # city time to the minute
            return
    pytest.fail("no case tile with features at the detail zoom")


def test_grid_cells_aggregate_to_communities_below_zoom_15(demo_client, demo_engine,
                                                           analyst) -> None:
    tiles = tiles_covering(demo_engine, 13)
    with demo_engine.connect() as conn:
        cells = conn.execute(text("SELECT count(*) FROM grid_cells")).scalar_one()
    counted: dict[str, int] = {}
    for x, y in tiles:
        body = demo_client.get(f"/tiles/grid_cells/13/{x}/{y}.pbf", headers=analyst).content
        for feature in decode(body).get("grid_cells", {}).get("features", []):
            counted[feature["properties"]["community_code"]] = feature["properties"]["cells"]
    # Thousands of cells in three districts drawn as their 632 communities.
    assert sum(counted.values()) == cells and len(counted) <= 632 < cells / 5


def test_grid_owner_tiles_hold_only_their_grids(demo_client, demo_engine) -> None:
    with demo_engine.connect() as conn:
        owner, theirs, total = conn.execute(text("""
            SELECT o.owner_name, count(c.id), (SELECT count(*) FROM cases)
            FROM grid_owners o JOIN cases c ON c.grid_code = o.grid_code
            WHERE o.valid_to IS NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1""")).one()
    headers = headers_for(demo_engine, "grid_owner", owner_name=owner)
    tiles = tiles_covering(demo_engine, 12)
    assert 0 < theirs < total
    assert layer_sum(demo_client, headers, "cases", 12, tiles) == theirs


def test_tiles_revalidate_with_etag_and_gzip(demo_client, demo_engine, analyst) -> None:
    x, y = tiles_covering(demo_engine, 13, "370102")[2]
    first = demo_client.get(f"/tiles/roads/13/{x}/{y}.pbf",
                            headers={**analyst, "Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert first.headers["content-encoding"] == "gzip"
    assert "no-cache" in first.headers["cache-control"]
    again = demo_client.get(f"/tiles/roads/13/{x}/{y}.pbf",
                            headers={**analyst, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    # httpx decoded the gzip body; it is a real tile
    assert decode(first.content)["roads"]["features"]
    assert len(gzip.compress(first.content)) < len(first.content)


def test_light_and_cover_counts_never_share_a_spot(demo_client, demo_engine, analyst) -> None:
    z = 14
    px = 256 * 2 ** z

    def spots(layer: str, x: int, y: int) -> list[tuple[float, float]]:
        body = demo_client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers=analyst).content
        tile = decode(body).get(layer, {"features": [], "extent": 4096})
        scale = 256 / tile["extent"]
        return [(x * 256 + f["geometry"]["coordinates"][0] * scale,
                 y * 256 + f["geometry"]["coordinates"][1] * scale)
                for f in tile["features"]]

    lights: list[tuple[float, float]] = []
    covers: list[tuple[float, float]] = []
    for x, y in tiles_covering(demo_engine, z, "370102")[:12]:
        lights += spots("streetlights", x, y)
        covers += spots("manhole_covers", x, y)
    assert lights and covers and px
    nearest = min(math.dist(a, b) for a in lights for b in covers)
    assert nearest >= 44  # half a 64 px bin diagonally: room for two 30 px numbers


def test_basemap_has_outlines_roads_landmarks_and_thinned_labels(demo_client, demo_engine,
                                                                analyst) -> None:
    seen: dict[str, int] = {}
    texts: set[str] = set()
    for x, y in tiles_covering(demo_engine, 15, "370102")[::7]:
        response = demo_client.get(f"/tiles/basemap/15/{x}/{y}.pbf", headers=analyst)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, max-age=3600"
        tile = decode(response.content)
        for name, layer in tile.items():
            seen[name] = seen.get(name, 0) + len(layer["features"])
        labels = tile.get("labels", {"features": [], "extent": 4096})
        cells = set()
        for feature in labels["features"]:
            lx, ly = feature["geometry"]["coordinates"]
            scale = 256 / labels["extent"]
            # MVT y grows upwards in the decoder's default (y flipped): cells by 64 x 32 px
            cell = (int(lx * scale // 64), int(ly * scale // 32))
            assert cell not in cells, f"two labels in one cell: {feature}"
            cells.add(cell)
            texts.add(feature["properties"]["text"])
    for name in ("district", "subdistricts", "communities", "roads", "landmarks", "labels"):
        assert seen.get(name), f"base map layer {name} missing: {seen}"
    assert any(t.endswith(("路", "街")) for t in texts), texts  # road names
    assert any("社区" in t or "居委会" in t or "居民委员会" in t for t in texts), texts
