"""/ogc with real clients against a live server: OWSLib and GDAL's OAPIF driver.

The server is uvicorn on a loopback port (the `ogc_url` fixture, tests/support/browser.serve).
Expected answers are computed from the public views themselves, so each test fails if the
client saw anything else; GDAL's debug log shows which requests it made, so server-side
filtering is observed, not assumed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import mapbox_vector_tile
import pytest
from owslib.ogcapi.features import Features
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.public.test_ogc_api import OGRINFO, PUBLIC_LAYERS, lonlat_to_tile
from tests.support.browser import chromium_or_skip, offline_page

BBOX = (117.02, 36.64, 117.06, 36.67)


@pytest.fixture(scope="module")
def owslib(ogc_url: str) -> Iterator[Features]:
    # requests would send loopback traffic through a configured proxy.
    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"
    yield Features(ogc_url, timeout=120)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def feature_ids(answer: dict) -> set:
    return {f["id"] for f in answer["features"]}


def test_owslib_lists_the_collections_and_conformance(owslib: Features) -> None:
    assert set(owslib.feature_collections()) == PUBLIC_LAYERS
    conformance = owslib.conformance()["conformsTo"]
    assert any(c.endswith("/conf/geojson") for c in conformance)
    assert any(c.endswith("/conf/features-filter") for c in conformance)
    collection = owslib.collection("stall_zones")
    assert collection["title"] == "摊点疏导区"
    assert collection["extent"]["temporal"]["interval"][0][0]


def test_owslib_reads_items_in_a_bbox(owslib: Features, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        expected = set(conn.execute(text(
            "SELECT id FROM pub.streetlights "
            "WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", BBOX, strict=True))).scalars())
    assert 0 < len(expected) < 10_000
    answer = owslib.collection_items("streetlights", bbox=list(BBOX), limit=10_000)
    assert answer["numberMatched"] == len(expected)
    assert feature_ids(answer) == expected


def test_owslib_cql2_filter_is_applied_by_the_server(owslib: Features,
                                                     demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        expected = set(conn.execute(text(
            "SELECT id FROM pub.streetlights WHERE state = 'damaged' AND NOT lit")).scalars())
    assert expected
    answer = owslib.collection_items("streetlights", filter="state = 'damaged' AND lit = false",
                                     limit=10_000)
    assert feature_ids(answer) == expected and answer["numberMatched"] == len(expected)


def test_owslib_datetime_selects_zones_by_validity(owslib: Features,
                                                   demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, valid_from, valid_to FROM pub.stall_zones")).all()
    now = dt.datetime.now(dt.UTC)
    later = max(r.valid_to for r in rows if r.valid_to is not None) + dt.timedelta(days=1)
    answer = owslib.collection_items("stall_zones", datetime_=now.isoformat(), limit=1000)
    assert feature_ids(answer) == {r.id for r in rows}
    answer = owslib.collection_items("stall_zones", datetime_=f"{later.isoformat()}/..",
                                     limit=1000)
    assert feature_ids(answer) == {r.id for r in rows if r.valid_to is None}
    assert len(answer["features"]) < len(rows)


def test_owslib_pages_through_a_layer(owslib: Features, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM pub.facilities")).scalar_one()
    seen: list = []
    offset = 0
    while True:
        page = owslib.collection_items("facilities", limit=25, offset=offset)
        seen.extend(f["id"] for f in page["features"])
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        offset = int(parse_qs(urlsplit(following[0]["href"]).query)["offset"][0])
    assert len(seen) == len(set(seen)) == total
    assert total > 50  # several pages


def test_ogrinfo_where_is_filtered_on_the_server(ogc_url: str, demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        expected = conn.execute(text(
            "SELECT count(*) FROM pub.manhole_covers WHERE state = 'missing'")).scalar_one()
        total = conn.execute(text("SELECT count(*) FROM pub.manhole_covers")).scalar_one()
    assert 0 < expected < total / 10
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
           "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "ON"}
    done = subprocess.run([OGRINFO, "-ro", "-q", "-al", f"OAPIF:{ogc_url}", "manhole_covers",
                           "-where", "state = 'missing'", "-oo", "PAGE_SIZE=1000"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    log = done.stdout + done.stderr
    assert len(re.findall(r"^OGRFeature\(manhole_covers\)", log, flags=re.M)) == expected
    items = [u for u in re.findall(r"HTTP: Fetch\((\S+)\)", log) if "/items" in u]
    # The condition travels in the URL; the server sends only the matches (one page).
    assert any("state=missing" in u for u in items), items
    assert len(items) <= 3, items


def _gdal_version() -> tuple[int, int]:
    out = subprocess.run([OGRINFO, "--version"], capture_output=True, text=True,
                         check=False).stdout
    major, minor = re.search(r"GDAL (\d+)\.(\d+)", out).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_gdal_reads_our_vector_tiles(ogc_url: str, demo_engine: Engine, tmp_path) -> None:
    # GDAL 3.6's OGCAPI driver (Debian 12) is built without its vector-tile code: the branch
    # sits under #ifdef OGR_ENABLE_DRIVER_GML, which its CMake defines only after frmts/ is
    # configured (see README, Interoperability), so `-oo API=TILES` cannot open any vector
    # tileset there, ours included. What works with 3.6: its MVT driver on our tiles, and the
    # OGCAPI discovery chain (test_ogc_conformance.py). Newer GDAL must list the zoom levels.
    with demo_engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(geom), ST_Y(geom) FROM pub.streetlights ORDER BY code LIMIT 1")).one()
    col, row = lonlat_to_tile(lon, lat, 14)
    url = f"{ogc_url}/collections/streetlights/tiles/WebMercatorQuad/14/{col}/{row}"
    tile = httpx.get(url, timeout=120)
    assert tile.status_code == 200
    expected = len(mapbox_vector_tile.decode(tile.content)["streetlights"]["features"])
    path = tmp_path / "tile.mvt"
    path.write_bytes(tile.content)
    done = subprocess.run([OGRINFO, "-ro", "-q", "-al", "-oo", "Z=14", "-oo", f"X={col}",
                           "-oo", f"Y={row}", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert len(re.findall(r"^OGRFeature\(streetlights\)", done.stdout, flags=re.M)) == expected
    assert expected > 0 and "POINT (1302" in done.stdout  # placed in web mercator metres
    if _gdal_version() >= (3, 7):
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        listed = subprocess.run([OGRINFO, "-ro", "-so", f"OGCAPI:{ogc_url}/collections/"
                                 "streetlights", "-oo", "API=TILES"], capture_output=True,
                                text=True, env=env, timeout=300, check=False)
        assert "Zoom level" in listed.stdout, listed.stdout + listed.stderr


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_service_doc_page_documents_ogc_api_offline(ogc_url: str, width: int,
                                                    height: int) -> None:
    with offline_page(chromium_or_skip(), width=width, height=height) as browser:
        page = browser.page
        response = page.goto(f"{ogc_url}/api.html", wait_until="load", timeout=120_000)
        assert response is not None and response.status == 200
        # Swagger UI has fetched /ogc/api and lists its operations, and only those.
        page.wait_for_selector(".opblock", timeout=60_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert any(p.startswith("/collections/{collectionId}/items") for p in paths), paths
        assert not [p for p in paths if p.startswith(("/cases", "/zones", "/open311"))]
        assert "OGC API" in page.locator(".info .title").inner_text()
        assert browser.external == [] and browser.errors == []
