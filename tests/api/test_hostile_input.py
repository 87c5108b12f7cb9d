"""Hostile input answers 4xx naming the problem, never 500: one case per 500 the review found.

NUL and lone surrogates anywhere (path, query, form and JSON bodies, upload names), dates in
year 1 / 9999 with extreme offsets, paging and simplify values past any sane bound, JSON nested
50,000 deep, 400-digit coordinates, GeoJSON `properties: null`, empty and garbage uploads,
upload names `.` `..` and 300 characters, temporary paths in import errors, and a grid owner
reading a zone's versions. Every case here answered 500 (or leaked a path) before the guard in
api/input_guard.py, the date window of api/params.py and the bounds of api/ogc_params.py.
The app runs on the demo city; every request is refused, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.platform.settings import Settings
from tests.support.accounts import headers_for

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
YEAR_1 = "0001-01-01T00:00:00+14:00"
YEAR_9999 = "9999-12-31T23:59:59-14:00"
ZONE_PROPERTIES = ('"name":"n","zone_type":"night_market","capacity":3,"operator":"o",'
                   '"time_slots":[{"days":[5],"start":"18:00","end":"20:00"}]')
SQUARE = "[[117.05,36.66],[117.0505,36.66],[117.0505,36.6603],[117.05,36.6603],[117.05,36.66]]"


@pytest.fixture(scope="module")
def roles(demo_engine: Engine) -> dict[str, dict[str, str]]:
    """Authorization headers of each role (a grid owner of a zone's grid) and anonymous."""
    with demo_engine.connect() as conn:
        owner = conn.execute(text(
            "SELECT o.owner_name FROM zone_grids z JOIN grid_owners o USING (grid_code) "
            "WHERE z.zone_id = (SELECT min(id) FROM stall_zones) AND o.valid_to IS NULL "
            "LIMIT 1")).scalar_one()
    headers = {role: headers_for(demo_engine, role)
               for role in ("admin", "planner", "dispatcher")}
    headers["grid_owner"] = headers_for(demo_engine, "grid_owner", owner_name=owner)
    headers["anonymous"] = {}
    return headers


@pytest.fixture(scope="module")
def zone_id(demo_engine: Engine) -> int:
    """A demo stall zone."""
    with demo_engine.connect() as conn:
        return int(conn.execute(text("SELECT min(id) FROM stall_zones")).scalar_one())


@pytest.fixture(scope="module")
def client(demo_settings: Settings) -> Iterator[TestClient]:
    """The app on the demo city; a 500 comes back as a response, not an exception."""
    with TestClient(create_app(demo_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def call(client: TestClient, roles: dict[str, dict[str, str]], role: str, method: str,
         url: str, **kwargs: Any) -> Any:
    headers = {**roles[role], **kwargs.pop("headers", {})}
    return client.request(method, url, headers=headers, **kwargs)


def refused(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert all(f in response.text for f in fragments), response.text


# (role, method, url, request keywords, status, fragments of the message)
CASES: list[tuple[str, str, str, dict[str, Any], int, tuple[str, ...]]] = [
    # NUL and lone surrogates in path ids, query values, form and JSON bodies
    ("admin", "GET", "/layers/grid_cells/items/a%00b", {}, 400, ("path", "NUL")),
    ("admin", "GET", "/layers/%ED%A0%80", {}, 400, ("path", "UTF-8")),
    ("anonymous", "GET", "/open311/v2/requests/a%00b.json", {}, 400, ('"code": 400', "NUL")),
    ("anonymous", "GET", "/open311/v2/requests.json?service_request_id=%00", {}, 400,
     ("service_request_id", "NUL")),
    ("anonymous", "GET", "/ogc/collections/districts/items?ids=a%00b", {}, 400, ("'ids'",)),
    ("anonymous", "GET", "/ogc/collections/districts/items/%00", {}, 400,
     ('"code": "InvalidParameterValue"', "path")),  # the OGC exception shape under /ogc
    ("admin", "GET", "/cases?grid_code=%ED%A0%80", {}, 400, ("'grid_code'", "surrogate")),
    ("admin", "GET", "/audit?actor=a%00b", {}, 400, ("'actor'", "NUL")),
    ("admin", "GET", "/analysis/hotspots?category=%00", {}, 400, ("'category'",)),
    ("anonymous", "POST", "/auth/token",
     {"content": "username=a%00b&password=x", "headers": FORM}, 400, ("'username'", "NUL")),
    ("anonymous", "POST", "/auth/token",
     {"content": "username=a%ED%A0%80b&password=x", "headers": FORM}, 400, ("'username'",)),
    ("admin", "POST", "/cases",
     {"content": '{"category_type":"event","category_code":"0102","channel":"wechat",'
                 '"x":117.03,"y":36.66,"description":"a\\u0000b"}', "headers": JSON},
     400, ("JSON body", "NUL")),
    ("admin", "POST", "/cases",
     {"content": '{"category_type":"event","category_code":"0102","channel":"wechat",'
                 '"x":117.03,"y":36.66,"description":"a\\ud800b"}', "headers": JSON},
     400, ("JSON body", "surrogate")),
    ("admin", "POST", "/cases/1/actions/file",
     {"content": '{"note":"\\udfff x"}', "headers": JSON}, 400, ("surrogate",)),
    ("dispatcher", "POST", "/open311/v2/requests.json",
     {"content": '{"service_code":"event-0102","lat":36.66,"long":117.03,'
                 '"description":"\\u0000"}', "headers": JSON}, 400, ('"code": 400', "NUL")),
    ("dispatcher", "POST", "/open311/v2/requests.json",
     {"content": "service_code=event-0102&lat=36.66&long=117.03&description=a%00b",
      "headers": FORM}, 400, ("'description'", "NUL")),
    # dates outside 2000-2100 or with offsets past ±14:00
    ("anonymous", "GET", f"/public?at={YEAR_1.replace('+', '%2B')}", {}, 422, ("2000-01-01",)),
    ("anonymous", "GET", f"/public/facilities?at={YEAR_9999}", {}, 422, ("2100-12-31",)),
    ("anonymous", "GET", "/public/stall-zones?at=0001-01-01", {}, 422, ("2000-01-01",)),
    ("anonymous", "GET", f"/open311/v2/requests.json?start_date={YEAR_9999}", {}, 400,
     ("start_date", "2100-12-31")),
    ("anonymous", "GET", f"/open311/v2/requests.json?end_date={YEAR_1.replace('+', '%2B')}",
     {}, 400, ("end_date",)),
    ("admin", "GET", "/reports/daily?day=0001-01-01", {}, 422, ("2000-01-01",)),
    ("admin", "GET", "/reports/monthly?day=9999-12-31", {}, 422, ("2100-12-31",)),
    ("admin", "GET", "/analysis/indicators?day=9999-12-31", {}, 422, ("day",)),
    ("admin", "GET", "/zones/active?at=0001-01-01T00:00:00", {}, 422, ("at",)),
    ("admin", "GET", f"/zones/at?lon=117.03&lat=36.66&at={YEAR_9999}", {}, 422, ("at",)),
    ("admin", "POST", "/cases",
     {"json": {"category_type": "event", "category_code": "0102", "channel": "wechat",
               "x": 117.03, "y": 36.66, "reported_at": YEAR_1}}, 422, ("reported_at",)),
    ("admin", "POST", "/route", {"json": {"x": 117.03, "y": 36.66, "at": YEAR_9999}}, 422,
     ("2100-12-31",)),
    # numbers past any bound (/ogc answers 400 with an OGC exception, like the standard says)
    ("admin", "GET", "/layers/grid_cells/items?offset=100000000000000000000", {}, 422,
     ("offset",)),
    ("anonymous", "GET", "/ogc/collections/districts/items?offset=100000000000000000000", {},
     400, ("offset",)),
    ("anonymous", "GET", "/ogc/collections/districts/items?simplify=-1", {}, 400,
     ("simplify",)),
    ("anonymous", "GET", "/ogc/collections/districts/items?simplify=nan", {}, 400,
     ("simplify",)),
    ("anonymous", "GET", "/ogc/collections/districts/items/370102?simplify=nan", {}, 400,
     ("simplify",)),
    ("anonymous", "GET",
     "/ogc/collections/districts/tiles/WebMercatorQuad/10/853/410?simplify=nan", {}, 400,
     ("simplify",)),
    ("anonymous", "GET", "/ogc/collections/districts/tiles/WebMercatorQuad/tilejson.json"
                         "?minzoom=100000000000000000000", {}, 400, ("minzoom",)),
    ("anonymous", "GET", "/ogc/collections/stall_zones/items/99999999999999999999999", {},
     404, ("no item",)),
    ("planner", "POST", "/zones/check",
     {"content": '{"type":"Feature","properties":{' + ZONE_PROPERTIES + '},"geometry":'
                 '{"type":"Polygon","coordinates":[[[117.05,36.66],[117.0505,36.66],'
                 '[117.0505,36.6603],[117.05,' + "1" * 400 + '],[117.05,36.66]]]}}',
      "headers": JSON}, 422, ("finite numbers",)),
    # JSON nested 50,000 deep
    ("dispatcher", "POST", "/open311/v2/requests.json",
     {"content": "[" * 50_000 + "]" * 50_000, "headers": JSON}, 400, ("nested", "64")),
    # uploads: empty, garbage, names that cannot be files
    ("dispatcher", "POST", "/route/batch", {"files": {"file": ("a.csv", b"")}}, 422,
     ("a.csv", "empty")),
    ("dispatcher", "POST", "/route/batch", {"files": {"file": ("a.xlsx", b"garbage")}}, 422,
     ("a.xlsx", "Excel")),
    ("dispatcher", "POST", "/route/batch", {"files": {"file": (".", b"x,y\n1,2\n")}}, 422,
     ("'.'",)),
    ("admin", "POST", "/layers/facilities/import",
     {"files": {"file": ("..", b"x,y\n1,2\n")}}, 422, ("'..'",)),
    ("admin", "POST", "/layers/facilities/import",
     {"files": {"file": ("a" * 300 + ".csv", b"x,y\n1,2\n")}}, 422, ("304 bytes",)),
]


@pytest.mark.parametrize(("role", "method", "url", "kwargs", "status", "fragments"), CASES,
                         ids=[f"{c[1]} {c[2][:60]}" for c in CASES])
def test_hostile_input_is_refused(client: TestClient, roles: dict[str, dict[str, str]],
                                  role: str, method: str, url: str, kwargs: dict[str, Any],
                                  status: int, fragments: tuple[str, ...]) -> None:
    refused(call(client, roles, role, method, url, **dict(kwargs)), status, *fragments)


@pytest.mark.parametrize("properties", ["null", "[]", '"x"'])
def test_zone_update_without_properties_object(client: TestClient,
                                               roles: dict[str, dict[str, str]],
                                               zone_id: int, properties: str) -> None:
    body = ('{"type":"Feature","properties":' + properties
            + ',"geometry":{"type":"Polygon","coordinates":[' + SQUARE + "]}}")
    response = call(client, roles, "planner", "PUT", f"/zones/{zone_id}", content=body,
                    headers=JSON)
    refused(response, 422, "properties")


def test_garbage_import_names_the_file_not_the_temp_path(
        client: TestClient, roles: dict[str, dict[str, str]]) -> None:
    for name, content in [("a.geojson", b"garbage"), ("a.zip", b"PK\x03\x04junk"),
                          ("a.gpkg", b"SQLite format 3\x00junk")]:
        response = call(client, roles, "admin", "POST", "/layers/facilities/import",
                        files={"file": (name, content)})
        refused(response, 422, name)
        assert "/tmp" not in response.text and "citygrid-upload-" not in response.text


def test_grid_owner_reads_zone_versions(client: TestClient, roles: dict[str, dict[str, str]],
                                        zone_id: int) -> None:
    response = call(client, roles, "grid_owner", "GET", f"/zones/{zone_id}/versions")
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "FeatureCollection", response.text


def test_multipart_file_name_with_nul(client: TestClient,
                                      roles: dict[str, dict[str, str]]) -> None:
    body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\x00b.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\nx,y\n1,2\n\r\n--B--\r\n")
    response = call(client, roles, "admin", "POST", "/layers/facilities/import",
                    content=body, headers={"content-type": "multipart/form-data; boundary=B"})
    refused(response, 400, "upload file name", "NUL")


def test_json_scan() -> None:
    """Pairs and escaped backslashes pass; lone halves, NUL and depth do not."""
    from api.input_guard import json_problem

    assert json_problem(b'{"a": "\\ud83d\\ude00 \\\\ud800 [[[["}') is None
    assert json_problem(b'{"a": [' * 32 + b"1" + b"]}" * 32) is None
    assert "lone surrogate" in (json_problem(b'"\\ud83d x"') or "")
    assert "lone surrogate" in (json_problem(b'"\\ude00"') or "")
    assert "lone surrogate" in (json_problem(b'"\\ud83d"') or "")
    assert "NUL" in (json_problem(b'"\\u0000"') or "")
    assert "65 levels" in (json_problem(b"[" * 65 + b"]" * 65) or "")
