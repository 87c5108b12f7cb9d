"""Every public GET route, found by walking the app's routes, leaks nothing internal.

The routes are not listed by hand: every GET route under /public, /ogc and /open311 is called,
its path parameters filled from the seeded data (each collection, a feature of each, a tile of
each over the data, each service, the posted request). The database is this module's own,
holding tests.dispatch.test_routing's constructed city plus distinctive secrets in internal tables
and columns: grid owners' names and phones, a station's staff count, draft and retired zones,
an Open311 reporter's contact details and personal data typed into a description. The secrets
are first shown to be in the database, so a clean answer means something.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from api.main import create_app
from gis.platform.db import make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings
from tests.dispatch.test_routing import (
    GAS_OWNER,
    LIGHTING_OWNER,
    NEW_OWNER,
    OLD_OWNER,
    SEWER_OWNER,
    _square,
    build_city,
)
from tests.public.test_ogc_api import lonlat_to_tile
from tests.support.accounts import headers_for
from tests.support.databases import throwaway_database

PUBLIC_PREFIXES = ("/public", "/ogc", "/open311")
STAFF = 987654321  # a staff count no coordinate or id will spell
RETIRED_ZONE, RETIRED_OPERATOR = "退役秘密摊区", "退役运营方甲"
REPORTER = {"email": "reporter.secret@example.cn", "first_name": "秘名", "last_name": "报告人乙",
            "phone": "13700001111", "device_id": "DEVICE-SECRET-77",
            "account_id": "ACCOUNT-SECRET-88"}
DESCRIPTION_PII = ["13912345678", "leak.me@example.cn", "370102199001011234"]
DESCRIPTION = (f"有人私搭乱建，请回电 {DESCRIPTION_PII[0]}，邮箱 {DESCRIPTION_PII[1]}，"
               f"身份证 {DESCRIPTION_PII[2]}")
# (secret value, SQL that must find it in an internal table or column)
SECRETS: list[tuple[str, str]] = [
    *[(name, "SELECT count(*) FROM grid_owners WHERE owner_name = :v")
      for name in ("王网格员", "赵网格员", OLD_OWNER, NEW_OWNER, "钱网格员", "孙网格员")],
    *[(phone, "SELECT count(*) FROM grid_owners WHERE phone = :v")
      for phone in ("13800000001", "13800000002", "13800000004", "0531-86000004",
                    "13800000005", "13800000006")],
    (str(STAFF), "SELECT count(*) FROM stations WHERE staff::text = :v"),
    ("draft夜市", "SELECT count(*) FROM stall_zones WHERE name = :v AND status = 'draft'"),
    ("草案运营方", "SELECT count(*) FROM stall_zones WHERE operator = :v AND status = 'draft'"),
    (RETIRED_ZONE, "SELECT count(*) FROM stall_zones WHERE name = :v AND status = 'retired'"),
    (RETIRED_OPERATOR, "SELECT count(*) FROM stall_zones WHERE operator = :v"),
    *[(owner, "SELECT count(*) FROM (SELECT owner FROM streetlights UNION ALL "
              "SELECT owner FROM manhole_covers) o WHERE owner = :v")
      for owner in (LIGHTING_OWNER, SEWER_OWNER, GAS_OWNER)],
    ("养护公司", "SELECT count(*) FROM streetlights WHERE maintainer = :v"),
    (REPORTER["email"], "SELECT count(*) FROM open311_requests WHERE reporter_email = :v"),
    (REPORTER["first_name"],
     "SELECT count(*) FROM open311_requests WHERE reporter_first_name = :v"),
    (REPORTER["last_name"], "SELECT count(*) FROM open311_requests WHERE reporter_last_name = :v"),
    (REPORTER["phone"], "SELECT count(*) FROM open311_requests WHERE reporter_phone = :v"),
    (REPORTER["device_id"], "SELECT count(*) FROM open311_requests WHERE device_id = :v"),
    (REPORTER["account_id"], "SELECT count(*) FROM open311_requests WHERE account_id = :v"),
    *[(pii, "SELECT count(*) FROM cases WHERE strpos(description, :v) > 0")
      for pii in DESCRIPTION_PII],
]
# Keys of internal columns; none may appear in a public JSON answer, at any depth.
INTERNAL_KEYS = {"owner", "owner_name", "owner_kind", "owner_phone", "maintainer", "staff",
                 "grid_code", "grid_codes",
                 "reporter_email", "reporter_phone", "reporter_first_name",
                 "reporter_last_name", "email", "first_name", "last_name", "device_id",
                 "changed_by"}
FRIDAY_NIGHT = "2025-09-19T23:30"


@pytest.fixture(scope="module")
def leak_db(settings: Settings) -> Iterator[URL]:
    """This module's own database: the secrets are committed, so no other test may see them."""
    yield from throwaway_database(settings, "leaks")


