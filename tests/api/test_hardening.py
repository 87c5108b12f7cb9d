"""Input hardening: body size limit, vertex limit, unknown fields, NaN/Infinity, SQL-looking text.

Each refusal is a 4xx naming the problem, and each test counts the rows before and after to show
nothing was written. The app runs on the test database with the test's session (rolled back).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.platform.settings import Settings
from tests.dispatch.test_workflow import WEST_POINT, insert_grids
from tests.support.accounts import headers_for

BODY_KB = 8
UPLOAD_MB = 1
SQL = "'; DROP TABLE cases; --"


@contextmanager
def admin_client(settings: Settings, session: Session, *, body_kb: int) -> Iterator[TestClient]:
    """The app on the test's session, as an admin, with a JSON body limit of `body_kb`."""
    settings = settings.model_copy(deep=True)
    settings.api.max_body_kb = body_kb
    settings.api.max_upload_mb = UPLOAD_MB
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: session
    # Public reads too: a row the test stored (uncommitted) is visible to them only so.
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "admin")) as test_client:
        yield test_client


@pytest.fixture
def client(test_settings: Settings, session: Session) -> Iterator[TestClient]:
    """Small limits (8 KB JSON, 1 MB uploads), so the tests send little."""
    insert_grids(session)
    with admin_client(test_settings, session, body_kb=BODY_KB) as test_client:
        yield test_client


