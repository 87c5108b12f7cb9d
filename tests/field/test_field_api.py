"""Field routes: tasks by deadline, supervisors' reports and on-site checks, who may do what."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from gis.geo.coords import gcj02_to_wgs84
from gis.geo.navigation import navigation_links
from tests.field.conftest import EAST_POINT, OWNER_WEST, WEST_POINT
from tests.support.accounts import headers_for


@pytest.fixture(scope="module")
def client(field_settings):
    with TestClient(create_app(field_settings)) as test_client:
        yield test_client


def new_case(client, engine, point, *, steps=("file", "dispatch"), **extra) -> dict:
    desk = headers_for(engine, "dispatcher")
    case = client.post("/cases", headers=desk, json={
        "category_type": "event", "category_code": "0102", "channel": "patrol",
        "x": point[0], "y": point[1], "description": "外业接口测试", **extra}).json()
    for action in steps:
        response = client.post(f"/cases/{case['id']}/actions/{action}", headers=desk, json={})
        assert response.status_code == 200, response.text
    return case


def test_navigation_links_carry_each_apps_datum():
    links = navigation_links(117.03, 36.66, label="LX1 暴露垃圾")
    assert links.geo.startswith("geo:36.660000,117.030000?q=")
    back = gcj02_to_wgs84(*links.gcj02)
    assert abs(float(back[0]) - 117.03) < 1e-5 and abs(float(back[1]) - 36.66) < 1e-5
    # GCJ-02 lies some hundreds of metres from WGS84 here; BD-09 further still.
    assert 0.003 < links.gcj02[0] - 117.03 < 0.01
    assert f"to={links.gcj02[0]:.6f},{links.gcj02[1]:.6f}," in links.amap
    assert f"latlng:{links.bd09[1]:.6f},{links.bd09[0]:.6f}" in links.baidu
    assert "coord_type=bd09ll" in links.baidu
    assert " " not in links.geo + links.amap + links.baidu


def test_a_grid_worker_gets_their_grids_tasks_by_deadline(client, field_engine):
    urgent = new_case(client, field_engine, WEST_POINT, urgency="urgent")
    normal = new_case(client, field_engine, WEST_POINT)
    foreign = new_case(client, field_engine, EAST_POINT)
    worker = headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST)
    tasks = client.get("/field/tasks", headers=worker).json()
    ids = [t["id"] for t in tasks]
    assert foreign["id"] not in ids
    assert ids.index(urgent["id"]) < ids.index(normal["id"])
    dues = [dt.datetime.fromisoformat(t["due_at"]) for t in tasks if t["due_at"]]
    assert dues == sorted(dues)
    mine = next(t for t in tasks if t["id"] == normal["id"])
    assert mine["actions"] == ["handle"]
    assert mine["category_name"]
    assert mine["nav"]["geo"].startswith(f"geo:{WEST_POINT[1]:.6f},{WEST_POINT[0]:.6f}")


def test_supervisor_reports_with_location_and_verifies_before_the_centre_closes(
        client, field_engine):
    supervisor = headers_for(field_engine, "supervisor")
    reported = client.post("/field/reports", headers={
        **supervisor, "Idempotency-Key": str(uuid.uuid4())}, json={
        "category_type": "event", "category_code": "0102", "lon": WEST_POINT[0],
        "lat": WEST_POINT[1], "accuracy_m": 8, "description": "垃圾堆放"})
    assert reported.status_code == 201, reported.text
    assert reported.json()["status"] == "collected"
    desk = headers_for(field_engine, "dispatcher")
    detail = client.get(f"/cases/{reported.json()['id']}", headers=desk).json()
    assert detail["channel"] == "patrol" and detail["raw_crs"] == "wgs84"
    assert detail["transitions"][0]["actor"].startswith("t-supervisor-")

    case = new_case(client, field_engine, WEST_POINT,
                    steps=("file", "dispatch", "handle", "report"))
    assert client.get("/field/tasks", headers=supervisor).json()[0]["actions"] == ["verify"]
    too_early = new_case(client, field_engine, WEST_POINT)
    assert client.post(f"/field/cases/{too_early['id']}/verify", headers=supervisor,
                       json={"result": "passed"}).status_code == 409
    checked = client.post(f"/field/cases/{case['id']}/verify", headers=supervisor, json={
        "result": "passed", "note": "现场已整洁", "lon": WEST_POINT[0], "lat": WEST_POINT[1]})
    assert checked.status_code == 201, checked.text
    seen = client.get(f"/field/cases/{case['id']}/verifications", headers=desk).json()
    assert [(v["result"], v["verifier"], v["case_status"]) for v in seen] == [
        ("passed", checked.json()["verifier"], "reported")]
    assert client.post(f"/cases/{case['id']}/actions/close", headers=desk,
                       json={}).status_code == 200


@pytest.mark.parametrize(("role", "owner", "method", "path", "status"), [
    ("supervisor", None, "post", "/cases/{id}/actions/close", 403),
    ("supervisor", None, "post", "/cases/{id}/actions/handle", 403),
    ("supervisor", None, "post", "/cases", 403),
    ("supervisor", None, "patch", "/assets/streetlights/3701020118905001", 403),
    ("grid_owner", OWNER_WEST, "post", "/field/cases/{id}/verify", 403),
    ("grid_owner", OWNER_WEST, "post", "/field/reports", 403),
    ("dispatcher", None, "post", "/field/cases/{id}/verify", 403),
    ("analyst", None, "get", "/field/tasks", 403),
])
def test_least_privilege(client, field_engine, role, owner, method, path, status):
    case = new_case(client, field_engine, WEST_POINT,
                    steps=("file", "dispatch", "handle", "report"))
    headers = headers_for(field_engine, role, owner_name=owner)
    body = {"result": "passed"} if "verify" in path else (
        {"category_type": "event", "category_code": "0102", "lon": WEST_POINT[0],
         "lat": WEST_POINT[1]} if path == "/field/reports" else {})
    if path == "/cases":
        body = {"category_type": "event", "category_code": "0102", "channel": "patrol",
                "x": WEST_POINT[0], "y": WEST_POINT[1]}
    if path.startswith("/assets"):
        body = {"lit": False}
    response = client.request(method.upper(), path.format(id=case["id"]), headers=headers,
                              json=body if method != "get" else None)
    assert response.status_code == status, response.text


def test_verifications_are_append_only(field_engine):
    with field_engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE case_verifications SET result = 'failed'"))


def test_page_manifest_and_worker(client, field_engine):
    assert client.get("/field", headers={"Accept": "text/html"},
                      follow_redirects=False).status_code == 303
    worker_headers = headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST)
    page = client.get("/field", headers=worker_headers)
    assert page.status_code == 200
    assert '<link rel="manifest" href="/field/manifest.webmanifest"' in page.text
    assert "cdn" not in page.text.lower()
    for path in ("/field/manifest.webmanifest", "/field/icon.svg", "/field-sw.js"):
        assert client.get(path).status_code == 401
    manifest = client.get("/field/manifest.webmanifest", headers=worker_headers).json()
    assert manifest["start_url"] == "/field" and manifest["display"] == "standalone"
    worker = client.get("/field-sw.js", headers=worker_headers)
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "connect-src 'self'" in worker.headers["content-security-policy"]
    assert '"/field"' in worker.text