@pytest.fixture(scope="module")
def leak_engine(leak_db: URL) -> Iterator[Engine]:
    eng = make_engine(leak_db)
    upgrade(eng)
    with transaction(eng) as session:
        build_city(session)
        session.execute(text("UPDATE stations SET staff = :s WHERE code = 'S-FAR'"),
                        {"s": STAFF})
        session.execute(text(
            "INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, "
            "capacity, operator, status, geom) VALUES (:n, 'night_market', '370102', "
            "CAST(:s AS jsonb), '[]', 10, :o, 'retired', ST_GeomFromText(:g, 4326))"),
            {"n": RETIRED_ZONE, "o": RETIRED_OPERATOR, "g": _square(117.0322, 36.6602, 0.0003),
             "s": json.dumps([{"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00",
                               "end": "23:59"}])})
        session.execute(text(
            "INSERT INTO roads (name, street_class, width_m, geom) VALUES ('测试路', 'managed', "
            "12, ST_GeomFromText('LINESTRING(117.030 36.6605, 117.033 36.6605)', 4326))"))
        session.execute(text(
            "INSERT INTO facilities (name, kind, address, opening_hours, phone, geom) VALUES "
            "('公厕丙', 'public_toilet', '测试路3号', '24小时', NULL, "
            "ST_SetSRID(ST_MakePoint(117.0312, 36.6604), 4326))"))
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def app(settings: Settings, leak_db: URL, leak_engine: Engine) -> FastAPI:
    copy = settings.model_copy(deep=True)
    copy.db.url = leak_db.render_as_string(hide_password=False)
    return create_app(copy)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def request_id(client: TestClient, leak_engine: Engine) -> str:
    """An Open311 request with contact details and personal data in its description."""
    dispatcher = headers_for(leak_engine, "dispatcher")
    response = client.post("/open311/v2/requests.json", headers=dispatcher, data={
        "service_code": "event-0101", "lat": "36.6615", "long": "117.0305",
        "description": DESCRIPTION, **REPORTER})
    assert response.status_code == 201, response.text
    service_request_id: str = response.json()[0]["service_request_id"]
    return service_request_id


def public_get_routes(app: FastAPI) -> list[str]:
    """Every GET route path under the public prefixes, included routers flattened."""
    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included-router node
                yield from walk(route.original_router.routes,
                                prefix + route.include_context.prefix)
            else:
                yield prefix + getattr(route, "path", ""), route
    paths = [path for path, route in walk(app.routes, "")
             if path.startswith(PUBLIC_PREFIXES) and "GET" in (getattr(route, "methods", None)
                                                              or ())]
    return sorted(set(paths))