def count(session: Session, table: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def complaint(**changes: Any) -> dict[str, Any]:
    body = {"category_type": "event", "category_code": "0102", "channel": "wechat",
            "x": WEST_POINT[0], "y": WEST_POINT[1], "reported_at": "2026-09-30T09:00:00+08:00",
            "description": "路边暴露垃圾"}
    return {**body, **changes}


def square(n: int) -> list[list[float]]:
    """A closed ring of `n` positions around a small square in Jinan (n - 1 distinct)."""
    ring = []
    side = (n - 1) // 4 + 1
    x0, y0, step = 117.05, 36.66, 0.0004 / side
    for i in range(n - 1):
        edge, k = divmod(i, side)
        edge = min(edge, 3)
        ring.append([[x0 + k * step, y0], [x0 + 0.0004, y0 + k * step],
                     [x0 + 0.0004 - k * step, y0 + 0.0004], [x0, y0 + 0.0004 - k * step]][edge])
    return [*ring, ring[0]]


def zone(ring: list[list[float]], **props: Any) -> dict[str, Any]:
    properties = {"name": "山大路夜市", "zone_type": "night_market", "capacity": 4,
                  "operator": "某街道办",
                  "time_slots": [{"days": [5, 6], "start": "18:00", "end": "22:00"}], **props}
    return {"type": "Feature", "properties": properties,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_json_body_over_the_limit_with_content_length_is_413(client, session) -> None:
    before = count(session, "cases")
    body = json.dumps(complaint(description="x" * (BODY_KB * 1024))).encode()
    response = client.post("/cases", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"{BODY_KB} KB" in detail and "CITYGRID_API_MAX_BODY_KB" in detail
    assert f"Content-Length is {len(body)} bytes" in detail
    assert count(session, "cases") == before


def test_chunked_json_body_over_the_limit_is_413(client, session) -> None:
    before = count(session, "cases")
    chunks = [b'{"category_type": "event", "description": "', *[b"x" * 1024] * (BODY_KB + 2),
              b'"}']
    # A generator body goes out chunked, without Content-Length.
    response = client.post("/cases", content=iter(chunks),
                           headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413, response.text
    assert f"larger than the limit of {BODY_KB} KB" in response.json()["detail"]
    assert count(session, "cases") == before


def test_uploads_may_be_larger_than_json_up_to_the_upload_limit(client, session) -> None:
    rows = "x,y,category_code\n" + "117.0315,36.6605,0505\n" * 800  # ~18 KB > 8 KB
    ok = client.post("/route/batch", files={"file": ("calls.csv", rows.encode(), "text/csv")})
    assert ok.status_code != 413, ok.text
    before = count(session, "grid_cells")
    big = b"x,y\n" + b"117.0315,36.6605\n" * (UPLOAD_MB * 1024 * 1024 // 8)  # ~2 MB
    refused = client.post("/layers/grid_cells/import",
                          files={"file": ("grid.csv", big, "text/csv")})
    assert refused.status_code == 413, refused.text
    assert f"{UPLOAD_MB} MB" in refused.json()["detail"]
    assert count(session, "grid_cells") == before


def test_zone_with_too_many_vertices_is_422_naming_the_count(test_settings, session) -> None:
    before = count(session, "stall_zones")
    ring = square(10_001)
    default_kb = Settings().api.max_body_kb
    assert len(json.dumps(zone(ring))) < default_kb * 1024  # the body limit lets it through
    with admin_client(test_settings, session, body_kb=default_kb) as big:
        for path in ("/zones", "/zones/check"):
            response = big.post(path, json=zone(ring))
            assert response.status_code == 422, response.text
            assert "10001 vertices" in response.json()["detail"]
            assert "at most 10000" in response.json()["detail"]
    assert count(session, "stall_zones") == before


def test_unknown_fields_are_refused_naming_the_field(client, session) -> None:
    response = client.post("/route", json={"x": 117.0315, "y": 36.6605, "colour": "red"})
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == "colour" and error["type"] == "extra_forbidden"
               for error in response.json()["detail"])
    before = count(session, "cases")
    response = client.post("/cases", json=complaint(priority="high"))
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == "priority" for error in response.json()["detail"])
    assert count(session, "cases") == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_json_are_refused(client, session, literal) -> None:
    before = {table: count(session, table) for table in ("cases", "stall_zones")}
    body = json.dumps(complaint(x=0.0)).replace('"x": 0.0', f'"x": {literal}')
    response = client.post("/cases", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "x"]

    response = client.post("/route", content=f'{{"x": {literal}, "y": 36.66}}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "x"]

    ring = json.dumps(zone(square(5))).replace("117.05,", f"{literal},", 1)
    response = client.post("/zones", content=ring, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "finite numbers" in response.json()["detail"]
    assert {table: count(session, table) for table in before} == before


def test_sql_looking_strings_are_stored_verbatim_or_refused(client, session) -> None:
    before = count(session, "cases")
    created = client.post("/cases", json=complaint(description=SQL, case_no=SQL))
    assert created.status_code == 201, created.text
    assert created.json()["description"] == SQL and created.json()["case_no"] == SQL
    assert count(session, "cases") == before + 1  # the table is there, one row more

    # Query and path parameters: answered normally (empty, 404 or 422), never a 500.
    answers = {
        f"/cases?grid_code={SQL}": (200,),
        f"/audit?actor={SQL}&table={SQL}&row_key={SQL}": (200,),
        f"/layers/grid_cells/items/{SQL}": (404,),
        f"/layers/{SQL}/items": (404,),
        f"/layers/grid_cells/items?bbox={SQL}": (422,),
        f"/public/nearest?lon=117.03&lat=36.66&kind={SQL}": (422,),
        f"/public/facilities?kind={SQL}": (200, 422),
        f"/analysis/indicators?scope={SQL}&category={SQL}&channel={SQL}": (200, 422),
        f"/open311/v2/requests/{SQL}.json": (200,),  # the case just stored, by its number
        f"/open311/v2/services/{SQL}.json": (400,),
        f"/zones/at?lon=117.03&lat=36.66&at={SQL}": (422,),
    }
    for url, expected in answers.items():
        response = client.get(url)
        assert response.status_code in expected, (url, response.status_code, response.text)
    echoed = client.get(f"/open311/v2/requests/{SQL}.json").json()
    assert echoed[0]["service_request_id"] == SQL
    zones_before = count(session, "stall_zones")
    refused = client.post("/zones", json=zone(square(5), zone_type=SQL, name=SQL))
    assert refused.status_code == 422 and "zone_type" in refused.json()["detail"]
    assert count(session, "cases") == before + 1
    assert count(session, "stall_zones") == zones_before


# Regressions: server errors the fuzzer (tests/api/test_fuzz.py) found.

def test_ogc_bbox_that_is_not_numbers_is_400(client) -> None:
    for bbox in ("null", "1,2,3", "nan,0,1,1"):
        response = client.get("/ogc/collections", params={"bbox": bbox})
        assert response.status_code == 400, (bbox, response.text)  # OGC: invalid parameter
        assert repr(bbox) in response.json()["description"]


@pytest.fixture
def own_sessions_client(test_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The app with a session per request, as in production (reads only)."""
    with TestClient(create_app(test_settings), headers=headers_for(engine, "admin")) as client:
        yield client


def test_time_zone_offsets_postgresql_refuses_are_422_not_500(own_sessions_client) -> None:
    # Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59, the world ±14:00:
    # every date parameter (api/params.py) refuses the rest, and years outside 2000-2100,
    # before any conversion or SQL, naming the parameter and the value.
    client = own_sessions_client
    for url, key in (("/analysis/hotspots", "end"), ("/cases/overdue", "at"),
                     ("/audit", "since"), ("/analysis/indicators", "as_of")):
        for value, reason in (("2026-01-01T00:00:00+16:00", "offsets must be within"),
                              ("0001-01-01T00:00:00Z", "outside 2000-01-01 .. 2100-12-31")):
            response = client.get(url, params={key: value})
            assert response.status_code == 422, (url, response.text)
            [error] = response.json()["detail"]
            assert error["loc"] == ["query", key] and reason in error["msg"], (url, error)
    # +14:00 is a real offset: accepted. This database holds no district, so the hotspot study
    # area (the districts) is missing: 404 naming it, not a refusal of the time.
    response = client.get("/analysis/hotspots", params={"end": "2026-01-01T00:00:00+14:00"})
    assert response.status_code in (200, 404), response.text
    assert "offset" not in response.text


def test_point_far_outside_the_city_is_422_not_500(client) -> None:
    # EPSG:4548 cannot be computed at (18, 0): PostGIS failed "outside projection domain".
    response = client.get("/zones/at", params={"lon": 18.0, "lat": 0.0})
    assert response.status_code == 422, response.text
    assert "(18.0, 0.0) is outside" in response.json()["detail"]


def test_absurd_hours_for_cover_risk_are_422_not_500(client) -> None:
    # 1e300 hours overflowed PostgreSQL's interval (NumericValueOutOfRange inside pandas).
    response = client.get("/analysis/cover-risk", params={"damaged_high_after_h": 1e300})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "damaged_high_after_h"]