def fill(path: str, client: TestClient, request_id: str) -> list[tuple[str, dict[str, str]]]:
    """Concrete URLs (with query parameters) for a route path, from the seeded data."""
    params: list[dict[str, str]] = [{}]
    if path == "/public/nearest":
        kinds = [k["id"] for k in client.get("/public/kinds").json()]
        params = [{"lon": "117.0315", "lat": "36.6615", "kind": k, "at": FRIDAY_NIGHT}
                  for k in kinds]
    elif path in ("/public/stall-zones", "/public/facilities"):
        params = [{"at": FRIDAY_NIGHT, "open_now": "false"}, {"at": FRIDAY_NIGHT}]
    elif path == "/public":
        params = [{"at": FRIDAY_NIGHT}]
    elif path == "/public/geocode":
        # The address search, asked for the secrets by a part of their names (the whole name
        # would come back as the echoed query).
        params = [{"q": q} for q in ("draft夜", RETIRED_ZONE[:-1], "王网格", "1380000000",
                                     "路", "1号")]
    elif path == "/open311/v2/requests.json":
        params = [{}, {"service_request_id": request_id}, {"status": "open"}]
    if "{" not in path:
        return [(path, p) for p in params]
    values: dict[str, list[str]] = {
        "service_request_id": [request_id],
        "service_code": [s["service_code"]
                         for s in client.get("/open311/v2/services.json").json()][:60],
        "tileMatrixSetId": ["WebMercatorQuad"],
        # 随手拍: the tracking page of the seeded request.
        "case_no": [request_id],
    }
    collections = [c["id"] for c in client.get("/ogc/collections").json()["collections"]]
    urls: list[tuple[str, dict[str, str]]] = []
    if "{collectionId}" in path:
        for cid in collections:
            concrete = path.replace("{collectionId}", cid)
            if "{itemId}" in concrete:
                items = client.get(f"/ogc/collections/{cid}/items",
                                   params={"limit": "1000"}).json()["features"]
                assert items, f"collection {cid} is empty: seed it"
                concrete = concrete.replace("{itemId}", str(items[0]["id"]))
            if "{z}" in concrete:
                x, y = lonlat_to_tile(117.0315, 36.6605, 15)
                concrete = concrete.replace("{z}", "15").replace("{x}", str(x)).replace(
                    "{y}", str(y))
            urls.append((concrete, {}))
    else:
        urls = [(path, {})]
    filled: list[tuple[str, dict[str, str]]] = []
    for url, query in urls:
        names = re.findall(r"\{(\w+)\}", url)
        combos = [url]
        for name in names:
            combos = [c.replace("{" + name + "}", v) for c in combos for v in values[name]]
        filled += [(c, query) for c in combos]
    return filled


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


def test_secrets_are_really_in_the_database(leak_engine: Engine, request_id: str) -> None:
    with leak_engine.connect() as conn:
        missing = [value for value, sql in SECRETS
                   if not conn.execute(text(sql), {"v": value}).scalar_one()]
    assert missing == []


def test_every_public_get_route_leaks_nothing_internal(app: FastAPI, client: TestClient,
                                                       request_id: str) -> None:
    routes = public_get_routes(app)
    # The walk finds the routes of all three interfaces, the tiles and one-feature routes too.
    assert {"/public/nearest", "/open311/v2/requests/{service_request_id}.json",
            "/ogc/collections/{collectionId}/items/{itemId}",
            "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}"} <= set(routes)
    called: dict[str, int] = {}
    tiles_with_features = set()
    for route in routes:
        if route == "/public/media/{name}.jpg":
            # Photo bytes, not data: EXIF-free copies under unguessable names, 404 for any
            # other name (tests/public/test_resident_report.py).
            continue
        for url, params in fill(route, client, request_id):
            response = client.get(url, params=params)
            assert response.status_code in (200, 204), (url, params, response.text[:300])
            called[route] = called.get(route, 0) + 1
            media = response.headers.get("content-type", "")
            if media.startswith("application/vnd.mapbox-vector-tile"):
                tile = mapbox_vector_tile.decode(response.content)
                tiles_with_features |= {name for name, layer in tile.items()
                                        if layer["features"]}
                body = json.dumps(tile, ensure_ascii=False, default=str)
                keys = all_keys([f["properties"] for layer in tile.values()
                                 for f in layer["features"]])
            else:
                body = response.text
                keys = all_keys(response.json()) if "json" in media else set()
            leaked = [value for value, _ in SECRETS if value in body]
            assert leaked == [], f"GET {url} {params} leaks {leaked}"
            assert keys & INTERNAL_KEYS == set(), f"GET {url} has keys {keys & INTERNAL_KEYS}"
    assert set(called) == set(routes) - {"/public/media/{name}.jpg"}
    # The tiles really carried the seeded features (the check is not over empty tiles).
    assert {"grid_cells", "stall_zones", "stations", "streetlights",
            "manhole_covers"} <= tiles_with_features


def test_the_posted_request_is_public_but_redacted(client: TestClient, request_id: str) -> None:
    (published,) = client.get(f"/open311/v2/requests/{request_id}.json").json()
    assert published["description"].startswith("有人私搭乱建")
    assert "[电话已隐藏]" in published["description"]
    assert "[邮箱已隐藏]" in published["description"]
    assert "[证件号已隐藏]" in published["description"]
